"""The submission-level near-replay test, against exact tail sums written out here."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from gandit.nearreplay import counts_to_near_replay_test, is_near_replay
from gandit.report.result import clean_numbers

THRESHOLDS = {"copy": 0.9, "crop": 0.9, "blend": 0.9, "replay": 0.9}


def hypergeometric_upper_tail(k, n, h, m):
    """P(at least k of the near-replays fall in the submission | k + h near-replays among n + m
    images, n of them submitted): Fisher's one-sided exact test, summed term by term."""
    total = k + h
    return float(Fraction(sum(comb(total, a) * comb(n + m - total, n - a) for a in range(k, min(total, n) + 1)),
                          comb(n + m, n)))


def binomial_upper_tail(k, n, p):
    """Exact, in integers: p = a / b."""
    a, b = Fraction(str(p)).as_integer_ratio()
    below = sum(comb(n, j) * a ** j * (b - a) ** (n - j) for j in range(k))   # total is b ** n
    return float(Fraction(b ** n - below, b ** n))


@pytest.mark.parametrize("k,n,h,m", [(12, 48, 0, 120), (30, 1000, 20, 1000), (5, 2000, 16, 2200),
                                     (150, 10000, 40, 2000), (0, 50, 3, 60)])
def test_fisher_p_value_is_the_exact_hypergeometric_tail(k, n, h, m):
    out = counts_to_near_replay_test(k, n, holdout_near=h, holdout_images=m, rate=0.02)
    assert out["test"] == "fisher" and out["rate"] == pytest.approx(h / m)
    assert out["p_value"] == pytest.approx(hypergeometric_upper_tail(k, n, h, m), rel=1e-9, abs=1e-300)
    assert (out["near_replays"], out["images"], out["holdout_near_replays"], out["holdout_images"]) == (k, n, h, m)


@pytest.mark.parametrize("k,n,p", [(0, 100, 0.02), (5, 100, 0.02), (270, 10000, 0.02), (60, 2200, 0.01)])
def test_binomial_p_value_is_the_exact_binomial_tail(k, n, p):
    out = counts_to_near_replay_test(k, n, rate=p)
    assert out["test"] == "binomial" and out["holdout_images"] is None
    assert out["p_value"] == pytest.approx(binomial_upper_tail(k, n, p), rel=1e-9)


def test_a_memorizer_share_is_decisive_and_an_honest_share_is_not():
    # 2,000 honest images at the worst benchmark corpus's share (0.7%) plus 100 memorizer
    # samples of which 59% are near-replays, against 2,200 held-out images at the same share
    mixed = counts_to_near_replay_test(14 + 59, 2100, holdout_near=16, holdout_images=2200)
    honest = counts_to_near_replay_test(14, 2000, holdout_near=16, holdout_images=2200)
    assert mixed["p_value"] < 1e-6 < honest["p_value"]
    assert honest["p_value"] > 0.5


def test_without_a_reference_or_images_there_is_no_p_value():
    none = counts_to_near_replay_test(3, 10)
    assert none["p_value"] is None and none["test"] is None and "--holdout" in none["note"]
    empty = counts_to_near_replay_test(0, 0, rate=0.02)
    assert empty["p_value"] is None and empty["note"]


@pytest.mark.parametrize("kwargs", [dict(near=11, images=10, rate=0.1), dict(near=-1, images=10, rate=0.1),
                                    dict(near=1, images=10, holdout_near=5, holdout_images=4),
                                    dict(near=1, images=10, rate=0.0), dict(near=1, images=10, rate=1.0)])
def test_impossible_counts_and_rates_are_refused(kwargs):
    with pytest.raises(ValueError):
        counts_to_near_replay_test(**kwargs)


def test_near_replay_indicator():
    low = {"copy": 0.1, "crop": 0.2, "blend": 0.0, "replay": 0.3}
    assert not is_near_replay(low, {"replay_coarse": 0.0}, THRESHOLDS)
    assert not is_near_replay(low, {}, THRESHOLDS)
    assert is_near_replay(low, {"replay_coarse": 0.01}, THRESHOLDS)
    assert is_near_replay({**low, "crop": 0.9}, {"replay_coarse": 0.0}, THRESHOLDS)


def test_the_calibration_counts_near_replays_as_the_audit_does():
    """``gandit calibrate`` bounds the honest share of near-replays that the audit's test
    assumes: its per-image indicator must be the audit's, image for image."""
    from gandit.calibrate.report import SourceScores, near_replay_flags

    rng = np.random.default_rng(0)
    n = 200
    scores = {k: rng.choice([0.0, 0.3, 0.5, 0.7, 0.7, 0.9, 0.95], n) for k in THRESHOLDS}
    coarse = rng.choice([0.0, 0.0, 1e-3, 0.4], n)
    source = SourceScores("s", "honest", [np.zeros((2, 2, 3), np.uint8)] * n, scores, coarse)
    audit = [is_near_replay({k: float(v[i]) for k, v in scores.items()}, {"replay_coarse": float(coarse[i])},
                            THRESHOLDS) for i in range(n)]
    assert near_replay_flags(source, THRESHOLDS).tolist() == audit
    assert 0 < sum(audit) < n


def test_p_values_keep_six_significant_digits_in_the_result():
    cleaned = clean_numbers({"p_value": 9.87654321e-08, "statistic": 9.87654321e-08, "nested": [{"p_value": 0.123456789}]})
    assert cleaned == {"p_value": 9.87654e-08, "statistic": 0.0, "nested": [{"p_value": 0.123457}]}
