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

That ratio is a relative test, and the 0.01 part of a *low-contrast* source can sit below the
image's uint8 rounding: ``round(0.99*a + 0.01*b)`` is ``a`` plus a three-level quantisation of
``0.01*(b - a)``, and at 32x32 leaving ``b`` out may raise the residual energy only 1.15-1.9
times (9 of 150 such blends of a benchmark corpus). A mix of *exact* preprocessed training
images gives itself away differently: rounded, it reproduces the image value for value
(``exact_pair_to_blend``, with the weight found exactly by ``exact_weight``). No honest image
and no copy resized with another filter does that, although such a copy is within a level of
its source almost everywhere: an F test of the 0.01 source against the rounding noise did not
tell them apart (its residual is not white, and another photo's 1% explains part of it: 13 of
150 copies got a second source at F ≥ 100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import nnls

#: Leaving a significant photo out multiplies the residual energy by at least this.
SIGNIFICANCE = 2.0
#: Weights (of the normalised mix) below this are not reported as sources.
MIN_WEIGHT = 0.004
#: An exact mix reproduces this share of the image's uint8 values exactly (``exact_pair_to_blend``).
#: Measured on three benchmark corpora: every 0.99/0.01 and 0.7/0.3 blend whose two sources were
#: among the candidates, 1.0; a wrong second source (a look-alike of a low-contrast 0.01 source that
#: was not found), 0.984; no copy, crop or honest image got this far.
EXACT_MIN_SHARE = 0.99
#: ... and its second source turns at least this many values (net), and at least half of those the
#: main source alone gets wrong, into exact ones.
EXACT_MIN_GAIN = 24
#: Interval ends of ``exact_weight`` are widened by this (floating-point error of a halfway value).
TIE_TOLERANCE = 1e-9
#: Second-source photos tried (every column of each): those whose columns lower the squared error
#: most (least squares).
EXACT_CANDIDATES = 8
#: ``exact_pair_to_blend`` first counts on every ``EXACT_PREFILTER_STEP``-th value and skips a
#: candidate whose best count there is too low for ``EXACT_MIN_SHARE`` of all values: a weight
#: that misses at most ``m`` of all values misses at most ``m`` of those, so the skip is exact
#: (the same pairs count, with the same weights), and most wrong candidates cost an eighth.
EXACT_PREFILTER_STEP = 8
#: ``second_source_candidates`` ranks every training photo on every ``EXACT_SEARCH_STEP``-th pixel
#: (not an area average: the rounding of a 0.99/0.01 blend is spatially correlated and does not
#: average out, so at 16x16 means the faint source of 9 of 150 blends of a benchmark corpus
#: ranked below the 60th; on point samples 148 of 150 rank in the first 8, as at full resolution)
#: in blocks of ``EXACT_SEARCH_CHUNK`` photos.
EXACT_SEARCH_STEP = 2
EXACT_SEARCH_CHUNK = 1024
#: ... for second sources of at most this weight (``second_source_possible``): the blends a
#: cheater makes (main weight 0.99 down to ~0.6). Most are found by the residual searches; the
#: search over every photo named a source no other search had for 12 0.99/0.01 blends of three
#: benchmark corpora, and, among 20,000 overlapping training photos, for 2 of 500 0.7/0.3 blends
#: (one of them flagged by nothing else). It then skips images no such mix can make: most crops
#: (their region is further from any whole image) and copies of the exact main source.
EXACT_SEARCH_MAX_WEIGHT = 0.4


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


@dataclass(frozen=True)
class ExactBlend:
    """``round(w * sources[main] + (1 - w) * sources[second])`` (or truncated) equals the image in
    ``share`` of its values, where the main source alone equals it in ``main_share``."""

    main: int                      #: column of the main source
    second: int                    #: column of the second source
    weight: float                  #: the main source's weight w
    share: float
    main_share: float
    gain: int                      #: values made exact by the second source, net
    fit: np.ndarray                #: the mix in [0, 1], shape of the image
    ratio: float                   #: squared error without the second source / with it


def exact_weight(d: np.ndarray, e: np.ndarray, offset: float) -> tuple[int, float]:
    """The weight ``t`` in [``MIN_WEIGHT``, 1 - ``MIN_WEIGHT``] for which
    ``floor(t * e + offset) == d`` holds for the most values (``d``, ``e``: integer arrays;
    ``offset`` 0.5 rounds to nearest, 0 truncates), and that count. A value exactly halfway
    counts either way (rounding half up, half down and half to even all agree with some such
    ``t``; a 0.7/0.3 blend has 10% such values). Exact: each
    value holds on a closed interval of ``t`` (``(d - offset) / e`` to ``(d + 1 - offset) / e``,
    widened by ``TIE_TOLERANCE`` against floating-point error, or everywhere when ``e`` and
    ``d`` are 0), and the most intervals meet at one of their starts, counted over the sorted
    ends (the same as a sweep over every end, twice as fast); the middle of that stretch is
    returned."""
    always, lo, hi = _weight_intervals(d, e, offset)
    lo, hi = np.sort(lo), np.sort(hi)
    if not len(lo):
        return always, MIN_WEIGHT
    # The most intervals meet at an interval's start: at each start x, the intervals begun by x
    # (closed: those starting at x too) less those ended before x; the first x with the most.
    # The stretch runs from x to the next end at or after it or the next start after it.
    count = np.searchsorted(lo, lo, "right") - np.searchsorted(hi, lo, "left")
    i = int(np.argmax(count))
    x = lo[i]
    after = hi[np.searchsorted(hi, x, "left")]
    j = np.searchsorted(lo, x, "right")
    if j < len(lo):
        after = min(after, lo[j])
    return always + int(count[i]), float(0.5 * (x + after))


def _weight_intervals(d: np.ndarray, e: np.ndarray, offset: float) -> tuple[int, np.ndarray, np.ndarray]:
    """``exact_weight``'s intervals of ``t`` on which each value holds (closed, widened by
    ``TIE_TOLERANCE``, clipped to [``MIN_WEIGHT``, 1 - ``MIN_WEIGHT``], empty ones dropped), and the
    count of values that hold everywhere (``e`` and ``d`` 0)."""
    d = d.astype(np.float64)
    e = e.astype(np.float64)
    always = int(((e == 0) & (d == 0)).sum())
    m = e != 0
    lo, hi = (d[m] - offset) / e[m], (d[m] + 1.0 - offset) / e[m]
    lo, hi = np.minimum(lo, hi) - TIE_TOLERANCE, np.maximum(lo, hi) + TIE_TOLERANCE
    lo, hi = np.maximum(lo, MIN_WEIGHT), np.minimum(hi, 1.0 - MIN_WEIGHT)
    keep = lo <= hi
    return always, lo[keep], hi[keep]


def exact_weight_possible(d: np.ndarray, e: np.ndarray, offset: float, count: int) -> bool:
    """Whether some weight could make at least ``count`` values hold (``exact_weight``'s count),
    by a necessary condition cheaper than the sweep: a ``t`` inside ``r`` intervals lies at or
    after the ``r``-th smallest start and at or before the ``r``-th largest end. Never False
    where ``exact_weight`` would reach ``count``. On seed 1's benchmark images it turned away
    3,173 of the 3,234 candidates the exact test's prefilter swept (the sweep then passed 57
    of the 61 left)."""
    always, lo, hi = _weight_intervals(d, e, offset)
    r = count - always
    if r <= 0:
        return True
    if len(lo) < r:
        return False
    return bool(np.partition(lo, r - 1)[r - 1] <= np.partition(hi, len(hi) - r)[len(hi) - r])


def main_column(query: np.ndarray, sources: np.ndarray) -> int:
    """The column of uint8 ``sources`` (K, *S) nearest the uint8 ``query`` (S) in squared error
    (the first of equals)."""
    q = query.reshape(-1).astype(np.int64)
    return int(np.argmin(((sources.reshape(len(sources), -1).astype(np.int64) - q) ** 2).sum(axis=1)))


def exact_pair_to_blend(query: np.ndarray, sources: np.ndarray, photos: np.ndarray,
                        main: int | None = None) -> ExactBlend | None:
    """Whether the uint8 image ``query`` (H, W, 3) *is* a rounded mix of two of the uint8
    ``sources`` (K, H, W, 3) — exact renders of training photos ``photos`` (K,): their
    preprocessing variants, as is or mirrored — value for value.

    The main source is the single column nearest the image (``main_column``; ``main``: that
    column, when the caller has it already). For the columns of the
    ``EXACT_CANDIDATES`` other photos that lower the squared error most (least squares, means
    removed), the weight that reproduces the most uint8 values exactly, rounded to nearest or
    truncated, is found exactly (``exact_weight``; the least-squares weight of rounded data is
    off by up to half for a low-contrast 0.01 source). A pair counts when it reproduces at least
    ``EXACT_MIN_SHARE`` of them and its second source makes at least ``EXACT_MIN_GAIN`` (net),
    and half of the values the main source alone gets wrong, exact. That is evidence no honest
    image gives: a 0.99/0.01 blend of exact preprocessed images is reproduced whole, even where
    the 0.01 part of a
    low-contrast source is below the rounding (``round(0.99*a + 0.01*b)`` is ``a`` plus a
    three-level quantisation of ``0.01*(b - a)``), while a copy resized with another filter
    (within a level of its source almost everywhere) differs from its source in values that no
    other photo's rounded 1% predicts. None when no pair counts. Pure; deterministic."""
    k = len(sources)
    if k < 2 or sources.shape[1:] != query.shape:
        return None
    q = query.reshape(-1).astype(np.int64)
    s = sources.reshape(k, -1).astype(np.int64)
    main = main_column(query, sources) if main is None else main
    a = s[main].astype(np.float64)
    main_exact = int((s[main] == q).sum())
    d = q - a
    # Candidates ranked by least squares, means removed (``least_squares_gains``); the same
    # ranking serves both roundings.
    n = len(q)
    gains = least_squares_gains(d[None], a[None], s.astype(np.float64))[0]
    ranked = sorted((-float(gains[j]), j) for j in range(k) if photos[j] != photos[main] and gains[j] > 0)
    top = set(list(dict.fromkeys(int(photos[j]) for _, j in ranked))[:EXACT_CANDIDATES])
    misses = n - int(np.ceil(EXACT_MIN_SHARE * n - 1e-9))     # the most a counted pair may miss
    sub = slice(None, None, EXACT_PREFILTER_STEP)
    need = len(d[sub]) - misses
    best = None
    for _, j in ranked:
        if int(photos[j]) not in top:
            continue
        e = s[j] - a
        for offset in (0.5, 0.0):    # rounded to nearest, truncated
            if not exact_weight_possible(d[sub], e[sub], offset, need) \
                    or exact_weight(d[sub], e[sub], offset)[0] < need:
                continue                # cannot reach EXACT_MIN_SHARE
            hits, t = exact_weight(d, e, offset)
            if best is None or hits > best[0]:
                best = (hits, j, t)
    if best is None:
        return None
    hits, j, t = best
    gain = hits - main_exact
    if hits < EXACT_MIN_SHARE * n or gain < EXACT_MIN_GAIN or gain < 0.5 * (n - main_exact):
        return None
    e = s[j] - a
    fit = ((a + t * e) / 255.0).reshape(query.shape).astype(np.float32)
    with_b = float(((q - (a + t * e)) ** 2).sum())
    without = float((d ** 2).sum())
    return ExactBlend(main, j, 1.0 - t, hits / n, main_exact / n, gain, fit,
                      min(without / max(with_b, 1e-12), 1e12))


def least_squares_gains(d: np.ndarray, a: np.ndarray, c: np.ndarray,
                        sums: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """float64 (Q, R): the squared error that a least-squares multiple of ``c[r] - a[q]`` removes
    from ``d[q]``, each with its mean removed, or -1 where it removes none (``d``: what a main
    source ``a`` leaves of an image, (Q, n); ``c``: candidate second sources, (R, n); all three
    integer-valued, as uint8 images and their differences are). Means are removed because a
    truncated mix is 0.5 lower on average than its rounded sources: with that offset in the
    target, any brighter photo would outrank the true second source, as it explains an offset
    and no pattern. ``sums``: each row of ``c``'s sum of squares and sum, where the caller has
    them (``pixels_to_search_sums``).

    Exact: with n values, ``n·|c - a|²`` (means removed) ``= n(c·c - 2c·a + a·a) - (Σc - Σa)²`` and
    ``n·(c - a)·(d - mean d) = n(c·d - a·d) - Σd(Σc - Σa)`` are integers, every product and sum of
    them exact in float64 (under 2^53) in any order (``integer_products``), so a gain is the one
    rounding of ``(n·de)² / (n · n·ee)``: the same for any batch of queries or candidates, and
    equal for equal candidates. Expanded into products with ``c`` so that many candidates cost
    one matrix product per query block."""
    n = d.shape[1]
    sd, sa = d.sum(axis=1), a.sum(axis=1)
    aa, ad = (a * a).sum(axis=1), (a * d).sum(axis=1)
    if sums is None:
        cf = np.asarray(c, dtype=np.float64)
        sums = (cf * cf).sum(axis=1), cf.sum(axis=1)
    cc, sc = sums
    products = integer_products(c, np.concatenate([a, d]))                    # (R, 2Q)
    ca, cd = products[:, :len(a)], products[:, len(a):]
    diff = sc[:, None] - sa[None]
    nee = n * (cc[:, None] - 2.0 * ca + aa[None]) - diff * diff
    nde = n * (cd - ad[None]) - sd[None] * diff
    return np.where((nde > 0) & (nee > 0), nde * nde / (n * np.maximum(nee, 1.0)), -1.0).T


#: ``integer_products`` uses float32 products while every partial sum stays an integer below
#: 2^24: 255 x 16 x n for a 4-bit digit against a uint8 value.
FLOAT32_EXACT_TERMS = (1 << 24) // (255 * 16)


def integer_products(c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``c @ x.T`` (float64 (R, Q)) of integer-valued ``c`` (R, n) in [0, 255] and ``x`` (Q, n) in
    [-255, 255], exactly. Up to ``FLOAT32_EXACT_TERMS`` values, by float32 products (half the
    memory of float64, on torch's threads) of ``x``'s base-16 digits (``x = 16·hi + lo``, ``lo`` in
    [0, 15], ``hi`` in [-16, 15]): every partial sum of such a product is an integer below 2^24,
    exact in float32 in any order. Longer rows by float64 products, exact below 2^53."""
    n = c.shape[1]
    if n > FLOAT32_EXACT_TERMS or torch.get_float32_matmul_precision() != "highest":
        # torch's product (its threads are the caller's; numpy's BLAS would start its own)
        return (torch.from_numpy(np.asarray(c, dtype=np.float64))
                @ torch.from_numpy(np.asarray(x, dtype=np.float64)).T).numpy()
    hi = np.floor_divide(x, 16)
    lo = x - 16 * hi
    digits = torch.from_numpy(np.concatenate([hi, lo]).astype(np.float32))
    out = (torch.from_numpy(np.asarray(c, dtype=np.float32)) @ digits.T).numpy().astype(np.float64)
    q = len(x)
    return 16.0 * out[:, :q] + out[:, q:]


def pixels_to_search_sums(pixels: np.ndarray, step: int = EXACT_SEARCH_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``second_source_candidates``'s search (uint8 ``pixels`` (M, V, H, W, 3), every
    ``step``-th pixel, row = photo * V + variant): its sum of squares and its sum, float64 (M*V,),
    exact integers."""
    m, v = pixels.shape[:2]
    cc, sc = np.zeros(m * v), np.zeros(m * v)
    for s0 in range(0, m, EXACT_SEARCH_CHUNK):
        c = subsample(pixels[s0:s0 + EXACT_SEARCH_CHUNK], step).astype(np.uint16)    # squares fit
        cc[s0 * v:s0 * v + len(c)] = (c * c).sum(axis=1, dtype=np.int64)
        sc[s0 * v:s0 * v + len(c)] = c.sum(axis=1, dtype=np.int64)
    return cc, sc


def subsample(pixels: np.ndarray, step: int = EXACT_SEARCH_STEP) -> np.ndarray:
    """uint8 images (..., H, W, C) → every ``step``-th pixel of each, (rows, H/step * W/step * C)
    contiguous: ``pixels[..., ::step, ::step, :]`` flattened (copied a pixel at a time, 1.5x
    faster than numpy's copy of the strided view, which moves one channel at a time)."""
    h, w, ch = pixels.shape[-3:]
    px = np.ascontiguousarray(pixels).reshape(-1, h, w, ch)
    pixel = px.view(np.dtype((np.void, ch))).reshape(len(px), h, w)
    return np.ascontiguousarray(pixel[:, ::step, ::step]).view(np.uint8).reshape(len(px), -1)


def second_source_possible(query: np.ndarray, main: np.ndarray) -> bool:
    """Whether a second source of weight at most ``EXACT_SEARCH_MAX_WEIGHT`` could make an exact
    pair of the uint8 ``query`` and its main source ``main`` (same shape) count, and so whether
    every photo is worth ranking for it (``second_source_candidates``). Exact bounds: the second
    source turns at most the values the main source gets wrong into exact ones, and must turn
    ``EXACT_MIN_GAIN`` (a copy of the exact main source has none to turn); and where a pair counts,
    ``EXACT_MIN_SHARE`` of the values are the main source's plus at most
    ``EXACT_SEARCH_MAX_WEIGHT * 255`` and a rounding (a crop is further from the whole image)."""
    d = np.abs(query.astype(np.int64) - main.astype(np.int64))
    near = int(np.count_nonzero(d <= EXACT_SEARCH_MAX_WEIGHT * 255.0 + 1.0))
    return int(np.count_nonzero(d)) >= EXACT_MIN_GAIN and near >= EXACT_MIN_SHARE * d.size


def second_source_candidates(queries: np.ndarray, mains: np.ndarray, pixels: np.ndarray, exclude: np.ndarray,
                             k: int = EXACT_CANDIDATES,
                             sums: tuple[np.ndarray, np.ndarray] | None = None) -> list[list[tuple[int, int]]]:
    """For uint8 images ``queries`` (Q, H, W, 3) and the exact render of each one's main source
    ``mains`` (Q, H, W, 3): the ``k`` training photos of ``pixels`` (M, V, H, W, 3) whose
    variants best explain what the main source leaves (``query - main``) by least squares, means
    removed, as (photo, variant), best first; photo ``exclude[q]`` is skipped. Exhaustive over
    every photo, on every ``EXACT_SEARCH_STEP``-th pixel, in exact integer arithmetic
    (``least_squares_gains``: a query's ranking does not depend on the others searched with
    it). The same ranking as ``exact_pair_to_blend``'s, batched over queries and photos. ``sums``: the rows'
    ``pixels_to_search_sums``, where the caller keeps them (computed here when None). Pure."""
    qn = len(queries)
    if qn == 0 or len(pixels) == 0:
        return [[] for _ in range(qn)]
    st = EXACT_SEARCH_STEP
    q = subsample(queries, st).astype(np.float64)
    a = subsample(mains, st).astype(np.float64)
    d = q - a
    m, v = pixels.shape[:2]
    cc, sc = sums if sums is not None else pixels_to_search_sums(pixels, st)
    keep = k * v                                           # rows kept: k photos even if all variants rank
    best_gain = np.full((qn, keep), -1.0)
    best_row = np.full((qn, keep), -1, np.int64)
    for s0 in range(0, m, EXACT_SEARCH_CHUNK):
        c = subsample(pixels[s0:s0 + EXACT_SEARCH_CHUNK], st)
        rows = np.arange(s0 * v, s0 * v + c.shape[0])
        gain = least_squares_gains(d, a, c, (cc[rows], sc[rows]))     # (Q, rows)
        gain[(rows[None] // v) == exclude[:, None]] = -1.0
        allg = np.concatenate([best_gain, gain], axis=1)
        allr = np.concatenate([best_row, np.broadcast_to(rows, gain.shape)], axis=1)
        order = np.lexsort((allr, -allg), axis=1)[:, :keep]   # by gain, ties by row
        best_gain = np.take_along_axis(allg, order, axis=1)
        best_row = np.take_along_axis(allr, order, axis=1)
    out = []
    for qi in range(qn):
        found, seen = [], set()
        for g, r in zip(best_gain[qi], best_row[qi]):
            if g <= 0 or r < 0 or int(r) // v in seen:
                continue
            seen.add(int(r) // v)
            found.append((int(r) // v, int(r) % v))
        out.append(found[:k])
    return out
