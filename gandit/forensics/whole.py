"""Whole-image source search: which preprocessed training images a submitted image (or what
one source leaves of it) correlates with best, searched exactly over every photo's every
preprocessing variant, as is and mirrored.

Blends were made of whole preprocessed training images (``w*a + (1-w)*b``). The box index
(``align.py``) describes every region of a photo at 8x8 in 32 PCA dimensions: fine for finding
a crop, but a 0.7/0.3 mix is near neither source there, and among the ~250 boxes of each of
thousands of photos a smooth look-alike region is nearer (measured on the benchmark: for 14 of
the 18 missed 0.7/0.3 blends the box search proposed neither source, while the exact
correlation below ranked a true source first in 11 of them). Here every variant is one row,
area-averaged to ``WHOLE_SIZE`` x ``WHOLE_SIZE`` (per-channel mean removed, unit norm, so an
inner product is the normalised correlation of ``align.correlation``), searched exactly
(ranked by float64 products, as ``search.top_inner_products`` ranks: a query's matches do not
depend on the batch it is searched in): ``V`` rows per photo, 768 float32 each (20,000 photos,
two variants: 123 MB), and their mirror pairs' sums and differences (another 123 MB), from which
float32 products of half the length screen both orientations at once (``_both_ways``). A second
index holds the same rows of each variant's symmetric part (``symmetric_part``; its mirror
pairs are equal, so only their left halves are kept: 61 MB): a photo mixed with its own mirror
image, ``w * a + (1 - w) * mirror(a)``, has the symmetric part of ``a`` whatever ``w``, where
it may be near neither orientation of ``a`` itself (``search_symmetric``). Pure: arrays in,
arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gandit.forensics.align import descriptors, images_to_tensor
from gandit.forensics.replay import pool
from gandit.search import QUERY_CHUNK, float64_scores, rows_to_max_norm, screen_margin, top_k_screened

#: Side of a whole-image descriptor, pixels.
WHOLE_SIZE = 16
#: Photos rendered per block while building (bounds memory).
CHUNK = 1024

#: A descriptor's columns (channel, row, column: 3 x 16 x 16) paired by mirroring: the left
#: half's columns and, in the same order, their mirror images in the right half.
_COLUMNS = np.arange(3 * WHOLE_SIZE * WHOLE_SIZE).reshape(3, WHOLE_SIZE, WHOLE_SIZE)
LEFT = np.ascontiguousarray(_COLUMNS[..., :WHOLE_SIZE // 2].reshape(-1))
RIGHT = np.ascontiguousarray(_COLUMNS[..., ::-1][..., :WHOLE_SIZE // 2].reshape(-1))


def pairs_to_sum_difference(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 descriptors (N, 768) → their mirror pairs' sums and differences, float32
    (N, 384) each: ``d·b = (S_d·S_b + A_d·A_b) / 2`` and ``mirror(d)·b = (S_d·S_b − A_d·A_b) / 2``
    in exact arithmetic, so both orientations of a query are screened with two products of
    half the length."""
    left, right = d[:, LEFT], d[:, RIGHT]
    return np.ascontiguousarray(left + right), np.ascontiguousarray(left - right)


class SymmetricRows:
    """Rows (M, 768) of mirror-symmetric descriptors held as their left halves (M, 384):
    ``rows[i]`` gives the full float32 rows, equal to the stored ones bit for bit (a symmetric
    part's mirror pairs are equal bit for bit: ``(x + mirror(x)) / 2``, its channel means and
    norm are computed once for both of a pair)."""

    def __init__(self, half: np.ndarray):
        self.half = half

    def __len__(self) -> int:
        return len(self.half)

    def __getitem__(self, rows) -> np.ndarray:
        h = self.half[rows]
        full = np.empty((len(h), 3 * WHOLE_SIZE * WHOLE_SIZE), dtype=h.dtype)
        full[:, LEFT], full[:, RIGHT] = h, h
        return full


@dataclass
class WholeIndex:
    """Descriptors of every preprocessing variant of every training photo."""

    variants: int             #: variants per photo; row r is photo r // variants, variant r % variants
    index: np.ndarray         #: float32 (rows, 768) descriptors
    #: the same rows of each variant's symmetric part, ``(x + mirror(x)) / 2`` (``search_symmetric``),
    #: as their left halves (float32 (rows, 384))
    symmetric: SymmetricRows
    sums: np.ndarray          #: ``index``'s mirror pairs' sums, float32 (rows, 384) (``pairs_to_sum_difference``)
    differences: np.ndarray   #: and differences
    norm: float               #: a bound on ``index``'s row norms (``search.rows_to_max_norm``)
    symmetric_norm: float     #: and on the symmetric rows'


@dataclass(frozen=True)
class WholeMatch:
    photo: int
    variant: int
    flip: bool                #: the image matches the mirrored source
    correlation: float


def whole_descriptors(images: torch.Tensor) -> np.ndarray:
    """(N, 3, s, s) float images, s a multiple of ``WHOLE_SIZE`` → float32 (N, 768) descriptors."""
    return descriptors(pool(images, WHOLE_SIZE))


def symmetric_part(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, s, s) images' symmetric parts ``(x + mirror(x)) / 2``: the same for every mix
    ``w * a + (1 - w) * mirror(a)`` of a photo with its own mirror image, whatever ``w``."""
    return 0.5 * (images + images.flip(-1))


def pixels_to_whole_index(pixels: np.ndarray) -> WholeIndex:
    """Index uint8 training pixels (M, V, H, W, 3), as they are and their symmetric parts."""
    m, v = pixels.shape[:2]
    index = np.zeros((m * v, 3 * WHOLE_SIZE * WHOLE_SIZE), dtype=np.float32)
    half = np.zeros((m * v, len(LEFT)), dtype=np.float32)
    for s in range(0, m, CHUNK):
        block = pixels[s:s + CHUNK]
        # mirroring and area averaging commute: the symmetric parts are taken at 16x16
        x = pool(images_to_tensor(block.reshape(-1, *block.shape[2:])), WHOLE_SIZE)
        index[s * v:s * v + len(x)] = descriptors(x)
        half[s * v:s * v + len(x)] = descriptors(symmetric_part(x))[:, LEFT]
    return rows_to_whole_index(index, half, v)


def rows_to_whole_index(index: np.ndarray, symmetric_half: np.ndarray, variants: int) -> WholeIndex:
    """A ``WholeIndex`` of float32 descriptor rows (M, 768) and the left halves (M, 384) of their
    symmetric parts' (whose mirror pairs are equal), ``variants`` rows per photo."""
    index = np.ascontiguousarray(index, dtype=np.float32)
    half = np.ascontiguousarray(symmetric_half, dtype=np.float32)
    sums, differences = pairs_to_sum_difference(index)
    # a full symmetric row's norm is sqrt(2) times its half's
    symmetric_norm = rows_to_max_norm(torch.from_numpy(half)) * float(np.sqrt(2.0)) * (1.0 + 2.0 ** -40)
    return WholeIndex(variants, index, SymmetricRows(half), sums, differences,
                      rows_to_max_norm(torch.from_numpy(index)), symmetric_norm)


def search_symmetric(index: WholeIndex, images: torch.Tensor) -> list[WholeMatch | None]:
    """Per image of (N, 3, s, s), the training photo whose variant's symmetric part correlates
    best with the image's (``symmetric_part``; ``flip`` False, ties by photo id), or None: where
    a photo mixed with its own mirror image is near neither orientation of its source, the
    symmetric parts still agree."""
    if len(images) == 0 or len(index.symmetric) == 0:
        return [None] * len(images)
    q = descriptors(symmetric_part(pool(images, WHOLE_SIZE)))
    # both sides' mirror pairs are equal: the product is twice the halves' (exactly so, the
    # float32 screen within the bound of a product of the full length)
    margin = screen_margin(q, index.symmetric_norm)
    half = torch.from_numpy(np.ascontiguousarray(index.symmetric.half))
    found = []
    for s0 in range(0, len(q), QUERY_CHUNK):
        qc = q[s0:s0 + QUERY_CHUNK]
        screen = torch.from_numpy(np.ascontiguousarray(qc[:, LEFT]) * np.float32(2.0)) @ half.T
        found.append(top_k_screened(screen, margin[s0:s0 + QUERY_CHUNK], 1,
                                    lambda i, cand, qc=qc: float64_scores(qc[i], index.symmetric, cand)))
    sims, rows = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
    # the best row, ties by row: by photo, then variant
    return [WholeMatch(int(r) // index.variants, int(r) % index.variants, False, float(s_))
            for s_, r in zip(sims[:, 0], rows[:, 0])]


def _both_ways(index: WholeIndex, images: torch.Tensor, k: int) -> list[tuple[bool, np.ndarray, np.ndarray]]:
    """The exact top ``k`` rows of ``index.index`` for each image as it is and mirrored
    (``search.top_inner_products``'s scores and order: float64 products of the descriptors,
    rounded to float32, ties by row), both screened from one product of the mirror pairs' sums
    and one of their differences (``pairs_to_sum_difference``).

    Error of the screen, with u = 2^-24 and ``‖·‖`` the L2 norm: the sums and differences
    round by u each, their products of 384 terms by γ_384 over the sum of absolute products,
    their sum by u; over both products the absolute products add up to at most ``2‖d‖‖b‖``
    (Cauchy-Schwarz, ``‖S_d‖² + ‖A_d‖² = 2‖d‖²``), so the screen of the image as it is lies
    within ``(γ_384 + 3u + O(u²))‖d‖‖b‖`` of its exact product, under ``screen_margin``'s
    ``(γ_768 + 2u)‖d‖‖b‖``. The mirrored image's own descriptor (``whole_descriptors`` of the
    mirrored pixels: pooled and normalised in another order) differs from ``d`` mirrored by
    ``δ`` (measured per image in float64): its margin is raised by ``2 · 2 · δ · max‖b‖``."""
    d = whole_descriptors(images)
    dm = whole_descriptors(images.flip(-1))
    mirrored = d.reshape(-1, 3, WHOLE_SIZE, WHOLE_SIZE)[..., ::-1].reshape(len(d), -1)
    delta = np.linalg.norm(mirrored.astype(np.float64) - dm.astype(np.float64), axis=1) * (1.0 + 2.0 ** -40)
    margin = screen_margin(d, index.norm)
    margin_m = margin + 2.0 * 2.0 * delta * index.norm
    sums, differences = torch.from_numpy(index.sums), torch.from_numpy(index.differences)
    ds, da = pairs_to_sum_difference(d)
    ds, da = ds * np.float32(0.5), da * np.float32(0.5)     # exact: a power of two
    k = min(k, len(index.index))
    out = {False: [], True: []}
    for s0 in range(0, len(d), QUERY_CHUNK):
        ps = torch.from_numpy(ds[s0:s0 + QUERY_CHUNK]) @ sums.T
        pa = torch.from_numpy(da[s0:s0 + QUERY_CHUNK]) @ differences.T
        as_is = ps + pa
        mirror = ps.sub_(pa)
        del pa
        for flip, screen, m, q in ((False, as_is, margin, d), (True, mirror, margin_m, dm)):
            qc = q[s0:s0 + QUERY_CHUNK]
            out[flip].append(top_k_screened(screen, m[s0:s0 + QUERY_CHUNK], k,
                                            lambda i, cand, qc=qc: float64_scores(qc[i], index.index, cand)))
    return [(flip, np.concatenate([f[0] for f in out[flip]]), np.concatenate([f[1] for f in out[flip]]))
            for flip in (False, True)]


def search_whole(index: WholeIndex, images: torch.Tensor, photos: int,
                 exclude: list[set[int]] | None = None) -> list[list[WholeMatch]]:
    """Per image of (N, 3, s, s), the ``photos`` training photos whose best variant (as is or
    mirrored) correlates best with it, best first (ties by photo id); photos in ``exclude[i]``
    are skipped."""
    n = len(images)
    out: list[list[WholeMatch]] = [[] for _ in range(n)]
    if n == 0 or len(index.index) == 0 or photos <= 0:
        return out
    extra = max((len(e) for e in exclude), default=0) if exclude else 0
    hits = _both_ways(index, images, (photos + extra) * index.variants)
    for i in range(n):
        best: dict[int, WholeMatch] = {}
        for flip, sims, rows in hits:
            for s, r in zip(sims[i], rows[i]):
                photo = int(r) // index.variants
                if exclude and photo in exclude[i]:
                    continue
                if photo not in best or s > best[photo].correlation:
                    best[photo] = WholeMatch(photo, int(r) % index.variants, flip, float(s))
        out[i] = sorted(best.values(), key=lambda w: (-w.correlation, w.photo))[:photos]
    return out
