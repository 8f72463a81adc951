"""Nearest neighbours with FAISS: arrays in, ``(scores, indices)`` out, like FAISS's own helpers.

Exact search only (``IndexFlatIP`` / ``IndexFlatL2``): the candidates it returns are evidence
in a report, and an approximate index could drop the one that matters.
"""

from __future__ import annotations

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
