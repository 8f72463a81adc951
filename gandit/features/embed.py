"""Features of image sets, computed in batches and served from the content-addressed cache.

The pure extractors (Inception pool3, pixel thumbnails) know nothing of files or caches;
this module decides what to compute, in which batches, and stores results as they come, so
an interrupted run resumes where it stopped and a warm run embeds nothing.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gandit.dataset import PREPROCESSING_MODES, TrainingSet, load_photo, preprocess
from gandit.features import register
from gandit.features.cache import FeatureCache, make_key
from gandit.features.inception import FEATURE_DIM, Weights, build_model, embed_batch
from gandit.features.pixels import THUMB, image_to_thumbnail
from gandit.progress import SILENT, ProgressReporter

BATCH_SIZE = 50


@register("inception-pool3")
class InceptionExtractor:
    """FID Inception pool3 features (2048-d float32) of uint8 RGB images."""

    version = "1"

    def __init__(self, weights: Weights, device: str = "cpu", batch_size: int = BATCH_SIZE) -> None:
        self.weights = weights
        self.device = device
        self.batch_size = batch_size
        self._model = None

    @property
    def tag(self) -> str:
        return f"inception-pool3/{self.version}/{self.weights.sha256}"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self._model is None:
            self._model = build_model(self.weights, self.device)
        return embed_batch(self._model, images, self.device)


PIXELS_TAG = "pixels/2"   #: both preprocessing variants at the comparison size, and the photo's size


def pixels_digest(image: np.ndarray) -> str:
    h = hashlib.sha256(f"{image.shape}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


@dataclass
class TrainFeatures:
    """Features of the decodable training images, in training-set order."""

    relpaths: list[str]
    inception: np.ndarray          #: float32 (M, 2048), primary preprocessing
    pixels: np.ndarray             #: uint8 (M, 2, H, W, 3): [primary, other preprocessing] at the comparison size
    photo_sizes: np.ndarray        #: int64 (M, 2): (width, height) of each photo after EXIF orientation
    variants: tuple[str, str] = ("center-crop", "kaggle2019")
    skipped: list[tuple[str, str]] = field(default_factory=list)   #: (relpath, why)
    embedded: int = 0              #: Inception forwards this run (0 on a warm cache)

    @cached_property
    def thumbs(self) -> np.ndarray:
        """uint8 (M, 2, 32, 32, 3) area-averaged thumbnails of both variants."""
        if self.pixels.shape[2:4] == (THUMB, THUMB) or len(self.pixels) == 0:
            return self.pixels if len(self.pixels) else np.zeros((0, 2, THUMB, THUMB, 3), np.uint8)
        m, v = self.pixels.shape[:2]
        flat = self.pixels.reshape(m * v, *self.pixels.shape[2:])
        return np.stack([image_to_thumbnail(p) for p in flat]).reshape(m, v, THUMB, THUMB, 3)

    @property
    def canvas_variant(self) -> int:
        """Index of the whole-photo (squashed) variant: the canvas that crops are searched on."""
        return self.variants.index("kaggle2019")

    def subset(self, indices) -> TrainFeatures:
        """The photos at ``indices`` (in that order), e.g. a reference pool without held-out
        photos. Thumbnails already computed are sliced, not recomputed; ``skipped`` is kept
        (it describes the scan), ``embedded`` is 0 (taking a subset embeds nothing)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.relpaths)):
            raise IndexError(f"subset indices must be in [0, {len(self.relpaths)})")
        out = TrainFeatures([self.relpaths[i] for i in idx], self.inception[idx], self.pixels[idx],
                            self.photo_sizes[idx], self.variants, list(self.skipped), 0)
        if "thumbs" in self.__dict__:   # the cached_property was computed: reuse its rows
            out.__dict__["thumbs"] = self.thumbs[idx]
        return out


def preprocessing_variants(primary: str) -> tuple[str, str]:
    """The rule's preprocessing first, then the other mode (copies may use either)."""
    other = [m for m in PREPROCESSING_MODES if m != primary]
    return primary, other[0]


def embed_training_set(training: TrainingSet, preprocessing: str, size: tuple[int, int],
                       extractor: InceptionExtractor, cache: FeatureCache,
                       progress: ProgressReporter = SILENT) -> TrainFeatures:
    variants = preprocessing_variants(preprocessing)
    n = len(training.files)
    inception = np.zeros((n, FEATURE_DIM), np.float32)
    pixels = np.zeros((n, len(variants), size[1], size[0], 3), np.uint8)
    sizes = np.zeros((n, 2), np.int64)
    ok = np.zeros(n, bool)
    skipped: list[tuple[str, str]] = []
    keys = []
    for i, f in enumerate(training.files):
        base = make_key("train", f.sha256, preprocessing, f"{size[0]}x{size[1]}")
        keys.append((make_key(base, extractor.tag), make_key(base, PIXELS_TAG), make_key(base, PIXELS_TAG, "size")))
        feat, pix, wh = cache.get(keys[i][0]), cache.get(keys[i][1]), cache.get(keys[i][2])
        if feat is not None and pix is not None and wh is not None and feat.shape == (FEATURE_DIM,) \
                and pix.shape == pixels.shape[1:] and wh.shape == (2,):
            inception[i], pixels[i], sizes[i], ok[i] = feat, pix, wh, True
    todo = [i for i in range(n) if not ok[i]]
    embedded = 0
    with progress.task("embedding training images", len(todo)) as advance:
        for start in range(0, len(todo), extractor.batch_size):
            batch, primaries = [], []
            for i in todo[start:start + extractor.batch_size]:
                try:
                    photo = load_photo(training.files[i].path)
                except ValueError as err:
                    skipped.append((training.files[i].relpath, str(err)))
                    continue
                prepared = [preprocess(photo, mode, size) for mode in variants]
                pixels[i] = np.stack(prepared)
                sizes[i] = (photo.shape[1], photo.shape[0])
                batch.append(i)
                primaries.append(prepared[0])
            if batch:
                inception[batch] = extractor(np.stack(primaries))
                embedded += len(batch)
                for i in batch:
                    cache.put(keys[i][0], inception[i])
                    cache.put(keys[i][1], pixels[i])
                    cache.put(keys[i][2], sizes[i])
                    ok[i] = True
            advance(len(todo[start:start + extractor.batch_size]))
    keep = np.flatnonzero(ok)
    return TrainFeatures([training.files[i].relpath for i in keep], inception[keep], pixels[keep], sizes[keep],
                         variants, sorted(skipped), embedded)


def embed_images(images: list[np.ndarray], extractor: InceptionExtractor, cache: FeatureCache,
                 progress: ProgressReporter = SILENT, description: str = "embedding submission") -> np.ndarray:
    """Inception features of decoded images (any sizes; batched by shape), float32 (N, 2048)."""
    out = np.zeros((len(images), FEATURE_DIM), np.float32)
    keys = [make_key("image", pixels_digest(im), extractor.tag) for im in images]
    by_shape: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        cached = cache.get(key)
        if cached is not None and cached.shape == (FEATURE_DIM,):
            out[i] = cached
        else:
            by_shape[images[i].shape].append(i)
    total = sum(len(v) for v in by_shape.values())
    with progress.task(description, total) as advance:
        for shape in sorted(by_shape):
            idx = by_shape[shape]
            for start in range(0, len(idx), extractor.batch_size):
                chunk = idx[start:start + extractor.batch_size]
                out[chunk] = extractor(np.stack([images[i] for i in chunk]))
                for i in chunk:
                    cache.put(keys[i], out[i])
                advance(len(chunk))
    return out

