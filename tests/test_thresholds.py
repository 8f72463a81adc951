"""Threshold derivation, ROC points, AUC and the false-flag bound (gandit.calibrate.thresholds):
pure functions pinned to numbers worked out by hand or by closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gandit.calibrate import thresholds as th


def test_threshold_is_the_honest_maximum_plus_the_margin_between_floor_and_ceiling():
    assert th.honest_max_to_threshold(0.62, margin=0.05, floor=0.5, ceiling=0.95) == (0.67, None)
    assert th.honest_max_to_threshold(0.2, margin=0.05, floor=0.5, ceiling=0.95) == (0.5, "floor")
    assert th.honest_max_to_threshold(0.93, margin=0.05, floor=0.5, ceiling=0.95) == (0.95, "ceiling")
    assert th.honest_max_to_threshold(None) == (th.FLOOR, "floor")
    # exactly at a bound: the bound's value, not bounded by it
    assert th.honest_max_to_threshold(0.45, margin=0.05, floor=0.5, ceiling=0.95) == (0.5, None)
    with pytest.raises(ValueError):
        th.honest_max_to_threshold(0.3, floor=0.9, ceiling=0.5)


def test_thresholds_per_kind_leave_every_honest_image_unflagged():
    rng = np.random.default_rng(0)
    honest = {"copy": rng.uniform(0, 0.7, 300), "crop": rng.uniform(0, 0.3, 300),
              "blend": np.r_[rng.uniform(0, 0.4, 299), 0.99], "replay": np.zeros(300)}
    choices = th.honest_scores_to_thresholds(honest, margin=0.05, floor=0.5, ceiling=0.95)
    assert set(choices) == {"copy", "crop", "blend", "replay"}
    assert choices["copy"].threshold == pytest.approx(honest["copy"].max() + 0.05, abs=1e-6)
    assert choices["copy"].bounded_by is None and choices["copy"].honest_max == honest["copy"].max()
    assert choices["crop"].threshold == 0.5 and choices["crop"].bounded_by == "floor"
    assert choices["blend"].threshold == 0.95 and choices["blend"].bounded_by == "ceiling"
    chosen = {k: c.threshold for k, c in choices.items()}
    flags = th.scores_to_flags(honest, chosen)
    assert flags.sum() == 1 and flags[299]   # only the honest image above the ceiling
    no_kind = th.honest_scores_to_thresholds({})
    assert all(c.threshold == th.FLOOR and c.honest_max is None for c in no_kind.values())


def test_an_image_is_flagged_when_any_kind_reaches_its_threshold():
    scores = {"copy": np.array([0.5, 0.49, 0.0, 0.2]), "crop": np.array([0.0, 0.0, 0.7, 0.2]),
              "blend": np.zeros(4), "replay": np.array([0.0, 0.0, 0.0, 0.59])}
    t = {"copy": 0.5, "crop": 0.8, "blend": 0.5, "replay": 0.6}
    assert th.scores_to_flags(scores, t).tolist() == [True, False, False, False]
    assert th.scores_to_scale(scores, t) == pytest.approx([1.0, 0.98, 0.875, 0.59 / 0.6])


def test_score_summaries_use_linear_quantiles():
    s = th.summarise_scores(np.arange(101) / 100)
    assert s == pytest.approx({"max": 1.0, "q50": 0.5, "q90": 0.9, "q99": 0.99})
    assert th.summarise_scores(np.array([])) == {"max": None, "q50": None, "q90": None, "q99": None}


def test_roc_points_count_scores_at_or_above_each_threshold():
    honest = np.array([0.1, 0.2, 0.3, 0.4])
    cheat = np.array([0.3, 0.5, 0.9])
    ff, rec = th.roc_points(honest, cheat, grid=(0.0, 0.3, 0.35, 0.5, 1.0))
    assert ff == [1.0, 0.5, 0.25, 0.0, 0.0]
    assert rec == pytest.approx([1.0, 1.0, 2 / 3, 2 / 3, 0.0])
    ff, rec = th.roc_points(honest, np.array([]), grid=(0.5,))
    assert ff == [0.0] and rec == [None]
    assert len(th.roc_points(honest, cheat)[0]) == len(th.ROC_GRID) == 51


def test_auc_is_the_mann_whitney_probability_with_ties_counted_half():
    assert th.roc_auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert th.roc_auc(np.array([0.3, 0.4]), np.array([0.1, 0.2])) == 0.0
    # pairs (cheat, honest): (0.2,0.1)>, (0.2,0.2)=, (0.2,0.3)<, (0.3,0.1)>, (0.3,0.2)>, (0.3,0.3)=
    assert th.roc_auc(np.array([0.1, 0.2, 0.3]), np.array([0.2, 0.3])) == pytest.approx((3 + 0.5 * 2) / 6)
    assert th.roc_auc(np.array([]), np.array([0.1])) is None
    rng = np.random.default_rng(1)
    h, c = rng.normal(0, 1, 200), rng.normal(1, 1, 150)
    u = stats.mannwhitneyu(c, h, alternative="two-sided").statistic
    assert th.roc_auc(h, c) == pytest.approx(u / (200 * 150))


def test_false_flag_bound_is_the_one_sided_clopper_pearson_upper_limit():
    # 0 of n: 1 - 0.05^(1/n), about 3/n
    assert th.false_flag_upper_bound(0, 100) == pytest.approx(1 - 0.05 ** 0.01)
    assert th.false_flag_upper_bound(0, 100) == pytest.approx(0.0295, abs=1e-4)
    assert th.false_flag_upper_bound(0, 1000) * 1000 == pytest.approx(-math.log(0.05), rel=2e-3)  # -ln 0.05 ≈ 3
    # the defining property: at the bound, seeing <= x flags has probability 1 - confidence
    for x, n in [(1, 100), (3, 250), (10, 40)]:
        p = th.false_flag_upper_bound(x, n)
        assert stats.binom.cdf(x, n, p) == pytest.approx(0.05, abs=1e-9)
    assert th.false_flag_upper_bound(1, 100) == pytest.approx(0.0466, abs=1e-4)
    assert th.false_flag_upper_bound(0, 0) == 1.0 and th.false_flag_upper_bound(5, 5) == 1.0
    assert th.false_flag_upper_bound(0, 100, confidence=0.99) == pytest.approx(1 - 0.01 ** 0.01)
    with pytest.raises(ValueError):
        th.false_flag_upper_bound(3, 2)


def test_a_10000_image_submission_needs_about_300000_clean_honest_images():
    n = th.honest_images_for_rate(1e-5)
    assert n == 299_572 == math.ceil(math.log(0.05) / math.log(1 - 1e-5))
    assert th.false_flag_upper_bound(0, n) <= 1e-5 < th.false_flag_upper_bound(0, n - 1)
    # at a per-image rate of 1e-5, a 10,000-image honest submission fails ~10% of the time
    assert th.submission_failure_probability(1e-5, 10_000) == pytest.approx(1 - (1 - 1e-5) ** 10_000)
    assert th.submission_failure_probability(1e-5, 10_000) == pytest.approx(0.0952, abs=1e-4)
    assert th.submission_failure_probability(1.0) == 1.0
    # and 0 flagged of 300 honest images only shows a rate below 1%: most 10,000-image submissions could fail
    assert th.false_flag_upper_bound(0, 300) == pytest.approx(0.00994, abs=1e-5)
    assert th.submission_failure_probability(th.false_flag_upper_bound(0, 300)) > 0.99
