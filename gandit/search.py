"""Nearest neighbours with FAISS: arrays in, ``(scores, indices)`` out, like FAISS's own helpers.

Exact search only (``IndexFlatIP`` / ``IndexFlatL2``, and ``top_inner_products`` where a
query's neighbours must not depend on the batch it is searched in): the candidates it returns
are evidence in a report, and an approximate index could drop the one that matters.
"""

from __future__ import annotations

from collections.abc import Callable

# torch before FAISS: loaded in this order, FAISS's OpenMP calls go to torch's OpenMP runtime, so
# that ``torch.set_num_threads`` bounds both (the forensics run on one thread each); loaded the
# other way round, FAISS keeps a pool of its own, as many threads as cores.
import torch  # noqa: I001
import faiss
import numpy as np


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def knn_cosine(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine similarities (descending) and base indices for each query row."""
    xb, xq = normalize_rows(base), normalize_rows(queries)
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    sims, idx = index.search(xq, min(k, len(xb)))
    return np.clip(sims, -1.0, 1.0), idx


def knn_l2(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k squared L2 distances (ascending) and base indices for each query row."""
    xb = np.ascontiguousarray(base, dtype=np.float32)
    index = faiss.IndexFlatL2(xb.shape[1])
    index.add(xb)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(xb)))


def leave_one_out_cosine(base: np.ndarray) -> np.ndarray:
    """Each row's cosine similarity to its nearest *other* row (``-1`` for a single row).
    A row's own index is skipped even when an exact duplicate ties with it."""
    n = len(base)
    if n < 2:
        return np.full(n, -1.0, dtype=np.float32)
    sims, idx = knn_cosine(base, base, 2)
    own_first = idx[:, 0] == np.arange(n)
    return np.where(own_first, sims[:, 1], sims[:, 0]).astype(np.float32)


#: Queries scored at once by ``top_inner_products`` (bounds its score matrix: 256 x 40,000
#: float32, 41 MB).
QUERY_CHUNK = 256


def top_inner_products(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of ``queries`` (N, d) with the rows of ``base`` (M, d;
    float32, or float64 converted on every call): float32 scores (N, min(k, M)), descending,
    ties by row, and int64 rows.

    Every score is the float64 inner product rounded to float32, so a query's scores (and so
    its neighbours) do not depend on the other queries searched with it. FAISS's exact index
    does not give that: it scores fewer than 128,000 / d queries pair by pair (at d = 768, 150
    queries against 40,000 rows take 1.9 s) and more of them by float32 BLAS, whose last bits
    move with the batch (BENCHMARKS.md run 42), and the forensics search in batches whose sizes
    depend on the submission and the number of workers. Here float32 BLAS only screens: a row
    whose float32 product is within twice that product's error bound (``screen_margin``) of the
    query's k-th largest is scored again in float64, and the ranking is made of those scores.
    No row of the exact top k can fall outside the screen, so the result is the float64
    ranking's, at the cost of a float32 product."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n, m = len(queries), len(base)
    k = min(int(k), m)
    if n == 0 or k <= 0:
        return np.zeros((n, max(k, 0)), np.float32), np.zeros((n, max(k, 0)), np.int64)
    b32 = torch.from_numpy(np.ascontiguousarray(base, dtype=np.float32))
    b64 = np.asarray(base)
    margin = screen_margin(queries, rows_to_max_norm(b32))
    parts = []
    for s0 in range(0, n, QUERY_CHUNK):
        q = queries[s0:s0 + QUERY_CHUNK]
        parts.append(top_k_screened(torch.from_numpy(q) @ b32.T, margin[s0:s0 + QUERY_CHUNK], k,
                                    lambda i, cand, q=q: float64_scores(q[i], b64, cand)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def rows_to_max_norm(rows: torch.Tensor) -> float:
    """The largest L2 norm of float32 ``rows`` (M, d), from float32 sums of squares, raised past
    their rounding error: a bound for ``screen_margin``."""
    if len(rows) == 0:
        return 0.0
    return float(torch.linalg.vector_norm(rows, dim=1).max()) * (1.0 + 4.0 * rows.shape[1] * 2.0 ** -24)


def top_k_screened(scores: torch.Tensor, margin: np.ndarray, k: int,
                   rescore: Callable[[int, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The exact top ``k`` of each query from float32 screen ``scores`` (n, M), each within half
    of ``margin`` (n,) of its exact product: every row within ``margin`` of a query's k-th
    largest screen score is scored again by ``rescore(query, rows)`` (float64, (R,)), and ranked
    by those scores rounded to float32, descending, ties by row. Returns float32 scores and
    int64 rows, (n, k). A row of the exact top k cannot screen lower: the k rows screening
    highest are exactly at least the k-th screen score less half the margin, so the exact k-th
    is too, and a row of the top k screens at most half the margin below its exact score."""
    n = scores.shape[0]
    sims, rows = np.zeros((n, k), np.float32), np.zeros((n, k), np.int64)
    kth = scores.topk(k, dim=1).values[:, -1].numpy().astype(np.float64)
    # the float64 threshold rounded down to float32: the rows screened are the same or more,
    # and the comparison does not promote the whole score matrix to float64
    threshold = np.nextafter((kth - np.asarray(margin, dtype=np.float64)).astype(np.float32), np.float32(-np.inf))
    qi, ri = torch.nonzero(scores >= torch.from_numpy(threshold)[:, None], as_tuple=True)
    qi, ri = qi.numpy(), ri.numpy()
    bounds = np.searchsorted(qi, np.arange(n + 1))
    for i in range(n):
        cand = ri[bounds[i]:bounds[i + 1]]
        s = np.asarray(rescore(i, cand)).astype(np.float32)
        order = np.lexsort((cand, -s))[:k]
        sims[i], rows[i] = s[order], cand[order]
    return sims, rows


#: Rows scored at once by ``float64_scores`` (bounds its float64 copy: 4096 x 768, 25 MB). A query
#: orthogonal to every row (a flat image's descriptor is all zeros) passes every row to it.
RESCORE_ROWS = 4096


def float64_scores(query: np.ndarray, base: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float64 inner products of ``query`` with ``base[rows]``, each summed in one fixed order."""
    q = query.astype(np.float64)
    if not q.any():
        return np.zeros(len(rows))
    out = np.empty(len(rows))
    for s in range(0, len(rows), RESCORE_ROWS):
        out[s:s + RESCORE_ROWS] = np.einsum("ij,j->i", np.asarray(base[rows[s:s + RESCORE_ROWS]], dtype=np.float64), q)
    return out


def screen_margin(queries: np.ndarray, base_norm: float) -> np.ndarray:
    """Per query, twice the bound on how far a float32 inner product with a row of norm at most
    ``base_norm`` (the row converted to float32) is from its float64 value rounded to float32:
    ``γ_d`` (Higham's bound for a d-term sum in any order, fused or not) plus one unit roundoff
    for the row's conversion and one for the rounding of the result, times ``‖q‖ · base_norm``
    (Cauchy-Schwarz on ``Σ|q_j b_j|``), with a factor of 2 to spare. float64 (N,)."""
    d = queries.shape[1]
    u = 2.0 ** -24
    gamma = d * u / (1.0 - d * u)
    qn = np.linalg.norm(queries.astype(np.float64), axis=1)
    return 2.0 * 2.0 * (gamma + 2.0 * u) * qn * base_norm
