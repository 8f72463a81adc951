"""Nearest neighbours with FAISS: arrays in, ``(scores, indices)`` out, like FAISS's own helpers.

Exact search only (``IndexFlatIP`` / ``IndexFlatL2``, and ``top_inner_products`` where a
query's neighbours must not depend on the batch it is searched in): the candidates it returns
are evidence in a report, and an approximate index could drop the one that matters.
"""

from __future__ import annotations

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
    float64, or converted on every call): float32 scores (N, min(k, M)), descending, ties by
    row, and int64 rows.

    Accumulated in float64, rounded to float32: a query's scores (and so its neighbours) do not
    depend on the other queries searched with it. FAISS's exact index does not give that: it
    scores fewer than 128,000 / d queries pair by pair (at d = 768, 150 queries against 40,000
    rows take 1.9 s, five times this) and more of them by float32 BLAS, whose last bits move
    with the batch (BENCHMARKS.md run 42), and the forensics search in batches whose sizes
    depend on the submission and the number of workers."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n, m = len(queries), len(base)
    k = min(int(k), m)
    sims, rows = np.zeros((n, max(k, 0)), np.float32), np.zeros((n, max(k, 0)), np.int64)
    if n == 0 or k <= 0:
        return sims, rows
    b = torch.from_numpy(np.ascontiguousarray(base, dtype=np.float64))
    for s0 in range(0, n, QUERY_CHUNK):
        scores = (torch.from_numpy(queries[s0:s0 + QUERY_CHUNK]).double() @ b.T).float()
        kth = scores.topk(k, dim=1).values[:, -1].numpy()       # each query's k-th largest
        scores = scores.numpy()
        for i in range(len(scores)):
            cand = np.flatnonzero(scores[i] >= kth[i])          # the k best, and any ties
            order = cand[np.lexsort((cand, -scores[i, cand]))[:k]]
            sims[s0 + i], rows[s0 + i] = scores[i, order], order
    return sims, rows
