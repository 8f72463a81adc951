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


def test_a_query_orthogonal_to_every_row_gets_the_first_rows_without_a_copy_per_row(monkeypatch):
    # a flat image's descriptor is all zeros: every row ties at 0 and passes the screen; they
    # are ranked by row, a bounded block at a time (run 43: such residual queries once asked
    # for a 34 GB float64 array)
    import gandit.search as search

    monkeypatch.setattr(search, "RESCORE_ROWS", 100)
    rng = np.random.default_rng(3)
    base = rng.standard_normal((1000, 64)).astype(np.float32)
    base[::3] = 0.0
    q = np.zeros((3, 64), np.float32)
    q[1] = base[7]
    q[2, 0] = 1e-30                   # tiny, not zero: every row of zeros ties at its k-th score
    want_s, want_r = reference(q, base, 5)
    got_s, got_r = top_inner_products(q, base, 5)
    np.testing.assert_array_equal(got_r, want_r)
    np.testing.assert_array_equal(got_s, want_s)
    assert got_r[0].tolist() == [0, 1, 2, 3, 4] and not got_s[0].any()


def test_the_float64_scoring_of_many_tied_rows_takes_bounded_memory():
    import tracemalloc

    base = np.zeros((100_000, 64), np.float32)       # 26 MB; in float64 pairs, 51 MB per copy
    base[50_000] = 1.0
    q = np.zeros((2, 64), np.float32)
    q[1, 0] = -1e-30                                  # every zero row ties above row 50,000
    tracemalloc.start()
    try:
        s, r = top_inner_products(q, base, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.tolist() == [[0, 1, 2], [0, 1, 2]] and not s.any()
    assert peak < 16 * 2**20, peak
