"""SoftPatch's sweeps as per-image tables a trend or a paired claim can be judged on.

Two notebooks sweep one thing at a time: the noise ratio (SP Fig. 3/6/7: `noise_sweep`, `setting_rows`,
`paper_noise_points`) and SoftPatch-LOF's two knobs k and tau (SP Table 5, Fig. 4: `lof_grid`,
`lof_rows`, `paper_lof_points`). The helpers only run grids through `adlib.evaluation.experiment.run_grid` and cut
or relabel its per-image table (`GridResults.images`), so every score comes from the ordinary protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from adlib.data.datasets import load_category
from adlib.data.protocol import max_noise_ratio

#: The paper's names of the two noise settings, by `noise_overlap`.
SETTINGS = {False: "no overlap", True: "overlap"}


# --------------------------------------------------------------------------- the noise sweep (SP Fig. 3)


def noise_sweep(
    data_root: Path | str,
    categories: Sequence[str],
    methods: Mapping[str, object],
    seeds: Sequence[int],
    noise_ratios: Sequence[float],
    overlaps: Sequence[bool] = (False, True),
    shots: int | None = None,
    test_images: int | None = None,
):
    """`run_grid` once per (noise ratio, overlap), ratio 0 once (a clean training set has no overlap);
    `shots` training and `test_images` test images per (category, seed), drawn after the noise.

    Returns (metrics, images, pixel_stats): the two tables of every grid, concatenated, and every
    evaluation's pixel statistics by the images table's `result_key` (for pixel claims). Raises if a category cannot
    give a ratio (too few anomalous test images, `adlib.data.protocol.max_noise_ratio`): a trend needs every
    ratio on the same categories.
    """
    from adlib.evaluation.experiment import run_grid

    for name in categories:
        clean = load_category(data_root, name)
        for overlap in overlaps:
            largest = max_noise_ratio(clean, overlap)
            if max(noise_ratios) > largest:
                raise ValueError(
                    f"{name} gives noise ratios up to {largest:.3f} with overlap={overlap}; "
                    f"drop the ratios above it or the category"
                )
    grids = [
        run_grid(
            data_root,
            categories,
            methods,
            seeds=seeds,
            noise_ratio=ratio,
            noise_overlap=overlap,
            shots=shots,
            test_images=test_images,
            progress=False,
        )
        for ratio in noise_ratios
        for overlap in ([False] if ratio == 0 else overlaps)
    ]
    return (
        pd.concat([grid.metrics for grid in grids], ignore_index=True),
        pd.concat([grid.images for grid in grids], ignore_index=True),
        {key: stats for grid in grids for key, stats in grid.pixel_stats.items()},
    )


def setting_rows(images: pd.DataFrame, overlap: bool, tagged: bool = False) -> pd.DataFrame:
    """The per-image rows of one setting's curve: the clean runs (ratio 0, where both curves start) and the
    noisy runs with this `overlap`, with a `setting` column ('no overlap' / 'overlap'). `tagged` appends
    the setting to every method name ('PatchCore, overlap'), so that a verdict's words name its setting."""
    keep = (images["noise_ratio"] == 0) | (images["noise_overlap"].astype(bool) == overlap)
    rows = images[keep].assign(setting=SETTINGS[overlap])
    return rows.assign(method=rows["method"] + f", {SETTINGS[overlap]}") if tagged else rows


def paper_noise_points(methods: Sequence[str], metric: str = "image_auroc") -> pd.DataFrame:
    """SP's MVTec AD means at noise 0 and 0.1 per setting and method: Table 1 (image) / 2 (pixel) prints
    the noise-0.1 mean and its gap to the noise-free run, so noise 0 = mean - gap. Columns setting,
    method, noise_ratio, value. The paper's overlap PaDiM is PaDiM* (ResNet-18), listed as PaDiM."""
    from adlib.evidence.paper import reported

    table = {"image_auroc": "1", "pixel_auroc": "2"}[metric]
    rows = reported(paper="SP", table=table)
    rows = rows[(rows["category"] == "mean") & rows["metric"].isin([metric, f"{metric}_gap"])]
    rows = rows.assign(
        method=rows["method"].replace({"PaDiM*": "PaDiM"}),
        setting=rows["setting"].map({"noise=0.1;overlap=no": "no overlap", "noise=0.1;overlap=yes": "overlap"}),
    )
    wide = (
        rows[rows["method"].isin(methods)]
        .pivot_table(index=["setting", "method"], columns="metric", values="fraction")
        .reset_index()
    )
    noisy = wide.assign(noise_ratio=0.1, value=wide[metric])
    clean = wide.assign(noise_ratio=0.0, value=wide[metric] - wide[f"{metric}_gap"])
    return pd.concat([clean, noisy], ignore_index=True)[["setting", "method", "noise_ratio", "value"]]


def paper_gap(method: str, overlap: bool, against: str | None = None, metric: str = "image_auroc") -> float | None:
    """SP Table 1 (image) / 2 (pixel): the MVTec AD mean at noise 0.1 minus the noise-free one, of `method`
    (minus that of `against`, if given) in one setting; None where the paper prints no such row. The
    paper's overlap PaDiM is PaDiM* (ResNet-18)."""
    from adlib.evidence.claims import reported_value

    table = {"image_auroc": 1, "pixel_auroc": 2}[metric]
    setting = f"noise=0.1;overlap={'yes' if overlap else 'no'}"

    def gap(name: str) -> float | None:
        name = "PaDiM*" if name == "PaDiM" and overlap else name
        try:
            return reported_value("SP", table, name, f"{metric}_gap", setting)
        except ValueError:
            return None

    value = gap(method)
    if against is None or value is None:
        return value
    other = gap(against)
    return None if other is None else value - other


# --------------------------------------------------------------------------- LOF k and tau (SP Table 5, Fig. 4)


def lof_name(lof_k: int, tau: float) -> str:
    """The grid's method name of one (k, tau): 'k=6, tau=0.15'."""
    return f"k={lof_k}, tau={tau:g}"


def lof_grid(base, lof_ks: Sequence[int], taus: Sequence[float], lof_k: int, tau: float) -> dict[str, object]:
    """SoftPatch-LOF settings for two one-at-a-time sweeps: every k at `tau`, every tau at `lof_k`
    (the two share (lof_k, tau)). `base`: the SoftPatch-LOF settings the sweeps start from."""
    pairs = sorted({(k, tau) for k in lof_ks} | {(lof_k, t) for t in taus})
    return {lof_name(k, t): dataclasses.replace(base, lof_k=k, tau=t) for k, t in pairs}


def lof_rows(
    images: pd.DataFrame, grid: Mapping[str, object], overlap: bool, vary: str, at: float, method: str | None = None
) -> pd.DataFrame:
    """One setting's rows of one sweep: `vary` ('lof_k' or 'tau') moves, the other knob stays at `at`.

    Adds the columns lof_k, tau and setting. `method` None names each row's method by the moving value and
    the setting ('k=3, overlap', 'tau=0.3, no overlap': for paired claims between two values); a name
    (e.g. 'SoftPatch-lof') gives every row that one method, for a trend claim over the `vary` column.
    """
    if vary not in ("lof_k", "tau"):
        raise ValueError(f"vary={vary!r}: sweep 'lof_k' or 'tau'")
    knobs = pd.DataFrame(
        [{"method": name, "lof_k": settings.lof_k, "tau": settings.tau} for name, settings in grid.items()]
    )
    rows = images[images["noise_overlap"].astype(bool) == overlap].merge(knobs, on="method", how="inner")
    fixed = "tau" if vary == "lof_k" else "lof_k"
    rows = rows[rows[fixed] == at].assign(setting=SETTINGS[overlap])
    label = "k" if vary == "lof_k" else "tau"
    names = rows[vary].map(lambda value: f"{label}={value:g}, {SETTINGS[overlap]}") if method is None else method
    return rows.assign(method=names).reset_index(drop=True)


def paper_lof_points() -> pd.DataFrame:
    """SP Table 5's MVTec AD means per setting and k: columns setting, metric, lof_k, value."""
    from adlib.evidence.paper import reported

    rows = reported(paper="SP", table="5")
    switches = rows["setting"].str.split(";").map(lambda parts: dict(part.split("=") for part in parts))
    return pd.DataFrame(
        {
            "setting": [SETTINGS[s["overlap"] == "yes"] for s in switches],
            "metric": rows["metric"].to_numpy(),
            "lof_k": [int(s["lof_k"]) for s in switches],
            "value": rows["fraction"].to_numpy(),
        }
    )
