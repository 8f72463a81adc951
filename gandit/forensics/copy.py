"""Copy detector: a submitted image that is a whole training image, resized with any filter,
maybe mirrored, maybe re-encoded.

Candidates come from two exact searches (Inception cosine, and L2 on 16x16 pixel descriptors
of both preprocessing variants, for the image and its mirror); each candidate is verified on
32x32 area-averaged thumbnails, where resize filters and light re-encoding barely differ:

* ``psnr``: peak signal-to-noise ratio of the thumbnails (dB), at 32x32 and at 16x16;
* ``explained``: ``1 - MSE / var(training thumbnail)``, the share of the training image's
  own structure that the submitted image reproduces, the variance taken in each channel around
  that channel's mean (the MSE keeps any colour offset: a copy reproduces colours too). A flat
  training image (a blank background, a clear sky) has almost no structure to reproduce, so
  agreeing with it is no evidence of copying: ``explained`` stays low and such pairs are never
  flagged. (Until the variance was taken per channel, the spread between a flat sky's red,
  green and blue counted as structure, and two clear skies among 20,000 training photos scored
  0.60 and 0.74 as copies; BENCHMARKS.md. Forgiving colour offsets in the MSE as well lifted an
  honest storm-band tile to a crop score of 0.53 on a benchmark corpus.)

A reference with structure but no detail (a smooth gradient: a hazy sky, a blurred
background; ``flat_references``) shows where an image's colours came from, not that it was
copied: against it only a reproduction to about the uint8 rounding counts (``FLAT_PSNR``, for
copies, crops and blends alike).

``score`` = ``min(psnr_part, explained_part)``, each mapped linearly onto [0, 1] between
an "honest" and a "certain copy" level (``LEVELS``), the better of the two levels. Measured
on scikit-image photo tiles and Noto emoji (BENCHMARKS.md, with the first definition of
``explained``): the closest honest pairs reach 29 dB but 0.82 explained (two tiles of the same
sky) or 0.91 explained but 23 dB (two similar emoji), scoring at most ~0.2; whole-image copies through PIL's BOX, BILINEAR, BICUBIC
or LANCZOS, mirrored or not, JPEG quality ≥ 75, score ≥ 0.9; NEAREST-downscaled star fields,
the hardest case, ~0.6. An image is flagged when ``score`` ≥ the ``copy`` threshold (0.5 by
default: both measures past half-way at one level). Copies misaligned by resampling (64 →
48 → 64 with NEAREST) are degraded replays, left to the replay detector.

A NEAREST copy of a textured photo can fall below on the area thumbnails (aliasing); given the
training photos themselves (``photos``), candidates whose 8x8 means agree are verified again
on point samples of the photo (``point_sampled_copies``), and the better score counts, but only
where the point samples reproduce the image ``POINT_MIN_GAIN_DB`` better than any antialiased
render of the photo: more tries alone must not lift an honest look-alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from PIL import Image

from gandit.dataset import mode_box
from gandit.features.pixels import mirror, thumbnails_to_descriptors
from gandit.forensics.replay import DETAIL_MIN_ENERGY, detail_of
from gandit.parallel import map_batches
from gandit.search import knn_cosine, knn_l2

#: Per comparison level (thumbnail side): (PSNR honest, PSNR copy, explained honest, explained copy).
#: At 16x16 more of the resize filter's aliasing is averaged away, so PSNR anchors sit higher.
#: Raised from (22, 34, 0.80, 0.99) when an independent benchmark corpus had two smooth honest
#: tiles (dusk skies of two different wallpapers) at 28-29 dB and 0.93-0.94 explained against
#: a training tile (score 0.51-0.61); with these they score ≤ 0.45 (thin margin; that corpus
#: chose these levels, so it is no longer out of sample for them), and copies through any PIL
#: filter stay flagged (0.98-1.0 on three corpora, BENCHMARKS.md).
LEVELS = {32: (23.0, 35.0, 0.90, 0.995), 16: (29.0, 41.0, 0.90, 0.995)}
#: Candidates verified per submitted image from each search.
K_INCEPTION = 5
K_PIXELS = 5
#: Images per chunk that a worker of ``detect_copies`` verifies at a time.
VERIFY_CHUNK = 256


@dataclass(frozen=True)
class CopyMatch:
    train: int            #: index into the training features
    score: float
    psnr: float
    explained: float
    variant: int          #: 0 = the rule's preprocessing, 1 = the other mode
    flip: bool
    point_sampled: bool = False   #: verified on point samples of the photo (a NEAREST resize)


def halve(x: np.ndarray) -> np.ndarray:
    """2x2 block means of float (..., T, T, 3) images (strided adds: ~5x faster than a mean
    over a 6-axis reshape)."""
    return (x[..., 0::2, 0::2, :] + x[..., 1::2, 0::2, :] + x[..., 0::2, 1::2, :] + x[..., 1::2, 1::2, :]) * 0.25


def thumbnails_to_agreement(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSNR (dB) and explained variance of ``query`` against ``reference`` images.

    Both float (..., T, T, 3) in [0, 1], broadcastable; returns arrays of the broadcast
    leading shape.
    """
    q, r = query, reference
    mse = ((q - r) ** 2).mean(axis=(-3, -2, -1))
    # the reference's structure: each channel's variance around its own mean (a flat blue sky
    # has none, however far its channels lie apart); the residual keeps any colour offset, which
    # a copy, a crop or a blend does not have
    var = r.var(axis=(-3, -2)).mean(axis=-1)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))
    explained = 1.0 - mse / np.maximum(var, 1e-6)
    explained = np.where(var < 1e-4, 0.0, explained)  # flat references carry no evidence
    return psnr, explained


#: PSNR (honest, certain) anchors, per comparison level, for a *flat* reference: one whose 32x32
#: means, less their 8x8 smoothing, carry no detail (mean square below the replay score's
#: ``DETAIL_MIN_ENERGY``, RMS 2.5/255): a smooth gradient, a hazy sky, a blurred background.
#: Agreeing with such a reference shows where an image's colours and gradient come from, not
#: that it was copied: on a benchmark corpus an honest tile of a gradient sky agreed with a
#: region of another tile of the same sky at 48.2 dB and 0.970 explained at 32x32 (49.4 dB at
#: 16x16; crop score 0.59, a false flag). Against a flat reference only a reproduction to about
#: the uint8 rounding counts, and the PSNR alone decides: 50 dB at 32x32 is an RMS error of 0.8
#: of a level over the whole image. (The explained variance of a gradient a few levels deep is
#: noisy: a crop of one reproduced at 52.0 dB explains only 0.953 of it; a reference below
#: ``thumbnails_to_agreement``'s variance floor still carries nothing.) At 16x16 the anchors are
#: 4 dB higher, not 6 as for copies: averaging lowers rounding noise, not the smooth residual of
#: a look-alike gradient (that honest tile gained 1.2 dB from 32x32 to 16x16, that crop 3.7 dB).
#: The flat copies and crops still flagged on five benchmark corpora agree with their reference
#: at 52.0-100 dB. Two, at 47.8 and 49.7 dB, can no longer be told from that honest tile: a crop
#: of a flat region, and a 0.99/0.01 blend whose main source is flat and whose faint one was
#: never found (it had been flagged as a crop of the main source). On a sixth corpus, built
#: afterwards, two honest tiles of the same sky at 43.6 and 48.4 dB (crop 0.55 and 0.78 before)
#: score 0 and no cheat is lost (BENCHMARKS.md, runs 29-30). Anchors only rise: where a level's
#: own PSNR anchors are higher, they count.
FLAT_PSNR = {32: (50.0, 54.0), 16: (54.0, 58.0)}


def flat_references(reference: np.ndarray) -> np.ndarray:
    """Whether float (..., T, T, 3) images (T ≥ 32, a power-of-two multiple) are flat: no
    mid-frequency detail at 32x32 (``FLAT_PSNR``). Returns a bool array of the leading shape."""
    r = to_side(reference, 32)
    lead = r.shape[:-3]
    x = torch.from_numpy(np.ascontiguousarray(r, dtype=np.float64).reshape(-1, 32, 32, 3)).permute(0, 3, 1, 2)
    energy = (detail_of(x, 32, 8) ** 2).mean(dim=(-3, -2, -1)).numpy()
    return (energy < DETAIL_MIN_ENERGY).reshape(lead)


def agreement_to_score(psnr: np.ndarray, explained: np.ndarray, level: int = 32,
                       levels: dict | None = None, flat: np.ndarray | bool = False) -> np.ndarray:
    """Agreement score in [0, 1] of a comparison at ``level`` (``LEVELS`` unless ``levels``);
    where ``flat``, the PSNR part alone on ``FLAT_PSNR`` (or the level's own anchors where
    higher), and 0 where the reference has no variance to explain."""
    p0, p1, e0, e1 = (levels or LEVELS)[level]
    a = np.clip((psnr - p0) / (p1 - p0), 0.0, 1.0)
    b = np.clip((explained - e0) / (e1 - e0), 0.0, 1.0)
    f0, f1 = max(p0, FLAT_PSNR[level][0]), max(p1, FLAT_PSNR[level][1])
    a_flat = np.clip((psnr - f0) / (f1 - f0), 0.0, 1.0) * (explained > 0)
    return np.where(flat, a_flat, np.minimum(a, b))


def thumbnails_to_copy_score(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy score of uint8 thumbnails (best over levels), with the PSNR and explained variance at that level."""
    return images_to_agreement_score(query.astype(np.float32) / 255.0, reference.astype(np.float32) / 255.0)


def images_to_agreement_score(q: np.ndarray, r: np.ndarray, levels: dict | None = None,
                              flat: np.ndarray | bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agreement score of float (..., T, T, 3) images in [0, 1], best over the comparison levels
    (``LEVELS`` unless given; stricter where the reference ``r`` is flat, ``FLAT_PSNR``), with
    the PSNR and explained variance at that level. ``flat``: ``flat_references(r)``, where the
    caller has it already."""
    levels = levels or LEVELS
    flat = flat_references(r) if flat is None else flat
    best = None
    for level in sorted(levels, reverse=True):
        while q.shape[-2] > level:
            q, r = halve(q), halve(r)
        psnr, explained = thumbnails_to_agreement(q, r)
        score = agreement_to_score(psnr, explained, level, levels, flat)
        if best is None:
            best = (score, psnr, explained)
        else:
            better = score > best[0]
            best = tuple(np.where(better, new, old) for new, old in zip((score, psnr, explained), best))
    return best


def copy_candidates(by_features: np.ndarray, query_thumbs: np.ndarray, train_thumbs: np.ndarray,
                    k_pixels: int = K_PIXELS) -> np.ndarray:
    """Candidate training indices (N, K): the feature neighbours ``by_features`` (N, k) plus
    the pixel neighbours of each query and its mirror; -1 pads."""
    n, m, variants = len(query_thumbs), len(train_thumbs), train_thumbs.shape[1]
    base = thumbnails_to_descriptors(train_thumbs.reshape(m * variants, *train_thumbs.shape[2:]))
    found = [by_features]
    for q in (query_thumbs, mirror(query_thumbs)):
        _, idx = knn_l2(thumbnails_to_descriptors(np.ascontiguousarray(q)), base, k_pixels)
        found.append(np.where(idx >= 0, idx // variants, -1))
    cands = np.concatenate(found, axis=1)
    out = np.full((n, cands.shape[1]), -1, dtype=np.int64)
    for i, row in enumerate(cands):
        uniq = list(dict.fromkeys(int(c) for c in row if c >= 0))
        out[i, :len(uniq)] = uniq
    return out


def verify_copies(query_thumbs: np.ndarray, train_thumbs: np.ndarray,
                  candidates: np.ndarray) -> list[CopyMatch | None]:
    """The best-agreeing candidate of each query over preprocessing variants and mirroring."""
    results: list[CopyMatch | None] = []
    for q, row in zip(query_thumbs, candidates):
        idx = row[row >= 0]
        if idx.size == 0:
            results.append(None)
            continue
        refs = train_thumbs[idx]                              # (C, V, T, T, 3)
        views = np.stack([q, q[:, ::-1, :]])                  # (2, T, T, 3): as is, mirrored
        score, psnr, explained = thumbnails_to_copy_score(views[None, None], refs[:, :, None])  # (C, V, 2)
        c, v, f = np.unravel_index(int(np.argmax(score)), score.shape)
        results.append(CopyMatch(int(idx[c]), float(score[c, v, f]), float(psnr[c, v, f]),
                                 float(explained[c, v, f]), int(v), bool(f)))
    return results


def detect_copies(query_inception: np.ndarray, query_thumbs: np.ndarray,
                  train_inception: np.ndarray, train_thumbs: np.ndarray,
                  by_features: np.ndarray | None = None, query_pixels=None,
                  photos: Callable[[int], np.ndarray | None] | None = None,
                  variants: tuple[str, ...] = ("center-crop", "kaggle2019"),
                  workers: int | None = None) -> list[CopyMatch | None]:
    """For each submitted image, its best copy match (or None when no candidate exists).
    ``by_features``: the caller's Inception top-k indices, when it has searched already.
    With ``photos`` (training index → uint8 photo, or None when unreadable) and the images'
    ``query_pixels``, matches that are not certain are verified again on point samples of the
    photos (``point_sampled_copies``); ``variants`` names the preprocessing of each variant.
    ``workers``: chunks of images verified at once, on worker processes with one torch thread
    each (``parallel.map_batches``; torch's thread count when None); every image's match is the
    same with any number."""
    if len(query_thumbs) == 0 or len(train_thumbs) == 0:
        return [None] * len(query_thumbs)
    if by_features is None:
        by_features = knn_cosine(query_inception, train_inception, K_INCEPTION)[1]
    cands = copy_candidates(by_features, query_thumbs, train_thumbs)
    point = photos is not None and query_pixels is not None
    train8 = thumbnails_to_side8(train_thumbs) if point else None
    n, threads = len(query_thumbs), torch.get_num_threads()
    workers = max(1, threads if workers is None else int(workers))
    size = max(1, min(VERIFY_CHUNK, -(-n // workers)))

    def chunk(start: int) -> list[CopyMatch | None]:
        torch.set_num_threads(1)
        stop = min(n, start + size)
        found = verify_copies(query_thumbs[start:stop], train_thumbs, cands[start:stop])
        if point:
            found = point_sampled_copies(query_pixels[start:stop], query_thumbs[start:stop], train_thumbs,
                                         cands[start:stop], found, photos, variants, train8)
        return found

    # Per image, a few small array operations: chunks on worker processes, one torch thread
    # each, as the analysis runs (``analyze.analyze_images``).
    torch.set_num_threads(1)
    try:
        return [m for found in map_batches(chunk, range(0, n, size), workers) for m in found]
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# Point-sampled copies

#: A NEAREST resize keeps one source pixel per output pixel: detail finer than an output pixel
#: aliases into the copy, and its 32x32 area means then differ from an antialiased render of the
#: same photo by as much as an honest look-alike (measured: NEAREST copies of textured photos at
#: 22-33 dB and 0.5-0.97 explained, 6 of 30 missed). Such a copy is verified again against
#: point samples of the candidate photo at its own resolution: the exact NEAREST resize of the
#: region, and bilinear samples at the output pixels' centres shifted by these fractions of a
#: pixel in x and y (a NEAREST resize of an intermediate resize samples off-centre: from a 4x
#: larger image, 1/8 of an output pixel).
POINT_PHASES = tuple(np.arange(-3, 4) / 8.0)
#: Gate: a candidate (photo, preprocessing variant, mirroring) is verified on point samples only
#: when its 8x8 area means already agree with the image (aliasing mostly averages out over 8x8
#: blocks): PSNR and explained variance at 8x8 at least these. It bounds the cost, not the
#: evidence: the point-sampled score decides. Measured on a benchmark corpus: NEAREST copies
#: missed by the area thumbnails at 36.8 dB / 0.78-0.85; 7 of 2,200 honest photos pass.
POINT_GATE = (26.0, 0.5)
#: Gated candidates verified on point samples per image, best 8x8 PSNR first.
POINT_CANDIDATES = 2
#: A point render counts only when it reproduces the image at 32x32 this many dB better than
#: the antialiased renders of the same photo do (for a copy: any variant, either way round; for
#: a crop: the aligned region): the signature of a NEAREST resize.
#: Without it, the phases (and a crop's nearby boxes) are just more tries, and a self-similar
#: honest tile gained enough to be flagged (measured on a benchmark corpus: honest photos gain
#: -0.2 to +1.3 dB, one reaching a crop score of 0.54 from 0.37; NEAREST copies through an
#: intermediate resize gain 8-16 dB, direct NEAREST crops reproduce exactly).
POINT_MIN_GAIN_DB = 3.0


def _sample_axis(start: float, length: float, n: int, extent: int, phases) -> tuple[np.ndarray, np.ndarray]:
    """Integer lower neighbours (P, n) and bilinear fractions (P, n) of ``n`` output pixels'
    centres over ``[start, start + length)`` of an axis ``extent`` source pixels long."""
    pos = start + (np.arange(n)[None, :] + 0.5 + np.asarray(phases)[:, None]) * (length / n) - 0.5
    pos = np.clip(pos, 0.0, extent - 1.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), max(extent - 2, 0))
    return lo, pos - lo


def region_to_point_renders(photo: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int],
                            phases=POINT_PHASES, jitter: int = 0) -> np.ndarray:
    """Point-sampled renders of the ``box`` = (x, y, w, h) of a uint8 photo at ``size`` =
    (width, height): PIL's NEAREST resize of the box rounded to whole pixels (and, with
    ``jitter``, of every box whose x, y, w and h lie within ``jitter`` pixels of it: a box
    recovered from a small canvas is known to about a pixel), then bilinear samples of the box at
    every pair of ``phases``; float32 (J + P*P, height, width, 3) in [0, 1], J = (2 jitter + 1)^4."""
    x, y, w, h = box
    out_w, out_h = size
    ph, pw = photo.shape[:2]
    im = Image.fromarray(photo)
    x0, y0, w0, h0 = (int(round(v)) for v in box)
    steps = range(-jitter, jitter + 1)
    nearest = []
    for dx in steps:
        for dy in steps:
            for dw in steps:
                for dh in steps:
                    a, b = min(max(x0 + dx, 0), pw - 1), min(max(y0 + dy, 0), ph - 1)
                    c, d = max(min(w0 + dw, pw - a), 1), max(min(h0 + dh, ph - b), 1)
                    nearest.append(np.asarray(im.crop((a, b, a + c, b + d)).resize((out_w, out_h),
                                                                                      Image.Resampling.NEAREST)))
    ys, fy = _sample_axis(y, h, out_h, ph, phases)
    xs, fx = _sample_axis(x, w, out_w, pw, phases)
    y1, x1 = np.minimum(ys + 1, ph - 1), np.minimum(xs + 1, pw - 1)
    p = len(phases)
    # separable bilinear interpolation: the rows of every y phase, then their columns
    cols = np.arange(max(int(xs.min()), 0), min(int(x1.max()) + 1, pw))
    band = photo[:, cols].astype(np.float32)
    wy = fy[:, :, None, None].astype(np.float32)
    rows = band[ys] * (1 - wy) + band[y1] * wy                           # (P_y, H, cols, 3)
    xs, x1 = xs - cols[0], x1 - cols[0]
    wx = fx[None, None, :, :, None].astype(np.float32)
    renders = rows[:, :, xs] * (1 - wx) + rows[:, :, x1] * wx              # (P_y, H, P_x, W, 3)
    renders = renders.transpose(0, 2, 1, 3, 4).reshape(p * p, out_h, out_w, 3)
    return np.concatenate([np.stack(nearest).astype(np.float32), renders]) / np.float32(255.0)


def to_side(x: np.ndarray, side: int) -> np.ndarray:
    """Float (..., T, T, 3) images → (..., side, side, 3) block means (T a power-of-two multiple)."""
    while x.shape[-2] > side:
        x = halve(x)
    return x


#: Training thumbnails converted at once by ``thumbnails_to_side8`` (bounds its float64 copies).
SIDE_CHUNK = 1024


def thumbnails_to_side8(thumbs: np.ndarray) -> np.ndarray:
    """uint8 thumbnails (M, V, T, T, 3) → float64 (M, V, 8, 8, 3) block means in [0, 1], as
    ``to_side(thumbs / 255, 8)``, a chunk of photos at a time: converted whole, 20,000 photos'
    thumbnails took 2 GB of float64 copies for a 61 MB result."""
    out = np.empty(thumbs.shape[:-3] + (8, 8, thumbs.shape[-1]), dtype=np.float64)
    for s in range(0, len(thumbs), SIDE_CHUNK):
        out[s:s + SIDE_CHUNK] = to_side(thumbs[s:s + SIDE_CHUNK].astype(np.float64) / 255.0, 8)
    return out


def point_gate(query8: np.ndarray, train8: np.ndarray, candidates: np.ndarray,
               limit: int = POINT_CANDIDATES) -> list[tuple[int, int, bool]]:
    """The candidates worth verifying on point samples: ``(train, variant, flip)`` whose 8x8
    block means (``train8`` (M, V, 8, 8, 3) in [0, 1]) agree with the image's ``query8``
    (8, 8, 3) (``POINT_GATE``), at most ``limit``, best 8x8 PSNR first. ``candidates``:
    training indices, -1 pads."""
    idx = candidates[candidates >= 0]
    if idx.size == 0:
        return []
    views = np.stack([query8, query8[:, ::-1, :]])                              # (2, 8, 8, 3)
    psnr, explained = thumbnails_to_agreement(views[None, None], train8[idx][:, :, None])   # (C, V, 2)
    ok = (psnr >= POINT_GATE[0]) & (explained >= POINT_GATE[1])
    order = [np.unravel_index(k, psnr.shape) for k in np.argsort(-psnr, axis=None, kind="stable")]
    return [(int(idx[c]), int(v), bool(f)) for c, v, f in order if ok[c, v, f]][:limit]


def point_renders_to_copy_score(query: np.ndarray, renders: np.ndarray, levels: dict | None = None,
                                min_psnr32: float | None = None) -> tuple[float, float, float] | None:
    """Best copy score (on ``levels``, ``LEVELS`` unless given) of uint8 (H, W, 3) ``query``
    over float point renders (P, H, W, 3) (``region_to_point_renders``), with its PSNR and
    explained variance; with ``min_psnr32``, only over the renders whose 32x32 PSNR reaches it
    (None when none does)."""
    q = query.astype(np.float32)[None] / np.float32(255.0)
    if min_psnr32 is not None:   # first the cheap test (most gated candidates fail it), then the scores
        keep = images_to_psnr32(q, renders) >= min_psnr32
        if not keep.any():
            return None
        renders = renders[keep]
    score, psnr, explained = images_to_agreement_score(q, renders, levels)
    i = int(np.argmax(score))
    return float(score[i]), float(psnr[i]), float(explained[i])


def images_to_psnr32(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSNR (dB) of float (..., T, T, 3) images in [0, 1] at 32x32 area means (broadcast)."""
    d = to_side(query, 32) - to_side(reference, 32)
    return 10.0 * np.log10(1.0 / np.maximum((d * d).mean(axis=(-3, -2, -1)), 1e-10))


def point_sampled_copies(query_pixels, query_thumbs: np.ndarray, train_thumbs: np.ndarray, candidates: np.ndarray,
                         copies: list[CopyMatch | None], photos: Callable[[int], np.ndarray | None],
                         variants: tuple[str, ...], train8: np.ndarray | None = None) -> list[CopyMatch | None]:
    """``copies`` with each match replaced by a better point-sampled one: the gated candidates
    (``point_gate``) are verified on ``region_to_point_renders`` of their photo (``photos``:
    training index → uint8 photo, or None), as a NEAREST resize made them. A match already
    certain (score 1) is kept: the score is the better of the two, whatever the threshold.
    ``train8``: the training thumbnails' 8x8 means in [0, 1] (``to_side``), where the caller has
    them."""
    out = list(copies)
    todo = [i for i in range(len(out)) if out[i] is None or out[i].score < 1.0]
    if not todo:
        return out
    train8 = thumbnails_to_side8(train_thumbs) if train8 is None else train8
    for i in todo:
        thumb = query_thumbs[i].astype(np.float64) / 255.0
        for train, v, flip in point_gate(to_side(thumb, 8), train8, candidates[i]):
            photo = photos(train)
            if photo is None:
                continue
            q = np.asarray(query_pixels[i])
            q = q[:, ::-1] if flip else q
            renders = region_to_point_renders(photo, mode_box(variants[v], photo.shape[1], photo.shape[0]),
                                              (q.shape[1], q.shape[0]))
            # the best antialiased render of this photo: any variant, either way round
            views = np.stack([thumb, thumb[:, ::-1]])[:, None]                    # (2, 1, T, T, 3)
            area = float(images_to_psnr32(views, train_thumbs[train].astype(np.float64) / 255.0).max())
            found = point_renders_to_copy_score(q, renders, None, area + POINT_MIN_GAIN_DB)
            if found is None:
                continue
            score, psnr, explained = found
            if out[i] is None or score > out[i].score:
                out[i] = CopyMatch(train, score, psnr, explained, v, flip, point_sampled=True)
            if out[i].score >= 1.0:
                break
    return out
