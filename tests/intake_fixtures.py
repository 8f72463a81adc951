"""Builders of small and hostile submissions for the intake tests, all made in memory or tmp_path."""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image


def pixels(seed: int, size: int = 8) -> np.ndarray:
    """Deterministic random RGB pixels, (size, size, 3) uint8."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(seed: int, size: int = 8) -> bytes:
    return encode(pixels(seed, size))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose IHDR declares width x height RGB pixels (a PNG bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\0" + b"\0" * 3 * min(width, 16)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(row)) + _chunk(b"IEND", b""))


def write_zip(path: Path, entries: list[tuple[str, bytes]], *,
              compression: int = zipfile.ZIP_DEFLATED,
              modes: dict[str, int] | None = None) -> Path:
    """A zip of (name, bytes) in order; ``modes`` sets a unix st_mode (e.g. a symlink)."""
    modes = modes or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # "Duplicate name" is the point
        with zipfile.ZipFile(path, "w", compression=compression) as archive:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=(2019, 7, 1, 0, 0, 0))
                info.compress_type = compression
                if name in modes:
                    info.create_system = 3
                    info.external_attr = modes[name] << 16
                archive.writestr(info, data)
    return path


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
              compression: str = "gz") -> Path:
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (links not followed) with its size and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            size = 0 if stat.S_ISDIR(info.st_mode) else info.st_size
            found[path] = (size, info.st_mtime_ns)
    return found


@contextmanager
def nothing_written(tmp_path: Path, absolute_names: tuple[str, ...] = ()) -> Iterator[None]:
    """Fails if anything appears or changes under tmp_path's parent (cwd is moved inside it),
    or at any of the given absolute paths."""
    watched = tmp_path.parent
    workdir = tmp_path / "cwd"
    workdir.mkdir(exist_ok=True)
    old_cwd = os.getcwd()
    os.chdir(workdir)
    try:
        before = _listing(watched)
        yield
        after = _listing(watched)
    finally:
        os.chdir(old_cwd)
    assert after == before, f"intake wrote: {sorted(set(after) ^ set(before))}"
    for name in absolute_names:
        assert not os.path.lexists(name), f"intake wrote {name}"
