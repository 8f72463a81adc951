"""Features of image sets, computed in batches and served from the content-addressed cache.

The pure extractors (Inception pool3, pixel thumbnails) know nothing of files or caches;
this module decides what to compute, in which batches, and stores results as they come, so
an interrupted run resumes where it stopped and a warm run embeds nothing.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

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


THUMB_TAG = f"thumbnail/{THUMB}/1"


def pixels_digest(image: np.ndarray) -> str:
    h = hashlib.sha256(f"{image.shape}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


@dataclass
class TrainFeatures:
    """Features of the decodable training images, in training-set order."""

    relpaths: list[str]
    inception: np.ndarray          #: float32 (M, 2048), primary preprocessing
    thumbs: np.ndarray             #: uint8 (M, 2, 32, 32, 3): [primary, other preprocessing]
    skipped: list[tuple[str, str]] = field(default_factory=list)   #: (relpath, why)
    embedded: int = 0              #: Inception forwards this run (0 on a warm cache)


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
    thumbs = np.zeros((n, len(variants), THUMB, THUMB, 3), np.uint8)
    ok = np.zeros(n, bool)
    skipped: list[tuple[str, str]] = []
    keys = []
    for i, f in enumerate(training.files):
        base = make_key("train", f.sha256, preprocessing, f"{size[0]}x{size[1]}")
        keys.append((make_key(base, extractor.tag), make_key(base, THUMB_TAG)))
        feat, thumb = cache.get(keys[i][0]), cache.get(keys[i][1])
        if feat is not None and thumb is not None and feat.shape == (FEATURE_DIM,) \
                and thumb.shape == thumbs.shape[1:]:
            inception[i], thumbs[i], ok[i] = feat, thumb, True
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
                thumbs[i] = np.stack([image_to_thumbnail(p) for p in prepared])
                batch.append(i)
                primaries.append(prepared[0])
            if batch:
                inception[batch] = extractor(np.stack(primaries))
                embedded += len(batch)
                for i in batch:
                    cache.put(keys[i][0], inception[i])
                    cache.put(keys[i][1], thumbs[i])
                    ok[i] = True
            advance(len(todo[start:start + extractor.batch_size]))
    keep = np.flatnonzero(ok)
    return TrainFeatures([training.files[i].relpath for i in keep], inception[keep], thumbs[keep],
                         sorted(skipped), embedded)


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

