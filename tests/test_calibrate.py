"""`gandit calibrate`: the attack helpers and the training-feature subset (pure), then one tiny
calibration end to end on the bundled samples (CPU): memorizer samples are flagged at the chosen
thresholds and honest images are not, the file follows its schema and is byte-identical for the
same seed (also after an interrupted run resumes), `gandit audit --calibration` uses it, and bad
inputs stop the run with one line before any work."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from gandit.calibrate import attacks, gans
from gandit.calibrate.budget import BUDGETS, SMALL, Budget
from gandit.calibrate.run import gan_side, holdout_split, memorizer_class_weights, resize_all
from gandit.calibrate.thresholds import MARGIN, false_flag_upper_bound
from gandit.calibration import load_calibration
from gandit.cli import main
from gandit.dataset import load_photo, preprocess, scan_training_set
from gandit.features.embed import TrainFeatures
from gandit.report.result import schema

#: A few dozen memorizer classes and a few hundred steps: about half a minute of training on 2 cores.
TINY = Budget(name="tiny", holdout_fraction=0.1, holdout_max=500, memorizer_classes=24, memorizer_epochs=2400,
              memorizer_max_steps=2400, memorizer_batch=24, honest_steps=60, honest_batch=16, honest_images=None,
              gan_width=8, samples=16, honest_samples=32, checkpoint_every=100)
MEMORIZER_SOURCES = ("memorizer_onehot", "memorizer_mix99", "memorizer_mix90")


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour photo (4x4 colour grid, bicubically enlarged)."""
    grid = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC))


# --------------------------------------------------------------------------------------------
# Attacks (pure)


def test_crop_boxes_are_random_resized_crops_inside_the_photo():
    rng = np.random.default_rng(0)
    for width, height in [(640, 427), (300, 451), (64, 64)]:
        for _ in range(100):
            x, y, w, h = attacks.random_crop_box(rng, width, height)
            assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
            assert 0.5 - 0.05 <= w * h / (width * height) <= 1.0
            assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05


def test_attack_plans_are_deterministic_and_carry_their_ground_truth():
    sizes = np.array([[640, 427], [300, 451], [512, 512], [64, 64], [200, 100]])
    for attack in attacks.ATTACK_KINDS:
        a = attacks.plan_attacks(np.random.default_rng(3), sizes, attack, 30)
        assert a == attacks.plan_attacks(np.random.default_rng(3), sizes, attack, 30)
        assert a != attacks.plan_attacks(np.random.default_rng(4), sizes, attack, 30)
        assert all(p.attack == attack and p.kind == attacks.ATTACK_KINDS[attack] for p in a)
        assert all(0 <= j < len(sizes) for p in a for j in p.photos)
    copies = attacks.plan_attacks(np.random.default_rng(0), sizes, "copy", 10)
    assert [p.mode for p in copies[:2]] == ["center-crop", "kaggle2019"]
    assert [p.resample for p in copies[:5]] == attacks.FILTERS and 0 < sum(p.flip for p in copies) < 10
    for p in attacks.plan_attacks(np.random.default_rng(0), sizes, "blend70", 20):
        assert len(set(p.photos)) == 2 and p.weights == (0.7, 0.3)
    replays = attacks.plan_attacks(np.random.default_rng(0), sizes, "replay", 9)
    assert [len(p.photos) for p in replays] == [2, 1, 1] * 3 and replays[0].weights == (0.9, 0.1)
    assert replays[0].box == (0, 0, 640, 427) or replays[0].box[2:] == tuple(sizes[replays[0].photos[0]])
    with pytest.raises(ValueError):
        attacks.plan_attacks(np.random.default_rng(0), sizes[:1], "blend99", 1)


def test_rendered_attacks_are_what_their_plans_say():
    size = (64, 64)
    photos = {0: _photo(320, 200, 0), 1: _photo(150, 150, 1)}
    prepared = np.stack([_photo(64, 64, 2), _photo(64, 64, 3)])
    blend = attacks.render_attack(attacks.AttackPlan("blend99", (0, 1), (0.99, 0.01)), photos, prepared, size)
    expected = np.round(0.99 * prepared[0].astype(float) + (1 - 0.99) * prepared[1].astype(float)).astype(np.uint8)
    assert np.array_equal(blend, expected)
    plain = attacks.AttackPlan("copy", (0,), mode="kaggle2019", resample=attacks.FILTERS[4])
    mirrored = attacks.AttackPlan("copy", (0,), mode="kaggle2019", resample=attacks.FILTERS[4], flip=True)
    a, b = (attacks.render_attack(p, photos, prepared, size) for p in (plain, mirrored))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and np.array_equal(b, a[:, ::-1])
    crop = attacks.render_attack(attacks.AttackPlan("crop", (0,), box=(10, 20, 100, 90)), photos, prepared, (48, 32))
    assert crop.shape == (32, 48, 3)
    assert np.array_equal(crop, attacks.crop_resize(photos[0], (10, 20, 100, 90), attacks.FILTERS[0], (48, 32)))
    replay = attacks.AttackPlan("replay", (1,), box=(0, 0, 150, 150), seed=5)
    r1 = attacks.render_attack(replay, photos, prepared, size)
    assert np.array_equal(r1, attacks.render_attack(replay, photos, prepared, size))   # seeded degradation
    clean = attacks.crop_resize(photos[1], (0, 0, 150, 150), attacks.FILTERS[0], size).astype(float)
    assert 0 < np.abs(r1 - clean).mean() and np.corrcoef(r1.ravel(), clean.ravel())[0, 1] > 0.9


def _bench_forensics():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "forensics.py"
    spec = importlib.util.spec_from_file_location("bench_forensics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_jpegs(folder: Path, rng, count: int, height: int, width: int) -> list[Path]:
    """``count`` JPEGs of random pixels in ``folder``, ``height + 4 * i`` by ``width``."""
    paths = []
    for i in range(count):
        p = folder / f"t{i:02d}.jpg"
        Image.fromarray(rng.integers(0, 256, (height + 4 * i, width, 3), dtype=np.uint8)).save(p, quality=95)
        paths.append(p)
    return paths


def test_the_forensics_benchmark_uses_the_attack_module():
    module = _bench_forensics()
    for name in ("FILTERS", "random_crop_box", "crop_resize", "degrade", "copy_image", "blend_images"):
        assert getattr(module, name) is getattr(attacks, name)


def test_the_forensics_benchmark_draws_attacks_from_the_photos_asked_for_and_reports_recall_by_their_kind(tmp_path):
    """``--sources`` (``build``'s pool): every attack's photos come from the pool; without it the
    submission is byte for byte the one drawn from all photos, as before the option. The report
    gives each kind's recall by its source's corpus kind."""
    bench = _bench_forensics()
    rng = np.random.default_rng(0)
    paths = _random_jpegs(tmp_path, rng, 8, 40, 48)
    honest = tmp_path / "h00.jpg"
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(honest, quality=95)
    truth = bench.build(np.random.default_rng(3), paths, [honest], 6, tmp_path / "pooled", np.array([2, 5, 6]))
    used = {j for t in truth.values() for j in t.get("train", [])}
    assert used == {2, 5, 6}
    plain = bench.build(np.random.default_rng(3), paths, [honest], 6, tmp_path / "plain")
    full = bench.build(np.random.default_rng(3), paths, [honest], 6, tmp_path / "full", np.arange(8))
    assert plain == full and len({j for t in plain.values() for j in t.get("train", [])}) > 3
    for name in plain:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    # recall by the source's kind: 2 of 3 replays of a photo flagged, the wallpaper's not
    train_rel = [p.name for p in paths]
    manifest = {n: {"kind": "photo" if j < 4 else "wallpaper"} for j, n in enumerate(train_rel)}
    truth = {"honest_00000.png": {"kind": "honest"}}
    images = [{"name": "honest_00000.png", "flagged": False, "kind": None, "score": 0.0, "matches": [],
               "scores": {"copy": 0.0, "crop": 0.0, "blend": 0.0, "replay": 0.0}, "evidence": {}}]
    for i, (j, hit) in enumerate([(0, True), (1, True), (2, False), (5, False)]):
        truth[f"replay_{i:05d}.png"] = {"kind": "replay", "train": [j]}
        images.append({"name": f"replay_{i:05d}.png", "flagged": hit, "kind": "replay" if hit else None,
                       "score": 0.9 if hit else 0.0, "evidence": {},
                       "matches": [{"train": train_rel[j], "box": None, "flip": False}] if hit else [],
                       "scores": {"copy": 0.0, "crop": 0.0, "blend": 0.0, "replay": 0.9 if hit else 0.0}})
    report = bench.evaluate({"images": images}, truth, train_rel, manifest)
    assert report["kinds"]["replay"]["recall_by_source_kind"] == {
        "photo": {"images": 3, "recall": 2 / 3}, "wallpaper": {"images": 1, "recall": 0.0}}


def test_the_forensics_benchmark_adds_attack_settings_beyond_its_suite_and_reports_their_evidence(tmp_path):
    """``--variants`` (``add_variants``): blends of other weights, mirrored replays, replays
    mixed 0.8/0.2 and 0.7/0.3 and photos mixed with their own mirror image, labelled with what
    they are made of; the report says whether a flagged mirrored replay names its photo
    mirrored, a flagged mix both photos and a mirror mix its photo both ways."""
    bench = _bench_forensics()
    paths = _random_jpegs(tmp_path, np.random.default_rng(1), 6, 44, 52)
    out = tmp_path / "sub"
    out.mkdir()
    truth: dict = {}
    bench.add_variants(np.random.default_rng([0, 1]), paths, 3, out, truth, np.array([0, 2, 3, 5]))
    assert sorted(truth) == sorted(f"{k}_{i:05d}.png" for k in bench.VARIANTS for i in range(3))
    for name, t in truth.items():
        assert set(t["train"]) <= {0, 2, 3, 5}
        if t["kind"].startswith("blend"):
            a, b = (preprocess(load_photo(paths[j]), "center-crop", (64, 64)).astype(np.float64) for j in t["train"])
            w = {"blend80": 0.8, "blend60": 0.6}[t["kind"]]
            assert t["weights"] == [w, pytest.approx(1 - w)]
            assert np.array_equal(np.asarray(Image.open(out / name)), np.round(w * a + (1 - w) * b).astype(np.uint8))
        elif t["kind"] == "replay_mirrored":
            assert t["flip"] is True
        elif t["kind"].startswith("mirror"):
            assert t["mirror"] is True and len(t["train"]) == 1
            if t["kind"] == "mirror_mix70":
                a = preprocess(load_photo(paths[t["train"][0]]), "center-crop", (64, 64)).astype(np.float64)
                assert np.array_equal(np.asarray(Image.open(out / name)),
                                      np.round(0.7 * a + (1 - 0.7) * a[:, ::-1]).astype(np.uint8))
        elif t["kind"] == "replay_soft":
            assert "mix" not in t and len(t["train"]) == 1
        else:
            assert t["mix"] == {"replay_mix80": 0.8, "replay_mix70": 0.7}[t["kind"]] and len(set(t["train"])) == 2
    # a soft replay is degraded with the same draws as a replay, only blurred more
    photo64 = preprocess(load_photo(paths[0]), "center-crop", (64, 64))
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    plain, soft = attacks.degrade(a, photo64), attacks.degrade(b, photo64, bench.SOFT_BLUR)
    assert a.random() == b.random()
    detail = lambda x: np.abs(np.diff(x.astype(np.float64), axis=1)).mean()  # noqa: E731
    assert detail(soft) < 0.8 * detail(plain), (detail(soft), detail(plain))
    # a mirrored replay is the mirror image of the replay drawn in its place
    again, pool = np.random.default_rng([0, 1]), np.array([0, 2, 3, 5])
    photo = lambda j: load_photo(paths[j])  # noqa: E731
    for _ in range(6):
        bench.blend_attack(again, photo, pool, 0.8, "blend80")
    img, label = bench.replay_attack(again, photo, pool, False, 0.9, "replay_mirrored")
    assert dict(label, flip=True) == truth["replay_mirrored_00000.png"]
    assert np.array_equal(np.asarray(Image.open(out / "replay_mirrored_00000.png")), img[:, ::-1])
    # the report: one mirrored replay named mirrored, one named unmirrored; one mix names both;
    # one mix of a photo with its mirror names it both ways
    train_rel = [p.name for p in paths]
    truth = {"honest_00000.png": {"kind": "honest"},
             "replay_mirrored_00000.png": {"kind": "replay_mirrored", "train": [0], "flip": True},
             "replay_mirrored_00001.png": {"kind": "replay_mirrored", "train": [2], "flip": True},
             "replay_mix80_00000.png": {"kind": "replay_mix80", "train": [3, 5], "mix": 0.8},
             "replay_mix80_00001.png": {"kind": "replay_mix80", "train": [5, 0], "mix": 0.8},
             "mirror_mix70_00000.png": {"kind": "mirror_mix70", "train": [2], "weights": [0.7, 0.3], "mirror": True},
             "mirror_mix70_00001.png": {"kind": "mirror_mix70", "train": [3], "weights": [0.7, 0.3], "mirror": True}}
    named = {"replay_mirrored_00000.png": [(0, True)], "replay_mirrored_00001.png": [(2, False)],
             "replay_mix80_00000.png": [(3, False), (5, False)], "replay_mix80_00001.png": [(5, False)],
             "mirror_mix70_00000.png": [(2, False), (2, True)], "mirror_mix70_00001.png": [(3, False)]}
    scores = {"copy": 0.0, "crop": 0.0, "blend": 0.0, "replay": 0.0}
    images = [{"name": "honest_00000.png", "flagged": False, "kind": None, "score": 0.0, "matches": [],
               "scores": scores, "evidence": {}}]
    for name, ms in named.items():
        images.append({"name": name, "flagged": True, "kind": "replay", "score": 0.9, "evidence": {},
                       "matches": [{"train": train_rel[j], "box": None, "flip": f} for j, f in ms],
                       "scores": dict(scores, replay=0.9)})
    report = bench.evaluate({"images": images}, truth, train_rel)
    assert report["kinds"]["replay_mirrored"]["flip_correct"] == 0.5
    assert report["kinds"]["replay_mirrored"]["source_named"] == 1.0
    assert report["kinds"]["replay_mix80"]["mix_both_named"] == 0.5
    assert report["kinds"]["mirror_mix70"]["mirror_both_named"] == 0.5


# --------------------------------------------------------------------------------------------
# Training features, held-out split (pure)


def _features(m: int) -> TrainFeatures:
    rng = np.random.default_rng(0)
    return TrainFeatures([f"p{i:03d}.png" for i in range(m)], rng.normal(size=(m, 2048)).astype(np.float32),
                         rng.integers(0, 256, (m, 2, 64, 64, 3), dtype=np.uint8),
                         np.tile(np.array([[64, 64]]), (m, 1)), skipped=[("bad.png", "truncated")], embedded=m)


def test_a_subset_of_training_features_keeps_rows_in_order_and_reuses_thumbnails():
    full = _features(12)
    lazy = full.subset([5, 1, 7])
    assert "thumbs" not in lazy.__dict__   # not computed yet: computed on demand from its own pixels
    thumbs = full.thumbs
    sub = full.subset([5, 1, 7])
    assert sub.relpaths == ["p005.png", "p001.png", "p007.png"]
    assert np.array_equal(sub.inception, full.inception[[5, 1, 7]])
    assert np.array_equal(sub.pixels, full.pixels[[5, 1, 7]])
    assert "thumbs" in sub.__dict__ and np.array_equal(sub.thumbs, thumbs[[5, 1, 7]])
    assert np.array_equal(lazy.thumbs, sub.thumbs)
    assert sub.skipped == full.skipped and sub.embedded == 0 and sub.canvas_variant == full.canvas_variant
    assert len(full.subset([]).relpaths) == 0
    with pytest.raises(IndexError):
        full.subset([12])


def test_the_held_out_split_is_seeded_and_covers_every_photo_once():
    pool, held = holdout_split(60, 6, seed=0)
    assert len(held) == 6 and not set(held) & set(pool) and sorted([*pool, *held]) == list(range(60))
    assert list(held) == sorted(held) and list(pool) == sorted(pool)
    assert np.array_equal(holdout_split(60, 6, seed=0)[1], held)
    assert not np.array_equal(holdout_split(60, 6, seed=1)[1], held)
    assert SMALL.holdout_count(20_000) == 500 and SMALL.holdout_count(206) == 21 and SMALL.holdout_count(3) == 1


def test_memorizer_class_vectors_are_one_hot_or_two_class_mixes():
    one_hot = memorizer_class_weights(np.random.default_rng(0), 10, 50, 1.0)
    assert (one_hot.sum(1) == 1).all() and ((one_hot == 1).sum(1) == 1).all()
    mixed = memorizer_class_weights(np.random.default_rng(0), 10, 50, 0.99)
    assert np.allclose(mixed.sum(1), 1) and ((mixed > 0).sum(1) == 2).all()
    assert np.allclose(np.sort(mixed, 1)[:, -2:], [0.01, 0.99])
    assert len({int(r.argmax()) for r in mixed}) > 5   # the main class varies


def test_the_generators_work_at_the_supported_side_nearest_the_comparison_size():
    assert [gan_side(s) for s in [(64, 64), (128, 128), (48, 40), (32, 32), (16, 16)]] == [64, 64, 32, 32, 32]
    images = np.stack([_photo(32, 32, i) for i in range(3)])
    out = resize_all(images, (48, 40))
    assert out.shape == (3, 40, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(resize_all(images, (32, 32)), images)


def test_budgets_are_named_and_small_is_cpu_sized():
    assert set(BUDGETS) == {"small", "full"}
    assert BUDGETS["small"].memorizer_classes <= 300 and BUDGETS["full"].memorizer_classes is None
    assert SMALL.memorizer_steps(96) == min(SMALL.memorizer_max_steps, -(-SMALL.memorizer_epochs * 96 // 64))
    assert BUDGETS["full"].checkpoint_every <= 5000


# --------------------------------------------------------------------------------------------
# End to end on the bundled samples


def calibrate_args(samples: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["calibrate", "--train", str(samples / "train"), "--cache", str(cache), "--device", "cpu",
            "--out", str(out / "calibration.json"), *extra]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, samples, feature_cache):
    """One tiny calibration of samples/train (CLI, budget 'small' replaced by TINY), with its page."""
    out = tmp_path_factory.mktemp("calibration")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(BUDGETS, "small", TINY)
        code = main(calibrate_args(samples, feature_cache, out, "--report", str(out / "calibration.html")))
    return code, out


def test_memorizer_samples_are_flagged_and_honest_images_are_not(calibrated):
    code, out = calibrated
    assert code == 0
    data = json.loads((out / "calibration.json").read_text())
    sources = data["sources"]
    # a 0.9/0.1 class mix is a new image between two photos: the replay levels, strict so that
    # self-similar honest photos are never accused, catch about half of them (measured 9 of 16)
    for name, least in zip(MEMORIZER_SOURCES, (0.75, 0.75, 0.4)):
        assert sources[name]["images"] == TINY.samples
        assert sources[name]["flagged"]["any"] >= least, (name, sources[name])
    for name in ("held_out", "honest_gan"):
        assert sources[name]["flagged_images"] == 0 and sources[name]["flagged"]["any"] == 0.0
    assert sources["attack_copy"]["flagged"]["any"] >= 0.9 and sources["attack_blend99"]["flagged"]["any"] >= 0.9
    for kind, d in data["derivation"]["kinds"].items():
        honest_max = max(sources[n]["scores"][kind]["max"] for n in ("held_out", "honest_gan"))
        assert d["honest_max"] == honest_max
        assert data["thresholds"][kind] == d["threshold"] >= min(honest_max + MARGIN, data["derivation"]["ceiling"])
    ff = data["false_flags"]
    assert ff["honest_images"] == 21 + TINY.honest_samples and ff["flagged"] == 0
    assert ff["per_image_rate_upper_bound"] == pytest.approx(false_flag_upper_bound(0, ff["honest_images"]), abs=1e-6)
    assert ff["honest_images_for_target"] == 299_572 and ff["target_reached"] is False
    assert "299,572" in data["notes"][0] and any("--budget tiny" in n for n in data["notes"])
    assert data["roc"]["replay"]["positives"] == [*MEMORIZER_SOURCES, "attack_replay"]
    assert data["roc"]["replay"]["auc"] > 0.8
    # near-replays: rare among honest images, common among the memorizer's samples; the audit's
    # assumed honest share is the Clopper-Pearson bound of the honest count
    nr = data["near_replays"]
    assert nr["honest_images"] == ff["honest_images"] and nr["honest_near_replays"] <= 2
    assert nr["rate_upper_bound"] == data["near_replay_rate"] == pytest.approx(
        false_flag_upper_bound(nr["honest_near_replays"], nr["honest_images"]), abs=1e-6)
    for name in MEMORIZER_SOURCES:
        # every flagged sample is a near-replay, and more are than are flagged
        assert nr["by_source"][name] >= sources[name]["flagged"]["any"]
    assert nr["by_source"]["memorizer_onehot"] >= 0.75 and nr["by_source"]["attack_copy"] >= 0.9
    assert max(nr["by_source"][n] for n in ("held_out", "honest_gan")) <= 0.05


def test_calibration_file_follows_its_schema_and_records_its_inputs(calibrated, samples):
    _, out = calibrated
    text = (out / "calibration.json").read_text()
    data = json.loads(text)
    jsonschema.validate(data, schema("calibration"))
    assert "NaN" not in text and "Infinity" not in text
    # the audit's fingerprint of the FULL training folder (rules default: center-crop, 64x64)
    assert data["train_fingerprint"] == scan_training_set(samples / "train").fingerprint("center-crop", (64, 64))
    t = data["training"]
    assert t["train_images"] == 206 and t["held_out"] == {
        "source": "split", "images": 21, "available": 206, "dropped_identical_to_training": [], "fraction": 0.1,
        "max": 500}
    assert t["reference_images"] == 185 and t["budget"]["name"] == "tiny" and t["device"] == "cpu"
    assert t["memorizer"]["classes"] == 24 and t["memorizer"]["steps"] == TINY.memorizer_steps(24) == 2400 and t["memorizer"]["image_size"] == 64
    assert t["honest_gan"]["samples"] == TINY.honest_samples and set(t["attacks"].values()) == {TINY.samples}
    assert data["provenance"]["weights"]["source"] == "bundled" and data["provenance"]["rules"]["sha256"]
    calibration = load_calibration(out / "calibration.json")
    assert calibration.thresholds == data["thresholds"]
    assert calibration.train_fingerprint == data["train_fingerprint"]
    assert calibration.near_replay_rate == data["near_replay_rate"] is not None


def test_same_seed_gives_byte_identical_files_also_after_an_interrupted_run_resumes(
        calibrated, samples, feature_cache, tmp_path, monkeypatch):
    _, out = calibrated
    first = (out / "calibration.json").read_bytes()
    monkeypatch.setitem(BUDGETS, "small", TINY)
    from gandit.features import embed

    # warm: every Inception feature, both GANs (finished checkpoints) and every score are cached
    def no_forward(_self, _images):
        raise AssertionError("a warm calibration must not run Inception")

    def no_step(*_args):
        raise AssertionError("a warm calibration must not train")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embed.InceptionExtractor, "__call__", no_forward)
        mp.setattr(gans, "_batch_indices", no_step)
        code = main(calibrate_args(samples, feature_cache, tmp_path, "--report", str(tmp_path / "c.html")))
    assert code == 0
    assert (tmp_path / "calibration.json").read_bytes() == first
    assert (tmp_path / "c.html").read_bytes() == (out / "calibration.html").read_bytes()

    # cold GANs and scores (Inception features kept): interrupted during the memorizer, then resumed
    shutil.move(feature_cache / "calibrate", tmp_path / "calibrate-first")
    real_step, steps, interrupted = gans._batch_indices, [], []

    def interrupt_once(seed, step, batch_size, n):
        steps.append(step)
        if step == 450 and not interrupted:
            interrupted.append(step)
            raise KeyboardInterrupt
        return real_step(seed, step, batch_size, n)

    monkeypatch.setattr(gans, "_batch_indices", interrupt_once)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    code = main(calibrate_args(samples, feature_cache, resumed))
    assert code == 130                            # typer turns the interrupt into exit 130
    assert list(resumed.iterdir()) == []          # no partial output
    steps.clear()
    code = main(calibrate_args(samples, feature_cache, resumed))
    assert code == 0
    assert steps[0] == 400 and len(steps) == (TINY.memorizer_steps(24) - 400) + TINY.honest_steps   # resumed from the step-400 checkpoint
    assert (resumed / "calibration.json").read_bytes() == first


def test_audit_uses_the_calibration_thresholds_over_the_rule_file(calibrated, samples, feature_cache, tmp_path,
                                                                   capsys):
    _, out = calibrated
    path = out / "calibration.json"
    data = json.loads(path.read_text())
    rules = tmp_path / "loose.toml"
    rules.write_text("[thresholds]\ncopy = 0.2\ncrop = 0.2\nblend = 0.2\nreplay = 0.2\n")
    base = ["audit", str(samples / "submissions" / "honest.zip"), "--cache", str(feature_cache), "--device", "cpu",
            "--rules", str(rules), "--calibration", str(path)]
    code = main([*base, "--train", str(samples / "train"), "--json", str(tmp_path / "r.json")])
    result = json.loads((tmp_path / "r.json").read_text())
    assert code == 0, capsys.readouterr().err
    assert result["thresholds"] == data["thresholds"] != {k: 0.2 for k in data["thresholds"]}
    assert result["provenance"]["calibration"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result["provenance"]["train_fingerprint"] == data["train_fingerprint"]
    assert "calibration.fingerprint" not in {c["id"] for c in result["checks"]}
    # without --holdout the near-replay count is tested against the calibration's bound
    near = result["submission"]["near_replays"]
    assert near["test"] == "binomial" and near["rate_source"] == "calibration"
    assert near["rate"] == pytest.approx(data["near_replay_rate"], abs=1e-6)
    assert "the calibration's bound" in next(c for c in result["checks"] if c["id"] == "forensics.near_replays")["message"]
    # another training folder: the audit still uses the file, and warns that it was made for other data
    main([*base, "--train", str(samples / "train" / "emoji"), "--json", str(tmp_path / "other.json")])
    other = json.loads((tmp_path / "other.json").read_text())
    warn = next(c for c in other["checks"] if c["id"] == "calibration.fingerprint")
    assert warn["status"] == "warn" and other["thresholds"] == data["thresholds"]


def test_calibration_page_is_self_contained_with_roc_curves(calibrated):
    _, out = calibrated
    html = (out / "calibration.html").read_text()
    data = json.loads((out / "calibration.json").read_text())
    assert html.count("<svg") == 2 and "<polyline" in html and "<circle" in html
    assert "Content-Security-Policy" in html and "<script" not in html and "src=" not in html
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "").replace("http-equiv", "")
    assert data["train_fingerprint"] in html and f"{data['thresholds']['copy']:.3f}" in html
    for name in data["sources"]:
        assert name in html


def test_roc_chart_escapes_labels_and_marks_the_operating_point():
    from gandit.report.svg import RocCurve, roc_svg

    svg = str(roc_svg([RocCurve("<copy>", [1.0, 0.5, 0.0], [1.0, 0.9, 0.2], (0.0, 0.2)),
                       RocCurve("empty", [None, None], [None, None])], title="t & u", chart_id="c1"))
    assert svg.startswith("<svg") and "&lt;copy&gt;" in svg and "<copy>" not in svg and "t &amp; u" in svg
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1 and "empty (no data)" in svg


@pytest.mark.parametrize("case", ["budget", "seed", "out_dir_missing", "report_is_out", "missing_train",
                                  "holdout_only_copies"])
def test_bad_inputs_stop_the_run_with_one_line_and_no_output(case, samples, feature_cache, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    args = calibrate_args(samples, feature_cache, out)
    if case == "budget":
        args += ["--budget", "huge"]
    elif case == "seed":
        args += ["--seed", "-1"]
    elif case == "out_dir_missing":
        args[args.index("--out") + 1] = str(tmp_path / "no" / "such" / "c.json")
    elif case == "report_is_out":
        args += ["--report", str(out / "calibration.json")]
    elif case == "missing_train":
        args[args.index("--train") + 1] = str(tmp_path / "nope")
    elif case == "holdout_only_copies":
        held = tmp_path / "held"
        held.mkdir()
        for p in sorted((samples / "train" / "emoji").glob("*.png"))[:3]:
            shutil.copy(p, held / p.name)
        args += ["--holdout", str(held)]
    with pytest.MonkeyPatch.context() as mp:   # nothing may train, whatever the case
        mp.setattr(gans, "_batch_indices", lambda *_a: (_ for _ in ()).throw(AssertionError("trained")))
        code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("gandit: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert list(out.iterdir()) == []
    expected = {"budget": "--budget", "seed": "--seed", "out_dir_missing": "--out", "report_is_out": "--report",
                "missing_train": "--train", "holdout_only_copies": "only copies"}[case]
    assert expected in lines[0]
