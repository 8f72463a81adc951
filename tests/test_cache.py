"""The feature cache: content keys, atomic writes, corruption detected on read."""

from __future__ import annotations

import numpy as np

from gandit.features.cache import FeatureCache, default_cache_dir, make_key


def test_round_trip_and_no_temporary_files(tmp_path):
    cache = FeatureCache(tmp_path)
    key = make_key("image", "abc", "inception/1/sha")
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert cache.get(key) is None
    cache.put(key, value)
    np.testing.assert_array_equal(cache.get(key), value)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.npyc"]


def test_keys_separate_their_parts():
    assert make_key("ab", "c") != make_key("a", "bc")
    assert make_key("x") == make_key("x")


def test_every_damaged_byte_is_detected(tmp_path):
    cache = FeatureCache(tmp_path)
    key = make_key("k")
    cache.put(key, np.ones(16, np.float32))
    path = next(tmp_path.rglob("*.npyc"))
    good = path.read_bytes()
    for position in range(0, len(good), 7):
        blob = bytearray(good)
        blob[position] ^= 0x01
        path.write_bytes(bytes(blob))
        assert cache.get(key) is None and not path.exists()
        path.write_bytes(good)
    assert cache.repaired == len(range(0, len(good), 7))


def test_disabled_cache_keeps_nothing(tmp_path):
    cache = FeatureCache(None)
    cache.put("k", np.zeros(2))
    assert cache.get("k") is None


def test_default_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GANDIT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GANDIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "gandit"


def _train_features(seed: int = 0, photos: int = 12):
    """A small training side at 64x64 (both variants) cut from scikit-image's photos."""
    import skimage.data as sd

    from gandit.dataset import preprocess
    from gandit.features.embed import TrainFeatures

    rng = np.random.default_rng(seed)
    sources = [sd.astronaut(), sd.chelsea(), sd.coffee(), sd.rocket()]
    pixels, sizes = [], []
    for i in range(photos):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        cw, ch = int(rng.integers(w // 3, w // 2)), int(rng.integers(h // 3, h // 2))
        x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        photo = src[y:y + ch, x:x + cw]
        pixels.append([preprocess(photo, "center-crop", (64, 64)), preprocess(photo, "kaggle2019", (64, 64))])
        sizes.append((cw, ch))
    return TrainFeatures([f"p{i}.png" for i in range(photos)], np.zeros((photos, 2048), np.float32),
                         np.asarray(pixels, np.uint8), np.asarray(sizes, np.int64))


def test_the_box_index_is_cached_by_content_and_comes_back_the_same(tmp_path):
    """An audit against the same training set reuses the box index's arrays instead of rendering
    every box again (70 s at 20,000 photos): a warm build holds the same arrays, bit for bit, and
    searches the same; changed canvases are a new entry; a damaged entry is recomputed."""
    from gandit.audit import train_to_box_index
    from gandit.forensics.align import canvases_to_box_index, vectors_to_box_index

    train = _train_features()
    fresh = canvases_to_box_index(train.thumbs[:, train.canvas_variant])
    cold_cache = FeatureCache(tmp_path)
    cold = train_to_box_index(train, cold_cache)
    assert (cold_cache.hits, cold_cache.misses) == (0, 3)
    warm_cache = FeatureCache(tmp_path)
    warm = train_to_box_index(train, warm_cache)
    assert (warm_cache.hits, warm_cache.misses) == (3, 0)
    queries = fresh.vectors[::97] + np.random.default_rng(1).normal(0, 0.05, (len(fresh.vectors[::97]), 32)
                                                                    ).astype(np.float32)
    for index in (cold, warm):
        for name in ("mean", "components", "vectors"):
            np.testing.assert_array_equal(getattr(index, name), getattr(fresh, name))
        assert index.canvas_size == fresh.canvas_size and np.array_equal(index.grid, fresh.grid)
        for a, b in zip(index.index.search(queries, 5), fresh.index.search(queries, 5)):
            np.testing.assert_array_equal(a, b)
    # the inverted file (large training sets) is rebuilt from the arrays the same way each time
    ivf = [vectors_to_box_index(fresh.grid, fresh.canvas_size, fresh.mean, fresh.components, fresh.vectors,
                                ivf_min_rows=0) for _ in range(2)]
    assert type(ivf[0].index).__name__ == "IndexIVFFlat"
    for a, b in zip(ivf[0].index.search(queries, 5), ivf[1].index.search(queries, 5)):
        np.testing.assert_array_equal(a, b)

    changed = _train_features()
    changed.pixels[3, changed.canvas_variant, 10:20, 10:20] = 255 - changed.pixels[3, changed.canvas_variant, 10:20, 10:20]
    other_cache = FeatureCache(tmp_path)
    other = train_to_box_index(changed, other_cache)
    assert other_cache.misses == 3
    rows = slice(3 * fresh.boxes_per_photo, 4 * fresh.boxes_per_photo)
    assert not np.array_equal(other.vectors[rows], fresh.vectors[rows])

    for path in tmp_path.rglob("*.npyc"):   # damage every entry: each is detected and recomputed
        path.write_bytes(path.read_bytes()[:-10])
    repaired_cache = FeatureCache(tmp_path)
    repaired = train_to_box_index(train, repaired_cache)
    assert repaired_cache.repaired == 3
    np.testing.assert_array_equal(repaired.vectors, fresh.vectors)
    again = FeatureCache(tmp_path)
    train_to_box_index(train, again)
    assert again.hits == 3


def test_a_box_index_that_cannot_be_cached_is_still_built(tmp_path, monkeypatch):
    """The box index's entries are large (550 MB at 20,000 photos): a disk that fills up while
    they are written costs the next audit the time to build it again, not this audit its result."""
    import errno

    from gandit.audit import train_to_box_index
    from gandit.forensics.align import canvases_to_box_index

    def full(self, key, array):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FeatureCache, "put", full)
    train = _train_features(photos=6)
    index = train_to_box_index(train, FeatureCache(tmp_path))
    np.testing.assert_array_equal(index.vectors, canvases_to_box_index(train.thumbs[:, train.canvas_variant]).vectors)
    assert not list(tmp_path.rglob("*.npyc"))
