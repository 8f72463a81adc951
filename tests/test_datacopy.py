"""C_T (Meehan, Chaudhuri & Dasgupta 2020) on synthetic Gaussians: null, copier, underfitter,
one cell's Z_U recomputed independently, determinism, and the cases where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from gandit.datacopy import (
    ct_statistic,
    distances_to_mann_whitney_u,
    distances_to_zu,
    features_to_cells,
)

D = 64
N_CELLS = 5


def _gaussians(seed, l=2000, n=1000, m=1000, d=D):
    rng = np.random.default_rng(seed)
    return rng, rng.normal(size=(l, d)), rng.normal(size=(n, d)), rng.normal(size=(m, d))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_same_distribution_gives_ct_near_zero(seed):
    _, train, holdout, generated = _gaussians(seed)
    result = ct_statistic(train, holdout, generated, n_cells=N_CELLS, seed=seed)
    assert abs(result.statistic) < 2
    assert result.p_value > 0.01
    assert result.cells_used == result.n_cells == N_CELLS
    assert np.isfinite(result.statistic) and 0.0 <= result.p_value <= 1.0


def test_copier_is_strongly_negative():
    rng, train, holdout, _ = _gaussians(10)
    copied = train[rng.choice(len(train), 1000, replace=False)] + rng.normal(scale=1e-2, size=(1000, D))
    result = ct_statistic(train, holdout, copied, n_cells=N_CELLS)
    assert result.statistic < -5
    assert result.p_value < 1e-6
    assert all(c.z < -5 for c in result.per_cell if c.used)


def test_underfitter_is_positive():
    rng, train, holdout, _ = _gaussians(11)
    blurred = 1.3 * rng.normal(size=(1000, D))  # farther from the training set than fresh data
    result = ct_statistic(train, holdout, blurred, n_cells=N_CELLS)
    assert result.statistic > 5
    assert result.p_value > 0.99


def test_one_cell_matches_an_independent_computation():
    _, train, holdout, generated = _gaussians(12, l=1200, n=600, m=600, d=16)
    generated[:150] = train[:150] + 0.05  # some copying, so Z_U is far from 0 in some cell
    result = ct_statistic(train, holdout, generated, n_cells=4, seed=3)

    centroids = features_to_cells(train, 4, seed=3).astype(np.float64)

    def cell_of(x):
        return ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)

    def nn_dist(x, t):  # brute force, float64
        return np.sqrt(((x[:, None, :] - t[None]) ** 2).sum(-1)).min(1)

    cell = min((c for c in result.per_cell if c.used), key=lambda c: c.z)
    assert cell.z < -2
    t_in = train[cell_of(train) == cell.cell]
    p_d = nn_dist(holdout[cell_of(holdout) == cell.cell], t_in)
    q_d = nn_dist(generated[cell_of(generated) == cell.cell], t_in)
    n, m = len(p_d), len(q_d)
    assert (n, m, len(t_in)) == (cell.n_holdout, cell.n_generated, cell.n_train)
    # the reference: u, _ = mannwhitneyu(LQm, LPn, alternative='less'); generated first
    u = mannwhitneyu(q_d, p_d, alternative="less").statistic
    z = (u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12)
    assert cell.z == pytest.approx(z, abs=1e-9)

    used = [c for c in result.per_cell if c.used]
    w = np.array([c.n_holdout for c in used], float)
    assert result.statistic == pytest.approx((w @ [c.z for c in used]) / w.sum(), abs=1e-12)


def test_u_counts_ties_as_half_and_matches_scipy():
    gen, hold = np.array([0.0, 0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0, 5.0])
    # pairs gen > hold: 1>0, 2>0,2>1,2>1, 3>0,3>1,3>1 = 7; ties: (0,0)x2, (1,1)x2 = 4 -> 7 + 2
    assert distances_to_mann_whitney_u(gen, hold) == 9.0
    assert distances_to_mann_whitney_u(gen, hold) == mannwhitneyu(gen, hold).statistic
    assert distances_to_zu([0.1] * 30, [1.0] * 30) < 0 < distances_to_zu([1.0] * 30, [0.1] * 30)


def test_same_inputs_and_seed_give_identical_results():
    _, train, holdout, generated = _gaussians(13, l=1000, n=500, m=500)
    a = ct_statistic(train, holdout, generated, n_cells=N_CELLS, seed=7)
    b = ct_statistic(train, holdout, generated, n_cells=N_CELLS, seed=7)
    assert a == b
    assert np.array_equal(features_to_cells(train, N_CELLS, 7), features_to_cells(train, N_CELLS, 7))


def test_tau_is_a_strict_fraction_of_generated_samples():
    _, train, holdout, generated = _gaussians(14, l=200, n=100, m=21, d=8)
    # one cell, default tau = 20 / m: 21 generated samples are enough, 20 are not
    assert ct_statistic(train, holdout, generated, n_cells=1).tau == pytest.approx(20 / 21)
    with pytest.raises(ValueError, match="no cell holds more than tau"):
        ct_statistic(train, holdout, generated[:20], n_cells=1)
    result = ct_statistic(train, holdout, generated[:20], n_cells=1, tau=0.5)
    assert result.null_std == 1.0 and result.cells_used == 1


def test_too_few_samples_raise_value_error():
    _, train, holdout, generated = _gaussians(15, l=200, n=100, m=100, d=8)
    with pytest.raises(ValueError, match="no cell holds more than tau"):
        ct_statistic(train, holdout, generated[:15], n_cells=2)
    with pytest.raises(ValueError, match="training rows"):
        ct_statistic(train[:3], holdout, generated, n_cells=5)
    with pytest.raises(ValueError, match="holdout"):
        ct_statistic(train, holdout[:0], generated, n_cells=2)
    with pytest.raises(ValueError, match="widths differ"):
        ct_statistic(train, holdout[:, :4], generated, n_cells=2)
    bad = generated.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ct_statistic(train, holdout, bad, n_cells=2)
    with pytest.raises(ValueError, match="tau"):
        ct_statistic(train, holdout, generated, n_cells=2, tau=1.5)


def test_a_used_cell_without_held_out_samples_raises():
    rng = np.random.default_rng(16)
    a, b = np.zeros(8), np.full(8, 100.0)  # two far-apart clusters -> two cells
    train = np.concatenate([a + rng.normal(size=(100, 8)), b + rng.normal(size=(100, 8))])
    holdout = a + rng.normal(size=(50, 8))  # none near b
    generated = np.concatenate([a + rng.normal(size=(50, 8)), b + rng.normal(size=(50, 8))])
    with pytest.raises(ValueError, match="0 held-out"):
        ct_statistic(train, holdout, generated, n_cells=2)
