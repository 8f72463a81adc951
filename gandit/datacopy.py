"""Meehan, Chaudhuri & Dasgupta's data-copying test C_T (AISTATS 2020): arrays in, numbers out.

"A Non-Parametric Test to Detect Data-Copying in Generative Models" (arXiv:2004.05675); the
definitions below follow the authors' reference code (github.com/casey-meehan/data-copying,
``data_copying_tests.py``: ``Zu``, ``Zu_cells``, ``C_T``; ``moons_experiments.py`` and
``MNIST_kde_test.py`` for the partition and ``tau``). Three samples in one feature space:
``T`` training (l rows), ``P_n`` held-out (n rows, same distribution, unseen by the model),
``Q_m`` generated (m rows)::

    Pi        k-means cells learned on T; every sample goes to its nearest centroid
    L_pi(X)   for x in X in cell pi: Euclidean distance from x to its nearest TRAINING point
              *of the same cell* (the reference fits a 1-NN on T[T_cells == i] per cell)
    U_pi      Mann-Whitney U of L_pi(Q_m) (first sample) against L_pi(P_n):
              #{(q, p): d_q > d_p} + 1/2 #{(q, p): d_q == d_p}  (scipy's U1 of (Q, P))
    Z_U(pi)   (U_pi - (n_pi m_pi / 2 - 0.5)) / sqrt(n_pi m_pi (n_pi + m_pi + 1) / 12)
    Pi_tau    cells with Q_m(pi) = m_pi / m  >  tau  (strict, a fraction; default 20 / m)
    C_T       sum_{Pi_tau} P_n(pi) Z_U(pi) / sum_{Pi_tau} P_n(pi),   P_n(pi) = n_pi / n

Sign: generated samples closer to the training set than held-out samples make U small, so
**C_T << 0 means data-copying**; C_T >> 0 means underfitting (generated samples farther
from the training set than fresh data); C_T ~ 0 under the null ``L(Q_m) ~ L(P_n)``.

Ties and the normal approximation, as in the reference: ties between a generated and a
held-out distance count 1/2 in U (mid-ranks); the standard deviation has *no* tie correction;
the mean carries a continuity correction of -0.5 (the reference's ``mean = n*m/2 - 0.5``),
i.e. Z_U = (U + 0.5 - nm/2) / sigma_U, the lower-tail corrected z. Distances are continuous,
so ties only occur for exact duplicates (e.g. two copies of one training image at distance 0
- within one group, which leaves U unchanged).

p-value (one-sided, alternative "generated samples are closer to T than held-out samples"):
under the null each Z_U(pi) is approximately N(0, 1), and given the cell memberships the
cells use disjoint samples (and disjoint training points, since distances are taken within a
cell), so they are independent. C_T, a weighted average with weights w = P_n(pi) over Pi_tau,
is then approximately N(0, s^2) with ``s = sqrt(sum w^2) / sum w`` (s = 1 for one cell), and
``p = Phi(C_T / s)``. Treating C_T itself as N(0, 1) (``Phi(C_T)``) would be conservative.

When the test cannot be computed this module raises ``ValueError`` with the reason (never a
NaN, never ``None``): inputs that are not finite 2-D arrays of one width, fewer training rows
than cells, an empty held-out or generated set, no cell with generated mass above tau, or a
cell of Pi_tau without held-out or training samples (the reference raises for that too; use
fewer cells or a larger held-out set). Callers that report ``"statistic": null`` catch it.

Nearest neighbours: FAISS exact ``IndexFlatL2`` finds each sample's nearest training point in
its cell; the distance to that point is then recomputed in float64 (FAISS's float32
``|x|^2 + |y|^2 - 2 x.y`` loses the small distances of near-copies to cancellation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch  # noqa: I001  (before FAISS: see gandit.search)
import faiss
import numpy as np
from scipy.stats import norm, rankdata

from gandit.search import knn_l2

#: Generated samples a cell needs (strictly more than) in the reference experiments: tau = 20 / m.
REFERENCE_MIN_GENERATED_PER_CELL = 20
DEFAULT_N_CELLS = 10
KMEANS_ITERATIONS = 25


@dataclass(frozen=True)
class CellZ:
    """One cell of the partition: sample counts and its Z_U (None where it is undefined)."""

    cell: int
    n_train: int
    n_holdout: int
    n_generated: int
    z: float | None  # None when the cell has no generated, held-out or training sample
    used: bool  # in Pi_tau (generated fraction > tau), so part of C_T


@dataclass(frozen=True)
class CTResult:
    statistic: float  # C_T; << 0: data-copying, >> 0: underfitting
    p_value: float  # one-sided, P(C_T this low | no copying), normal approximation
    cells_used: int  # |Pi_tau|
    n_cells: int
    tau: float  # the generated-fraction threshold actually applied (strict >)
    null_std: float  # s: standard deviation of C_T under the null
    per_cell: tuple[CellZ, ...] | None = None


def _as_features(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise ValueError(f"{name} must hold finite numbers")
    return x


def features_to_cells(train: np.ndarray, n_cells: int, seed: int = 0) -> np.ndarray:
    """Centroids (n_cells, D), float32, of a k-means partition of the training features.

    FAISS k-means, k-means++ initialisation (as scikit-learn's ``KMeans`` in the reference),
    fixed seed: the same inputs give the same centroids.
    """
    x = np.ascontiguousarray(_as_features("train", train), dtype=np.float32)
    if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    if x.shape[0] < n_cells:
        raise ValueError(f"need at least n_cells={n_cells} training rows, got {x.shape[0]}")
    kmeans = faiss.Kmeans(
        x.shape[1], int(n_cells), niter=KMEANS_ITERATIONS, seed=int(seed), verbose=False,
        min_points_per_centroid=1, init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS,
    )
    kmeans.train(x)
    return np.array(kmeans.centroids, dtype=np.float32)


def features_to_cell_labels(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of each row, int64."""
    _, idx = knn_l2(features, centroids, 1)
    return idx[:, 0].astype(np.int64)


def features_to_nn_distances(queries: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query row to its nearest training row, float64."""
    _, idx = knn_l2(queries, train, 1)
    diff = np.asarray(queries, np.float64) - np.asarray(train, np.float64)[idx[:, 0]]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def distances_to_mann_whitney_u(generated: np.ndarray, holdout: np.ndarray) -> float:
    """U of the generated distances: #{d_gen > d_hold} + #{ties} / 2 (scipy's U1 of (gen, hold))."""
    g, h = np.ravel(generated), np.ravel(holdout)
    ranks = rankdata(np.concatenate([g, h]))  # mid-ranks for ties
    return float(ranks[: g.size].sum() - g.size * (g.size + 1) / 2.0)


def distances_to_zu(generated: np.ndarray, holdout: np.ndarray) -> float:
    """The reference's Z-scored U: (U - (nm/2 - 0.5)) / sqrt(nm(n+m+1)/12); < 0: generated closer."""
    m, n = np.size(generated), np.size(holdout)
    if m == 0 or n == 0:
        raise ValueError(f"Z_U needs generated and held-out distances, got m={m}, n={n}")
    u = distances_to_mann_whitney_u(generated, holdout)
    mean = n * m / 2.0 - 0.5  # continuity correction, as in the reference
    std = np.sqrt(n * m * (n + m + 1) / 12.0)
    return float((u - mean) / std)


def ct_statistic(
    train: np.ndarray,
    holdout: np.ndarray,
    generated: np.ndarray,
    n_cells: int = DEFAULT_N_CELLS,
    tau: float | None = None,
    seed: int = 0,
) -> CTResult:
    """C_T(P_n, Q_m) of ``generated`` against ``holdout`` relative to ``train`` (module docstring).

    ``tau`` is a fraction of the generated samples; a cell enters C_T when its generated
    fraction is strictly greater (``Q_m(pi) > tau``). ``None`` means the reference's
    ``20 / m``: cells with more than 20 generated samples. Raises ``ValueError`` when the test
    cannot be computed.
    """
    train = _as_features("train", train)
    holdout = _as_features("holdout", holdout)
    generated = _as_features("generated", generated)
    widths = {train.shape[1], holdout.shape[1], generated.shape[1]}
    if len(widths) != 1:
        raise ValueError(
            f"feature widths differ: train {train.shape[1]}, holdout {holdout.shape[1]}, "
            f"generated {generated.shape[1]}"
        )
    n, m = holdout.shape[0], generated.shape[0]
    if tau is not None and not 0.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau is a fraction of the generated samples in [0, 1], got {tau}")
    tau = REFERENCE_MIN_GENERATED_PER_CELL / m if tau is None else float(tau)

    centroids = features_to_cells(train, n_cells, seed)
    k = centroids.shape[0]
    t_cells = features_to_cell_labels(train, centroids)
    p_cells = features_to_cell_labels(holdout, centroids)
    q_cells = features_to_cell_labels(generated, centroids)
    t_counts = np.bincount(t_cells, minlength=k)
    p_counts = np.bincount(p_cells, minlength=k)
    q_counts = np.bincount(q_cells, minlength=k)
    in_pi_tau = q_counts / m > tau
    if not in_pi_tau.any():
        raise ValueError(
            f"no cell holds more than tau={tau:.4g} of the {m} generated samples (more than "
            f"{tau * m:.4g}; largest cell: {q_counts.max()}); use fewer cells, a smaller tau or more samples"
        )

    cells = []
    for i in range(k):
        z = None
        if q_counts[i] and p_counts[i] and t_counts[i]:
            cell_train = train[t_cells == i]
            z = distances_to_zu(
                features_to_nn_distances(generated[q_cells == i], cell_train),
                features_to_nn_distances(holdout[p_cells == i], cell_train),
            )
        elif in_pi_tau[i]:
            raise ValueError(
                f"cell {i} holds {q_counts[i]} generated samples but {p_counts[i]} held-out and "
                f"{t_counts[i]} training samples; use fewer cells or a larger held-out set"
            )
        cells.append(CellZ(i, int(t_counts[i]), int(p_counts[i]), int(q_counts[i]), z, bool(in_pi_tau[i])))

    weights = p_counts[in_pi_tau] / n
    zs = np.array([c.z for c in cells if c.used], dtype=np.float64)
    statistic = float(weights @ zs / weights.sum())
    null_std = float(np.sqrt((weights**2).sum()) / weights.sum())
    return CTResult(
        statistic=statistic,
        p_value=float(norm.cdf(statistic / null_std)),
        cells_used=int(in_pi_tau.sum()),
        n_cells=k,
        tau=tau,
        null_std=null_std,
        per_cell=tuple(cells),
    )
