"""``gandit calibrate``: reference cheats and honest images through the audit's forensics, and
the detector thresholds that follow from their scores.

In order:

1. the inputs, all checked before any work (rules, training folder, held-out folder, weights,
   device, budget, cache), as ``gandit.audit.load_inputs`` does;
2. the training set embedded through the audit's feature cache;
3. **held-out real photos**: ``--holdout DIR`` (files byte-identical to a training file are
   dropped), or a split of the training set chosen by seed (``Budget.holdout_count``), which
   is then removed from the **reference pool**: the photos the forensics search, the GANs
   train on and the attacks use (a held-out photo left in the pool is a copy of itself);
4. reference generators trained on the pool at the rule's resolution (``gans.py``; the
   largest supported side not above the comparison size, samples resized to it with LANCZOS
   otherwise), with checkpoints in the cache folder keyed by content (pool images, settings,
   seed, device), so an interrupted run resumes: the **memorizer** (one class per photo,
   sampled one-hot and with 0.99/0.01 and 0.9/0.1 class mixes) and the **honest GAN**;
5. **direct attacks** from the pool's photos (``attacks.py``): copies, 0.99/0.01 and 0.7/0.3
   blends, crops, degraded replays;
6. Inception features (cached) and the audit's forensics (``images_to_findings``; scores
   cached per image and pool, so this stage resumes too) of every reference image;
7. thresholds, ROC points and the false-flag bound (``thresholds.py``).

Returns plain data (``CalibrationReport``); writes nothing but the caches. Deterministic: the
same inputs, budget, seed, device and thread count give the same report.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gandit import __version__
from gandit.audit import images_to_findings, open_cache, photo_loader, resolve_device, train_to_box_index
from gandit.calibrate import attacks, gans, thresholds as th
from gandit.calibrate.budget import BUDGETS, Budget
from gandit.calibrate.report import MEMORIZER_MIXES, CalibrationReport, SourceScores, sources_to_report
from gandit.calibration import DEFAULT_THRESHOLDS
from gandit.dataset import TrainingSet, load_photo, scan_training_set
from gandit.errors import TrainingSetError, UsageError
from gandit.features.cache import FeatureCache, default_cache_dir, make_key
from gandit.features.embed import (InceptionExtractor, TrainFeatures, embed_images, embed_training_set,
                                   pixels_digest)
from gandit.features.inception import resolve_weights
from gandit.forensics import KINDS
from gandit.forensics.align import BoxIndex
from gandit.forensics.whole import WholeIndex, pixels_to_whole_index
from gandit.progress import SILENT, ProgressReporter
from gandit.rules import Rules, load_rules

#: Fewest decodable photos a reference pool needs (blends and class mixes need two; the
#: split needs some to hold out).
MIN_POOL = 4
#: Images per forensics call (their scores are cached after each).
FORENSICS_CHUNK = 128
SCORES_TAG = "gandit.calibrate.scores/1"
#: Settings of the reference GANs besides the budget's (``gans.train_memorizer`` / ``train_honest``).
MEMORIZER_SETTINGS = dict(recon_weight=10.0, emb_dim=128, z_dim=16, lr_g=1e-3, lr_d=2e-4, betas=(0.5, 0.999))
HONEST_SETTINGS = dict(z_dim=128, lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.9), ema_decay=0.999, flip=True)
#: Truncation of the honest GAN's noise at sampling time.
TRUNCATION = 1.0


@dataclass(frozen=True)
class CalibrateOptions:
    train: Path
    rules: str = "default"
    holdout: Path | None = None
    weights: Path | None = None
    device: str = "auto"
    budget: str | Budget = "small"     #: a name of BUDGETS, or a Budget (tests)
    seed: int = 0
    cache: Path | None = None          #: None → the user cache dir
    no_cache: bool = False


@dataclass
class CalibrationInputs:
    """Everything calibration needs, loaded and validated up front."""

    rules: Rules
    training: TrainingSet
    holdout: TrainingSet | None
    extractor: InceptionExtractor
    cache: FeatureCache                #: Inception features, shared with the audit
    scores: FeatureCache               #: forensic scores of reference images
    checkpoints: Path | None           #: folder of GAN checkpoints; None = not kept
    budget: Budget
    device: str


# --------------------------------------------------------------------------------------------
# Inputs


def resolve_budget(budget: str | Budget) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if budget not in BUDGETS:
        raise UsageError(f"--budget {budget!r}: expected one of {', '.join(BUDGETS)}")
    return BUDGETS[budget]


def load_calibration_inputs(options: CalibrateOptions) -> CalibrationInputs:
    budget = resolve_budget(options.budget)
    if options.seed < 0:
        raise UsageError(f"--seed {options.seed}: must be a non-negative integer")
    rules = load_rules(options.rules)
    training = scan_training_set(options.train)
    holdout = scan_training_set(options.holdout, what="held-out") if options.holdout else None
    needed = MIN_POOL if holdout else MIN_POOL + 1
    if len(training.files) < needed:
        raise TrainingSetError(f"training folder '{training.root}' holds {len(training.files)} images; calibration "
                               f"needs at least {needed} — pass the competition's training folder")
    weights = resolve_weights(options.weights)
    device = resolve_device(options.device)
    cache = open_cache(options.cache, options.no_cache)
    root = None if options.no_cache else Path(options.cache or default_cache_dir()) / "calibrate"
    return CalibrationInputs(rules, training, holdout, InceptionExtractor(weights, device), cache,
                             FeatureCache(root), None if root is None else root / "gans", budget, device)


# --------------------------------------------------------------------------------------------
# Helpers


def _seed(seed: int, tag: str) -> int:
    """A 63-bit seed for one use (``tag``) of the run's ``seed``."""
    return int.from_bytes(hashlib.sha256(f"gandit.calibrate:{seed}:{tag}".encode()).digest()[:8], "little") >> 1


def _rng(seed: int, tag: str) -> np.random.Generator:
    return np.random.default_rng(_seed(seed, tag))


def gan_side(size: tuple[int, int]) -> int:
    """The generators' square side for a comparison ``size``: the largest supported side not
    above the larger side of ``size`` (the smallest supported one when all are above)."""
    fitting = [s for s in gans.SIZES if s <= max(size)]
    return max(fitting) if fitting else min(gans.SIZES)


def resize_all(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, H, W, 3) → (N, size[1], size[0], 3) with LANCZOS (as is when already that size)."""
    if images.shape[1:3] == (size[1], size[0]):
        return np.ascontiguousarray(images)
    return np.stack([np.asarray(Image.fromarray(im).resize(tuple(size), Image.Resampling.LANCZOS)) for im in images]) \
        if len(images) else np.zeros((0, size[1], size[0], 3), np.uint8)


def _code_digest() -> str:
    """SHA-256 of the source of the modules that compute forensic scores: cached scores are
    recomputed whenever the detectors change."""
    import gandit.audit
    import gandit.features.pixels
    import gandit.forensics
    import gandit.search

    files = sorted(Path(gandit.forensics.__file__).parent.glob("*.py"))
    files += [Path(m.__file__) for m in (gandit.audit, gandit.features.pixels, gandit.search)]
    h = hashlib.sha256(__version__.encode())
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@contextmanager
def _step_progress(progress: ProgressReporter, description: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A ``gans`` progress callback ``(step, total)`` that drives a progress bar (its first call
    reports the step a checkpoint resumed from)."""
    with progress.task(description, total) as advance:
        last: list[int] = []

        def report(step: int, _total: int) -> None:
            advance(step - (last[-1] if last else 0))
            last[:] = [step]
        yield report


def _checkpoint(folder: Path | None, kind: str, images: np.ndarray, settings: dict, seed: int,
                device: str) -> Path | None:
    """The checkpoint file of a GAN, named by everything that determines its training; a
    checkpoint that cannot be read is deleted (training restarts)."""
    if folder is None:
        return None
    key = make_key("gandit.calibrate.gan", gans.CHECKPOINT_FORMAT, kind, pixels_digest(images),
                   json.dumps(settings, sort_keys=True), str(seed), device)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{key[:32]}.pt"
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            ok = isinstance(state, dict) and state.get("format") == gans.CHECKPOINT_FORMAT
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
    return path


def forensic_scores(images: list[np.ndarray], feats: np.ndarray, pool: TrainFeatures, index: BoxIndex,
                    whole: WholeIndex, cache: FeatureCache, pool_key: str, progress: ProgressReporter,
                    description: str,
                    photos: Callable[[int], np.ndarray | None] | None = None) -> dict[str, np.ndarray]:
    """Every kind's score (threshold-independent) of each image against the pool, and its
    coarse replay agreement (``replay_coarse``: the near-replay evidence), cached per image
    (``pool_key`` names the pool and the detectors' code)."""
    n = len(images)
    columns = (*KINDS, "replay_coarse")
    out = np.zeros((n, len(columns)), np.float64)
    keys = [make_key(SCORES_TAG, pool_key, pixels_digest(im)) for im in images]
    todo = []
    for i, key in enumerate(keys):
        cached = cache.get(key)
        if cached is not None and cached.shape == (len(columns),):
            out[i] = cached
        else:
            todo.append(i)
    with progress.task(description, len(todo)) as advance:
        for start in range(0, len(todo), FORENSICS_CHUNK):
            chunk = todo[start:start + FORENSICS_CHUNK]
            findings, _ = images_to_findings([images[i] for i in chunk], feats[chunk], pool, dict(DEFAULT_THRESHOLDS),
                                             SILENT, index, whole, photos)
            for i, finding in zip(chunk, findings):
                out[i] = [finding.scores[k] for k in KINDS] + [finding.evidence.get("replay_coarse", 0.0)]
                cache.put(keys[i], out[i])
            advance(len(chunk))
    return {k: out[:, j] for j, k in enumerate(columns)}


# --------------------------------------------------------------------------------------------
# Stages


@dataclass
class Split:
    pool: TrainFeatures                #: reference pool: searched, trained on, attacked
    held: TrainFeatures                #: held-out real photos
    source: str                        #: "split" or "folder"
    dropped: list[str]                 #: held-out files dropped as byte-identical to training files
    candidates: int                    #: held-out images available before the cap


def holdout_split(m: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference pool, held-out) indices of ``m`` photos, both sorted: ``count`` held out,
    chosen by ``seed``; together they are every photo once."""
    held = np.sort(_rng(seed, "holdout-split").choice(m, count, replace=False))
    return np.setdiff1d(np.arange(m), held), held


def split_reference(inputs: CalibrationInputs, train: TrainFeatures, seed: int,
                    progress: ProgressReporter) -> Split:
    budget = inputs.budget
    rules = inputs.rules
    if inputs.holdout is not None:
        train_hashes = {f.sha256 for f in inputs.training.files}
        kept = [f for f in inputs.holdout.files if f.sha256 not in train_hashes]
        dropped = sorted(f.relpath for f in inputs.holdout.files if f.sha256 in train_hashes)
        if not kept:
            raise TrainingSetError(f"held-out folder '{inputs.holdout.root}' holds only copies of training images — "
                                   f"pass real images that are not in the training folder")
        if len(kept) > budget.holdout_max:
            chosen = np.sort(_rng(seed, "holdout-folder").choice(len(kept), budget.holdout_max, replace=False))
            kept = [kept[i] for i in chosen]
        held = embed_training_set(TrainingSet(inputs.holdout.root, tuple(kept)), rules.metric.preprocessing,
                                  rules.compare_size, inputs.extractor, inputs.cache, progress)
        if len(held.relpaths) == 0:
            raise TrainingSetError(f"held-out folder '{inputs.holdout.root}': no image could be decoded — "
                                   f"pass a folder of readable images")
        return Split(train, held, "folder", dropped, len(inputs.holdout.files) - len(dropped))
    m = len(train.relpaths)
    n_hold = inputs.budget.holdout_count(m)
    if m - n_hold < MIN_POOL:
        raise TrainingSetError(f"training folder '{inputs.training.root}' has {m} decodable images: too few to hold "
                               f"{n_hold} out and keep {MIN_POOL} — pass --holdout DIR or more training images")
    pool_idx, held_idx = holdout_split(m, n_hold, seed)
    return Split(train.subset(pool_idx), train.subset(held_idx), "split", [], m)


@dataclass
class TrainedGAN:
    generator: torch.nn.Module
    info: dict                         #: settings, seeds and final losses, as calibration.json records them
    classes: np.ndarray | None = None  #: memorizer: the pool photo of each class


def _tail(values: list[float]) -> float | None:
    """Mean of the last 50 logged values of a loss (the end of training)."""
    return float(np.mean(values[-50:])) if values else None


def train_generators(inputs: CalibrationInputs, pool: TrainFeatures, side: int, seed: int,
                     progress: ProgressReporter) -> tuple[TrainedGAN, TrainedGAN]:
    """Train (or resume from their checkpoints) the memorizer and the honest GAN on the pool's
    photos at ``side`` x ``side``."""
    budget, device = inputs.budget, inputs.device
    images = resize_all(pool.pixels[:, 0], (side, side))
    m = len(images)
    classes = min(budget.memorizer_classes or m, m)
    chosen = np.sort(_rng(seed, "memorizer-classes").choice(m, classes, replace=False))
    mem_images = np.ascontiguousarray(images[chosen])
    steps = budget.memorizer_steps(classes)
    mem_seed = _seed(seed, "memorizer")
    settings = dict(MEMORIZER_SETTINGS, width=budget.gan_width)
    path = _checkpoint(inputs.checkpoints, "memorizer", mem_images,
                       dict(settings, batch_size=budget.memorizer_batch, steps=steps), mem_seed, device)
    with _step_progress(progress, f"training memorizer GAN ({classes} classes)", steps) as report:
        G, history = gans.train_memorizer(mem_images, steps, budget.memorizer_batch, device, mem_seed, report, path,
                                          checkpoint_every=budget.checkpoint_every, **settings)
    memorizer = TrainedGAN(G, {"classes": int(classes), "steps": int(steps), "batch_size": budget.memorizer_batch,
                               "image_size": side, "seed": mem_seed, "settings": settings,
                               "final_recon_l1": _tail(history["recon_l1"]),
                               "final_d_loss": _tail(history["d_loss"])}, chosen)

    honest_n = min(budget.honest_images or m, m)
    honest_idx = np.sort(_rng(seed, "honest-images").choice(m, honest_n, replace=False))
    honest_images = np.ascontiguousarray(images[honest_idx])
    hon_seed = _seed(seed, "honest")
    settings = dict(HONEST_SETTINGS, width=budget.gan_width)
    path = _checkpoint(inputs.checkpoints, "honest", honest_images,
                       dict(settings, batch_size=budget.honest_batch, steps=budget.honest_steps), hon_seed, device)
    with _step_progress(progress, "training honest GAN", budget.honest_steps) as report:
        G, history = gans.train_honest(honest_images, budget.honest_steps, budget.honest_batch, device, hon_seed,
                                       report, path, checkpoint_every=budget.checkpoint_every, **settings)
    honest = TrainedGAN(G, {"images": int(honest_n), "steps": budget.honest_steps, "batch_size": budget.honest_batch,
                            "image_size": side, "seed": hon_seed, "truncation": TRUNCATION, "settings": settings,
                            "final_d_loss": _tail(history["d_loss"]), "final_g_loss": _tail(history["g_loss"])})
    return memorizer, honest


def memorizer_class_weights(rng: np.random.Generator, classes: int, count: int, weight: float) -> np.ndarray:
    """float32 (count, classes): one-hot vectors (``weight`` 1) or mixes of two distinct
    classes, ``weight`` on the first."""
    w = np.zeros((count, classes), np.float32)
    for i in range(count):
        a = int(rng.integers(classes))
        if weight >= 1.0 or classes < 2:
            w[i, a] = 1.0
        else:
            b = int((a + 1 + rng.integers(classes - 1)) % classes)
            w[i, a], w[i, b] = weight, 1.0 - weight
    return w


def make_sources(inputs: CalibrationInputs, split: Split, memorizer: TrainedGAN, honest: TrainedGAN, seed: int,
                 progress: ProgressReporter) -> list[SourceScores]:
    budget = inputs.budget
    size = inputs.rules.compare_size
    pool = split.pool
    sources = [SourceScores("held_out", "honest", list(split.held.pixels[:, 0]))]
    honest_px = gans.sample_honest(honest.generator, budget.honest_samples, _seed(seed, "honest-z"),
                                   truncation=TRUNCATION)
    sources.append(SourceScores("honest_gan", "honest", list(resize_all(honest_px, size))))
    classes = len(memorizer.classes)
    for name, weight in MEMORIZER_MIXES.items():
        w = memorizer_class_weights(_rng(seed, f"{name}-classes"), classes, budget.samples, weight)
        px = gans.sample_memorizer(memorizer.generator, w, _seed(seed, f"{name}-z"))
        sources.append(SourceScores(name, "cheat", list(resize_all(px, size))))
    plans = {a: attacks.plan_attacks(_rng(seed, f"attack-{a}"), pool.photo_sizes, a, budget.samples)
             for a in budget.attacks}
    # copies, crops and replays start from the original photo; blends mix the prepared pixels
    needed = sorted({p.photos[0] for ps in plans.values() for p in ps if p.attack not in attacks.BLEND_WEIGHTS})
    photos: dict[int, np.ndarray] = {}
    with progress.task("making attacks", len(needed)) as advance:
        for j in needed:
            path = inputs.training.root / pool.relpaths[j]
            try:
                photos[j] = load_photo(path)
            except ValueError as err:
                raise TrainingSetError(f"training image '{path}' cannot be read any more ({err}) — "
                                       f"restore it or remove it, then run again") from None
            advance(1)
    prepared = pool.pixels[:, 0]
    for a, ps in plans.items():
        sources.append(SourceScores(f"attack_{a}", "cheat", [attacks.render_attack(p, photos, prepared, size)
                                                            for p in ps]))
    return sources


def score_sources(inputs: CalibrationInputs, split: Split, sources: list[SourceScores],
                  progress: ProgressReporter) -> None:
    pool = split.pool
    files = {f.relpath: f.sha256 for f in inputs.training.files}
    pool_key = make_key("pool", inputs.extractor.tag, inputs.rules.metric.preprocessing,
                        "x".join(map(str, inputs.rules.compare_size)), _code_digest(),
                        *[f"{r}\0{files[r]}" for r in pool.relpaths])
    generated = [im for s in sources[1:] for im in s.images]
    feats = {"held_out": split.held.inception}
    if generated:
        all_feats = embed_images(generated, inputs.extractor, inputs.cache, progress, "embedding reference images")
        start = 0
        for s in sources[1:]:
            feats[s.name] = all_feats[start:start + len(s.images)]
            start += len(s.images)
    index, whole = train_to_box_index(pool, inputs.cache, progress), pixels_to_whole_index(pool.pixels)
    images = [im for s in sources for im in s.images]
    stacked = np.concatenate([feats[s.name] for s in sources]) if images else np.zeros((0, 2048), np.float32)
    scores = forensic_scores(images, stacked, pool, index, whole, inputs.scores, pool_key, progress, "forensics",
                             photo_loader(inputs.training.root, pool.relpaths))
    start = 0
    for s in sources:
        s.scores = {k: scores[k][start:start + len(s.images)] for k in KINDS}
        s.coarse = scores["replay_coarse"][start:start + len(s.images)]
        start += len(s.images)


def training_record(inputs: CalibrationInputs, split: Split, memorizer: TrainedGAN, honest: TrainedGAN, seed: int,
                    sources: list[SourceScores]) -> dict:
    """What was trained with which settings and seeds, and how many images of each source."""
    rules, budget = inputs.rules, inputs.budget
    counts = {s.name: len(s.images) for s in sources}
    return {
        "device": inputs.device, "seed": seed, "budget": budget.to_dict(),
        "compare_size": list(rules.compare_size), "preprocessing": rules.metric.preprocessing,
        "train_images": len(inputs.training.files), "reference_images": len(split.pool.relpaths),
        "held_out": {"source": split.source, "images": len(split.held.relpaths), "available": split.candidates,
                     "dropped_identical_to_training": split.dropped,
                     "fraction": budget.holdout_fraction if split.source == "split" else None,
                     "max": budget.holdout_max},
        "memorizer": {**memorizer.info, "samples": {n: counts[n] for n in MEMORIZER_MIXES}},
        "honest_gan": {**honest.info, "samples": counts["honest_gan"]},
        "attacks": {a: counts[f"attack_{a}"] for a in budget.attacks},
        "torch_threads": torch.get_num_threads(),
    }


def run_calibration(options: CalibrateOptions, progress: ProgressReporter = SILENT,
                    inputs: CalibrationInputs | None = None,
                    on_stage: Callable[[str], None] | None = None) -> CalibrationReport:
    """The calibration (module docstring). ``on_stage(name)`` is told when each stage starts."""
    inputs = inputs or load_calibration_inputs(options)
    stage = on_stage or (lambda _name: None)
    rules = inputs.rules
    size = rules.compare_size
    seed = options.seed
    fingerprint = inputs.training.fingerprint(rules.metric.preprocessing, size)

    stage("embed")
    train = embed_training_set(inputs.training, rules.metric.preprocessing, size, inputs.extractor, inputs.cache,
                               progress)
    if len(train.relpaths) < MIN_POOL + (0 if inputs.holdout else 1):
        raise TrainingSetError(f"training folder '{inputs.training.root}': only {len(train.relpaths)} images could "
                               f"be decoded; calibration needs at least {MIN_POOL + 1} — fix or add images")
    stage("split")
    split = split_reference(inputs, train, seed, progress)
    stage("train")
    memorizer, honest = train_generators(inputs, split.pool, gan_side(size), seed, progress)
    stage("sample")
    sources = make_sources(inputs, split, memorizer, honest, seed, progress)
    stage("forensics")
    score_sources(inputs, split, sources, progress)
    honest_scores = {k: np.concatenate([s.scores[k] for s in sources if s.role == "honest"]) for k in KINDS}
    choices = th.honest_scores_to_thresholds(honest_scores)
    provenance = {
        "gandit": __version__,
        "rules": {"name": rules.name, "source": rules.source, "sha256": rules.sha256},
        "weights": {"source": inputs.extractor.weights.source, "sha256": inputs.extractor.weights.sha256},
        "train_fingerprint": fingerprint,
        "train_skipped": [{"train": r, "reason": why} for r, why in train.skipped],
        "paths": {"train": os.fspath(options.train),
                  "holdout": None if options.holdout is None else os.fspath(options.holdout)},
    }
    return sources_to_report(sources, choices, fingerprint,
                             training_record(inputs, split, memorizer, honest, seed, sources), provenance)
