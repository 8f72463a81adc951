"""The training set: a folder scanned recursively, identities by relative path, content
fingerprints, and the named preprocessing that brings photos to the comparison size.

Preprocessing modes (written into every result as ``provenance.preprocessing``):

``center-crop``
    The largest centred square of the photo (after EXIF orientation), resized to the
    comparison size with PIL's LANCZOS filter on uint8 RGB. Keeps the aspect ratio, so dogs
    are not squashed: the default for comparing photos of any shape with square outputs, as
    StyleGAN's and clean-fid's dataset tools do.
``kaggle2019``
    The whole photo squashed to the comparison size with PIL's LANCZOS filter (the old
    ``Image.ANTIALIAS``), as Kaggle's 2019 scoring prepared the Stanford Dogs photos. Use it
    to reproduce that leaderboard's numbers.

Why LANCZOS: downscaling a photo 5-10x needs an antialiasing filter, or the 64x64 image
aliases and its Inception features (and FID) shift; PIL's LANCZOS is the antialiased filter
Kaggle used, and clean-fid showed that the filter choice moves FID by several points.
Both modes are applied to *training* photos only; submitted images are used as decoded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gandit.errors import TrainingSetError

TRAIN_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
PREPROCESSING_MODES = ("center-crop", "kaggle2019")
#: Larger photos are refused (decompression bombs in a training folder).
MAX_TRAIN_PIXELS = 16_777_216 * 4


@dataclass(frozen=True)
class TrainFile:
    relpath: str   #: '/'-separated path relative to the training folder: the image's identity
    path: Path
    sha256: str    #: of the file's bytes


@dataclass(frozen=True)
class TrainingSet:
    root: Path
    files: tuple[TrainFile, ...]   #: sorted by relpath

    def fingerprint(self, preprocessing: str, size: tuple[int, int]) -> str:
        """SHA-256 over the sorted (relpath, content hash) list and the preprocessing."""
        h = hashlib.sha256(f"gandit.train/1\n{preprocessing}\n{size[0]}x{size[1]}\n".encode())
        for f in self.files:
            h.update(f"{f.relpath}\0{f.sha256}\n".encode())
        return h.hexdigest()


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def scan_training_set(root: str | os.PathLike, what: str = "training") -> TrainingSet:
    """All image files below ``root`` (symlinks are not followed), sorted by relative path.
    ``what`` names the folder in error messages ("training" or "held-out")."""
    base = Path(root)
    option = "--train" if what == "training" else "--holdout"
    if not base.is_dir():
        raise TrainingSetError(f"{what} folder '{base}' does not exist or is not a folder — "
                               f"pass {option} DIR with the competition's {what} images")
    found: list[TrainFile] = []
    try:
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames.sort()
            for name in filenames:
                p = Path(dirpath) / name
                if p.suffix.lower() not in TRAIN_EXTENSIONS or p.is_symlink() or not p.is_file():
                    continue
                rel = p.relative_to(base).as_posix()
                found.append(TrainFile(rel, p, _hash_file(p)))
    except OSError as err:
        raise TrainingSetError(f"cannot read {what} folder '{base}': {err.strerror or err} — "
                               f"check its permissions") from None
    if not found:
        raise TrainingSetError(f"{what} folder '{base}' holds no images ({', '.join(TRAIN_EXTENSIONS)}) — "
                               f"pass the folder of {what} photos")
    found.sort(key=lambda f: f.relpath)
    return TrainingSet(base, tuple(found))


def load_photo(path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3) after EXIF orientation. Raises ValueError for unreadable files."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_TRAIN_PIXELS:
                raise ValueError(f"{im.width}x{im.height} pixels is over the limit")
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError) as err:
        raise ValueError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the largest centred square."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def mode_box(mode: str, width: int, height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)``: the region of a ``width`` x ``height`` photo that a preprocessing mode shows."""
    if mode == "center-crop":
        return center_crop_box(width, height)
    if mode != "kaggle2019":
        raise ValueError(f"unknown preprocessing mode {mode!r}; known: {', '.join(PREPROCESSING_MODES)}")
    return 0, 0, width, height


def preprocess(photo: np.ndarray, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Bring a uint8 RGB photo to ``size`` = (width, height) with a named preprocessing mode."""
    im = Image.fromarray(photo)
    x, y, w, h = mode_box(mode, im.width, im.height)
    if (w, h) != im.size:
        im = im.crop((x, y, x + w, y + h))
    if im.size != tuple(size):
        im = im.resize(tuple(size), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def photo_to_region(photo: np.ndarray, box: list[int] | tuple[int, ...] | None, flip: bool, size: tuple[int, int],
                    mode: str = "kaggle2019") -> np.ndarray:
    """A matched region of a photo as a submitted image shows it: ``box`` = ``[x, y, w, h]`` in
    the photo's pixels (``None``: the whole photo under ``mode``), resized to ``size`` =
    (width, height) with PIL's antialiasing filter, mirrored when ``flip``."""
    if box is None:
        out = preprocess(photo, mode, size)
    else:
        x, y, w, h = (int(v) for v in box)
        out = np.asarray(Image.fromarray(photo).crop((x, y, x + w, y + h))
                         .resize(tuple(size), Image.Resampling.LANCZOS), dtype=np.uint8)
    return np.ascontiguousarray(out[:, ::-1]) if flip else out
