"""One file per fitted model: its method, settings, backbone-weights tag and tensors, written atomically.

Every detector saves through `write_model` and loads through `read_model`, so they share one format and
one set of refusals: a file that is not a model, one whose bytes changed after it was written (a model
file is what users copy between machines, so it carries the SHA-256 of its contents and `read_state`
checks it), a model of another method, a newer format, other settings than the caller asked for, and
backbone weights that differ from the fit's. Layout: a magic line, the payload's SHA-256 in hex and a
newline, then the payload (a `torch.save` of the header and the state).
`settings_to_dict` / `settings_from_dict` are the detectors' settings as JSON-able dicts and back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from adlib import __version__
from adlib.features.extractor import FeatureSettings
from adlib.files import atomic_write_bytes

FORMAT = 2  # 2: the payload's SHA-256 after a magic line (format 1, a bare torch file, had no checksum)
MAGIC = b"adlib-model\n"
S = TypeVar("S")  # settings
M = TypeVar("M")  # model


def settings_to_dict(settings) -> dict[str, object]:
    """A settings dataclass as plain JSON values (tuples become lists), nested settings as nested dicts."""
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def settings_from_dict(cls: type[S], values: dict[str, object]) -> S:
    """The inverse of `settings_to_dict` for settings whose one nested field is `features`."""
    values = dict(values)
    return cls(features=FeatureSettings.from_dict(values.pop("features")), **values)


def write_model(path: Path, method: str, settings, weights_tag: str, state: dict[str, object]) -> None:
    """Writes `state` (tensors on the CPU, lists, None) with the method, settings and weights tag to `path`."""
    header = {
        "format": FORMAT,
        "adlib": __version__,
        "method": method,
        "settings": settings.to_dict(),
        "weights_tag": weights_tag,
    }
    write_state(Path(path), {**header, **state})


def write_state(path: Path, state: dict[str, object]) -> None:
    """Writes a model file's whole state (header included) with its checksum, atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    atomic_write_bytes(Path(path), MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def read_state(path: Path) -> dict[str, object]:
    """A model file's whole state, after checking its magic line and checksum (errors name the file)."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(
            f"{path} is not an adlib model file of format {FORMAT} (no magic line; files of adlib's format 1 "
            "carried no checksum): fit and save it again"
        )
    digest, _, payload = data[len(MAGIC) :].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError(
            f"{path} fails its checksum: its bytes changed after it was written (a damaged or edited copy): "
            "copy it again from where it was saved, or refit"
        )
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def read_model(
    path: Path, method: str, from_dict: Callable[[dict], S], settings: S | None, build: Callable[[S], M]
) -> tuple[M, dict]:
    """The model `build(stored settings)` and the file's whole state, from a `method` model file.

    Refuses a file that is not a model, holds another method or a newer format, was made with other
    settings than `settings` (when given), or was fitted with other backbone weights than the built
    model's extractor loads (by tag: the weights file's name and digest).
    """
    path = Path(path)
    state = read_state(path)
    try:
        version, stored_method = state["format"], state["method"]
    except Exception as error:
        raise ValueError(f"{path} is not a readable adlib model file ({error}); fit and save it again") from None
    if stored_method != method:
        raise ValueError(f"{path} holds a {stored_method!r} model, not a {method!r} model")
    if version > FORMAT:
        raise ValueError(
            f"{path} was written in model format {version} by adlib {state['adlib']}; this adlib "
            f"({__version__}) reads format {FORMAT} at most: upgrade adlib"
        )
    stored = from_dict(state["settings"])
    if settings is not None and settings != stored:
        differ = _differences(settings.to_dict(), stored.to_dict())
        raise ValueError(f"{path} was made with other settings ({differ}); refit it or load without settings")
    model = build(stored)
    if model.extractor.weights_tag != state["weights_tag"]:
        raise ValueError(
            f"{path} was fitted with backbone weights {state['weights_tag']}, but they load as "
            f"{model.extractor.weights_tag} here: supply the same weights file or refit"
        )
    return model, state


def _differences(a: dict[str, object], b: dict[str, object], prefix: str = "") -> str:
    """'key: a asked, b in the file' for every differing leaf of two nested dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            nested = _differences(left, right, f"{prefix}{key}.")
            out += [nested] if nested else []
        elif left != right:
            out.append(f"{prefix}{key}: {left!r} asked, {right!r} in the file")
    return "; ".join(out)
