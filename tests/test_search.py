"""Exact top-k inner products (``gandit.search.top_inner_products``), checked against numpy in
float64: the same neighbours in the same order, ties by row, and a query's results the same
whatever it is searched with."""

import numpy as np

from gandit.search import top_inner_products


def reference(q, base, k):
    s = q.astype(np.float64) @ base.astype(np.float64).T
    order = np.lexsort((np.broadcast_to(np.arange(len(base)), s.shape), -s.astype(np.float32)), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1).astype(np.float32), order


def test_top_inner_products_are_numpys_float64_ranking_ties_by_row():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3000, 96)).astype(np.float32)
    base[2000:2010] = base[5]                  # exact duplicates of row 5: tied, listed by row
    q = rng.standard_normal((40, 96)).astype(np.float32)
    q[7] = base[5]
    want_s, want_r = reference(q, base, 12)
    got_s, got_r = top_inner_products(q, base.astype(np.float64), 12)
    np.testing.assert_array_equal(got_r, want_r)
    np.testing.assert_allclose(got_s, want_s, rtol=1e-6)
    assert got_r[7, :11].tolist() == [5] + list(range(2000, 2010)) and got_s.dtype == np.float32
    # k beyond the base, an empty query set
    s, r = top_inner_products(q[:2], base[:5], 9)
    assert s.shape == r.shape == (2, 5) and sorted(r[0]) == [0, 1, 2, 3, 4]
    s, r = top_inner_products(q[:0], base, 3)
    assert s.shape == r.shape == (0, 3)


def test_a_querys_neighbours_do_not_depend_on_the_batch_it_is_searched_in():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((5000, 768)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    q = rng.standard_normal((300, 768)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    base64 = base.astype(np.float64)
    all_s, all_r = top_inner_products(q, base64, 10)        # 300 queries: two chunks
    for size in (1, 7, 150):
        for a in range(0, 300, size):
            s, r = top_inner_products(q[a:a + size], base64, 10)
            np.testing.assert_array_equal(s, all_s[a:a + size])
            np.testing.assert_array_equal(r, all_r[a:a + size])


def test_rows_closer_than_float32_products_resolve_are_ranked_as_float64_ranks_them():
    # 2,000 rows whose products with the query are 1e-7 apart, each with a large part
    # orthogonal to the query: float32 products of them err by ~1e-5, so a float32 ranking
    # scrambles them; the screen must pass every row that could be in the top k to the
    # float64 scoring, and the ranking be float64's
    rng = np.random.default_rng(2)
    d = 768
    q = rng.standard_normal(d)
    q /= np.linalg.norm(q)
    other = rng.standard_normal((2000, d)) * 10.0
    other -= (other @ q)[:, None] * q[None]
    base = (0.5 + 1e-7 * rng.permutation(2000))[:, None] * q[None] + other
    base = np.concatenate([base, 0.01 * rng.standard_normal((3000, d))]).astype(np.float32)
    qs = q[None].astype(np.float32)
    want_s, want_r = reference(qs, base, 50)
    got_s, got_r = top_inner_products(qs, base, 50)
    np.testing.assert_array_equal(got_r, want_r)
    np.testing.assert_array_equal(got_s, want_s)
    plain = np.argsort(-(qs @ base.T)[0], kind="stable")[:50]     # what float32 alone ranks
    assert plain.tolist() != want_r[0].tolist()
