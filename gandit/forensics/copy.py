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

``score`` = ``min(psnr_part, explained_part)``, each mapped linearly onto [0, 1] between
an "honest" and a "certain copy" level (``LEVELS``), the better of the two levels. Measured
on scikit-image photo tiles and Noto emoji (BENCHMARKS.md, with the first definition of
``explained``): the closest honest pairs reach 29 dB but 0.82 explained (two tiles of the same
sky) or 0.91 explained but 23 dB (two similar emoji), scoring at most ~0.2; whole-image copies through PIL's BOX, BILINEAR, BICUBIC
or LANCZOS, mirrored or not, JPEG quality ≥ 75, score ≥ 0.9; NEAREST-downscaled star fields,
the hardest case, ~0.6. An image is flagged when ``score`` ≥ the ``copy`` threshold (0.5 by
default: both measures past half-way at one level). Copies misaligned by resampling (64 →
48 → 64 with NEAREST) are degraded replays, left to the replay detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gandit.features.pixels import mirror, thumbnails_to_descriptors
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


@dataclass(frozen=True)
class CopyMatch:
    train: int            #: index into the training features
    score: float
    psnr: float
    explained: float
    variant: int          #: 0 = the rule's preprocessing, 1 = the other mode
    flip: bool


def halve(x: np.ndarray) -> np.ndarray:
    """2x2 block means of float (..., T, T, 3) images."""
    *lead, t, _, c = x.shape
    return x.reshape(*lead, t // 2, 2, t // 2, 2, c).mean(axis=(-4, -2))


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


def agreement_to_score(psnr: np.ndarray, explained: np.ndarray, level: int = 32,
                       levels: dict | None = None) -> np.ndarray:
    p0, p1, e0, e1 = (levels or LEVELS)[level]
    a = np.clip((psnr - p0) / (p1 - p0), 0.0, 1.0)
    b = np.clip((explained - e0) / (e1 - e0), 0.0, 1.0)
    return np.minimum(a, b)


def thumbnails_to_copy_score(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy score of uint8 thumbnails (best over levels), with the PSNR and explained variance at that level."""
    return images_to_agreement_score(query.astype(np.float32) / 255.0, reference.astype(np.float32) / 255.0)


def images_to_agreement_score(q: np.ndarray, r: np.ndarray, levels: dict | None = None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agreement score of float (..., T, T, 3) images in [0, 1], best over the comparison levels
    (``LEVELS`` unless given), with the PSNR and explained variance at that level."""
    levels = levels or LEVELS
    best = None
    for level in sorted(levels, reverse=True):
        while q.shape[-2] > level:
            q, r = halve(q), halve(r)
        psnr, explained = thumbnails_to_agreement(q, r)
        score = agreement_to_score(psnr, explained, level, levels)
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
                  by_features: np.ndarray | None = None) -> list[CopyMatch | None]:
    """For each submitted image, its best copy match (or None when no candidate exists).
    ``by_features``: the caller's Inception top-k indices, when it has searched already."""
    if len(query_thumbs) == 0 or len(train_thumbs) == 0:
        return [None] * len(query_thumbs)
    if by_features is None:
        by_features = knn_cosine(query_inception, train_inception, K_INCEPTION)[1]
    cands = copy_candidates(by_features, query_thumbs, train_thumbs)
    return verify_copies(query_thumbs, train_thumbs, cands)
