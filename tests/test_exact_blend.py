"""Exact blends: an image that *is* the rounded mix of two exact training images, value for
value (``blend.exact_pair_to_blend``), with the weight found by an interval sweep
(``blend.exact_weight``). Ground truth is the recipe each image is built with here; the
weight search is checked against a brute-force scan."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data as sd
from PIL import Image

from gandit.dataset import preprocess
from gandit.forensics.blend import (EXACT_MIN_GAIN, EXACT_MIN_SHARE, EXACT_PREFILTER_STEP, EXACT_SEARCH_MAX_WEIGHT,
                                    MIN_WEIGHT, exact_pair_to_blend, exact_weight, second_source_candidates,
                                    second_source_possible, sources_to_blend)

SIZE = (64, 64)


def rgb(x):
    return np.stack([x] * 3, axis=-1) if x.ndim == 2 else x[..., :3]


@pytest.fixture(scope="module")
def pictures():
    """Preprocessed 64x64 training images, and low-contrast versions of some (a faint 0.01
    source whose part sits below the uint8 rounding)."""
    src = [sd.astronaut(), sd.chelsea(), sd.coffee(), sd.rocket(), rgb(sd.camera()), sd.immunohistochemistry(),
           rgb(sd.moon()), rgb(sd.brick()), rgb(sd.grass()), rgb(sd.coins()), sd.retina(), rgb(sd.clock())]
    full = [preprocess(s, "center-crop", SIZE) for s in src]
    flat = []
    others = [sd.hubble_deep_field(), sd.cat(), rgb(sd.gravel()), sd.colorwheel(), rgb(sd.text()), rgb(sd.page())]
    for im in (preprocess(s, "center-crop", SIZE) for s in others):   # contrast cut to ~1/8 around mid grey
        x = im.astype(np.float64)
        flat.append(np.clip(np.round(128 + (x - x.mean()) / 8), 0, 255).astype(np.uint8))
    return np.stack(full + flat)


def holds(t, d, e, offset, tol=1e-6):
    """Where ``floor(t * e + offset) == d``, a value within ``tol`` of halfway counting either way."""
    x = t * e + offset
    return (x >= d - tol) & (x <= d + 1 + tol)


def test_exact_weight_is_the_best_weight_a_brute_force_scan_finds():
    rng = np.random.default_rng(3)
    for _ in range(12):
        e = rng.integers(-255, 256, 400)
        t_true = float(rng.choice([0.01, 0.02, 0.05, 0.1, 0.3, rng.uniform(0.01, 0.99)]))
        offset = float(rng.choice([0.5, 0.0]))
        d = np.floor(t_true * e + offset).astype(np.int64)
        wrong = rng.random(400) < 0.15                 # 15% of values made wrong
        d[wrong] += rng.choice([-1, 1], int(wrong.sum()))
        count, t = exact_weight(d, e, offset)
        assert MIN_WEIGHT <= t <= 1.0 - MIN_WEIGHT
        # the weight returned reproduces the count claimed ...
        assert int(holds(t, d, e, offset).sum()) == count
        # ... and no weight of a fine scan (nor the true one) reproduces more
        grid = np.concatenate([np.linspace(MIN_WEIGHT, 1 - MIN_WEIGHT, 20001), [t_true]])
        assert count >= max(int(holds(g, d, e, offset, 0.0).sum()) for g in grid)
        assert count >= int((~wrong).sum())


def test_exact_weight_counts_halfway_values_either_way():
    # 0.7 * a + 0.3 * b: (7a + 3b) mod 10 == 5 values are halfway; np.round sends them to even
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 256, 5000), rng.integers(0, 256, 5000)
    q = np.round(0.7 * a + 0.3 * b).astype(np.int64)
    halfway = np.mean((7 * a + 3 * b) % 10 == 5)
    assert halfway > 0.05
    count, t = exact_weight(q - a, b - a, 0.5)
    assert count == len(a)
    assert t == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize("rounding", ["round", "floor"])
def test_faint_low_contrast_sources_of_exact_blends_are_named_with_their_weights(pictures, rounding):
    """0.99/0.01 blends whose 0.01 source is a low-contrast picture: least squares leaves it
    out (its part is below the rounding), the exact test names it, with w = 0.99 exactly;
    rounded to nearest or truncated."""
    m = len(pictures)
    faint = range(m - 6, m)
    f = np.round if rounding == "round" else np.floor
    named, nnls_named = 0, 0
    cases = [(a, b) for a in range(6) for b in faint if b - (m - 6) != a]
    for a, b in cases:
        q = f(0.99 * pictures[a].astype(np.float64) + 0.01 * pictures[b]).astype(np.uint8)
        others = [j for j in range(m) if j not in (a, b)]
        cols = [a, b] + others
        fit = exact_pair_to_blend(q, pictures[cols], np.array(cols))
        assert fit is not None, (a, b)
        assert (cols[fit.main], cols[fit.second]) == (a, b)
        assert fit.weight == pytest.approx(0.99, abs=2e-3)
        # truncated: where a == b, 0.99*a + 0.01*a can fall a hair below a in floating point
        assert fit.share == 1.0 if rounding == "round" else fit.share > 0.999
        named += 1
        ls = sources_to_blend(q / 255.0, pictures[cols] / 255.0, np.array(cols))
        nnls_named += set(ls.photos) == {a, b}
    assert named == len(cases)
    assert nnls_named < named     # what the exact test adds (least squares misses some)


def test_weights_of_exact_blends_are_recovered(pictures):
    for w in (0.99, 0.9, 0.7, 0.6):
        q = np.round(w * pictures[0].astype(np.float64) + (1 - w) * pictures[3]).astype(np.uint8)
        fit = exact_pair_to_blend(q, pictures, np.arange(len(pictures)))
        assert (fit.main, fit.second) == (0, 3)
        assert fit.weight == pytest.approx(w, abs=1e-3)
        np.testing.assert_allclose(fit.fit * 255, w * pictures[0] + (1 - w) * pictures[3].astype(np.float64),
                                   atol=0.3)


def test_copies_and_honest_images_are_never_exact_blends(pictures):
    """A copy resized through another filter is within a level of its source almost everywhere,
    an exact copy equals it, a JPEG-saved blend is not its own rounding: none is named a
    blend, whatever other sources are offered; nor is a picture that is not in the set."""
    m = len(pictures)
    srcs = [sd.astronaut(), sd.chelsea(), sd.coffee(), sd.rocket(), rgb(sd.camera()), sd.immunohistochemistry()]
    for i, s in enumerate(srcs):
        big = preprocess(s, "center-crop", (256, 256))
        for f in (Image.Resampling.LANCZOS, Image.Resampling.BICUBIC, Image.Resampling.BOX):
            copy = np.asarray(Image.fromarray(big).resize(SIZE, f))
            assert exact_pair_to_blend(copy, pictures, np.arange(m)) is None
        assert exact_pair_to_blend(pictures[i].copy(), pictures, np.arange(m)) is None
    honest = preprocess(rgb(sd.cell()), "center-crop", SIZE)
    assert exact_pair_to_blend(honest, pictures, np.arange(m)) is None
    # the share rule: a blend with 2% of its values disturbed by ±1 is still a blend, 5% is not
    q = np.round(0.99 * pictures[1].astype(np.float64) + 0.01 * pictures[4]).astype(np.int64)
    rng = np.random.default_rng(0)
    for frac, expect in ((1 - EXACT_MIN_SHARE) / 2, True), (0.05, False):
        noisy = q.copy().reshape(-1)
        idx = rng.choice(noisy.size, int(frac * noisy.size), replace=False)
        noisy[idx] = np.clip(noisy[idx] + rng.choice([-1, 1], len(idx)), 0, 255)
        fit = exact_pair_to_blend(noisy.reshape(q.shape).astype(np.uint8), pictures, np.arange(m))
        assert (fit is not None) == expect, frac


def test_the_prefilter_skips_only_pairs_that_cannot_count(pictures):
    """The count on every ``EXACT_PREFILTER_STEP``-th value skips a candidate only when no weight
    can reproduce ``EXACT_MIN_SHARE`` of all values. At the rule's edge, with every wrong value
    on the prefilter's own samples (where its bound is tight): a blend with ``wrong`` values
    changed by one level reproduces all but those, and counts exactly when they are few enough."""
    m = len(pictures)
    q = np.round(0.99 * pictures[1].astype(np.float64) + 0.01 * pictures[4]).astype(np.int64).reshape(-1)
    n = q.size
    misses = n - int(np.ceil(EXACT_MIN_SHARE * n))
    e = (pictures[4].astype(np.int64) - pictures[1]).reshape(-1)
    # on the prefilter's samples, values whose mix is not near halfway (a change of one level
    # there is wrong at any weight near the true one)
    x = 0.01 * e + 0.5
    spots = np.flatnonzero((np.arange(n) % EXACT_PREFILTER_STEP == 0) & (np.abs(x - np.round(x)) > 0.2))
    rng = np.random.default_rng(5)
    for wrong in range(misses - 3, misses + 4):
        noisy = q.copy()
        idx = rng.choice(spots, wrong, replace=False)
        noisy[idx] = np.clip(noisy[idx] + rng.choice([-1, 1], wrong), 0, 255)
        fit = exact_pair_to_blend(noisy.reshape(pictures[1].shape).astype(np.uint8), pictures, np.arange(m))
        assert (fit is not None) == (wrong <= misses), wrong
        if fit is not None:
            assert (fit.main, fit.second, fit.share) == (1, 4, (n - wrong) / n)
            assert fit.weight == pytest.approx(0.99, abs=2e-3)


def test_no_second_source_is_searched_for_where_none_of_a_cheaters_weights_could_count(pictures):
    """The search over every photo is skipped where no second source of weight ≤
    ``EXACT_SEARCH_MAX_WEIGHT`` could make a counted pair: the main source leaves fewer than
    ``EXACT_MIN_GAIN`` values wrong, or more than 1 - ``EXACT_MIN_SHARE`` of them further than such
    a weight reaches. Just inside both bounds, pairs are found and the search runs."""
    m = len(pictures)
    a, b = pictures[2].astype(np.float64), pictures[5].astype(np.float64)
    copy = pictures[2].copy()
    assert not second_source_possible(copy, pictures[2])
    almost = copy.reshape(-1).copy()
    almost[:EXACT_MIN_GAIN - 1] ^= 1                   # EXACT_MIN_GAIN - 1 values off by one
    assert not second_source_possible(almost.reshape(copy.shape), pictures[2])
    for w in (0.99, 0.7, 1 - EXACT_SEARCH_MAX_WEIGHT):
        blend = np.round(w * a + (1 - w) * b).astype(np.uint8)
        assert second_source_possible(blend, pictures[2]), w
        fit = exact_pair_to_blend(blend, pictures, np.arange(m))
        assert (fit.main, fit.second) == (2, 5) and fit.weight == pytest.approx(w, abs=2e-3)
    # another picture, and a faint blend with 2% of its values pushed out of such a source's reach
    assert not second_source_possible(pictures[0], pictures[2])
    far = np.round(0.99 * a + 0.01 * b).reshape(-1)
    far[::50] = np.where(far[::50] > 127, 0, 255)
    assert not second_source_possible(far.reshape(a.shape).astype(np.uint8), pictures[2])
    assert exact_pair_to_blend(far.reshape(a.shape).astype(np.uint8), pictures, np.arange(m)) is None


def test_second_source_search_ranks_every_photo_by_least_squares(pictures):
    """``second_source_candidates`` against a direct computation: for what the main source
    leaves of each image (every other pixel), each photo's best variant ranked by the squared
    error its least-squares multiple removes (rounded or truncated target); the faint
    low-contrast source of an exact 0.99/0.01 blend is among the first eight, where the exact
    test names it (low-contrast pictures all look alike to least squares; on a benchmark corpus
    of 1,600 photos the faint source ranked in the first eight for 148 of 150 blends)."""
    m = len(pictures)
    px = np.stack([pictures, pictures[:, :, ::-1]], axis=1)          # two "variants" per photo
    faint = list(range(m - 6, m))
    queries, mains, exclude, truth = [], [], [], []
    for a, b in [(0, faint[1]), (2, faint[4]), (5, faint[0]), (1, 3)]:
        queries.append(np.round(0.99 * pictures[a].astype(np.float64) + 0.01 * pictures[b]).astype(np.uint8))
        mains.append(pictures[a])
        exclude.append(a)
        truth.append(b)
    found = second_source_candidates(np.stack(queries), np.stack(mains), px, np.array(exclude), k=8)
    for f, q, a, b in zip(found, queries, exclude, truth):
        d = (q[::2, ::2].astype(np.float64) - pictures[a][::2, ::2]).ravel()
        d -= d.mean()
        gains = {}
        for p in range(m):
            if p == a:
                continue
            for v in range(2):
                e = (px[p, v][::2, ::2].astype(np.float64) - pictures[a][::2, ::2]).ravel()
                e -= e.mean()
                if d @ e > 0:
                    gains[(p, v)] = (d @ e) ** 2 / (e @ e)
        best = {}
        for (p, v), g in sorted(gains.items(), key=lambda t: (-t[1], t[0])):
            best.setdefault(p, (p, v))
        assert f == list(best.values())[:8]
        # the exact test over the main source and these candidates names the blend
        cols = [(a, 0)] + f
        fit = exact_pair_to_blend(q, np.stack([px[p, v] for p, v in cols]), np.array([p for p, _ in cols]))
        assert cols[fit.second][0] == b and fit.weight == pytest.approx(0.99, abs=2e-3)


def test_least_squares_gains_are_exact_and_do_not_depend_on_the_batch():
    """The products behind the second-source ranking are exact integers (float32 products of
    4-bit digits up to ``FLOAT32_EXACT_TERMS`` values, float64 beyond), checked against int64
    arithmetic at the extremes of uint8 images and their differences; and each gain is the same
    to the last bit whether its query and candidate are ranked alone or among others, and equal
    for equal candidates (duplicated training photos tie exactly, then rank by row)."""
    from gandit.forensics.blend import (FLOAT32_EXACT_TERMS, integer_products, least_squares_gains,
                                        pixels_to_search_sums, subsample)

    rng = np.random.default_rng(41)
    for n in (3072, FLOAT32_EXACT_TERMS, FLOAT32_EXACT_TERMS + 1, 12288):
        c = rng.integers(0, 256, (40, n))
        c[0], c[1] = 255, 0
        x = rng.integers(-255, 256, (6, n))
        x[0], x[1] = 255, -255
        want = c.astype(np.int64) @ x.astype(np.int64).T
        got = integer_products(c.astype(np.float64), x.astype(np.float64))
        assert got.dtype == np.float64 and np.array_equal(got, want.astype(np.float64)), n
    # gains: every query with every candidate at once, and each pair alone
    q = rng.integers(0, 256, (5, 3072)).astype(np.float64)
    a = rng.integers(0, 256, (5, 3072)).astype(np.float64)
    c = rng.integers(0, 256, (30, 3072)).astype(np.float64)
    c[7] = c[3]
    d = q - a
    full = least_squares_gains(d, a, c)
    for i in range(5):
        for r in (0, 3, 7, 29):
            assert least_squares_gains(d[i:i + 1], a[i:i + 1], c[r:r + 1])[0, 0] == full[i, r]
        assert full[i, 3] == full[i, 7]
    # against the plain float64 definition (means removed), to rounding
    dc = d - d.mean(axis=1, keepdims=True)
    for i in range(5):
        e = c - a[i]
        e -= e.mean(axis=1, keepdims=True)
        de = e @ dc[i]
        plain = np.where(de > 0, de * de / (e * e).sum(axis=1), -1.0)
        np.testing.assert_allclose(full[i], plain, rtol=1e-9)
    # the rows' sums, given, change nothing
    px = rng.integers(0, 256, (9, 2, 64, 64, 3), dtype=np.uint8)
    sub = subsample(px)
    assert np.array_equal(sub, px[:, :, ::2, ::2].reshape(18, -1))
    cc, sc = pixels_to_search_sums(px)
    assert np.array_equal(cc, (sub.astype(np.int64) ** 2).sum(axis=1)) and np.array_equal(sc, sub.sum(axis=1))
    assert np.array_equal(least_squares_gains(d[:, :3072], a[:, :3072], sub.astype(np.float64), (cc, sc)),
                          least_squares_gains(d[:, :3072], a[:, :3072], sub.astype(np.float64)))


def test_the_exact_tests_cheap_bound_never_turns_away_a_weight_that_reaches_the_count():
    """``exact_weight_possible`` is a necessary condition: wherever ``exact_weight`` makes
    ``count`` values hold, it says possible (random mixes, random and near-exact images, both
    roundings, the count at the best weight's exactly); and it turns away a wrong candidate whose
    values cannot meet at one weight, as most of the exact test's prefilter candidates are."""
    from gandit.forensics.blend import exact_weight_possible

    rng = np.random.default_rng(43)
    for trial in range(400):
        n = int(rng.integers(1, 600))
        a, b = rng.integers(0, 256, n), rng.integers(0, 256, n)
        w = float(rng.choice([0.99, 0.9, 0.7, 0.5, rng.random()]))
        offset = float(rng.choice([0.5, 0.0]))
        q = np.floor(w * a + (1 - w) * b + offset) if trial % 3 else rng.integers(0, 256, n)
        if trial % 5 == 0:
            q = a + rng.integers(-2, 3, n)                     # a near-exact image, a wrong candidate
        d, e = (q - a).astype(np.int64), (b - a).astype(np.int64)
        count, _ = exact_weight(d, e, offset)
        assert exact_weight_possible(d, e, offset, count)
        assert exact_weight_possible(d, e, offset, max(count - 5, 0))
    # values that each hold at some weight, but at weights spread over [0.05, 0.95]: 92% of them
    # cannot hold at one weight
    e = rng.integers(100, 256, 1536) * rng.choice([-1, 1], 1536)
    d = np.floor(rng.uniform(0.05, 0.95, 1536) * e + 0.5).astype(np.int64)
    assert exact_weight(d, e, 0.5)[0] < 1414 and not exact_weight_possible(d, e, 0.5, 1414)
    # and a near-exact image against an unrelated photo
    a, b = rng.integers(0, 256, 1536), rng.integers(0, 256, 1536)
    d, e = rng.integers(-2, 3, 1536), b - a
    assert exact_weight(d, e, 0.5)[0] < 1414 and not exact_weight_possible(d, e, 0.5, 1414)
