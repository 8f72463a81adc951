"""The audit pipeline, in order: rules → training set → weights → intake → format checks →
features (cached) → metrics → forensics → verdict. Returns plain data; writes nothing.

Everything that can stop the run (rules, training folder, weights, calibration, waivers, an
archive that cannot be opened) is read before any work starts, so a bad input costs no
embedding and leaves no partial output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gandit import __version__
from gandit.calibration import Calibration, effective_thresholds, load_calibration
from gandit.checks import Check, names_phrase
from gandit.dataset import TrainingSet, center_crop_box, scan_training_set
from gandit.errors import UsageError
from gandit.features.cache import FeatureCache, default_cache_dir
from gandit.features.embed import (InceptionExtractor, TrainFeatures, embed_images, embed_training_set,
                                   preprocessing_variants)
from gandit.features.inception import resolve_weights
from gandit.features.pixels import image_to_thumbnail
from gandit.forensics.copy import K_INCEPTION, CopyMatch, detect_copies
from gandit.images import ImageSet
from gandit.intake import read_submission
from gandit.metrics import features_to_fid, features_to_memorization_distance, fid_to_mifid
from gandit.progress import SILENT, ProgressReporter
from gandit.report.result import AuditResult, ImageResult, Match, Metrics, SubmissionSummary
from gandit.rules import Rules, format_checks, load_rules
from gandit.search import knn_cosine, normalize_rows
from gandit.waivers import load_waivers

DETECTORS_RUN = ("copy",)


@dataclass(frozen=True)
class AuditOptions:
    submission: Path
    train: Path
    rules: str = "default"
    calibration: Path | None = None
    waivers: Path | None = None
    weights: Path | None = None
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
    extractor: InceptionExtractor
    submission: ImageSet
    cache: FeatureCache


def load_inputs(options: AuditOptions) -> Inputs:
    rules = load_rules(options.rules)
    calibration = load_calibration(options.calibration) if options.calibration else None
    waivers = load_waivers(options.waivers) if options.waivers else {}
    training = scan_training_set(options.train)
    weights = resolve_weights(options.weights)
    device = resolve_device(options.device)
    submission = read_submission(options.submission, rules.limits)
    return Inputs(rules, effective_thresholds(rules.thresholds, calibration), calibration, waivers, training,
                  InceptionExtractor(weights, device), submission, open_cache(options.cache, options.no_cache))


def photo_size(path: Path) -> tuple[int, int]:
    """(width, height) of a training photo after EXIF orientation, from its header."""
    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated a quarter turn
            w, h = h, w
    return w, h


def copy_to_match(match: CopyMatch, inputs: Inputs, train: TrainFeatures, variants: tuple[str, str],
                  similarity: float) -> tuple[str, Match]:
    """The kind and evidence of a copy-detector match: the whole photo (``copy``) or its centred
    square (``crop``, with the box in the photo's own pixels) when the photo is not square."""
    relpath = train.relpaths[match.train]
    box = None
    if variants[match.variant] == "center-crop":
        width, height = photo_size(inputs.training.root / relpath)
        if width != height:
            box = list(center_crop_box(width, height))
    return ("crop" if box else "copy"), Match(relpath, similarity, None, box, match.flip)


def run_audit(options: AuditOptions, progress: ProgressReporter = SILENT, inputs: Inputs | None = None) -> AuditResult:
    inputs = inputs or load_inputs(options)
    rules, sub = inputs.rules, inputs.submission
    size = rules.compare_size
    preprocessing = rules.metric.preprocessing

    checks = list(sub.checks) + format_checks(rules, sub)
    train = embed_training_set(inputs.training, preprocessing, size, inputs.extractor, inputs.cache, progress)
    pixels = [e.pixels for e in sub.images]
    feats = embed_images(pixels, inputs.extractor, inputs.cache, progress)
    thumbs = np.stack([image_to_thumbnail(p) for p in pixels]) if pixels else np.zeros((0, 32, 32, 3), np.uint8)

    metrics = compute_metrics(feats, train.inception, rules.metric.mifid_epsilon)
    sims, neighbours = knn_cosine(feats, train.inception, K_INCEPTION) if len(feats) else (np.zeros((0, 1)), None)
    nn_sims = sims[:, 0]
    copies = detect_copies(feats, thumbs, train.inception, train.thumbs, neighbours)

    variants = preprocessing_variants(preprocessing)
    images: list[ImageResult] = []
    train_unit, sub_unit = normalize_rows(train.inception), normalize_rows(feats)
    for entry, unit, nn, match in zip(sub.images, sub_unit, nn_sims, copies):
        kind, score, matches = None, 0.0, []
        if match is not None and match.score > 0:
            similarity = float(unit @ train_unit[match.train])
            kind, m = copy_to_match(match, inputs, train, variants, similarity)
            score, matches = match.score, [m]
        flagged = kind is not None and score >= inputs.thresholds[kind]
        reason = inputs.waivers.get(entry.sha256) if flagged else None
        images.append(ImageResult(entry.name, entry.sha256, flagged, reason is not None, kind, score,
                                  float(nn), matches, reason))

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
        "paths": {"submission": os.fspath(options.submission), "train": os.fspath(options.train)},
    }
    summary = SubmissionSummary(
        images=len(images), flagged=sum(i.flagged for i in images),
        distinct_train_matched=len({m.train for i in counted for m in i.matches}),
        waived=sum(i.waived for i in images),
        data_copying={"test": "C_T", "statistic": None, "p_value": None})
    return AuditResult(verdict, reason, provenance, dict(inputs.thresholds), checks, metrics, summary, images)


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
