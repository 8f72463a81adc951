"""FID against closed forms and scipy's sqrtm, MiFID against hand-computed Kaggle values,
and statistics files in pytorch-fid's layout."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gandit.errors import StatsError
from gandit.metrics import (
    features_to_fid,
    features_to_memorization_distance,
    features_to_statistics,
    fid_to_mifid,
    statistics_to_fid,
    trace_sqrt_product,
)
from gandit.statsfile import load_stats, save_stats


def _random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / (rank or d)


def test_fid_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=16), _random_spd(rng, 16)
    assert statistics_to_fid(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_diagonal_gaussians_matches_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    expected = 1 + 0 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # = 5 + 1 + 1 + 1
    assert expected == 8.0
    assert statistics_to_fid(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(8.0, abs=1e-12)


@pytest.mark.parametrize("d,rank", [(8, None), (64, None), (64, 20)])
def test_trace_sqrt_matches_scipy_sqrtm(d, rank):
    rng = np.random.default_rng(d + (rank or 0))
    s1, s2 = _random_spd(rng, d, rank), _random_spd(rng, d)
    reference = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(reference, rel=1e-7, abs=1e-8)


def test_fid_on_features_matches_pytorch_fid_formula():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(7)
    f1, f2 = rng.normal(size=(300, 32)), rng.normal(0.3, 1.2, size=(250, 32))
    mu1, s1 = features_to_statistics(f1)
    mu2, s2 = features_to_statistics(f2)
    assert features_to_fid(f1, f2) == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2), abs=1e-6)


def test_memorization_distance_by_hand():
    """Kaggle: d_ij = 1 - |cos|, min over training rows, mean over generated rows; rows whose
    sum is 0 are dropped before anything else."""
    gen = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])        # last row dropped
    ref = np.array([[1.0, 0.0], [0.0, 0.0], [-3.0, 4.0]])       # middle row dropped
    # g0: |cos| with (1,0) = 1 -> d 0; g1 = (1,1)/sqrt2: |cos| with (1,0) = .7071, with (-3,4)/5 = .1414 -> d .2929
    expected = (0.0 + (1 - 1 / np.sqrt(2))) / 2
    assert features_to_memorization_distance(gen, ref) == pytest.approx(expected, abs=1e-7)


def test_memorization_distance_uses_absolute_cosine():
    gen, ref = np.array([[1.0, 2.0]]), np.array([[-1.0, -2.0]])
    assert features_to_memorization_distance(gen, ref) == pytest.approx(0.0, abs=1e-7)


def test_memorization_distance_averages_over_generated_images_not_real_ones():
    """torchmetrics averages per real image; Kaggle per generated image. Three generated
    copies of one real image among many real ones: Kaggle's d is 0."""
    ref = np.eye(4)
    gen = np.array([[1.0, 0, 0, 0]] * 3)
    assert features_to_memorization_distance(gen, ref) == pytest.approx(0.0, abs=1e-7)
    assert features_to_memorization_distance(ref, gen) == pytest.approx(0.75, abs=1e-7)  # the other direction


@pytest.mark.parametrize("fid,d,eps,mifid,penalized", [
    (50.0, 0.05, 0.1, 50.0 / (0.05 + 1e-14), True),    # copies: the term divides by d
    (50.0, 0.2, 0.1, 50.0 / (1 + 1e-14), False),       # above epsilon: d_thr = 1
    (50.0, 0.1, 0.1, 50.0 / (1 + 1e-14), False),       # d == epsilon is not < epsilon
    (0.0, 0.0, 0.1, 0.0, True),
])
def test_mifid_thresholding(fid, d, eps, mifid, penalized):
    out = fid_to_mifid(fid, d, eps)
    assert out.mifid == pytest.approx(mifid, rel=1e-12)
    assert out.penalized is penalized


def test_stats_npz_round_trip_in_pytorch_fid_layout(tmp_path):
    rng = np.random.default_rng(3)
    mu, sigma = rng.normal(size=5), _random_spd(rng, 5)
    path = tmp_path / "ref.npz"
    save_stats(path, mu, sigma)
    with np.load(path) as data:  # what pytorch-fid reads: f['mu'][:], f['sigma'][:]
        assert set(data.files) == {"mu", "sigma"}
        np.testing.assert_array_equal(data["mu"], mu)
    mu2, sigma2 = load_stats(path)
    np.testing.assert_array_equal(sigma2, sigma)
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]  # no temporary file left


@pytest.mark.parametrize("content,fragment", [(b"garbage", "cannot read"), (None, "no 'sigma'")])
def test_bad_stats_file_is_a_one_line_error(tmp_path, content, fragment):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, mu=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(StatsError) as err:
        load_stats(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)
