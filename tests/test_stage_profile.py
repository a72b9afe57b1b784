"""scripts/stage_profile.py: py-spy's folded stacks of the notebook kernels, summed by stage."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stage_profile(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import stage_profile

    return stage_profile


WORKER = 'process 10:"python -c from multiprocessing.spawn import spawn_main"'
KERNEL = 'process 11:"python -m ipykernel_launcher -f /tmp/k.json"'


def folded(*stacks: tuple[list[str], int], kernel: bool = True) -> str:
    head = [WORKER, KERNEL] if kernel else [WORKER]
    return "\n".join(";".join(head + frames) + f" {count}" for frames, count in stacks) + "\n"


def test_each_sample_goes_to_its_innermost_stage_and_only_kernels_count(tmp_path, stage_profile):
    grid = "run_grid (/x/adlib/evaluation/experiment.py:90)"
    fit = "fit (/x/adlib/detectors/patchcore.py:200)"
    text = folded(
        ([grid, fit, "sample (/x/adlib/bank/clustering.py:130)", "mm (torch/functional.py:1)"], 40),  # K-means in a fit
        ([grid, fit, "embed (/x/adlib/features/extractor.py:190)"], 20),
        ([grid, "predict (/x/adlib/detectors/patchcore.py:250)"], 10),
        (["assess (/x/adlib/evidence/verdicts.py:300)", "percentile (numpy/lib/function_base.py:1)"], 8),
        (["savefig (/x/matplotlib/figure.py:3000)"], 4),
        (["<module> (<ipython-input-1>:1)", "_find_and_load (<frozen importlib._bootstrap>:1176)"], 6),
        (["concat (pandas/core/reshape/concat.py:1)"], 2),
    )
    text += folded((["wait (/x/multiprocessing/connection.py:1)"], 1000), kernel=False)  # the worker waiting
    (tmp_path / "nb.txt").write_text(text)
    times = tmp_path / "times.csv"
    times.write_text("notebook,profile,seconds\nnb,synthetic,10.0\n")
    table = stage_profile.stage_table(tmp_path, times)
    rate = stage_profile.RATE
    row = table.loc["nb"]
    assert row["bank (coreset, K-means)"] == round(40 / rate) and row["features"] == round(20 / rate)
    assert row["sampled"] == round(90 / rate) and row["wall"] == 10 and row["unsampled"] == round(10 - 90 / rate)
    assert stage_profile.stage_of([grid, "predict (/x/adlib/detectors/patchcore.py:250)"]) == "search, scoring and maps"
    assert stage_profile.stage_of(["assess (/x/adlib/evidence/verdicts.py:300)"]) == "bootstrap and verdicts"
    assert stage_profile.stage_of(["concat (pandas/core/reshape/concat.py:1)"]) == "other (pandas, numpy, kernel)"
    assert table.loc["total", "sampled"] == row["sampled"]


def test_a_kernel_labelled_with_its_parents_command_is_known_by_its_launcher_frames(stage_profile):
    launcher = ["_run_module_as_main (runpy.py:198)", "<module> (ipykernel_launcher.py:18)"]
    line = ";".join([WORKER, WORKER.replace("10", "11"), *launcher, "embed (/x/adlib/features/extractor.py:1)"]) + " 5"
    assert stage_profile.kernel_frames(line)[-1] == "embed (/x/adlib/features/extractor.py:1)"
    waiting = ";".join([WORKER, "wait (/x/multiprocessing/connection.py:1)"]) + " 5"
    assert stage_profile.kernel_frames(waiting) is None
