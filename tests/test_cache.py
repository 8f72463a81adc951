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
