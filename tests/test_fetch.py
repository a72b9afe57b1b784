"""`python -m adlib fetch` against a loopback HTTP server (127.0.0.1 only) that serves archives made here."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adlib.__main__ import main
from adlib.data import fetch
from adlib.data.datasets import list_categories, load_category

FILES = {  # one category in the MVTec layout, inside a top folder as in BTAD's zip
    "bottle/train/good/000.png": b"train image",
    "bottle/test/good/000.png": b"good test image",
    "bottle/test/broken/000.png": b"broken test image",
    "bottle/ground_truth/broken/000_mask.png": b"its mask",
    "license.txt": b"CC BY-NC-SA 4.0",
}


def make_archive(kind: str, top: str = "", noise: int = 0) -> bytes:
    """The FILES as a .tar.xz, .tar.gz or .zip (as MVTec AD, MVTec LOCO and BTAD ship), optionally under `top`/,
    with `noise` incompressible bytes in one more training image (to make it long)."""
    files = dict(FILES)
    if noise:
        files["bottle/train/good/001.png"] = random.Random(0).randbytes(noise)
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(top + name, data)
    else:
        with tarfile.open(fileobj=buffer, mode={"tar.xz": "w:xz", "tar.gz": "w:gz"}[kind]) as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(top + name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Server:
    """An HTTP server on 127.0.0.1 that serves `files`, honours `Range: bytes=N-`, logs each request's Range,
    and, for the first `cuts[name]` requests of a file, sends the headers of the whole answer but closes the
    connection after half of its bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cuts: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.lstrip("/")
                wanted = self.headers.get("Range")
                server.requests.append((name, wanted))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
                if start >= len(data) and wanted:
                    self.send_error(416)
                    return
                body = data[start:]
                self.send_response(206 if wanted else 200)
                if wanted:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cuts.get(name, 0) > 0:
                    server.cuts[name] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def serve(self, name: str, data: bytes) -> None:
        self.files[name] = data


@pytest.fixture
def server():
    running = Server()
    running.thread.start()
    yield running
    running.http.shutdown()
    running.http.server_close()
    running.thread.join(timeout=5)


def pin(monkeypatch, name: str, filename: str, data: bytes) -> fetch.Pinned:
    """Replaces the pin of data set `name` by one for `data` (the test's archive)."""
    pinned = fetch.Pinned(
        filename=filename,
        url=f"https://example.invalid/{filename}",
        source="the test",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    monkeypatch.setitem(fetch.DATASETS, name, pinned)
    return pinned


def run_fetch(capsys, *argv: str) -> tuple[int, str, str]:
    """`python -m adlib fetch ...` in process: (exit status, stdout, stderr)."""
    try:
        main(["fetch", *argv, "--no-progress"])
        status = 0
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(("kind", "top"), [("tar.xz", ""), ("tar.gz", ""), ("zip", "BTech_Dataset_transformed/")])
def test_a_good_archive_is_extracted_into_the_mvtec_layout(server, tmp_path, monkeypatch, capsys, kind, top):
    data = make_archive(kind, top)
    pin(monkeypatch, "mvtec_ad", f"archive.{kind}", data)
    server.serve(f"archive.{kind}", data)
    monkeypatch.setenv(fetch.FETCH_URL_ENV, server.url)
    target = tmp_path / "mvtec"
    status, out, err = run_fetch(capsys, "mvtec_ad", "--to", str(target))
    assert status == 0, err
    assert list_categories(target) == ["bottle"]
    for name, content in FILES.items():
        assert (target / name).read_bytes() == content
    category = load_category(target, "bottle")
    assert len(category.train) == 1 and sorted(s.label for s in category.test) == [0, 1]
    assert (tmp_path / f"archive.{kind}").read_bytes() == data  # kept beside the target
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"archive.{kind}", "mvtec"]  # no .part, no scratch folder
    # a second run finds the data set and asks the server for nothing
    requests = len(server.requests)
    assert run_fetch(capsys, "mvtec_ad", "--to", str(target))[0] == 0
    assert len(server.requests) == requests


def test_a_wrong_checksum_is_refused_and_leaves_nothing(server, tmp_path, monkeypatch, capsys):
    data = make_archive("tar.xz")
    pin(monkeypatch, "mvtec_loco", "loco.tar.xz", data)
    server.serve("loco.tar.xz", data[:-1] + bytes([data[-1] ^ 1]))  # one bit off
    target = tmp_path / "loco"
    status, _, err = run_fetch(capsys, "mvtec_loco", "--to", str(target), "--url", server.url)
    assert status == 2 and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "SHA-256" in err and "loco.tar.xz" in err and "run the same command again" in err
    assert list(tmp_path.iterdir()) == []  # neither the target, nor the archive, nor a .part


def test_a_truncated_download_is_refused(server, tmp_path, monkeypatch, capsys):
    data = make_archive("tar.gz")
    pin(monkeypatch, "mvtec_ad", "ad.tar.gz", data)
    server.serve("ad.tar.gz", data[: len(data) * 2 // 3])  # a server with a short file
    status, _, err = run_fetch(capsys, "mvtec_ad", "--to", str(tmp_path / "ad"), "--url", server.url)
    assert status == 2 and "SHA-256" in err and "ad.tar.gz" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["tar.xz", "tar.gz", "zip"])
def test_extract_refuses_a_truncated_archive_and_extracts_nothing(tmp_path, kind):
    """An archive put in place by hand is checked by its pin first; extract() refuses a cut one on its own too."""
    archive = tmp_path / f"cut.{kind}"
    data = make_archive(kind)
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(fetch.FetchError, match=f"cut.{kind}.*truncated or corrupt.*Delete it"):
        fetch.extract(archive, tmp_path / "target")
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


@pytest.mark.parametrize("top", [None, "mvtec"])
def test_an_extracted_folder_gets_the_users_umask_not_the_scratch_folders_0700(tmp_path, top):
    archive = tmp_path / "ad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        prefix = f"{top}/" if top else ""
        handle.writestr(f"{prefix}pill/train/good/000.png", b"png")
        handle.writestr(f"{prefix}pill/test/good/000.png", b"png")
    old = os.umask(0o027)
    try:
        target = fetch.extract(archive, tmp_path / "target")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750


def test_an_archive_without_a_category_is_refused(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", "not a data set")
    with pytest.raises(fetch.FetchError, match="no category folder in the MVTec layout.*readme.txt"):
        fetch.extract(archive, tmp_path / "target")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.zip"]


def test_a_download_cut_midway_resumes_with_range(server, tmp_path, monkeypatch, capsys):
    data = make_archive("zip", noise=200_000)
    pinned = pin(monkeypatch, "btad", "btad.zip", data)
    server.serve("btad.zip", data)
    server.cuts["btad.zip"] = fetch._ATTEMPTS  # every try of the first command is cut
    target = tmp_path / "btad"
    status, _, err = run_fetch(capsys, "btad", "--to", str(target), "--url", server.url)
    assert status == 2 and "stopped after" in err and "resume" in err
    part = tmp_path / "btad.zip.part"
    assert 0 < part.stat().st_size < len(data) and data.startswith(part.read_bytes())
    have = part.stat().st_size
    assert [r for _, r in server.requests][:2] == [None, f"bytes={len(data) // 2}-"]  # the tries resumed too
    server.requests.clear()
    status, _, err = run_fetch(capsys, "btad", "--to", str(target), "--url", server.url)
    assert status == 0, err
    assert server.requests == [("btad.zip", f"bytes={have}-")]
    assert (tmp_path / pinned.filename).read_bytes() == data and not part.exists()
    assert list_categories(target) == ["bottle"]


def test_one_cut_is_resumed_within_the_same_command(server, tmp_path, monkeypatch, capsys):
    data = make_archive("tar.xz", noise=100_000)
    pin(monkeypatch, "mvtec_ad", "ad.tar.xz", data)
    server.serve("ad.tar.xz", data)
    server.cuts["ad.tar.xz"] = 1
    status, _, err = run_fetch(capsys, "mvtec_ad", "--to", str(tmp_path / "ad"), "--url", server.url)
    assert status == 0, err
    assert server.requests == [("ad.tar.xz", None), ("ad.tar.xz", f"bytes={len(data) // 2}-")]
    assert list_categories(tmp_path / "ad") == ["bottle"]


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_offline_names_the_file_and_where_to_put_it(tmp_path, monkeypatch, capsys):
    pinned = fetch.DATASETS["mvtec_ad"]
    target = tmp_path / "mvtec"
    status, _, err = run_fetch(capsys, "mvtec_ad", "--to", str(target), "--url", f"http://127.0.0.1:{free_port()}")
    assert status == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "cannot reach" in err and "Connection refused" in err
    assert (
        f"download {pinned.filename}" in err and pinned.url in err and f"put it at {tmp_path / pinned.filename}" in err
    )
    assert list(tmp_path.iterdir()) == []


def test_a_file_put_in_place_by_hand_is_checked_and_extracted_offline(tmp_path, monkeypatch, capsys):
    data = make_archive("tar.xz")
    pin(monkeypatch, "mvtec_ad", "by_hand.tar.xz", data)
    (tmp_path / "by_hand.tar.xz").write_bytes(data)
    offline = f"http://127.0.0.1:{free_port()}"
    status, _, err = run_fetch(capsys, "mvtec_ad", "--to", str(tmp_path / "ad"), "--url", offline)
    assert status == 0, err
    assert list_categories(tmp_path / "ad") == ["bottle"]
    (tmp_path / "by_hand.tar.xz").write_bytes(data[:-10])  # a truncated copy by hand is refused, not deleted
    status, _, err = run_fetch(capsys, "mvtec_ad", "--to", str(tmp_path / "again"), "--url", offline)
    assert status == 2 and "by_hand.tar.xz is there but its SHA-256" in err and "Delete it" in err
    assert not (tmp_path / "again").exists()


def test_weights_go_where_backbones_looks_and_are_checked_by_the_name_prefix(server, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # torch.hub.get_dir() follows TORCH_HOME again
    for name in fetch.WEIGHTS:
        stub = b"weights of " + name.encode()
        prefix = hashlib.sha256(stub).hexdigest()[:8]
        pinned = fetch.Pinned(
            filename=f"{name}-{prefix}.pth", url="https://example.invalid", source="the test", sha256_prefix=prefix
        )
        monkeypatch.setitem(fetch.WEIGHTS, name, pinned)
        server.serve(pinned.filename, stub)
    server.serve(fetch.WEIGHTS["resnet18"].filename, b"not the weights")  # its prefix does not match
    status, _, err = run_fetch(capsys, "weights", "--url", server.url)
    assert status == 2 and "resnet18-" in err and "SHA-256" in err
    server.serve(fetch.WEIGHTS["resnet18"].filename, b"weights of resnet18")
    status, out, err = run_fetch(capsys, "weights", "--url", server.url)
    assert status == 0, err
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert fetch.weights_dir() == checkpoints
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted(p.filename for p in fetch.WEIGHTS.values())
    assert "prefix" in out and "no full digest" in out


def test_the_pinned_weights_are_torchvisions_and_every_pin_is_well_formed():
    torchvision = pytest.importorskip("torchvision")
    for name, pinned in fetch.WEIGHTS.items():
        url = torchvision.models.get_model_weights(name).IMAGENET1K_V1.url
        assert pinned.url == url and url.endswith(f"-{pinned.sha256_prefix}.pth")
    for pinned in fetch.DATASETS.values():
        assert len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0 and pinned.url.endswith(pinned.filename)
    with pytest.raises(ValueError, match="exactly one"):
        fetch.Pinned(filename="x", url="u", source="s")


def test_a_non_empty_target_without_categories_is_refused(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "notes.txt").write_text("mine")
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_archive("zip"))
    with pytest.raises(fetch.FetchError, match="not an empty folder"):
        fetch.extract(archive, tmp_path / "target")
    assert (tmp_path / "target" / "notes.txt").read_text() == "mine"


def test_missing_file_on_the_server_names_the_http_status(server, tmp_path, monkeypatch, capsys):
    pin(monkeypatch, "btad", "btad.zip", b"whatever")
    status, _, err = run_fetch(capsys, "btad", "--to", str(tmp_path / "b"), "--url", server.url)
    assert status == 2 and "HTTP 404" in err and "btad.zip" in err


def test_paths_outside_the_target_are_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        handle.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(fetch.FetchError, match="outside"):
        fetch.extract(archive, tmp_path / "inner" / "target")
    assert not (tmp_path / "inner" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
