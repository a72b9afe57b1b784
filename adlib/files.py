"""Small file helpers shared by the modules that write results: atomic writes and content digests."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` to `path` so that readers see either the old file or the whole new one, never a part.
    The file gets the permissions a plain `open(path, "wb")` would (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_digest(path: Path, size: int = 16) -> str:
    """A hex blake2b hash of a file's bytes (`size` bytes long)."""
    digest = hashlib.blake2b(digest_size=size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1 << 16)
def _remembered_digest(path: str, mtime_ns: int, size: int, inode: int) -> str:
    return file_digest(Path(path))


def content_digest(path: Path) -> str:
    """`file_digest` of a file (the digest the feature cache keys images by), remembered per process for as
    long as its modification time, size and inode stay the same: a grid embeds the same images once per
    method, and hashing them every time cost ~100 s of a `make reproduce`."""
    stat = Path(path).stat()
    return _remembered_digest(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
