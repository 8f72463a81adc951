"""The audit pipeline, in order: rules → training set → weights → intake → format checks →
features (cached) → metrics → forensics → verdict. Returns plain data; writes nothing.

Everything that can stop the run (rules, training folder, weights, calibration, waivers, an
archive that cannot be opened) is read before any work starts, so a bad input costs no
embedding and leaves no partial output.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gandit import __version__
from gandit.calibration import Calibration, effective_thresholds, load_calibration
from gandit.checks import Check, names_phrase
from gandit.dataset import TrainingSet, load_photo, mode_box, photo_to_region, scan_training_set
from gandit.errors import UsageError
from gandit.features.cache import FeatureCache, default_cache_dir, make_key
from gandit.features.embed import (InceptionExtractor, TrainFeatures, embed_images, embed_training_set,
                                  pixels_digest)
from gandit.features.inception import resolve_weights
from gandit.datacopy import ct_statistic
from gandit.features.pixels import image_to_thumbnail
from gandit.forensics.align import BoxIndex, box_grid, canvases_to_box_vectors, vectors_to_box_index
from gandit.forensics import KINDS
from gandit.forensics.analyze import Finding, Source, TrainPixels, analyze_images
from gandit.forensics.whole import WholeIndex, pixels_to_whole_index
from gandit.forensics.copy import K_INCEPTION, detect_copies
from gandit.images import ImageSet
from gandit.intake import read_submission
from gandit.metrics import (features_to_fid, features_to_memorization_distance, fid_to_mifid,
                            similarities_to_reference)
from gandit.nearreplay import counts_to_near_replay_test, is_near_replay
from gandit.progress import SILENT, ProgressReporter
from gandit.report.result import AuditResult, ImageResult, Match, Metrics, SubmissionSummary
from gandit.rules import Rules, format_checks, load_rules
from gandit.search import knn_cosine, leave_one_out_cosine, normalize_rows
from gandit.waivers import load_waivers

DETECTORS_RUN = KINDS
#: Matches of images scoring at least this share of their kind's threshold get the Inception
#: similarity of the matched region (one forward each); others report the whole photo's.
EMBED_REGIONS_FROM = 0.5
#: Index of the rule's own preprocessing among the training variants (its Inception features are cached).
PRIMARY = 0
#: Training photos kept decoded by ``photo_loader`` (point samples, matched regions).
PHOTOS_KEPT = 64


@dataclass(frozen=True)
class AuditOptions:
    submission: Path
    train: Path
    rules: str = "default"
    calibration: Path | None = None
    waivers: Path | None = None
    weights: Path | None = None
    holdout: Path | None = None
    device: str = "auto"
    cache: Path | None = None          #: None → the user cache dir
    no_cache: bool = False
    fail_on_warn: bool = False


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available — use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device {device!r}: expected auto, cpu or cuda")
    return device


def open_cache(cache: Path | None, no_cache: bool = False) -> FeatureCache:
    if no_cache:
        return FeatureCache(None)
    root = cache or default_cache_dir()
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create cache folder '{root}': {err.strerror or err} — pass --cache DIR or --no-cache") from None
    return FeatureCache(root)


@dataclass
class Inputs:
    """Everything the audit needs, loaded and validated up front."""

    rules: Rules
    thresholds: dict[str, float]
    calibration: Calibration | None
    waivers: dict[str, str]
    training: TrainingSet
    holdout: TrainingSet | None
    extractor: InceptionExtractor
    submission: ImageSet
    cache: FeatureCache


def load_inputs(options: AuditOptions) -> Inputs:
    rules = load_rules(options.rules)
    calibration = load_calibration(options.calibration) if options.calibration else None
    waivers = load_waivers(options.waivers) if options.waivers else {}
    training = scan_training_set(options.train)
    holdout = scan_training_set(options.holdout, what="held-out") if options.holdout else None
    weights = resolve_weights(options.weights)
    device = resolve_device(options.device)
    submission = read_submission(options.submission, rules.limits)
    return Inputs(rules, effective_thresholds(rules.thresholds, calibration), calibration, waivers, training, holdout,
                  InceptionExtractor(weights, device), submission, open_cache(options.cache, options.no_cache))


def source_box(source: Source, train: TrainFeatures) -> list[int] | None:
    """The matched region in the training photo's own pixels (after EXIF orientation):
    ``None`` for the whole photo."""
    width, height = (int(v) for v in train.photo_sizes[source.photo])
    mode = train.variants[source.variant]
    if source.box is None:
        region = mode_box(mode, width, height)
        return None if region == (0, 0, width, height) else list(region)
    ch, cw = train.pixels.shape[2:4]
    x, y, w, h = source.box
    sx, sy = width / cw, height / ch
    x0, y0 = int(round(x * sx)), int(round(y * sy))
    x1, y1 = int(round((x + w) * sx)), int(round((y + h) * sy))
    x0, y0 = max(0, min(x0, width - 1)), max(0, min(y0, height - 1))
    return [x0, y0, max(1, min(x1, width) - x0), max(1, min(y1, height) - y0)]


def photo_loader(root: Path, relpaths: list[str], keep: int = PHOTOS_KEPT) -> Callable[[int], np.ndarray | None]:
    """Training index → its uint8 photo (after EXIF orientation), or None when it can no longer
    be read; the ``keep`` most recently used photos stay in memory."""
    @functools.lru_cache(maxsize=keep)
    def load(j: int) -> np.ndarray | None:
        try:
            return load_photo(root / relpaths[j])
        except ValueError:   # the photo became unreadable since it was embedded
            return None
    return load


def images_to_findings(pixels: list[np.ndarray], feats: np.ndarray, train: TrainFeatures,
                       thresholds: dict[str, float], progress: ProgressReporter = SILENT,
                       index: BoxIndex | None = None, whole: WholeIndex | None = None,
                       photos: Callable[[int], np.ndarray | None] | None = None) -> tuple[list[Finding], np.ndarray]:
    """The forensics of ``pixels`` (uint8 images at the compare size, with their Inception
    features ``feats``) against the training side: one finding per image and its nearest
    training image's Inception cosine similarity. ``index``: a box index built before from
    ``train`` (``train_to_box_index``), and ``whole`` its whole-image index
    (``whole.pixels_to_whole_index(train.pixels)``), to reuse them over several calls.
    ``photos`` (``photo_loader``): the training photos themselves, for copies verified on point
    samples (``copy.point_sampled_copies``); without it, area thumbnails only."""
    sims, neighbours = knn_cosine(feats, train.inception, K_INCEPTION) if len(feats) else (np.zeros((0, 1)), None)
    thumbs = np.stack([image_to_thumbnail(p) for p in pixels]) if pixels else np.zeros((0, 32, 32, 3), np.uint8)
    copies = detect_copies(feats, thumbs, train.inception, train.thumbs, neighbours, pixels, photos, train.variants)
    index = index if index is not None else train_to_box_index(train)
    findings = analyze_images(pixels, copies, neighbours, TrainPixels(train.pixels, train.canvas_variant,
                                                          train.photo_sizes[:, 0] / train.photo_sizes[:, 1]), index,
                              thresholds, progress, whole, photos)
    return findings, sims[:, 0]


#: Cache entries of the box index (``train_to_box_index``).
BOX_INDEX_TAG = "box-index/1"


@functools.lru_cache(maxsize=1)
def _box_vectors_code() -> str:
    """What the box index's arrays depend on besides the canvases: the source of the module that
    computes them (``gandit.forensics.align``, which imports nothing else of gandit) and the
    versions of torch and torchvision (``roi_align`` renders the boxes). Part of the cache key,
    so that changed code is never served an index that other code built."""
    import torchvision

    from gandit.forensics import align

    h = hashlib.sha256(f"{__version__}\0{torch.__version__}\0{torchvision.__version__}\0".encode())
    h.update(Path(align.__file__).read_bytes())
    return h.hexdigest()


def train_to_box_index(train: TrainFeatures, cache: FeatureCache | None = None,
                       progress: ProgressReporter = SILENT) -> BoxIndex:
    """The searchable crop boxes of every training photo (from the cached thumbnails). With
    ``cache``, its arrays (PCA and the reduced descriptor of every box: ~550 MB for 20,000
    photos, 70 s to compute on 2 cores) are kept under a key of the canvases' bytes and the
    code that computes them; the FAISS index is rebuilt from them (deterministic; 15 s of the 78 s
    at 20,000 photos, BENCHMARKS.md run 36)."""
    canvases = train.thumbs[:, train.canvas_variant]
    grid = box_grid()
    base = make_key(BOX_INDEX_TAG, pixels_digest(canvases), _box_vectors_code())
    keys = [make_key(base, part) for part in ("mean", "components", "vectors")]
    arrays = [cache.get(k) for k in keys] if cache is not None else [None]
    if any(a is None for a in arrays):
        with progress.task("indexing training boxes", 2 * len(canvases)) as advance:
            arrays = canvases_to_box_vectors(canvases, grid, advance=advance)
        if cache is not None:
            try:
                for key, array in zip(keys, arrays):
                    cache.put(key, array)
            except OSError:   # a full or read-only disk: the index is built, only the next audit pays again
                pass
    return vectors_to_box_index(grid, (canvases.shape[2], canvases.shape[1]), *arrays)


def findings_to_matches(findings: list[Finding], feats: np.ndarray, inputs: Inputs, train: TrainFeatures,
                        size: tuple[int, int], progress: ProgressReporter,
                        photos: Callable[[int], np.ndarray | None]) -> list[list[Match]]:
    """Evidence per image: training path, Inception similarity of the matched region, weight,
    box (training photo pixels) and mirroring. ``photos``: the training photos (``photo_loader``)."""
    sub_unit, train_unit = normalize_rows(feats), normalize_rows(train.inception)
    regions: dict[tuple, np.ndarray | None] = {}
    wanted: list[tuple] = []
    for f in findings:
        if f.kind is None or f.score < EMBED_REGIONS_FROM * inputs.thresholds.get(f.kind, 0.5):
            continue
        for s in f.sources:
            if not (s.box is None and s.variant == PRIMARY):
                key = (s.photo, tuple(source_box(s, train) or ()), s.flip, s.variant)
                if key not in regions:
                    regions[key] = None
                    wanted.append(key)
    pixels, keys = [], []
    for key in wanted:
        photo, box, flip, variant = key
        image = photos(photo)
        if image is not None:   # None: the photo became unreadable since it was embedded
            pixels.append(photo_to_region(image, list(box) or None, flip, size, train.variants[variant]))
            keys.append(key)
    if pixels:
        region_feats = normalize_rows(embed_images(pixels, inputs.extractor, inputs.cache, progress,
                                                   "embedding matched regions"))
        regions.update(zip(keys, region_feats))
    hashes = {f.relpath: f.sha256 for f in inputs.training.files}
    out = []
    for f, unit in zip(findings, sub_unit):
        matches = []
        for s in f.sources:
            box = source_box(s, train)
            key = (s.photo, tuple(box or ()), s.flip, s.variant)
            ref = regions.get(key)
            if s.box is None and s.variant == PRIMARY:
                ref = train_unit[s.photo]
            similarity = float(unit @ ref) if ref is not None else float(unit @ train_unit[s.photo])
            matches.append(Match(train.relpaths[s.photo], similarity, s.weight, box, s.flip,
                                 hashes.get(train.relpaths[s.photo])))
        matches.sort(key=lambda m: (-(m.weight or 0.0), -(m.similarity or 0.0), m.train))
        out.append(matches)
    return out


def data_copying(train: TrainFeatures, holdout: np.ndarray | None, generated: np.ndarray,
                 cells: int) -> dict:
    """Meehan et al.'s C_T test; ``statistic`` and ``p_value`` null with the reason when it
    cannot be computed (no --holdout, or too few images for the cells)."""
    out = {"test": "C_T", "statistic": None, "p_value": None, "cells": None, "holdout_images": None,
           "note": "no --holdout: pass held-out real images to run the data-copying test"}
    if holdout is None:
        return out
    out["holdout_images"] = int(len(holdout))
    # each cell needs > 20 generated images (the authors' tau) and some held-out and training ones
    n_cells = max(1, min(cells, len(generated) // 40, len(holdout) // 10, len(train.inception) // 10))
    try:
        res = ct_statistic(train.inception, holdout, generated, n_cells=n_cells, seed=0)
    except ValueError as err:
        out["note"] = f"C_T not computed: {err}"
        return out
    out.update(statistic=float(res.statistic), p_value=float(res.p_value), cells=int(res.cells_used),
               note="C_T << 0: submitted images are closer to training images than held-out real images are")
    return out


def near_replay_test(images: list[ImageResult], holdout: list[Finding] | None, thresholds: dict[str, float],
                     rate: float, rate_source: str = "rules") -> dict:
    """The submission-level near-replay test (``gandit.nearreplay``): unwaived near-replays of
    the submission against those of the held-out images, else against the assumed ``rate``
    (from ``rate_source``: "rules" or "calibration"); with the distinct training photos the
    submission's near-replays match."""
    near = [i for i in images if not i.waived and is_near_replay(i.scores, i.evidence, thresholds)]
    held = None if holdout is None else sum(is_near_replay(f.scores, f.evidence, thresholds) for f in holdout)
    out = counts_to_near_replay_test(len(near), len(images), holdout_near=held,
                                     holdout_images=None if holdout is None else len(holdout), rate=rate)
    if holdout is not None and not holdout:
        out["note"] = "the held-out set has no images: the assumed rate is used"
    out["distinct_train"] = len({m.train for i in near for m in i.matches})
    out["rate_source"] = rate_source if out["test"] == "binomial" else None
    return out


def near_replay_check(test: dict, alpha: float) -> Check:
    decisive = alpha > 0 and test["p_value"] < alpha
    if test["test"] == "fisher":
        reference = (f"{test['holdout_near_replays']} of {test['holdout_images']} held-out images "
                     f"({100 * test['rate']:.2f}%)")
    else:
        reference = (f"an assumed honest share of {100 * test['rate']:.2f}% "
                     + ("(the calibration's bound)" if test.get("rate_source") == "calibration"
                        else "(rules' near_replay_rate)"))
    return Check("forensics.near_replays", "fail" if decisive else "pass",
                 f"{test['near_replays']} near-replays among {test['images']} images "
                 f"({100 * test['near_replays'] / test['images']:.2f}%, {test['distinct_train']} training images) "
                 f"against {reference}: p = {test['p_value']:.2g}"
                 + (f", below the rules' alpha {alpha:g}: more images reproduce training images than honest "
                    f"images do (a memorizer)" if decisive else ""))


def run_audit(options: AuditOptions, progress: ProgressReporter = SILENT, inputs: Inputs | None = None) -> AuditResult:
    inputs = inputs or load_inputs(options)
    rules, sub = inputs.rules, inputs.submission
    size = rules.compare_size
    preprocessing = rules.metric.preprocessing

    checks = list(sub.checks) + format_checks(rules, sub)
    train = embed_training_set(inputs.training, preprocessing, size, inputs.extractor, inputs.cache, progress)
    pixels = [e.pixels for e in sub.images]
    feats = embed_images(pixels, inputs.extractor, inputs.cache, progress)

    metrics = compute_metrics(feats, train.inception, rules.metric.mifid_epsilon)
    index, whole = train_to_box_index(train, inputs.cache, progress), pixels_to_whole_index(train.pixels)
    photos = photo_loader(inputs.training.root, train.relpaths)
    findings, nn_sims = images_to_findings(pixels, feats, train, inputs.thresholds, progress, index, whole, photos)
    all_matches = findings_to_matches(findings, feats, inputs, train, size, progress, photos)

    images: list[ImageResult] = []
    for entry, nn, finding, matches in zip(sub.images, nn_sims, findings, all_matches):
        kind, score = finding.kind, finding.score
        flagged = kind is not None and score >= inputs.thresholds[kind]
        reason = inputs.waivers.get(entry.sha256) if flagged else None
        images.append(ImageResult(entry.name, entry.sha256, flagged, reason is not None, kind, score,
                                  float(nn), matches, reason,
                                  dict(finding.scores), dict(sorted(finding.evidence.items()))))

    holdout_feats, holdout_findings = None, None
    if inputs.holdout is not None:
        held = embed_training_set(inputs.holdout, preprocessing, size, inputs.extractor, inputs.cache, progress)
        holdout_feats = held.inception
        holdout_findings, _ = images_to_findings(list(held.pixels[:, PRIMARY]), held.inception, train,
                                                 inputs.thresholds, progress, index, whole, photos)
    calibrated = inputs.calibration.near_replay_rate if inputs.calibration else None
    near_replays = near_replay_test(images, holdout_findings, inputs.thresholds,
                                    rules.verdict.near_replay_rate if calibrated is None else calibrated,
                                    "rules" if calibrated is None else "calibration")
    if near_replays["p_value"] is not None:
        checks.append(near_replay_check(near_replays, rules.verdict.near_replay_alpha))
    copying = data_copying(train, holdout_feats, feats, rules.verdict.data_copying_cells)
    if holdout_feats is not None and len(holdout_feats) and len(train.inception):
        reference = similarities_to_reference(knn_cosine(holdout_feats, train.inception, 1)[0][:, 0], "holdout")
    else:
        reference = similarities_to_reference(leave_one_out_cosine(train.inception), "train-leave-one-out")
    if copying["p_value"] is not None:
        alpha = rules.verdict.data_copying_alpha
        decisive = alpha > 0 and copying["p_value"] < alpha
        checks.append(Check("forensics.data_copying", "fail" if decisive else "pass",
                            f"C_T = {copying['statistic']:.2f} (p = {copying['p_value']:.2g}) against "
                            f"{copying['holdout_images']} held-out images"
                            + (f": below the rules' alpha {alpha:g}, the submission copies its training set"
                               if decisive else "")))

    counted = [i for i in images if i.flagged and not i.waived]
    checks.append(flagged_check(counted, rules.verdict.max_flagged))
    fingerprint = inputs.training.fingerprint(preprocessing, size)
    if inputs.calibration and inputs.calibration.train_fingerprint not in (None, ""):
        if fingerprint != inputs.calibration.train_fingerprint:
            checks.append(Check("calibration.fingerprint", "warn",
                                "the calibration was made on another training set (fingerprints differ): "
                                "its thresholds may not fit this one"))
    checks.sort(key=lambda c: c.id)
    verdict, reason = decide(checks, options.fail_on_warn, len(images))
    provenance = {
        "gandit": __version__,
        "rules": {"name": rules.name, "source": rules.source, "sha256": rules.sha256},
        "weights": {"source": inputs.extractor.weights.source, "sha256": inputs.extractor.weights.sha256},
        "preprocessing": preprocessing,
        "compare_size": list(size),
        "device": inputs.extractor.device,
        "detectors": list(DETECTORS_RUN),
        "submission_sha256": sub.sha256,
        "train_fingerprint": fingerprint,
        "train_images": len(train.relpaths),
        "train_skipped": [{"train": r, "reason": why} for r, why in train.skipped],
        "calibration": None if inputs.calibration is None else
        {"path": inputs.calibration.path, "sha256": inputs.calibration.sha256},
        "paths": {"submission": os.fspath(options.submission), "train": os.fspath(options.train),
                  "holdout": None if options.holdout is None else os.fspath(options.holdout)},
    }
    summary = SubmissionSummary(
        images=len(images), flagged=sum(i.flagged for i in images),
        distinct_train_matched=len({m.train for i in counted for m in i.matches}),
        waived=sum(i.waived for i in images),
        data_copying=copying, near_replays=near_replays)
    return AuditResult(verdict, reason, provenance, dict(inputs.thresholds), checks, metrics, summary, images,
                       nn_similarity_reference=reference)


def compute_metrics(generated: np.ndarray, reference: np.ndarray, epsilon: float) -> Metrics:
    """FID and Kaggle's MiFID; ``None`` where a side has fewer than 2 images."""
    if len(generated) < 2 or len(reference) < 2:
        return Metrics(None, None, None, epsilon, None)
    fid = features_to_fid(generated, reference)
    mifid = fid_to_mifid(fid, features_to_memorization_distance(generated, reference), epsilon)
    return Metrics(fid, mifid.mifid, mifid.memorization_distance, epsilon, mifid.penalized)


def flagged_check(counted: list[ImageResult], max_flagged: int) -> Check:
    names = sorted(i.name for i in counted)
    if not names:
        return Check("forensics.flagged", "pass", "no image is flagged as made from training images")
    kinds = {}
    for i in counted:
        kinds[i.kind] = kinds.get(i.kind, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    status = "fail" if len(names) > max_flagged else "warn"
    return Check("forensics.flagged", status,
                 f"{len(names)} images are made from training images ({detail}); the rules tolerate "
                 f"{max_flagged}: {names_phrase(names)}", tuple(names))


def decide(checks: list[Check], fail_on_warn: bool, n_images: int) -> tuple[str, str]:
    bad = [c for c in checks if c.status == "fail" or (fail_on_warn and c.status == "warn")]
    if not bad:
        return "pass", f"All {len(checks)} checks passed on {n_images} images."
    first = bad[0]
    more = f" (and {len(bad) - 1} more failed checks)" if len(bad) > 1 else ""
    return "fail", f"{first.id}: {first.message}{more}."
