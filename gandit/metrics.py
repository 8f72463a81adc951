"""FID and MiFID as the field defines them: feature arrays in, numbers out (no I/O).

FID (Heusel et al., 2017; pytorch-fid's definition) between Gaussians fitted to two feature
sets::

    FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

The trace of the matrix square root is computed from eigendecompositions of symmetric
matrices: ``tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i)`` with ``lambda_i`` the eigenvalues of
``S1^(1/2) S2 S1^(1/2)`` (similar to ``S1 S2``, symmetric positive semi-definite). Unlike
``scipy.linalg.sqrtm`` this never returns complex values for the rank-deficient covariances of
small image sets, and it is several times faster for 2048x2048 matrices.

MiFID, as Kaggle's 2019 *Generative Dog Images* evaluation kernel defined it
(``cosine_distance``, ``distance_thresholding`` and ``fid_epsilon = 10e-15`` there)::

    drop feature rows whose sum is 0
    d_ij  = 1 - |cos(g_i, r_j)|          g: generated, r: training features
    d     = mean_i min_j d_ij            (averaged over *generated* images)
    d_thr = d if d < epsilon else 1      (epsilon = 0.1 in the competition)
    MiFID = FID / (d_thr + 1e-14)

torchmetrics' MiFID averages over real images instead and gives other numbers; it is not the
reference here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Kaggle's ``fid_epsilon = 10e-15``.
MIFID_FID_EPSILON = 1e-14
KAGGLE_MIFID_EPSILON = 0.1


def features_to_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, as ``np.cov(rowvar=False)`` in pytorch-fid), float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature rows of shape (N, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((sigma1 @ sigma2)^(1/2))`` for symmetric PSD matrices, via two ``eigh``."""
    root1 = _sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    middle = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def statistics_to_fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(fid, 0.0))


def features_to_fid(features1: np.ndarray, features2: np.ndarray) -> float:
    return statistics_to_fid(*features_to_statistics(features1), *features_to_statistics(features2))


def _nonzero_unit_rows(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float32)
    f = f[f.sum(axis=1) != 0]  # Kaggle: features[np.sum(features, axis=1) != 0]
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def features_to_max_abs_cosine(generated: np.ndarray, reference: np.ndarray, block: int = 1024) -> np.ndarray:
    """For each non-zero generated row, ``max_j |cos(g_i, r_j)|`` over non-zero reference rows."""
    g, r = _nonzero_unit_rows(generated), _nonzero_unit_rows(reference)
    if len(g) == 0 or len(r) == 0:
        raise ValueError("memorization distance needs at least one non-zero feature row on each side")
    best = np.empty(len(g), dtype=np.float64)
    for start in range(0, len(g), block):
        sims = np.abs(g[start:start + block] @ r.T)
        best[start:start + block] = sims.max(axis=1)
    return np.clip(best, 0.0, 1.0)


def features_to_memorization_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """Kaggle's ``d = mean_i min_j (1 - |cos(g_i, r_j)|)``, over generated images."""
    return float(np.mean(1.0 - features_to_max_abs_cosine(generated, reference)))


@dataclass(frozen=True)
class MiFID:
    mifid: float
    memorization_distance: float
    thresholded_distance: float
    epsilon: float

    @property
    def penalized(self) -> bool:
        """True when the memorization term is active (``d < epsilon``)."""
        return self.memorization_distance < self.epsilon


def fid_to_mifid(fid: float, memorization_distance: float, epsilon: float = KAGGLE_MIFID_EPSILON) -> MiFID:
    """Kaggle's ``distance_thresholding`` and ``fid / (d_thr + fid_epsilon)``."""
    d_thr = memorization_distance if memorization_distance < epsilon else 1.0
    return MiFID(fid / (d_thr + MIFID_FID_EPSILON), memorization_distance, d_thr, epsilon)


#: Bins of per-image nearest-neighbour cosine similarity histograms (pool3 features are
#: non-negative, so similarities lie in [0, 1]).
SIMILARITY_BINS = np.linspace(0.0, 1.0, 51)


def similarities_to_histogram(similarities: np.ndarray, edges: np.ndarray = SIMILARITY_BINS) -> np.ndarray:
    """Counts per bin; values outside ``edges`` go to the first or last bin."""
    values = np.clip(np.asarray(similarities, dtype=np.float64), edges[0], edges[-1])
    counts, _ = np.histogram(values, bins=edges)
    return counts


def similarities_to_reference(similarities: np.ndarray, source: str) -> dict:
    """The honest reference block of result.json (histogram and quantiles)."""
    s = np.asarray(similarities, dtype=np.float64)
    quantiles = {f"p{q}": (float(np.quantile(s, q / 100)) if len(s) else None) for q in (50, 90, 99)}
    quantiles["max"] = float(s.max()) if len(s) else None
    return {"source": source, "images": int(len(s)), "bins": [float(v) for v in SIMILARITY_BINS],
            "counts": [int(c) for c in similarities_to_histogram(s)], "quantiles": quantiles}
