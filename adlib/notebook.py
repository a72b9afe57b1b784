"""What the companion notebooks share, so that their cells read like the method, not like set-up.

Every notebook starts from the same parameters (`profile`, `data_root`, `backbone`, `categories`, `seeds`,
`quick`). `setup` turns them into the feature settings and the category list (and applies the plot
style); `record` is the settings dict a figure's CSV and caption carry (`adlib.report.publish`);
`softpatch_variants` builds SoftPatch's three discriminators with the notebook's tau and LOF k.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from adlib.data import list_categories
from adlib.features import FeatureSettings, profile_settings
from adlib.methods import PatchCoreSettings, softpatch_settings


def setup(
    profile: str,
    data_root: Path | str,
    backbone: str | None = None,
    categories: Sequence[str] | None = None,
    synthetic_categories: Sequence[str] = ("pill",),
) -> tuple[FeatureSettings, list[str]]:
    """The profile's feature settings (with `backbone` if given) and the categories to run: `categories` if
    given, else `synthetic_categories` on the synthetic profile and every category under `data_root` on
    the paper profile. Applies adlib's plot style to matplotlib."""
    from adlib.plotting import STYLE, pyplot

    pyplot().rcParams.update(STYLE)
    features = profile_settings(profile)
    if backbone is not None:
        features = dataclasses.replace(features, backbone=backbone)
    if categories is None:
        categories = synthetic_categories if profile == "synthetic" else list_categories(data_root)
    return features, list(categories)


def record(
    profile: str,
    data_root: Path | str,
    features: FeatureSettings,
    categories: Sequence[str],
    seeds: Sequence[int],
    quick: bool,
    **settings: object,
) -> dict[str, object]:
    """What a figure records of its run: profile, data set (folder name), backbone, categories, seeds and
    `quick`, then the notebook's own `settings` (a name given twice, e.g. `backbone`, takes the later value)."""
    common = {"profile": profile, "data_root": Path(data_root).name, "backbone": features.backbone,
              "categories": list(categories), "seeds": list(seeds), "quick": quick}
    return {**common, **settings}


def softpatch_variants(
    features: FeatureSettings,
    coreset_ratio: float,
    tau: float,
    lof_k: int,
    denoisers: Sequence[str] = ("nearest", "gaussian", "lof"),
) -> dict[str, PatchCoreSettings]:
    """{"SoftPatch-<denoiser>": settings}: each discriminator with the same coreset and tau; LOF with `lof_k`
    (the others have no k)."""
    return {
        f"SoftPatch-{denoise}": softpatch_settings(features, denoise, coreset_ratio, tau=tau,
                                                   **({"lof_k": lof_k} if denoise == "lof" else {}))
        for denoise in denoisers
    }
