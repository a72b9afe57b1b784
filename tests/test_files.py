"""adlib.files: atomic writes (whole content, ordinary permissions, no temporary file left) and remembered digests."""

import os

from adlib import files
from adlib.files import atomic_write_bytes


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.csv"]


def test_content_digest_hashes_a_file_once_until_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "image.png"
    path.write_bytes(b"first")
    hashed = []
    monkeypatch.setattr(files, "file_digest", lambda p, size=16: hashed.append(p) or f"digest of {p.read_bytes()}")
    files._remembered_digest.cache_clear()
    assert files.content_digest(path) == files.content_digest(path) == "digest of b'first'"
    assert len(hashed) == 1
    files.atomic_write_bytes(path, b"other")  # same size, a new file in its place
    assert files.content_digest(path) == "digest of b'other'"
    files._remembered_digest.cache_clear()
