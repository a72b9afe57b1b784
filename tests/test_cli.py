"""The command line and every `python -m adlib` command the README shows."""

import dataclasses
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from adlib.__main__ import build_parser, main, settings_from_args
from adlib.detectors.image_denoise import image_denoised_settings
from adlib.detectors.padim import padim_settings
from adlib.detectors.patchcore import patchcore_settings
from adlib.detectors.spade import spade_settings
from adlib.evaluation.experiment import run
from adlib.features.extractor import profile_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "-m", "adlib", "run", "--help"], capture_output=True, text=True, check=True)
    for option in (
        "--data",
        "--categories",
        "--method",
        "--coreset",
        "--sampler",
        "--distance",
        "--reweight",
        "--weights",
        "--backbone",
        "--layers",
        "--patch-size",
        "--seeds",
        "--out",
        "--heatmaps",
        "--channels",
        "--image-k",
        "--drop",
    ):
        assert option in out.stdout


def test_run_writes_table_csv_and_heatmaps(tiny_benchmark, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "results"
    main(
        [
            "run",
            "--data",
            str(tiny_benchmark),
            "--categories",
            "brick",
            "pill",
            "--backbone",
            "resnet18",
            "--weights",
            "none",
            "--coreset",
            "0.2",
            "--seeds",
            "0",
            "1",
            "--out",
            str(out),
            "--heatmaps",
            "4",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    printed = capsys.readouterr().out
    assert "image_auroc" in printed and "brick" in printed and "mean" in printed
    results = pd.read_csv(out / "results.csv")
    assert set(results["category"]) == {"brick", "pill"} and set(results["seed"]) == {0, 1}
    assert set(results["metric"]) >= {"image_auroc", "pixel_auroc", "pro", "fit_seconds"}
    assert (results["coreset_ratio"] == 0.2).all() and (results["features.weights"].isna()).all()
    assert (out / "heatmaps" / "brick.png").stat().st_size > 10_000


@pytest.mark.parametrize("method", ["padim", "spade", "image-denoised-patchcore", "patchcore-random"])
def test_every_method_runs_from_the_command_line(method, tiny_benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "results"
    main(
        [
            "run",
            "--data",
            str(tiny_benchmark),
            "--categories",
            "pill",
            "--method",
            method,
            "--backbone",
            "resnet18",
            "--weights",
            "none",
            "--out",
            str(out),
            "--heatmaps",
            "2",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {method}
    features = dataclasses.replace(profile_settings("synthetic"), backbone="resnet18", weights=None)
    settings = {
        "padim": padim_settings,
        "spade": spade_settings,
        "image-denoised-patchcore": image_denoised_settings,
        "patchcore-random": partial(patchcore_settings, sampler="random"),
    }[method](features)
    expected = run(tiny_benchmark, ["pill"], {method: settings}, device="cpu", progress=False)
    quality = ["image_auroc", "pixel_auroc", "pro"]  # the same numbers as experiment.run on the same settings
    got = results.set_index("metric")["value"][quality]
    pd.testing.assert_series_equal(got, expected.set_index("metric")["value"][quality])
    assert (out / "heatmaps" / "pill.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "padim", "--coreset", "0.2"], "--coreset do"),
        (["--method", "spade", "--channels", "5"], "--channels do"),
        (["--image-k", "5"], "--image-k do"),
        (["--method", "softpatch", "--drop", "0.1"], "--drop do"),
    ],
)
def test_options_the_method_does_not_read_are_rejected(argv, message):
    with pytest.raises(ValueError, match=message):
        settings_from_args(build_parser().parse_args(["run", *argv]))


def test_bad_settings_fail_with_the_setting_named():
    args = build_parser().parse_args(["run", "--coreset", "1.5"])
    with pytest.raises(ValueError, match=r"^--coreset with --method patchcore: --coreset 1\.5: use a share"):
        settings_from_args(args)
    args = build_parser().parse_args(["run", "--init-seed", "3"])
    with pytest.raises(ValueError, match="init_seed"):
        settings_from_args(args)


def readme_commands() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`(python -m adlib [^`]+)`", text)  # commands in tables and prose too
    commands = [line for line in lines if line.startswith("python -m adlib ")] + inline
    return list(dict.fromkeys(commands))


def test_readme_shows_cli_commands():
    assert readme_commands(), "the README should show how to run the CLI"


@pytest.mark.parametrize("command", readme_commands())
def test_readme_cli_commands_parse_into_valid_settings(command):
    """Every documented `python -m adlib` line names real options with valid values."""
    argv = command.split()[3:]
    if "--help" in argv:  # prints the help and exits 0 (test_help_lists_every_option runs it)
        with pytest.raises(SystemExit) as exit:
            build_parser().parse_args(argv)
        assert exit.value.code == 0
        return
    args = build_parser().parse_args(argv)
    if args.command == "run":  # `fetch` lines only need to parse (they would download)
        settings_from_args(args)


@pytest.mark.parametrize("method, extra", [("improved-patchcore", ["--top-k", "2"]), ("softpatch", ["--lof-k", "3"])])
def test_other_methods_run_from_the_cli(tiny_benchmark, tmp_path, monkeypatch, method, extra):
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / method
    main(
        [
            "run",
            "--data",
            str(tiny_benchmark),
            "--categories",
            "pill",
            "--method",
            method,
            "--backbone",
            "resnet18",
            "--weights",
            "none",
            "--coreset",
            "0.2",
            "--out",
            str(out),
            "--heatmaps",
            "0",
            "--no-progress",
            "--device",
            "cpu",
            *extra,
        ]
    )
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {method}
    if method == "softpatch":
        assert (results["denoise"] == "lof").all() and (results["lof_k"] == 3).all()
    else:
        assert (results["sampler"] == "kmeans").all() and (results["distance"] == "cosine").all()


def test_method_options_that_would_do_nothing_are_rejected_by_their_flag():
    with pytest.raises(
        ValueError, match=r"^--tau with --method patchcore: --tau only acts with --denoise 'nearest'\|'gaussian'\|'lof'"
    ):
        settings_from_args(build_parser().parse_args(["run", "--tau", "0.3"]))
    with pytest.raises(ValueError, match="^--top-k with --method patchcore: --top-k 3: .* needs --distance 'cosine'"):
        settings_from_args(build_parser().parse_args(["run", "--top-k", "3"]))
    with pytest.raises(
        ValueError, match="^--lof-k with --method softpatch-nearest: --lof-k 3 only acts with --denoise 'lof'"
    ):
        settings_from_args(build_parser().parse_args(["run", "--method", "softpatch-nearest", "--lof-k", "3"]))
    with pytest.raises(ValueError, match="^--backend do"):
        settings_from_args(build_parser().parse_args(["run", "--method", "padim", "--backend", "torch"]))


def test_noise_protocol_from_the_cli(tiny_benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    common = [
        "run",
        "--data",
        str(tiny_benchmark),
        "--categories",
        "pill",
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--coreset",
        "0.2",
        "--heatmaps",
        "0",
        "--no-progress",
        "--device",
        "cpu",
        "--noise",
        "0.34",
    ]
    main([*common, "--out", str(tmp_path / "a"), "--overlap"])
    main([*common, "--out", str(tmp_path / "b")])
    a, b = pd.read_csv(tmp_path / "a" / "results.csv"), pd.read_csv(tmp_path / "b" / "results.csv")
    assert (a["noise_moved"] == 2).all() and a["noise_overlap"].all() and not b["noise_overlap"].any()
    with pytest.raises(ValueError, match="--overlap only acts with --noise"):
        main(["run", "--data", str(tiny_benchmark), "--categories", "pill", "--overlap", "--no-progress", "--debug"])


def test_low_shot_from_the_cli_is_seeded(tiny_benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))
    common = [
        "run",
        "--data",
        str(tiny_benchmark),
        "--categories",
        "pill",
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--coreset",
        "0.2",
        "--heatmaps",
        "0",
        "--no-progress",
        "--device",
        "cpu",
        "--shots",
        "3",
    ]
    for name in ("a", "b"):
        main([*common, "--seeds", "0", "1", "--out", str(tmp_path / name)])
    a, b = pd.read_csv(tmp_path / "a" / "results.csv"), pd.read_csv(tmp_path / "b" / "results.csv")
    assert (a["shots"] == 3).all()
    quality = a["metric"].isin(["image_auroc", "pixel_auroc", "pro"])
    pd.testing.assert_series_equal(a.loc[quality, "value"], b.loc[quality, "value"])  # same seeds, same numbers
    by_seed = a[quality].pivot_table(index="metric", columns="seed", values="value")
    assert not by_seed[0].equals(by_seed[1])  # other seeds draw other shots
    with pytest.raises(ValueError, match="shots=99"):
        main([*common[:-1], "99", "--out", str(tmp_path / "c"), "--debug"])  # --debug: the exception itself


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adlib", *argv], capture_output=True, text=True)


@pytest.mark.parametrize("layout", ["empty", "no-category"])
def test_a_data_root_without_categories_is_one_error_line_with_status_2(tmp_path, layout):
    root = tmp_path / "root"
    root.mkdir()
    if layout == "no-category":
        (root / "photos").mkdir()
        (root / "notes.txt").write_text("not a category")
    done = run_cli("run", "--data", str(root), "--no-progress")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: no category folder under") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr and "KeyError" not in done.stderr
    assert ("found: nothing" if layout == "empty" else "found: notes.txt, photos") in done.stderr


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path):
    for argv in (["--debug", "run", "--data", str(tmp_path)], ["run", "--data", str(tmp_path), "--debug"]):
        done = run_cli(*argv, "--no-progress")
        assert done.returncode != 0 and "Traceback" in done.stderr and "DataError: no category folder" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--data", "/nonexistent/adlib-root"], "error: data root /nonexistent/adlib-root does not exist"),
        (["run", "--method", "padim", "--coreset", "0.2"], "error: --coreset do(es) nothing with --method padim"),
        (["run", "--profile", "paper"], "error: --data is required with --profile paper"),
        (["run", "--noise", "-1"], "error: --noise -1.0: the noise ratio must be in [0, 1)"),
        (["run", "--noise", "-1", "--overlap"], "error: --noise -1.0: the noise ratio must be in [0, 1)"),
        (["run", "--noise", "nan"], "error: --noise nan: the noise ratio must be in [0, 1), a finite number"),
        (["run", "--overlap"], "error: --overlap only acts with --noise > 0"),
        (["run", "--shots", "0"], "error: --shots 0: use a positive integer, or leave it out"),
    ],
)
def test_bad_inputs_are_one_line_with_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_with_debug_a_bad_input_raises_the_exception_itself():
    with pytest.raises(ValueError, match="--coreset do"):
        main(["run", "--method", "padim", "--coreset", "0.2", "--debug"])


def test_a_bug_is_not_hidden_as_a_bad_input(monkeypatch):
    import adlib.__main__ as cli

    def broken(args):
        raise KeyError("value")

    monkeypatch.setattr(cli, "run_command", broken)
    with pytest.raises(KeyError):
        main(["run"])


def test_cluster_options(monkeypatch):
    monkeypatch.setenv("ADLIB_SCHEDULER", "tcp://scheduler:8786")
    assert build_parser().parse_args(["run"]).scheduler == "tcp://scheduler:8786"
    assert build_parser().parse_args(["run", "--workers", "2"]).workers == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--scheduler", "tcp://a:1", "--workers", "2"])


def test_local_workers_write_the_in_process_table(tiny_benchmark, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.delenv("ADLIB_SCHEDULER", raising=False)
    tables = {}
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cache"))  # shared, as on a cluster (see test_experiment)
    for name, extra in (("here", []), ("workers", ["--workers", "2"])):
        monkeypatch.setenv("ADLIB_STORE_DIR", str(tmp_path / name / "store"))
        main(
            [
                "run",
                "--data",
                str(tiny_benchmark),
                "--categories",
                "pill",
                "--seeds",
                "0",
                "1",
                "--backbone",
                "resnet18",
                "--weights",
                "none",
                "--coreset",
                "0.2",
                "--out",
                str(tmp_path / name),
                "--heatmaps",
                "2",
                "--no-progress",
                "--device",
                "cpu",
                *extra,
            ]
        )
        tables[name] = pd.read_csv(tmp_path / name / "results.csv")
    assert "heatmaps are drawn in process only" in capsys.readouterr().out
    assert (tmp_path / "here" / "heatmaps" / "pill.png").is_file()
    assert not (tmp_path / "workers" / "heatmaps").exists()
    timings = tables["here"].metric.isin(["fit_seconds", "predict_seconds_per_image"])
    pd.testing.assert_frame_equal(tables["here"][~timings], tables["workers"][~timings])
    assert len(list((tmp_path / "workers" / "store").rglob("*.result"))) == 2  # the workers stored them


def test_numbers_do_not_depend_on_what_the_feature_cache_held(tiny_benchmark, tmp_path, monkeypatch):
    """A cold cache, and a cache filled first by other runs (other shots, other batch neighbours, test
    images first), give the same results.csv bytes for every accuracy number: each image's features are
    computed in a batch of one fixed shape (`adlib.features.extractor.fixed_shape`)."""
    common = ["run", "--data", str(tiny_benchmark), "--categories", "pill", "--backbone", "resnet18"]
    common += ["--weights", "none", "--coreset", "0.2", "--heatmaps", "0", "--no-progress", "--device", "cpu"]
    common += ["--seeds", "0"]
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "cold"))
    main([*common, "--out", str(tmp_path / "cold_run")])
    monkeypatch.setenv("ADLIB_CACHE_DIR", str(tmp_path / "warm"))
    for shots, seed in ((1, "3"), (5, "1")):  # fills the cache with other subsets first, in other batches
        main([*common[:-1], seed, "--shots", str(shots), "--out", str(tmp_path / f"fill{shots}")])
    main([*common, "--out", str(tmp_path / "warm_run")])

    def accuracy(folder: str) -> str:
        table = pd.read_csv(tmp_path / folder / "results.csv")
        return table[table["metric"].isin(["image_auroc", "pixel_auroc", "pro"])].to_csv(index=False)

    assert accuracy("cold_run") == accuracy("warm_run")
