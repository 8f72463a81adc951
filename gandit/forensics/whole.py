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
(``search.top_inner_products``: a query's matches do not depend on the batch it is searched
in): ``V`` rows per photo, 768 float32 each (20,000 photos, two variants: 123 MB). A second
index holds the same rows of each variant's symmetric part (``symmetric_part``, another
123 MB): a photo mixed with its own mirror image, ``w * a + (1 - w) * mirror(a)``, has the
symmetric part of ``a`` whatever ``w``, where it may be near neither orientation of ``a``
itself (``search_symmetric``). Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gandit.forensics.align import descriptors, images_to_tensor
from gandit.forensics.replay import pool
from gandit.search import top_inner_products

#: Side of a whole-image descriptor, pixels.
WHOLE_SIZE = 16
#: Photos rendered per block while building (bounds memory).
CHUNK = 1024


@dataclass
class WholeIndex:
    """Descriptors of every preprocessing variant of every training photo."""

    variants: int             #: variants per photo; row r is photo r // variants, variant r % variants
    index: np.ndarray         #: float32 (rows, 768) descriptors
    #: the same rows of each variant's symmetric part, ``(x + mirror(x)) / 2`` (``search_symmetric``)
    symmetric: np.ndarray


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
    symmetric = np.zeros_like(index)
    for s in range(0, m, CHUNK):
        block = pixels[s:s + CHUNK]
        # mirroring and area averaging commute: the symmetric parts are taken at 16x16
        x = pool(images_to_tensor(block.reshape(-1, *block.shape[2:])), WHOLE_SIZE)
        index[s * v:s * v + len(x)] = descriptors(x)
        symmetric[s * v:s * v + len(x)] = descriptors(symmetric_part(x))
    return WholeIndex(v, index, symmetric)


def search_symmetric(index: WholeIndex, images: torch.Tensor) -> list[WholeMatch | None]:
    """Per image of (N, 3, s, s), the training photo whose variant's symmetric part correlates
    best with the image's (``symmetric_part``; ``flip`` False, ties by photo id), or None: where
    a photo mixed with its own mirror image is near neither orientation of its source, the
    symmetric parts still agree."""
    if len(images) == 0 or len(index.symmetric) == 0:
        return [None] * len(images)
    # the best row, ties by row: by photo, then variant
    sims, rows = top_inner_products(descriptors(symmetric_part(pool(images, WHOLE_SIZE))), index.symmetric, 1)
    return [WholeMatch(int(r) // index.variants, int(r) % index.variants, False, float(s_))
            for s_, r in zip(sims[:, 0], rows[:, 0])]


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
    k = (photos + extra) * index.variants
    hits = []
    for flip, x in ((False, images), (True, images.flip(-1))):
        sims, rows = top_inner_products(whole_descriptors(x), index.index, k)
        hits.append((flip, sims, rows))
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
