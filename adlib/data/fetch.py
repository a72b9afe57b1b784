"""Fetching the public data sets and the ImageNet weights: `python -m adlib fetch NAME [--to DIR]`.

A download goes to `<file>.part` and resumes from there (an HTTP Range request) when it was cut; the file
is kept under its own name only once its SHA-256 matches the pin. An archive is extracted into a
temporary folder beside the target and renamed into place, so the target either holds the whole data
set in the MVTec layout or does not exist. Offline, the error names the file and where to put it: a
file placed there by hand is checked and extracted like a downloaded one.

The pins and where they come from (the hosts could not be reached where this was written, so
every pin is copied from a public source, none was measured here):

| name         | file                                  | pin                  | source                            |
| ------------ | ------------------------------------- | -------------------- | --------------------------------- |
| `mvtec_ad`   | `mvtec_anomaly_detection.tar.xz`      | full SHA-256         | anomalib `DOWNLOAD_INFO`, MVTecAD |
| `mvtec_loco` | `mvtec_loco_anomaly_detection.tar.xz` | full SHA-256         | anomalib `DOWNLOAD_INFO`, LOCO    |
| `btad`       | `btad.zip`                            | full SHA-256         | anomalib `DOWNLOAD_INFO`, BTech   |
| `weights`    | `wide_resnet50_2-95faca4d.pth`,       | 8-hex prefix only    | torchvision `IMAGENET1K_V1` URLs  |
|              | `resnet18-f37072fd.pth`,              | (in the file name)   |                                   |
|              | `resnet50-0676ba61.pth`               |                      |                                   |

anomalib's entries: `src/anomalib/data/datamodules/image/mvtecad.py`, `.../datasets/image/mvtec_loco.py`
and `.../datamodules/image/btech.py` (anomalib 2.x). torchvision publishes no full digest of its weights,
only the first 8 hex digits of the SHA-256 in the file name (what `torch.hub` checks with
`check_hash=True`), so for the weights only that prefix is verified and the message says so.

`ADLIB_FETCH_URL` (or `--url`) replaces the pinned URLs by `<base>/<file>` (a mirror, or a test server);
the checksums stay the pinned ones.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

FETCH_URL_ENV = "ADLIB_FETCH_URL"
_CHUNK = 1 << 20
_ATTEMPTS = 3  # transfers per command; each one resumes where the last stopped


class FetchError(RuntimeError):
    """A download or extraction that cannot go on; the message names the file and the fix."""


@dataclass(frozen=True)
class Pinned:
    """One published file: its URL, its pinned SHA-256 (or only torchvision's prefix) and where the pin comes from."""

    filename: str
    url: str
    source: str
    sha256: str | None = None  # the full digest, where one is published
    sha256_prefix: str | None = None  # the first hex digits only (torchvision's file names)

    def __post_init__(self) -> None:
        if (self.sha256 is None) == (self.sha256_prefix is None):
            raise ValueError(f"{self.filename}: pin exactly one of sha256 and sha256_prefix")

    def verified(self, path: Path) -> str | None:
        """None when `path` matches the pin, else its SHA-256 (to show beside the pinned one)."""
        digest = sha256_of(path)
        if self.sha256 is not None:
            return None if digest == self.sha256 else digest
        return None if digest.startswith(self.sha256_prefix) else digest

    @property
    def pin(self) -> str:
        return self.sha256 if self.sha256 is not None else f"{self.sha256_prefix}... (torchvision's name prefix only)"


DATASETS = {
    "mvtec_ad": Pinned(
        filename="mvtec_anomaly_detection.tar.xz",
        url="https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f283/download/420938113-1629960298/"
        "mvtec_anomaly_detection.tar.xz",
        sha256="cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
        source="anomalib src/anomalib/data/datamodules/image/mvtecad.py, DOWNLOAD_INFO",
    ),
    "mvtec_loco": Pinned(
        filename="mvtec_loco_anomaly_detection.tar.xz",
        url="https://www.mydrive.ch/shares/48237/1b9106ccdfbb09a0c414bd49fe44a14a/download/430647091-1646842701/"
        "mvtec_loco_anomaly_detection.tar.xz",
        sha256="9e7c84dba550fd2e59d8e9e231c929c45ba737b6b6a6d3814100f54d63aae687",
        source="anomalib src/anomalib/data/datasets/image/mvtec_loco.py, DOWNLOAD_INFO",
    ),
    "btad": Pinned(
        filename="btad.zip",
        url="https://avires.dimi.uniud.it/papers/btad/btad.zip",
        sha256="461c9387e515bfed41ecaae07c50cf6b10def647b36c9e31d239ab2736b10d2a",
        source="anomalib src/anomalib/data/datamodules/image/btech.py, DOWNLOAD_INFO",
    ),
}
_TORCHVISION = "https://download.pytorch.org/models/"
WEIGHTS = {
    name: Pinned(
        filename=f"{name}-{prefix}.pth",
        url=f"{_TORCHVISION}{name}-{prefix}.pth",
        sha256_prefix=prefix,
        source=f"torchvision.models.{name} IMAGENET1K_V1 (prefix of the SHA-256 in the file name)",
    )
    for name, prefix in (("wide_resnet50_2", "95faca4d"), ("resnet18", "f37072fd"), ("resnet50", "0676ba61"))
}


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Downloading


def _by_hand(pinned: Pinned, dest: Path) -> str:
    """What to do offline: the file, where it is published and where to put it."""
    return (
        f"To fetch it by hand: download {pinned.filename} on a connected machine (from {pinned.url}) and put it at "
        f"{dest}, then run the same command again (it is checked against the pinned SHA-256 there)"
    )


def download(pinned: Pinned, dest: Path, base_url: str | None = None, progress: bool = True) -> Path:
    """`dest`, downloaded unless it is there already, checked against the pin; a cut transfer resumes from `.part`."""
    url = f"{base_url.rstrip('/')}/{pinned.filename}" if base_url else pinned.url
    if dest.is_file():
        found = pinned.verified(dest)
        if found is None:
            return dest
        raise FetchError(
            f"{dest} is there but its SHA-256 is {found}, not the pinned {pinned.pin}: it is truncated, "
            f"corrupt or another file. Delete it and run the same command again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(_ATTEMPTS):
        try:
            _transfer(url, part, pinned, dest, progress)
            break
        except _Incomplete as cut:
            if attempt == _ATTEMPTS - 1:
                raise FetchError(
                    f"the download of {url} stopped after {cut.have} of {cut.total} bytes "
                    f"({_ATTEMPTS} tries); the part is kept in {part}: run the same command again to "
                    "resume it"
                ) from None
    found = pinned.verified(part)
    if found is not None:
        part.unlink()
        raise FetchError(
            f"the download of {url} has SHA-256 {found}, not the pinned {pinned.pin} ({pinned.source}): "
            f"corrupt, truncated or changed on the server, so it was deleted. Run the same command again; "
            f"if it fails the same way, the server's file differs from the pinned one. {_by_hand(pinned, dest)}"
        )
    os.replace(part, dest)
    return dest


class _Incomplete(Exception):
    def __init__(self, have: int, total: int):
        super().__init__(f"{have} of {total} bytes")
        self.have, self.total = have, total


def _transfer(url: str, part: Path, pinned: Pinned, dest: Path, progress: bool) -> None:
    """One HTTP transfer into `part`, asking for the bytes after those it already has; _Incomplete if it was cut."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "adlib-fetch"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after the bytes we have: the part is whole
            return
        raise FetchError(f"{url} answered HTTP {error.code} {error.reason}. {_by_hand(pinned, dest)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"cannot reach {url} ({reason}). {_by_hand(pinned, dest)}") from None
    with response:
        resumed = (
            have and response.status == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        )
        if not resumed:
            have = 0  # the server sends the whole file
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=pinned.filename,
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (TimeoutError, http.client.IncompleteRead, ConnectionError):
                    break
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Incomplete(size, total)


# --------------------------------------------------------------------------------------------------
# Extracting


def _open_error(archive: Path, error: Exception) -> FetchError:
    return FetchError(
        f"{archive} cannot be read as an archive ({type(error).__name__}: {error}): it is truncated or "
        "corrupt. Delete it and run the same command again (nothing was extracted)"
    )


def _unpack(archive: Path, into: Path) -> None:
    """Unpacks a .tar.xz / .tar.gz / .zip archive into the folder `into`, refusing paths that leave it."""
    import lzma
    import zlib

    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as handle:
                bad = handle.testzip()  # reads every member and checks its CRC
                if bad is not None:
                    raise zipfile.BadZipFile(f"member {bad} fails its CRC check")
                handle.extractall(into)  # zipfile drops absolute paths and '..' itself
        else:
            with tarfile.open(archive, "r:*") as handle:
                handle.extractall(into, filter="data")  # refuses links and paths outside `into`
    except tarfile.FilterError as error:
        raise FetchError(
            f"{archive} holds {error}: refused (a member outside the target, or a link); it is not the "
            "expected archive. Delete it and run the same command again"
        ) from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zlib.error) as error:
        raise _open_error(archive, error) from None


def _data_root(folder: Path) -> Path | None:
    """The folder that holds the category folders: `folder` itself or its one sub-folder (BTAD's, for one)."""
    from adlib.data.datasets import list_categories

    if list_categories(folder):
        return folder
    subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    if len(subfolders) == 1 and list_categories(subfolders[0]):
        return subfolders[0]
    return None


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def extract(archive: Path, target: Path) -> Path:
    """Extracts `archive` into `target` in the MVTec layout: into a temporary folder beside it, then one rename."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FetchError(f"{target} exists and is not an empty folder: choose another --to, or empty it")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.extracting-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extracting-"))
    try:
        _unpack(archive, scratch)
        root = _data_root(scratch)
        if root is None:
            found = ", ".join(sorted(p.name for p in scratch.iterdir())) or "nothing"
            raise FetchError(
                f"{archive} holds no category folder in the MVTec layout (<category>/train, "
                f"<category>/test; found: {found}): it is not the expected archive. Delete it and run "
                "the same command again"
            )
        if target.is_dir():
            target.rmdir()
        os.rename(root, target)
        target.chmod(0o777 & ~_umask())  # the scratch folder was made 0700 (mkdtemp): give it the user's umask
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------------
# The two things `fetch` does


def fetch_dataset(name: str, to: Path, base_url: str | None = None, progress: bool = True) -> Path:
    """The data set `name` in the MVTec layout at `to`; its archive is kept beside `to` (resumable, reusable)."""
    from adlib.data.datasets import list_categories

    pinned = DATASETS[name]
    to = Path(to)
    if to.is_dir() and list_categories(to):
        print(f"{name}: {to} already holds {len(list_categories(to))} categories; nothing to fetch")
        return to
    archive = download(pinned, to.parent / pinned.filename, base_url, progress)
    extract(archive, to)
    print(
        f"{name}: {len(list_categories(to))} categories in {to} (SHA-256 of {archive.name} verified against "
        f"{pinned.source}); the archive {archive} can be deleted"
    )
    return to


def weights_dir() -> Path:
    """Where adlib.features.backbones looks for torchvision's ImageNet weights: torch.hub's checkpoints folder."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_weights(to: Path | None = None, base_url: str | None = None, progress: bool = True) -> list[Path]:
    """torchvision's ImageNet weights of the ResNet backbones in `to` (default: where adlib.features.backbones looks)."""
    folder = Path(to) if to is not None else weights_dir()
    paths = [download(pinned, folder / pinned.filename, base_url, progress) for pinned in WEIGHTS.values()]
    for path, pinned in zip(paths, WEIGHTS.values()):
        print(f"weights: {path} (SHA-256 prefix {pinned.sha256_prefix} verified; torchvision publishes no full digest)")
    if to is not None and folder.resolve() != weights_dir().resolve():
        print(
            f"adlib looks in {weights_dir()}: set TORCH_HOME so that TORCH_HOME/hub/checkpoints is {folder}, "
            f"or pass --weights {folder}/<file>"
        )
    return paths


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `fetch` sub-command of `python -m adlib`."""
    fetch = commands.add_parser(
        "fetch",
        help="download a public data set or the ImageNet weights, checked against pinned SHA-256 digests",
        description="Download (resumably) and check a public data set and extract it in the MVTec layout, or "
        "torchvision's ImageNet weights of the ResNet backbones into torchvision's cache.",
    )
    fetch.add_argument("what", choices=[*DATASETS, "weights"], help="a data set, or the weights")
    fetch.add_argument(
        "--to",
        type=Path,
        help="data set: the folder that will hold its categories (default: "
        "data/NAME); weights: the folder for the .pth files (default: torchvision's cache, "
        "TORCH_HOME/hub/checkpoints, where adlib looks)",
    )
    fetch.add_argument(
        "--url",
        default=os.environ.get(FETCH_URL_ENV),
        help=f"base URL of a mirror (files as URL/FILE) instead of the pinned URLs; env {FETCH_URL_ENV}",
    )
    fetch.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def fetch_command(args: argparse.Namespace) -> None:
    if args.what == "weights":
        fetch_weights(args.to, args.url, progress=not args.no_progress)
    else:
        fetch_dataset(args.what, args.to or Path("data") / args.what, args.url, progress=not args.no_progress)
