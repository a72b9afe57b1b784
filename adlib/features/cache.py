"""An on-disk cache of backbone layer maps, one file per image and layer.

Why per image and why layer maps: the backbone pass is the expensive step, and every ablation
(neighbourhood size, dimensions, sampler, scorer, low-shot subsets, noisy training sets) reuses the
same images' maps. Keying each image by the hash of its bytes lets a subset or a re-split hit the cache,
and a changed file miss it. The patch aggregation is recomputed from the maps (milliseconds). Each
layer is its own entry because a layer's map does not depend on which other layers are asked for:
PatchCore (layer2 + layer3), PaDiM (layer1-3), SPADE (layer1-4) and the feature-hierarchy ablations
then share the maps they have in common.

Layout: `<root>/<config digest>/config.json` records what the digest stands for (backbone, weights,
preprocessing, precision); `<root>/<config digest>/<ab>/<image digest>.<layer>.pt` holds one image's
map of one layer with a checksum. Writes are atomic (temporary file + `os.replace`); an entry that cannot be read
or whose checksum fails is reported, deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from adlib.files import atomic_write_bytes

FORMAT = 2


def default_cache_root() -> Path:
    """`$ADLIB_CACHE_DIR`, else `~/.cache/adlib/features`."""
    env = os.environ.get("ADLIB_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "adlib" / "features"


def _tensor_checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(name.encode())
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class FeatureCache:
    """Layer maps per image for one extraction configuration."""

    def __init__(self, root: Path, config: Mapping[str, object]):
        text = json.dumps(dict(config, format=FORMAT), sort_keys=True, default=str)
        self.config_digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        self.directory = Path(root) / self.config_digest
        config_file = self.directory / "config.json"
        if not config_file.is_file():
            atomic_write_bytes(config_file, json.dumps(json.loads(text), indent=2).encode())

    def path(self, image_digest: str, layer: str) -> Path:
        return self.directory / image_digest[:2] / f"{image_digest}.{layer}.pt"

    def get(self, image_digest: str, layer: str) -> torch.Tensor | None:
        """The cached map, or None on a miss; a broken entry is deleted (and so recomputed)."""
        path = self.path(image_digest, layer)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            tensors = entry["tensors"]
            if entry["format"] != FORMAT or entry["image"] != image_digest or set(tensors) != {layer}:
                raise ValueError("entry belongs to another image, layer or format")
            if _tensor_checksum(tensors) != entry["checksum"]:
                raise ValueError("checksum mismatch")
        except Exception as error:  # any unreadable entry is rebuilt, never trusted
            warnings.warn(f"feature cache entry {path} is broken ({error}); recomputing it", stacklevel=2)
            path.unlink(missing_ok=True)
            return None
        return tensors[layer]

    def put(self, image_digest: str, layer: str, tensor: torch.Tensor) -> None:
        tensors = {layer: tensor.detach().cpu().contiguous().clone()}
        entry = {"format": FORMAT, "image": image_digest, "tensors": tensors, "checksum": _tensor_checksum(tensors)}
        buffer = io.BytesIO()
        torch.save(entry, buffer)
        atomic_write_bytes(self.path(image_digest, layer), buffer.getvalue())
