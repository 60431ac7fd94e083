"""Files: fingerprint, overwrite with random bytes, flush, delete."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def overwrite_file(path: Path) -> None:
    """One pass of random bytes over the whole file, flushed to disk (the file stays)."""
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as handle:
        left = size
        while left > 0:
            n = min(left, 1 << 20)
            handle.write(os.urandom(n))
            left -= n
        os.fsync(handle.fileno())


def shred_file(path: Path) -> None:
    """Overwrite then delete one file (a symlink is only unlinked)."""
    if path.is_symlink():
        path.unlink()
        return
    if not path.exists():
        return
    overwrite_file(path)
    path.unlink()
    fsync_dir(path.parent)


def shred_tree(folder: Path) -> None:
    if not folder.exists():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file() or path.is_symlink():
            shred_file(path)
        elif path.is_dir():
            path.rmdir()
    folder.rmdir()


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
