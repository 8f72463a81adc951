"""Detector thresholds from honest and cheating reference images: arrays in, numbers out.

**Thresholds.** Per kind ``k`` (``copy``, ``crop``, ``blend``, ``replay``), from the scores of
the honest reference images (held-out real photos and honest-GAN samples)::

    t_k = min(CEILING, max(FLOOR, max honest score_k + MARGIN))

so that no honest reference image is flagged, with room to spare:

``MARGIN = 0.05``
    The honest maximum of a few hundred images is not the maximum of the next ten thousand:
    the tail goes on past it. Detector scores are linear maps of their measurements between
    an "honest" and a "certain" level (``gandit.forensics.copy.agreement_to_score``), so 0.05
    is 5% of the way from honest to certain: about 0.6 dB of PSNR or 0.01 of explained
    variance for a copy.
``FLOOR = 0.5``
    The detectors' design point, where both measures of a score are half-way from honest to
    certain, and the built-in threshold (``gandit.calibration.DEFAULT_THRESHOLDS``): chosen on
    the 2,200 honest photos of the benchmark, whose highest scores were 0.35–0.48. A few
    hundred calibration images cannot show that a lower threshold is safe, so calibration
    only ever raises thresholds (for training sets where honest images look like training
    images: textures, emoji, near-duplicate photos), never makes gandit more aggressive.
``CEILING = 0.95``
    Most direct cheats score 1.0 on their kind (the median of calibrate's own copies, blends
    and crops on the bundled samples), so a threshold of 0.95 still catches them, while one
    nearer 1 switches the kind off. When honest reference images score that high the training
    set holds near-duplicates of them (or the held-out images are not held out); the threshold
    stops at the ceiling, those honest images stay flagged, and the calibration file says so
    (``bounded_by == "ceiling"``, flagged honest images > 0, a note).

**ROC.** For a kind, honest images against the cheating images whose ground truth is that
kind: at each threshold ``t`` of a grid, the false-flag rate (honest ``score_k ≥ t``) and the
recall (cheats ``score_k ≥ t``), as the audit flags (``score ≥ threshold``); and the area
under the curve (Mann–Whitney: P(cheat > honest) + P(tie) / 2).

**False-flag bound.** With ``x`` of ``n`` honest images flagged, the one-sided
Clopper–Pearson upper bound on the per-image false-flag rate at confidence ``c`` is the
``c`` quantile of Beta(x + 1, n - x); for ``x = 0`` it is ``1 - (1 - c)^(1/n)`` ≈ 3/n at 95%.
A 10,000-image honest submission fails with probability ``1 - (1 - p)^10000`` for a
per-image rate ``p``; keeping that near 10% needs ``p`` ≈ 1e-5, which 0 flagged of ~300,000
honest images would show (:func:`honest_images_for_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from gandit.forensics import KINDS

MARGIN = 0.05
FLOOR = 0.5
CEILING = 0.95
#: Confidence of the false-flag bound (one-sided).
CONFIDENCE = 0.95
#: The size of the honest submission that must not fail, and the per-image rate that needs.
TARGET_SUBMISSION_IMAGES = 10_000
TARGET_RATE = 1e-5
#: Thresholds at which ROC points are reported (scores are in [0, 1]).
ROC_GRID = tuple(round(i / 50, 2) for i in range(51))
#: Threshold scales of the combined ("any kind") ROC: flagged when some score_k ≥ s * t_k.
SCALE_GRID = tuple(round(i / 25, 2) for i in range(51))
#: Quantiles of the per-kind score summaries.
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class ThresholdChoice:
    kind: str
    threshold: float
    honest_max: float | None     #: None without honest images
    bounded_by: str | None       #: "floor", "ceiling" or None (honest max + margin)


def honest_max_to_threshold(honest_max: float | None, margin: float = MARGIN, floor: float = FLOOR,
                            ceiling: float = CEILING) -> tuple[float, str | None]:
    """``min(ceiling, max(floor, honest_max + margin))`` rounded to 6 decimals (as written),
    and which bound decided it. No honest images: the floor."""
    if not 0.0 <= floor <= ceiling <= 1.0 or margin < 0:
        raise ValueError(f"need 0 <= floor <= ceiling <= 1 and margin >= 0, got {floor}, {ceiling}, {margin}")
    if honest_max is None:
        return floor, "floor"
    wanted = honest_max + margin
    if wanted > ceiling:
        return ceiling, "ceiling"
    if wanted < floor:
        return floor, "floor"
    return round(wanted, 6), None


def honest_scores_to_thresholds(honest: Mapping[str, np.ndarray], margin: float = MARGIN, floor: float = FLOOR,
                                ceiling: float = CEILING) -> dict[str, ThresholdChoice]:
    """A threshold per kind of :data:`KINDS` from the honest images' scores of that kind."""
    out = {}
    for kind in KINDS:
        scores = np.asarray(honest.get(kind, ()), dtype=np.float64)
        top = float(scores.max()) if scores.size else None
        t, bound = honest_max_to_threshold(top, margin, floor, ceiling)
        out[kind] = ThresholdChoice(kind, t, top, bound)
    return out


def scores_to_flags(scores: Mapping[str, np.ndarray], thresholds: Mapping[str, float]) -> np.ndarray:
    """bool (N,): the images the audit flags, i.e. some kind's score ≥ its threshold (a
    finding's kind is the first kind that fits, so an image is flagged exactly when one fits)."""
    n = len(next(iter(scores.values()))) if scores else 0
    flags = np.zeros(n, bool)
    for kind, t in thresholds.items():
        flags |= np.asarray(scores[kind], dtype=np.float64) >= t
    return flags


def scores_to_scale(scores: Mapping[str, np.ndarray], thresholds: Mapping[str, float]) -> np.ndarray:
    """float (N,): ``max_k score_k / t_k``; an image is flagged exactly when this is ≥ 1."""
    parts = [np.asarray(scores[k], dtype=np.float64) / max(t, 1e-12) for k, t in thresholds.items()]
    return np.max(parts, axis=0) if parts else np.zeros(0)


def summarise_scores(scores: np.ndarray, quantiles: tuple[float, ...] = QUANTILES) -> dict[str, float | None]:
    """``{"max", "q50", "q90", "q99"}`` (numpy's linear quantiles); None for no scores."""
    x = np.asarray(scores, dtype=np.float64)
    out: dict[str, float | None] = {"max": float(x.max()) if x.size else None}
    for q in quantiles:
        out[f"q{round(q * 100):02d}"] = float(np.quantile(x, q)) if x.size else None
    return out


def roc_points(honest: np.ndarray, cheat: np.ndarray, grid=ROC_GRID) -> tuple[list[float | None], list[float | None]]:
    """False-flag rates (honest ≥ t) and recalls (cheat ≥ t) at each threshold of ``grid``;
    None where a side has no images."""
    h, c = np.sort(np.asarray(honest, np.float64)), np.sort(np.asarray(cheat, np.float64))
    t = np.asarray(grid, np.float64)

    def at_least(x: np.ndarray) -> list[float | None]:
        if not x.size:
            return [None] * len(t)
        return [float(v) for v in (x.size - np.searchsorted(x, t, side="left")) / x.size]

    return at_least(h), at_least(c)


def roc_auc(honest: np.ndarray, cheat: np.ndarray) -> float | None:
    """Area under the ROC curve: P(cheat score > honest score) + P(equal) / 2 (Mann–Whitney
    U / (n_h n_c)); None where a side has no images."""
    h, c = np.asarray(honest, np.float64), np.asarray(cheat, np.float64)
    if not h.size or not c.size:
        return None
    ranks = stats.rankdata(np.concatenate([c, h]))          # average ranks for ties
    u = ranks[:c.size].sum() - c.size * (c.size + 1) / 2.0
    return float(u / (c.size * h.size))


def false_flag_upper_bound(flagged: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper–Pearson upper bound on a per-image rate with ``flagged`` of ``n``
    images flagged: 1 for ``n = 0`` or ``flagged = n``; ``1 - (1 - c)^(1/n)`` for 0 flagged."""
    if n < 0 or not 0 <= flagged <= max(n, 0) or not 0 < confidence < 1:
        raise ValueError(f"need 0 <= flagged <= n and 0 < confidence < 1, got {flagged}, {n}, {confidence}")
    if n == 0 or flagged == n:
        return 1.0
    if flagged == 0:
        return float(1.0 - (1.0 - confidence) ** (1.0 / n))
    return float(stats.beta.ppf(confidence, flagged + 1, n - flagged))


def honest_images_for_rate(rate: float, confidence: float = CONFIDENCE) -> int:
    """Honest images that must all pass for the 0-flagged bound to reach ``rate``:
    the smallest ``n`` with ``1 - (1 - c)^(1/n) <= rate``."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    n = math.ceil(math.log(1.0 - confidence) / math.log1p(-rate))
    while false_flag_upper_bound(0, n, confidence) > rate:   # guard the float rounding of ceil
        n += 1
    return n


def submission_failure_probability(rate: float, images: int = TARGET_SUBMISSION_IMAGES) -> float:
    """Probability that at least one of ``images`` honest images is flagged at a per-image
    false-flag ``rate`` (independent images)."""
    return float(-math.expm1(images * math.log1p(-rate))) if rate < 1 else 1.0
