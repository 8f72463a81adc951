"""Pixel features: small thumbnails for exact evidence, and descriptors for pixel search.

Arrays in, arrays out. A thumbnail is the image area-averaged (PIL's BOX filter) to
``THUMB`` x ``THUMB``: averaging removes most of the difference between resize filters, so
a copy resized with NEAREST, BILINEAR or LANCZOS lands on nearly the same thumbnail.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMB = 32
DESCRIPTOR = 16


def image_to_thumbnail(image: np.ndarray, size: int = THUMB) -> np.ndarray:
    """uint8 (H, W, 3) → uint8 (size, size, 3) by area averaging."""
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image, dtype=np.uint8)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


#: Thumbnails converted at once by ``thumbnails_to_descriptors`` (bounds its float32 copy: whole,
#: the 40,000 thumbnails of 20,000 photos in two variants took 491 MB for a 123 MB result).
CHUNK = 4096


def thumbnails_to_descriptors(thumbs: np.ndarray, size: int = DESCRIPTOR) -> np.ndarray:
    """uint8 (N, T, T, 3) thumbnails → float32 (N, size*size*3) in [0, 1] by 2x2-block means."""
    n, t = thumbs.shape[0], thumbs.shape[1]
    f = t // size
    out = np.empty((n, size * size * 3), dtype=np.float32)
    for s in range(0, n, CHUNK):
        x = thumbs[s:s + CHUNK].astype(np.float32)
        out[s:s + CHUNK] = (x.reshape(len(x), size, f, size, f, 3).mean(axis=(2, 4)) / 255.0).reshape(len(x), -1)
    return out


def mirror(images: np.ndarray) -> np.ndarray:
    """Left-right mirror of (..., H, W, C) images."""
    return images[..., :, ::-1, :]
