"""The copy detector on arrays (no Inception): honest look-alikes from real photos are never
flagged, copies resized with any PIL filter, mirrored or re-encoded are, with the right source."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from gandit.calibration import DEFAULT_THRESHOLDS
from gandit.dataset import preprocess
from gandit.features.embed import preprocessing_variants
from gandit.features.pixels import image_to_thumbnail, thumbnails_to_descriptors
from gandit.forensics.analyze import CROP_LEVELS
from gandit.forensics.copy import (detect_copies, flat_references, images_to_agreement_score, point_sampled_copies,
                                  thumbnails_to_copy_score)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")
FILTERS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS,
           Image.Resampling.BOX, Image.Resampling.NEAREST)


@pytest.fixture(scope="module")
def tiles() -> list[np.ndarray]:
    """3x3 non-overlapping tiles of six real photos: 54 'training photos' of varied shapes,
    neighbours from the same photo being the closest honest look-alikes there are."""
    out = []
    for name in PHOTOS:
        im = getattr(skimage.data, name)()[..., :3]
        h, w = im.shape[:2]
        out += [im[a * h // 3:(a + 1) * h // 3, b * w // 3:(b + 1) * w // 3] for a in range(3) for b in range(3)]
    return out


def train_thumbs(photos: list[np.ndarray]) -> np.ndarray:
    variants = preprocessing_variants("center-crop")
    return np.stack([[image_to_thumbnail(preprocess(p, v, (64, 64))) for v in variants] for p in photos])


def fake_features(thumbs: np.ndarray) -> np.ndarray:
    """Stand-in for Inception features: the pixel descriptors (the detector must not depend on
    a particular feature extractor to find pixel copies)."""
    return thumbnails_to_descriptors(thumbs)


def make_copy(photo: np.ndarray, resize: str, filt, flip: bool, jpeg: int | None) -> np.ndarray:
    im = Image.fromarray(photo)
    if resize == "center-crop":
        side = min(im.size)
        x, y = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((x, y, x + side, y + side))
    im = im.resize((64, 64), filt)
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if jpeg:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=jpeg)
        im = Image.open(buf).convert("RGB")
    return np.asarray(im)


def test_copies_through_any_filter_flip_and_jpeg_are_found_with_their_source(tiles):
    rng = np.random.default_rng(0)
    train = train_thumbs(tiles)
    cases, queries = [], []
    for i, tile in enumerate(tiles):
        for filt in FILTERS:
            resize = ("squash", "center-crop")[int(rng.integers(2))]
            flip, jpeg = bool(rng.integers(2)), (None, 90, 75)[int(rng.integers(3))]
            cases.append((i, resize, filt.name, flip, jpeg))
            queries.append(image_to_thumbnail(make_copy(tile, resize, filt, flip, jpeg)))
    q = np.stack(queries)
    matches = detect_copies(fake_features(q), q, fake_features(train[:, 0]), train)
    missed = [c for c, m in zip(cases, matches) if m is None or m.score < DEFAULT_THRESHOLDS["copy"]]
    wrong = [(c, m.train) for c, m in zip(cases, matches) if m is not None and m.train != c[0]]
    flips = [(c, m.flip) for c, m in zip(cases, matches) if m is not None and m.flip != c[3]]
    assert len(cases) == 270
    # NEAREST-decimated star fields and rocket tiles are the only hard cases among detailed tiles
    # (2 until the explained variance took the variance per channel, which a flat sky's colour no
    # longer inflates). The rocket's sky tile is flat (no detail at 32x32): its copies count only
    # where they reproduce it to its rounding; JPEG at 75-90 leaves them at 43 dB, below what an
    # honest look-alike gradient reaches (48 dB on a benchmark corpus), so they are not flagged.
    flat = {i for i in range(len(tiles)) if flat_references(train[i].astype(np.float64) / 255).any()}
    assert flat == {28}
    detailed = [c for c in missed if c[0] not in flat]
    assert len(detailed) <= 3 and all(c[2] == "NEAREST" for c in detailed), missed
    assert all(c[4] is not None for c in missed if c[0] in flat), missed   # unencoded ones are found
    assert not wrong and not flips


def test_nearest_copies_are_found_on_point_samples_of_the_photo(tiles):
    """A NEAREST copy, made directly or from a 2x, 3x or 4x larger LANCZOS resize, of either
    preprocessing, mirrored or not: verified on point samples of the training photo, every one
    is found with its source (on the area thumbnails alone, some textured tiles are missed)."""
    rng = np.random.default_rng(1)
    train = train_thumbs(tiles)
    variants = preprocessing_variants("center-crop")
    cases, images = [], []
    for i, tile in enumerate(tiles):
        for via in (1, 2, 3, 4):
            mode, flip = variants[int(rng.integers(2))], bool(rng.integers(2))
            big = preprocess(tile, mode, (64 * via, 64 * via)) if via > 1 else tile
            if via == 1 and mode == "center-crop":
                big = preprocess(tile, mode, (min(tile.shape[:2]),) * 2)
            img = np.asarray(Image.fromarray(big).resize((64, 64), Image.Resampling.NEAREST))
            images.append(np.ascontiguousarray(img[:, ::-1]) if flip else img)
            cases.append((i, mode, via, flip))
    q = np.stack([image_to_thumbnail(im) for im in images])
    area = detect_copies(fake_features(q), q, fake_features(train[:, 0]), train)
    point = detect_copies(fake_features(q), q, fake_features(train[:, 0]), train, None, images, tiles.__getitem__,
                          variants)
    threshold = DEFAULT_THRESHOLDS["copy"]
    area_missed = [c for c, m in zip(cases, area) if m is None or m.score < threshold]
    missed = [(c, m) for c, m in zip(cases, point) if m is None or m.score < threshold or m.train != c[0]
              or m.flip != c[3]]
    assert len(cases) == 216 and area_missed      # measured: 6 missed on the area thumbnails
    assert not missed, missed
    assert all(m.point_sampled for c, m in zip(cases, point) if c in area_missed)
    # antialiased copies gain nothing on point samples (< POINT_MIN_GAIN_DB over the area match):
    # offered no area match at all, they still get no point-sampled one
    smooth = [preprocess(t, mode, (64, 64)) for t in tiles for mode in variants]
    q = np.stack([image_to_thumbnail(im) for im in smooth])
    candidates = np.repeat(np.arange(len(tiles)), 2)[:, None]
    found = point_sampled_copies(smooth, q, train, candidates, [None] * len(smooth), tiles.__getitem__, variants)
    assert found == [None] * len(smooth)


def test_honest_look_alikes_are_never_flagged(tiles, holdout_emoji, train_emoji):
    """Each tile against the other 53 (same photos, same sky, same stars), and 120 held-out
    emoji against 200 training emoji (similar faces and objects on white)."""
    threshold = DEFAULT_THRESHOLDS["copy"]
    for i, tile in enumerate(tiles):
        others = [t for j, t in enumerate(tiles) if j != i]
        train = train_thumbs(others)
        pixels = preprocess(tile, "center-crop", (64, 64))
        for image in (pixels, np.ascontiguousarray(pixels[:, ::-1])):
            query = image_to_thumbnail(image)[None]
            # as the audit runs it: also verified on point samples of the other tiles themselves
            (m,) = detect_copies(fake_features(query), query, fake_features(train[:, 0]), train, None, [image],
                                 others.__getitem__, preprocessing_variants("center-crop"))
            assert m is None or m.score < threshold, (i, m)
    train = np.stack([[image_to_thumbnail(e)] * 2 for e in train_emoji])
    q = np.stack([image_to_thumbnail(e) for e in holdout_emoji])
    matches = detect_copies(fake_features(q), q, fake_features(train[:, 0]), train)
    assert max(m.score for m in matches if m is not None) < threshold


def test_flat_images_are_no_evidence():
    """A blank image equal to a blank training image has nothing to copy: score 0; nor has a
    flat sky of nearly the training sky's colour (its channels lie far apart, but each is flat)."""
    white = np.full((1, 1, 32, 32, 3), 255, np.uint8)
    score, psnr, _ = thumbnails_to_copy_score(white[0], white)
    assert psnr.max() > 90 and score.max() == 0.0
    rng = np.random.default_rng(0)
    gradient = np.linspace(-3, 3, 32)[None, :, None, None]
    sky = np.clip(np.array([70, 120, 205]) + gradient + rng.normal(0, 0.8, (2, 32, 32, 3)), 0, 255).round()
    other = np.clip(np.array([72, 121, 203]) + gradient + rng.normal(0, 0.8, (2, 32, 32, 3)), 0, 255).round()
    score, psnr, _ = thumbnails_to_copy_score(sky.astype(np.uint8)[:1], other.astype(np.uint8)[None, :1])
    assert psnr.max() > 38 and score.max() == 0.0


def test_a_flat_reference_counts_only_where_reproduced_to_its_rounding():
    """A smooth gradient (no detail at 32x32 beyond its 8x8 smoothing) matched by a gradient
    tilted by ±2 levels (47 dB, 0.93 explained) is where an image's colours came from, not a
    copy: score 0, where a detailed reference matched as closely scores 1. Matched to its
    rounding (0.3 of a level of noise, 58 dB at 32x32), it counts; a uniform one never does."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 1, 32)[:, None, None]
    gradient = (np.array([40.0, 90.0, 160.0]) + np.array([10.0, 15.0, 20.0]) * ramp) * np.ones((32, 32, 3))
    photo = image_to_thumbnail(preprocess(skimage.data.astronaut(), "center-crop", (64, 64))).astype(np.float64)
    assert flat_references(gradient / 255) and not flat_references(photo / 255)
    tilt = np.linspace(-2, 2, 32)[None, :, None]
    for reference, flat in ((gradient, True), (photo, False)):
        for query, expected in ((reference + tilt, 0.0 if flat else 1.0),
                                (reference + rng.normal(0, 0.3, reference.shape), 1.0)):
            score, psnr, explained = images_to_agreement_score(query / 255, reference / 255, CROP_LEVELS)
            assert 46 < psnr and explained > 0.9 and score == pytest.approx(expected), (flat, psnr, explained)
    uniform = np.full((32, 32, 3), 120.0)
    assert images_to_agreement_score(uniform / 255, uniform / 255, CROP_LEVELS)[0] == 0.0


def test_point_renders_are_pil_nearest_and_bilinear_samples_at_the_phases():
    """The renders a NEAREST copy is verified on: PIL's own NEAREST resize of the box (and of
    the boxes a pixel around it), then bilinear samples at the shifted pixel centres, pinned
    against scipy's ``map_coordinates``."""
    from scipy.ndimage import map_coordinates

    from gandit.forensics.copy import POINT_PHASES, region_to_point_renders

    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    box = (11.4, 7.6, 90.2, 80.3)
    renders = region_to_point_renders(photo, box, (32, 24), jitter=1)
    jittered = 3 ** 4
    assert renders.shape == (jittered + len(POINT_PHASES) ** 2, 24, 32, 3)
    pil = np.asarray(Image.fromarray(photo).crop((11, 8, 11 + 90, 8 + 80)).resize((32, 24), Image.Resampling.NEAREST))
    assert np.array_equal(renders[jittered // 2] * 255, pil.astype(np.float32))   # the middle one: no shift
    x, y, w, h = box
    for a, dy in enumerate(POINT_PHASES):
        for b, dx in enumerate(POINT_PHASES):
            ys = y + (np.arange(24) + 0.5 + dy) * h / 24 - 0.5
            xs = x + (np.arange(32) + 0.5 + dx) * w / 32 - 0.5
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            ref = np.stack([map_coordinates(photo[..., c].astype(np.float64), [yy, xx], order=1, mode="nearest")
                            for c in range(3)], axis=-1) / 255.0
            np.testing.assert_allclose(renders[jittered + a * len(POINT_PHASES) + b], ref, atol=1e-5)


def test_copies_are_the_same_with_any_number_of_workers_and_chunks(tiles, monkeypatch):
    """The detector verifies chunks of images on threads: every image's match, point-sampled
    ones included, is the one a single pass over all images gives."""
    import gandit.forensics.copy as copy

    rng = np.random.default_rng(3)
    train = train_thumbs(tiles)
    variants = preprocessing_variants("center-crop")
    images = [make_copy(tiles[i], ("squash", "center-crop")[i % 2], FILTERS[i % 5], bool(i % 3 == 0), None)
              for i in rng.choice(len(tiles), 12, replace=False)]
    for i in rng.choice(len(tiles), 12, replace=False):   # NEAREST through an intermediate resize
        big = preprocess(tiles[i], variants[i % 2], (64 * (2 + i % 3),) * 2)
        images.append(np.asarray(Image.fromarray(big).resize((64, 64), Image.Resampling.NEAREST)))
    images += [preprocess(skimage.data.astronaut()[::2, ::2], "center-crop", (64, 64)), np.zeros((64, 64, 3), np.uint8)]
    q = np.stack([image_to_thumbnail(im) for im in images])

    def detect(workers):
        return detect_copies(fake_features(q), q, fake_features(train[:, 0]), train, None, images, tiles.__getitem__,
                             variants, workers=workers)
    single = detect(1)
    assert sum(m is not None and m.point_sampled for m in single) >= 3   # the NEAREST copies
    monkeypatch.setattr(copy, "VERIFY_CHUNK", 5)
    for workers in (1, 2, 3):
        assert detect(workers) == single


def test_training_side_descriptors_made_a_chunk_at_a_time_are_the_whole_computations(monkeypatch):
    """The copy detector's training-side arrays are made in chunks (their float copies of 20,000
    photos' thumbnails took 2.5 GB at once): the values are those of the whole computation,
    across chunk boundaries."""
    import gandit.features.pixels as pixels
    import gandit.forensics.copy as copy

    monkeypatch.setattr(pixels, "CHUNK", 7)
    monkeypatch.setattr(copy, "SIDE_CHUNK", 5)
    thumbs = np.random.default_rng(4).integers(0, 256, (23, 2, 32, 32, 3), dtype=np.uint8)
    flat = thumbs.reshape(46, 32, 32, 3)
    whole = flat.astype(np.float32).reshape(46, 16, 2, 16, 2, 3).mean(axis=(2, 4)) / 255.0
    np.testing.assert_array_equal(pixels.thumbnails_to_descriptors(flat), whole.reshape(46, -1))
    means8 = thumbs.astype(np.float64).reshape(23, 2, 8, 4, 8, 4, 3).mean(axis=(3, 5)) / 255.0
    np.testing.assert_allclose(copy.thumbnails_to_side8(thumbs), means8, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(copy.thumbnails_to_side8(thumbs),
                                  copy.to_side(thumbs.astype(np.float64) / 255.0, 8))
