"""pytorch-fid's statistics files: ``.npz`` with ``mu`` (D,) and ``sigma`` (D, D)."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from gandit.errors import StatsError


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            missing = [k for k in ("mu", "sigma") if k not in data.files]
            if missing:
                raise StatsError(f"statistics file '{p}' has no '{missing[0]}' array — write it with "
                                 f"pytorch-fid --save-stats or gandit score --save-stats")
            mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise StatsError(f"cannot read statistics file '{p}': {str(err).splitlines()[0]} — "
                         f"pass a pytorch-fid .npz with mu and sigma") from None
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise StatsError(f"statistics file '{p}' has mu {mu.shape} and sigma {sigma.shape}; "
                         f"expected (D,) and (D, D)")
    return mu, sigma


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Write ``mu`` and ``sigma`` atomically (a temporary file in the same folder, then rename)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
