"""A content-addressed, on-disk cache of feature arrays.

Keys are SHA-256 digests of everything that determines the array (image bytes, preprocessing,
weights hash, feature version), never a name the user chooses, so a changed input can never
be served stale features. Each entry is written under a temporary name and ``os.replace``d,
and carries a SHA-256 of its own bytes: a truncated or corrupt entry is detected on read,
deleted and recomputed by the caller.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

MAGIC = b"GANDIT-FEATURE-1\n"
DIGEST_BYTES = 32
CACHE_ENV_VAR = "GANDIT_CACHE"


def default_cache_dir() -> Path:
    """``$GANDIT_CACHE``, else ``$XDG_CACHE_HOME/gandit``, else ``~/.cache/gandit``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gandit"


def make_key(*parts: str) -> str:
    """SHA-256 of the parts, each length-prefixed so that no two part lists collide."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _encode(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    body = MAGIC + buf.getvalue()
    return body + hashlib.sha256(body).digest()


def _decode(blob: bytes) -> np.ndarray | None:
    if len(blob) < len(MAGIC) + DIGEST_BYTES or not blob.startswith(MAGIC):
        return None
    body, digest = blob[:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        return None
    try:
        return np.load(io.BytesIO(body[len(MAGIC):]), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


class FeatureCache:
    """Arrays by key under ``root/v1/ab/abcdef....npyc``; ``root=None`` keeps nothing."""

    def __init__(self, root: str | os.PathLike | None) -> None:
        self.root = Path(root) / "v1" if root is not None else None
        self.hits = 0
        self.misses = 0
        self.repaired = 0

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.npyc"

    def get(self, key: str) -> np.ndarray | None:
        if self.root is None:
            self.misses += 1
            return None
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError:
            self.misses += 1
            return None
        array = _decode(blob)
        if array is None:  # truncated or corrupt: drop it, the caller recomputes
            path.unlink(missing_ok=True)
            self.repaired += 1
            self.misses += 1
            return None
        self.hits += 1
        return array

    def put(self, key: str, array: np.ndarray) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_encode(array))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
