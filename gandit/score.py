"""``gandit score``: FID and MiFID only, against a training folder or a pytorch-fid ``.npz``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gandit import __version__
from gandit.audit import compute_metrics, open_cache, resolve_device
from gandit.dataset import scan_training_set
from gandit.errors import UsageError
from gandit.features.embed import InceptionExtractor, embed_images, embed_training_set
from gandit.features.inception import resolve_weights
from gandit.intake import read_submission
from gandit.metrics import features_to_statistics, statistics_to_fid
from gandit.progress import SILENT, ProgressReporter
from gandit.report.result import clean_numbers
from gandit.rules import load_rules
from gandit.statsfile import load_stats, save_stats

SCORE_SCHEMA = "gandit.score/1"


@dataclass(frozen=True)
class ScoreOptions:
    submission: Path
    train: Path
    rules: str = "default"
    weights: Path | None = None
    device: str = "auto"
    cache: Path | None = None
    no_cache: bool = False
    save_stats: Path | None = None


def run_score(options: ScoreOptions, progress: ProgressReporter = SILENT) -> dict[str, Any]:
    rules = load_rules(options.rules)
    from_stats = options.train.suffix == ".npz" and options.train.is_file()
    if from_stats and options.save_stats:
        raise UsageError("--save-stats needs a training folder, not a .npz")
    stats = load_stats(options.train) if from_stats else None
    training = None if from_stats else scan_training_set(options.train)
    weights = resolve_weights(options.weights)
    extractor = InceptionExtractor(weights, resolve_device(options.device))
    submission = read_submission(options.submission, rules.limits)
    if len(submission.images) < 2:
        raise UsageError(f"submission '{options.submission}' has {len(submission.images)} decodable images; "
                         f"FID needs at least 2")
    cache = open_cache(options.cache, options.no_cache)
    feats = embed_images([e.pixels for e in submission.images], extractor, cache, progress)
    provenance = {"gandit": __version__, "rules": {"name": rules.name, "sha256": rules.sha256},
                  "weights": {"source": weights.source, "sha256": weights.sha256},
                  "submission_sha256": submission.sha256}
    if stats is not None:
        mu, sigma = stats
        if mu.shape[0] != feats.shape[1]:
            raise UsageError(f"statistics '{options.train}' are {mu.shape[0]}-d; Inception pool3 is "
                             f"{feats.shape[1]}-d — pass pool3 statistics")
        fid = statistics_to_fid(*features_to_statistics(feats), mu, sigma)
        result = {"fid": fid, "mifid": None, "memorization_distance": None, "reference_images": None}
        provenance["reference"] = {"stats": str(options.train)}
    else:
        size, prep = rules.compare_size, rules.metric.preprocessing
        train = embed_training_set(training, prep, size, extractor, cache, progress)
        metrics = compute_metrics(feats, train.inception, rules.metric.mifid_epsilon)
        result = {"fid": metrics.fid, "mifid": metrics.mifid, "memorization_distance": metrics.memorization_distance,
                  "reference_images": len(train.relpaths)}
        provenance["preprocessing"] = prep
        provenance["train_fingerprint"] = training.fingerprint(prep, size)
        if options.save_stats:
            save_stats(options.save_stats, *features_to_statistics(train.inception))
    return clean_numbers({"schema": SCORE_SCHEMA, "fid": result["fid"], "mifid": result["mifid"],
                          "memorization_distance": result["memorization_distance"],
                          "mifid_epsilon": rules.metric.mifid_epsilon, "images": len(submission.images),
                          "reference_images": result["reference_images"], "provenance": provenance})
