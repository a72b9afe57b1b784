"""Transformed training copies of overlapping noise (SoftPatch App. A.7, Table 10).

Under SoftPatch's *Overlap* setting the anomalous images put into the training set are also test images, so a
memory bank that keeps their patches matches those test images exactly. SP Table 10 makes the training copy
differ from its test image: Gaussian noise, noise and blur, a rotation, or an affine warp. The paper states no
parameters; these are adlib's, fixed here (the module constants) and named in the notebook:

- `gaussian`: additive Gaussian noise, sigma = NOISE_SIGMA on intensities in [0, 1], clipped.
- `gaussian_blur` (SP's "noise and blur"): a Gaussian blur of BLUR_SIGMA_PER_256 pixels per 256 pixels of the
  shorter side, then the same noise.
- `rotation`: a rotation about the centre by an angle of ROTATION_DEGREES (uniform magnitude, random sign).
- `affine`: rotation AFFINE_ROTATION, scale AFFINE_SCALE, shear AFFINE_SHEAR (degrees), translation up to
  AFFINE_SHIFT of the size on each axis, about the centre.

Geometric warps are bilinear and reflect at the border (no black corners that good images never show); the
mask of a warped copy gets the same warp (nearest), so it still marks its defect. Each copy carries its own
seed (`NoiseTransform.seed`, drawn from the protocol seed by `adlib.data.protocol.add_training_noise`): the
same seed gives the same parameters and the same noise. The copy exists only in memory, produced from its
source file when it is read; `sample_digest` keys it in the feature cache apart from the file itself.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from adlib.files import content_digest

TRANSFORMS = ("gaussian", "gaussian_blur", "rotation", "affine")
VERSION = 1  # part of the feature-cache key: bump it when a parameter or the drawing order changes
NOISE_SIGMA = 0.1
BLUR_SIGMA_PER_256 = 1.5
ROTATION_DEGREES = (10.0, 30.0)
AFFINE_ROTATION = (-10.0, 10.0)
AFFINE_SCALE = (0.9, 1.1)
AFFINE_SHEAR = (-10.0, 10.0)
AFFINE_SHIFT = 0.05


def check_noise_transform(name: object, setting: str = "noise_transform") -> None:
    """Refuses a transform name that is not None or one of TRANSFORMS, naming the setting and the choices."""
    if name is not None and name not in TRANSFORMS:
        raise ValueError(f"{setting}={name!r}: use None (the copy as it is) or one of {', '.join(TRANSFORMS)}")


@dataclass(frozen=True)
class NoiseTransform:
    """Which transform a training copy gets, and the seed of its parameters and noise."""

    name: str
    seed: int

    def __post_init__(self) -> None:
        check_noise_transform(self.name, "NoiseTransform.name")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"NoiseTransform.seed={self.seed!r}: use a non-negative integer")


def parameters(transform: NoiseTransform, height: int, width: int) -> dict[str, float]:
    """The transform's drawn parameters for an image of this size (the first draws of its seed's stream)."""
    rng = np.random.default_rng(transform.seed)
    if transform.name == "gaussian":
        return {"noise_sigma": NOISE_SIGMA}
    if transform.name == "gaussian_blur":
        return {"blur_sigma": BLUR_SIGMA_PER_256 * min(height, width) / 256, "noise_sigma": NOISE_SIGMA}
    if transform.name == "rotation":
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return {"rotation": sign * rng.uniform(*ROTATION_DEGREES)}
    return {
        "rotation": rng.uniform(*AFFINE_ROTATION),
        "scale": rng.uniform(*AFFINE_SCALE),
        "shear": rng.uniform(*AFFINE_SHEAR),
        "shift_rows": rng.uniform(-AFFINE_SHIFT, AFFINE_SHIFT) * height,
        "shift_cols": rng.uniform(-AFFINE_SHIFT, AFFINE_SHIFT) * width,
    }


def _forward_matrix(drawn: dict[str, float]) -> np.ndarray:
    """The 2x2 forward map on (row, col) offsets from the centre: rotation . shear . scale."""
    angle, shear = math.radians(drawn["rotation"]), math.radians(drawn.get("shear", 0.0))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shearing = np.array([[1.0, 0.0], [math.tan(shear), 1.0]])
    return rotation @ shearing * drawn.get("scale", 1.0)


def _warp(pixels: np.ndarray, drawn: dict[str, float], order: int) -> np.ndarray:
    """`pixels` [H, W] or [H, W, C] warped about the centre: output o reads input A^-1 (o - c - t) + c."""
    height, width = pixels.shape[:2]
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    shift = np.array([drawn.get("shift_rows", 0.0), drawn.get("shift_cols", 0.0)])
    inverse = np.linalg.inv(_forward_matrix(drawn))
    offset = centre - inverse @ (centre + shift)
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    warped = [
        ndimage.affine_transform(planes[..., c], inverse, offset=offset, order=order, mode="reflect")
        for c in range(planes.shape[2])
    ]
    return np.stack(warped, axis=-1).reshape(pixels.shape)


def apply_to_image(pixels: np.ndarray, transform: NoiseTransform) -> np.ndarray:
    """The transformed copy of an 8-bit RGB image [H, W, 3] (uint8 in, uint8 out)."""
    height, width = pixels.shape[:2]
    drawn = parameters(transform, height, width)
    image = pixels.astype(np.float64) / 255.0
    if "blur_sigma" in drawn:
        image = ndimage.gaussian_filter(image, sigma=(drawn["blur_sigma"], drawn["blur_sigma"], 0), mode="reflect")
    if "noise_sigma" in drawn:
        noise_rng = np.random.default_rng([transform.seed, 1])  # apart from the parameters' stream
        image = image + noise_rng.normal(0.0, drawn["noise_sigma"], image.shape)
    if "rotation" in drawn:
        image = _warp(image, drawn, order=1)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def apply_to_mask(mask: np.ndarray, transform: NoiseTransform) -> np.ndarray:
    """The copy's mask [H, W] bool: warped like its image (nearest), unchanged by noise and blur."""
    if transform.name in ("gaussian", "gaussian_blur"):
        return mask
    drawn = parameters(transform, *mask.shape)
    return _warp(mask.astype(np.uint8), drawn, order=0) > 0


def sample_digest(image: Path, transform: NoiseTransform | None) -> str:
    """What the feature cache keys an image by: the file's digest, or for a transformed copy a digest of
    the file's digest, the transform, its seed and VERSION (so the copy never shares the file's entry)."""
    digest = content_digest(Path(image))
    if transform is None:
        return digest
    text = f"{digest}|{transform.name}|{transform.seed}|v{VERSION}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
