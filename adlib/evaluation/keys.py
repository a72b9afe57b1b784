"""What a stored evaluation is keyed by: everything that decides its numbers, as JSON values.

`adlib.evaluation.store.ResultStore.key` hashes this request (with the scoring code's digest), so two
jobs share an entry exactly when their data, settings, protocol, seed, search backend, device type,
backbone weights files and library versions agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from adlib.data.datasets import Category
from adlib.evaluation.store import data_fingerprint
from adlib.features.extractor import default_device
from adlib.files import content_digest

if TYPE_CHECKING:
    from adlib.evaluation.jobs import Job


def weights_files(values: object) -> dict[str, str]:
    """Content digests of the backbone weights files the settings name (not 'imagenet' or a random init)."""
    found: dict[str, str] = {}
    if isinstance(values, dict):
        for name, value in values.items():
            if name == "weights" and isinstance(value, str) and value != "imagenet" and Path(value).is_file():
                found[value] = content_digest(Path(value))
            else:
                found.update(weights_files(value))
    return found


def evaluation_request(job: Job, category: Category) -> dict[str, object]:
    """Everything that decides the job's numbers (`category`: the job's prepared category)."""
    settings = job.settings.to_dict()
    runtime = job.runtime
    device = torch.device(runtime.device) if runtime.device is not None else default_device()
    return {
        "data": data_fingerprint(category.train, category.test, category.root.parent),
        "category": job.category,
        "settings_type": type(job.settings).__qualname__,
        "settings": settings,
        "protocol": job.protocol.to_dict(),
        "seed": job.seed,
        "backend": runtime.backend,
        "device": device.type,
        "weights_files": weights_files(settings),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
