"""adlib: a small, readable library behind the PatchCore / improved PatchCore / SoftPatch companion.

The pipeline's layers are packages (`data`, `features`, `bank`, `detectors`, `evaluation`, `evidence`,
`companion`); the main objects are also here, imported on first use, so that `import adlib` stays
cheap (no torch until a name below is touched):

    from adlib import PatchCore, PatchCoreSettings, load_category
    pill = load_category("data/synthetic", "pill")
    scores = PatchCore(PatchCoreSettings(coreset_ratio=0.1)).fit(pill.train).predict(pill.test)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "load_category": "adlib.data.datasets",
    "FeatureSettings": "adlib.features.extractor",
    "PatchCore": "adlib.detectors.patchcore",
    "PatchCoreSettings": "adlib.detectors.patchcore",
    "patchcore_settings": "adlib.detectors.patchcore",
    "improved_patchcore_settings": "adlib.detectors.patchcore",
    "softpatch_settings": "adlib.detectors.patchcore",
    "METHODS": "adlib.detectors.registry",
    "run": "adlib.evaluation.experiment",
    "run_grid": "adlib.evaluation.experiment",
    "Claim": "adlib.evidence.claims",
    "assess": "adlib.evidence.verdicts",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'adlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
