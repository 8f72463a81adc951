"""The calibration as plain data (schema ``gandit.calibration/1``): the scores of every source
of reference images summarised into thresholds, flagged fractions, ROC points, the false-flag
bound and notes. Built once, rendered to calibration.json, the terminal and the HTML page.

Floats are rounded to 6 decimals, NaN becomes ``null``, nothing carries a timestamp or a
timing: the same inputs and seed give byte-identical JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gandit.calibrate import thresholds as th
from gandit.calibrate.attacks import ATTACK_KINDS
from gandit.calibration import CALIBRATION_SCHEMA
from gandit.forensics import KINDS
from gandit.nearreplay import coarse_to_near_replay
from gandit.report.result import clean_numbers

#: Class-vector mixes of the memorizer: source name → weight of the main class.
MEMORIZER_MIXES = {"memorizer_onehot": 1.0, "memorizer_mix99": 0.99, "memorizer_mix90": 0.9}
#: Honest sources: the thresholds keep all their images unflagged.
HONEST_SOURCES = ("held_out", "honest_gan")
DESCRIPTIONS = {
    "held_out": "held-out real photos (never in the reference pool)",
    "honest_gan": "samples of the honest GAN (SN-DCGAN, hinge, TTUR, EMA, truncation)",
    "memorizer_onehot": "memorizer GAN, one-hot class vectors (replays of one photo)",
    "memorizer_mix99": "memorizer GAN, 0.99/0.01 class mixes",
    "memorizer_mix90": "memorizer GAN, 0.9/0.1 class mixes",
    "attack_copy": "copies (either preprocessing, varied resize filters, half mirrored)",
    "attack_blend99": "pixel blends 0.99/0.01 of two photos",
    "attack_blend70": "pixel blends 0.7/0.3 of two photos",
    "attack_crop": "crops (50-100% area, aspect 3/4-4/3, varied filters, half mirrored)",
    "attack_replay": "degraded replays (blur, noise, JPEG, colour drift; a third mixed 0.9/0.1)",
}
#: The finding kind of each cheating source (its ROC positives); GAN reproductions are replays
#: (DESIGN.md: "a degraded reproduction (blur, noise, re-encoding, GAN artefacts)").
SOURCE_KINDS = {**{name: "replay" for name in MEMORIZER_MIXES},
                **{f"attack_{a}": k for a, k in ATTACK_KINDS.items()}}


@dataclass
class SourceScores:
    """One source of reference images: its images and each kind's scores."""

    name: str
    role: str                          #: "honest" or "cheat"
    images: list[np.ndarray]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    coarse: np.ndarray | None = None   #: each image's ``replay_coarse`` evidence (near-replays)


@dataclass
class CalibrationReport:
    """The calibration as plain data; ``to_dict()`` is calibration.json."""

    thresholds: dict[str, float]
    train_fingerprint: str
    derivation: dict[str, Any]
    false_flags: dict[str, Any]
    detection: dict[str, Any]
    sources: dict[str, dict[str, Any]]
    roc: dict[str, dict[str, Any]]
    training: dict[str, Any]
    provenance: dict[str, Any]
    notes: list[str]
    near_replays: dict[str, Any] = field(default_factory=dict)
    schema: str = CALIBRATION_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return clean_numbers({
            "schema": self.schema, "thresholds": self.thresholds,
            "near_replay_rate": self.near_replays.get("rate_upper_bound"),
            "train_fingerprint": self.train_fingerprint,
            "derivation": self.derivation, "false_flags": self.false_flags, "detection": self.detection,
            "near_replays": self.near_replays,
            "sources": self.sources, "roc": self.roc, "training": self.training,
            "provenance": self.provenance, "notes": self.notes})


def near_replay_flags(source: SourceScores, chosen: dict[str, float]) -> np.ndarray:
    """Each image's near-replay indicator (``gandit.nearreplay.coarse_to_near_replay``): coarse
    replay agreement above every honest anchor, or flagged at the thresholds."""
    n = len(source.images)
    if not n:
        return np.zeros(0, bool)
    coarse = source.coarse if source.coarse is not None else np.zeros(n)
    return coarse_to_near_replay(coarse, th.scores_to_flags(source.scores, chosen))


def near_replay_report(sources: list[SourceScores], chosen: dict[str, float]) -> dict[str, Any]:
    """Near-replay shares by source, and the audit's assumed honest rate: the one-sided
    Clopper-Pearson upper bound of the honest sources' pooled share (``rate_upper_bound``; None
    when there is no honest image or every one is a near-replay)."""
    flags = {s.name: near_replay_flags(s, chosen) for s in sources}
    honest = [s for s in sources if s.role == "honest"]
    n = sum(len(flags[s.name]) for s in honest)
    k = int(sum(flags[s.name].sum() for s in honest))
    bound = th.false_flag_upper_bound(k, n) if n else 1.0
    return {"by_source": {name: float(f.mean()) if len(f) else None for name, f in flags.items()},
            "honest_images": n, "honest_near_replays": k, "confidence": th.CONFIDENCE,
            "method": "one-sided Clopper-Pearson upper bound on the honest share of near-replays",
            "rate_upper_bound": bound if bound < 1.0 else None}


def summarise_source(source: SourceScores, chosen: dict[str, float]) -> dict[str, Any]:
    """Counts, flagged fractions (any kind and per kind) and score summaries of one source."""
    n = len(source.images)
    flags = th.scores_to_flags(source.scores, chosen) if n else np.zeros(0, bool)
    return {"role": source.role, "kind": SOURCE_KINDS.get(source.name), "description": DESCRIPTIONS[source.name],
            "images": n, "flagged_images": int(flags.sum()),
            "flagged": {"any": float(flags.mean()) if n else None,
                        **{k: float((source.scores[k] >= chosen[k]).mean()) if n else None for k in KINDS}},
            "scores": {k: th.summarise_scores(source.scores[k] if n else np.zeros(0)) for k in KINDS}}


def _scores_of(group: list[SourceScores], kind: str) -> np.ndarray:
    return np.concatenate([s.scores[kind] for s in group if s.images] or [np.zeros(0)])


def roc_report(honest: list[SourceScores], cheats: list[SourceScores], chosen: dict[str, float]) -> dict[str, Any]:
    """Per kind: honest images against the cheating sources of that kind; and ``any``: all
    honest against all cheating images on ``max_k score_k / t_k``, thresholds scaled together."""
    roc: dict[str, Any] = {}
    for kind in KINDS:
        positives = [s for s in cheats if SOURCE_KINDS[s.name] == kind]
        h, c = _scores_of(honest, kind), _scores_of(positives, kind)
        ff, rec = th.roc_points(h, c)
        (ff_at,), (rec_at,) = th.roc_points(h, c, (chosen[kind],))
        roc[kind] = {"positives": [s.name for s in positives], "auc": th.roc_auc(h, c),
                     "thresholds": list(th.ROC_GRID), "false_flag_rate": ff, "recall": rec,
                     "at_threshold": {"threshold": chosen[kind], "false_flag_rate": ff_at, "recall": rec_at}}
    h_scale = th.scores_to_scale({k: _scores_of(honest, k) for k in KINDS}, chosen)
    c_scale = th.scores_to_scale({k: _scores_of(cheats, k) for k in KINDS}, chosen)
    ff, rec = th.roc_points(h_scale, c_scale, th.SCALE_GRID)
    roc["any"] = {"positives": [s.name for s in cheats], "auc": th.roc_auc(h_scale, c_scale),
                  "statistic": "max over kinds of score_k / t_k; flagged at scale s when >= s (s = 1: the thresholds)",
                  "scales": list(th.SCALE_GRID), "false_flag_rate": ff, "recall": rec}
    return roc


def false_flag_report(honest_images: int, flagged: int) -> dict[str, Any]:
    bound = th.false_flag_upper_bound(flagged, honest_images)
    return {
        "honest_images": honest_images, "flagged": flagged, "confidence": th.CONFIDENCE,
        "method": "one-sided Clopper-Pearson upper bound on the per-image false-flag rate",
        "per_image_rate_upper_bound": bound,
        "submission_images": th.TARGET_SUBMISSION_IMAGES,
        "submission_failure_probability_at_bound": th.submission_failure_probability(bound),
        "target_per_image_rate": th.TARGET_RATE,
        "honest_images_for_target": th.honest_images_for_rate(th.TARGET_RATE),
        "target_reached": bool(bound <= th.TARGET_RATE),
    }


def sources_to_report(sources: list[SourceScores], choices: dict[str, th.ThresholdChoice], train_fingerprint: str,
                      training: dict[str, Any], provenance: dict[str, Any]) -> CalibrationReport:
    """The report of scored ``sources`` at the thresholds ``choices``; ``training`` and
    ``provenance`` are written as given (``training`` gets the sample counts)."""
    chosen = {k: c.threshold for k, c in choices.items()}
    honest = [s for s in sources if s.role == "honest"]
    cheats = [s for s in sources if s.role == "cheat"]
    summaries = {s.name: summarise_source(s, chosen) for s in sources}
    n_cheat = sum(summaries[s.name]["images"] for s in cheats)
    flagged_cheat = sum(summaries[s.name]["flagged_images"] for s in cheats)
    detection = {"cheat_images": n_cheat, "flagged": flagged_cheat,
                 "recall": flagged_cheat / n_cheat if n_cheat else None,
                 "by_source": {s.name: summaries[s.name]["flagged"]["any"] for s in cheats}}
    derivation = {
        "rule": "t_k = min(ceiling, max(floor, max honest score_k + margin))",
        "margin": th.MARGIN, "floor": th.FLOOR, "ceiling": th.CEILING,
        "honest_sources": [s.name for s in honest],
        "kinds": {k: {"threshold": c.threshold, "honest_max": c.honest_max, "bounded_by": c.bounded_by}
                  for k, c in choices.items()},
    }
    false_flags = false_flag_report(sum(summaries[s.name]["images"] for s in honest),
                                    sum(summaries[s.name]["flagged_images"] for s in honest))
    report = CalibrationReport(chosen, train_fingerprint, derivation, false_flags, detection, summaries,
                               roc_report(honest, cheats, chosen), training, provenance, [],
                               near_replay_report(sources, chosen))
    report.notes = calibration_notes(report)
    return report


def calibration_notes(report: CalibrationReport) -> list[str]:
    """What the numbers do and do not show, in sentences (the first: how far the evidence goes)."""
    notes = []
    ff, t = report.false_flags, report.training
    notes.append(
        f"{ff['honest_images']} honest reference images ({', '.join(report.derivation['honest_sources'])}), "
        f"{ff['flagged']} flagged: the per-image false-flag rate is below {ff['per_image_rate_upper_bound']:.2g} "
        f"with {ff['confidence']:.0%} confidence. A {ff['submission_images']:,}-image honest submission must not "
        f"fail, which needs a rate near {ff['target_per_image_rate']:g}, i.e. 0 flagged among "
        f"{ff['honest_images_for_target']:,} honest images"
        + ("." if ff["target_reached"] else
           ": this calibration does not show that; the margin and the floor above the honest maxima are "
           "what protect honest submissions, and flagged images deserve a reviewer's look."))
    budget = t["budget"]["name"]
    if budget != "full":
        notes.append(f"--budget {budget}: the GANs are small and briefly trained (the honest GAN makes "
                     "blurry images that score far from training photos; the memorizer reproduces its classes "
                     "coarsely), so the thresholds lean on the held-out real photos and the detection figures "
                     "on the direct attacks. Run --budget full on a GPU for stronger reference generators.")
    held = t["held_out"]
    if held["source"] == "split":
        notes.append(f"{held['images']} training photos were held out by seed and removed from the reference "
                     f"pool ({t['reference_images']} photos) that was searched, trained on and attacked; the "
                     f"audit searches the whole training folder.")
    if held["dropped_identical_to_training"]:
        notes.append(f"{len(held['dropped_identical_to_training'])} held-out files are byte-identical to training "
                     f"files and were not used.")
    for kind, d in report.derivation["kinds"].items():
        if d["bounded_by"] == "ceiling":
            notes.append(f"honest reference images score up to {d['honest_max']:.3f} as {kind}: the threshold stops "
                         f"at the ceiling {report.derivation['ceiling']} and those images stay flagged; the training "
                         f"set probably holds near-duplicates of held-out images.")
    mem = [report.sources[n]["flagged"]["any"] for n in MEMORIZER_MIXES
           if n in report.sources and report.sources[n]["images"]]
    if mem and min(mem) < 0.5:
        l1 = t["memorizer"].get("final_recon_l1")
        notes.append(f"only {min(mem):.0%} of the samples of a memorizer class mix are flagged: at this budget the "
                     f"memorizer has not learnt its photos well"
                     + (f" (final reconstruction L1 {l1:.3f} in [-1, 1] units)." if l1 is not None else "."))
    side, size = t["memorizer"]["image_size"], t["compare_size"]
    if size != [side, side]:
        notes.append(f"the GANs generate {side}x{side} images, resized to the comparison size "
                     f"{size[0]}x{size[1]} with LANCZOS.")
    return notes
