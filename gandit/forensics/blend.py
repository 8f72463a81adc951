"""Blend decomposition: a submitted image as a non-negative mix of aligned training sources.

The "imitation game" of 2019 submitted ``w*a + (1-w)*b`` of two preprocessed training
photos, ``w`` from 0.99 down to ~0.6. Given candidate sources rendered on the same grid as
the image (several renders of one photo — its preprocessing variants, an aligned region,
mirrored — are alternatives of the same source), non-negative least squares
(``scipy.optimize.nnls``) finds the mix, and each photo's share of the mix is tested by
leaving it out: a photo is **significant** when refitting without it leaves at least
``SIGNIFICANCE`` times the residual energy. A copy resized with another filter leaves a
high-frequency residual that no other photo explains (ratio ~1.0); the 0.01 part of a
0.99/0.01 blend of exact sources is ~4x the uint8 rounding noise in amplitude, so leaving
it out multiplies the residual energy by ~10 or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

#: Leaving a significant photo out multiplies the residual energy by at least this.
SIGNIFICANCE = 2.0
#: Weights (of the normalised mix) below this are not reported as sources.
MIN_WEIGHT = 0.004


@dataclass(frozen=True)
class BlendFit:
    photos: tuple[int, ...]        #: significant source photos, heaviest first
    weights: tuple[float, ...]     #: their shares of the mix, summing to 1
    columns: tuple[int, ...]       #: for each photo, its heaviest column (which render)
    fit: np.ndarray                #: the reconstruction, shape of the query
    gain: float                    #: sum of the raw NNLS weights (1 for a true blend)
    ratios: tuple[float, ...]      #: residual-energy ratio of leaving each photo out


def _solve(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    w, rnorm = nnls(a, b, maxiter=50 * a.shape[1])
    return w, float(rnorm) ** 2


def sources_to_blend(query: np.ndarray, sources: np.ndarray, photos: np.ndarray) -> BlendFit:
    """Decompose ``query`` (float, any shape S) over ``sources`` (K, *S) whose photo ids are
    ``photos`` (K,). Pure; deterministic."""
    k = len(sources)
    b = query.reshape(-1).astype(np.float64)
    a = sources.reshape(k, -1).T.astype(np.float64)
    if k == 0:
        return BlendFit((), (), (), np.zeros_like(query), 0.0, ())
    w, energy = _solve(a, b)
    photo_ids = sorted(set(int(p) for p in photos))
    share = {p: float(w[photos == p].sum()) for p in photo_ids}
    total = sum(share.values())
    a_all, photos_all = a, photos    # the fit and the columns are reported over every source
    present = [p for p in photo_ids if share[p] > 0 and share[p] / max(total, 1e-12) >= MIN_WEIGHT]
    if present and len(present) < len(photo_ids):
        # Photos with negligible weights are dropped and the mix refitted: otherwise, when a
        # real source is left out, a dozen of them together mimic a little of it, and a 0.01
        # source fails the leave-one-out test (measured: candidates searched from every whole
        # training image took the naming of 0.99/0.01 blends from 0.77 to 0.66).
        keep = np.isin(photos, present)
        w_kept, energy = _solve(a[:, keep], b)
        w = np.zeros_like(w)
        w[keep] = w_kept
        photo_ids = present
        share = {p: float(w[photos == p].sum()) for p in photo_ids}
        total = sum(share.values())
        a, photos = a[:, keep], photos[keep]
    ratios = {}
    for p in photo_ids:
        if share[p] <= 0:
            continue
        keep = photos != p
        if not keep.any():
            ratios[p] = np.inf
            continue
        _, e = _solve(a[:, keep], b)
        ratios[p] = e / max(energy, 1e-18)
    sig = [p for p in photo_ids if share[p] > 0 and share[p] / max(total, 1e-12) >= MIN_WEIGHT
           and ratios.get(p, 0.0) >= SIGNIFICANCE]
    if not sig and total > 0:  # a single dominant photo is "significant" on its own
        sig = [max(photo_ids, key=lambda p: (share[p], -p))]
    sig.sort(key=lambda p: (-share[p], p))
    sig_total = sum(share[p] for p in sig)
    columns = tuple(int(np.flatnonzero(photos_all == p)[np.argmax(w[photos_all == p])]) for p in sig)
    fit = (a_all @ w).reshape(query.shape).astype(np.float32)
    return BlendFit(tuple(sig), tuple(share[p] / sig_total for p in sig), columns, fit, float(total),
                    tuple(float(min(ratios.get(p, np.inf), 1e12)) for p in sig))
