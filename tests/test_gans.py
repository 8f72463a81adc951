"""Reference GANs (gandit.calibrate.gans): the memorizer replays its training images, mixed class
vectors interpolate, training is deterministic and resumable; the honest baseline trains and
samples. Tiny models on 32x32 images so the whole file runs in seconds on a CPU."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from gandit.calibrate.gans import (
    HonestGenerator,
    MemorizerGenerator,
    ProjectionDiscriminator,
    load_generator,
    sample_honest,
    sample_memorizer,
    train_honest,
    train_memorizer,
)

N, SIZE = 8, 32
TINY = dict(width=8, emb_dim=32, z_dim=8)


def _images(n: int = N, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Distinct smooth colour images: 4x4 random colour grids, bilinearly upsampled."""
    rng = np.random.default_rng(seed)
    grid = torch.from_numpy(rng.uniform(0, 255, size=(n, 3, 4, 4)))
    img = torch.nn.functional.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)
    img = img.permute(0, 2, 3, 1).numpy()
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These models are tiny: one thread is faster than several (and immune to busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return _images()


@pytest.fixture(scope="module")
def memorizer(images):
    G, history = train_memorizer(images, steps=100, batch_size=8, seed=0, lr_g=3e-3, **TINY)
    return G, history


def test_networks_produce_both_sizes():
    for size in (32, 64):
        G = MemorizerGenerator(5, size, emb_dim=16, z_dim=4, width=4)
        x = G(torch.eye(5)[:2], torch.randn(2, 4))
        assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
        assert ProjectionDiscriminator(5, size, width=4)(x, torch.tensor([0, 3])).shape == (2,)
        assert HonestGenerator(size, z_dim=8, width=4).eval()(torch.randn(2, 8)).shape == (2, 3, size, size)
    with pytest.raises(ValueError):
        MemorizerGenerator(5, 48)
    with pytest.raises(ValueError):
        train_memorizer(np.zeros((2, 48, 48, 3), np.uint8), steps=1)
    with pytest.raises(ValueError):
        train_memorizer(np.zeros((2, 32, 32, 3), np.float32), steps=1)


def test_memorizer_replays_each_training_image(memorizer, images):
    G, history = memorizer
    out = sample_memorizer(G, np.eye(N), z_seed=1)
    assert out.shape == (N, SIZE, SIZE, 3) and out.dtype == np.uint8
    dist = np.array([[_mae(o, x) for x in images] for o in out])
    assert (dist.argmin(axis=1) == np.arange(N)).all(), dist
    assert np.diag(dist).max() < 0.5 * np.median(dist[~np.eye(N, dtype=bool)]), dist
    assert history["recon_l1"][-1] < history["recon_l1"][0]
    assert len(history["d_loss"]) == len(history["g_adv"]) == 100
    # the noise barely matters: another z gives (nearly) the same replay
    assert _mae(sample_memorizer(G, np.eye(N), z_seed=2), out) < 0.25 * np.diag(dist).mean() + 1.0


def test_mixed_class_vectors_interpolate(memorizer):
    G, _ = memorizer
    for i, j in [(0, 1), (2, 5), (7, 3)]:
        weights = np.zeros((6, N), np.float32)
        for row, w in enumerate([1.0, 0.99, 0.9, 0.5, 0.1, 0.0]):
            weights[row, i], weights[row, j] = w, 1 - w
        out = sample_memorizer(G, weights, z_seed=3)
        a, b = out[0], out[-1]
        ab = _mae(a, b)
        to_a = [_mae(o, a) for o in out]
        to_b = [_mae(o, b) for o in out]
        coarse = [0, 2, 3, 4, 5]  # weight on i: 1, 0.9, 0.5, 0.1, 0
        to_a_c, to_b_c = [to_a[k] for k in coarse], [to_b[k] for k in coarse]
        assert to_a_c == sorted(to_a_c) and to_b_c == sorted(to_b_c, reverse=True), (to_a, to_b)
        assert 0 < to_a[1] < 0.1 * ab < to_b[1]  # 0.99/0.01: a near-copy of i, yet not identical
        assert to_a[3] < ab and to_b[3] < ab  # 0.5/0.5: in between
    with pytest.raises(ValueError):
        sample_memorizer(G, np.ones((2, N + 1)), z_seed=0)


def test_memorizer_training_is_deterministic(images):
    state = torch.get_rng_state()
    a, ha = train_memorizer(images, steps=4, batch_size=4, seed=7, **TINY)
    b, hb = train_memorizer(images, steps=4, batch_size=4, seed=7, **TINY)
    c, _ = train_memorizer(images, steps=4, batch_size=4, seed=8, **TINY)
    assert _same_weights(a, b) and ha["d_loss"] == hb["d_loss"]
    assert not _same_weights(a, c)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    assert not torch.are_deterministic_algorithms_enabled()  # and so is the global flag


def test_checkpoint_resume_matches_uninterrupted_run(images, tmp_path):
    ref, ref_hist = train_memorizer(images, steps=9, batch_size=4, seed=3, **TINY)
    ckpt = tmp_path / "mem.pt"

    def interrupt(step, total):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_memorizer(images, steps=9, batch_size=4, seed=3, progress=interrupt, checkpoint=ckpt,
                        checkpoint_every=3, **TINY)
    assert os.listdir(tmp_path) == ["mem.pt"]  # written atomically, no temporary left over
    assert torch.load(ckpt, weights_only=True)["step"] == 6
    calls = []
    G, hist = train_memorizer(images, steps=9, batch_size=4, seed=3, checkpoint=ckpt, checkpoint_every=3,
                              progress=lambda s, t: calls.append((s, t)), **TINY)
    assert calls[0] == (6, 9) and calls[-1] == (9, 9)
    assert hist["resumed_from"] == 6
    assert _same_weights(G, ref)
    assert hist["d_loss"] == ref_hist["d_loss"] and hist["recon_l1"] == ref_hist["recon_l1"]
    assert np.array_equal(sample_memorizer(load_generator(ckpt), np.eye(N), 0), sample_memorizer(ref, np.eye(N), 0))
    with pytest.raises(ValueError, match="other settings"):
        train_memorizer(images, steps=9, batch_size=4, seed=4, checkpoint=ckpt, **TINY)
    with pytest.raises(ValueError, match="other training images"):
        train_memorizer(images[::-1].copy(), steps=9, batch_size=4, seed=3, checkpoint=ckpt, **TINY)


def test_honest_gan_trains_samples_and_resumes(images, tmp_path):
    kw = dict(batch_size=4, seed=0, z_dim=16, width=8)
    G, hist = train_honest(images, steps=6, **kw)
    assert len(hist["d_loss"]) == 6 and all(np.isfinite(hist["d_loss"] + hist["g_loss"]))
    out = sample_honest(G, 5, z_seed=0)
    assert out.shape == (5, SIZE, SIZE, 3) and out.dtype == np.uint8
    assert np.array_equal(out, sample_honest(G, 5, z_seed=0))
    assert not np.array_equal(out, sample_honest(G, 5, z_seed=1))

    ckpt = tmp_path / "honest.pt"
    train_honest(images, steps=3, checkpoint=ckpt, **kw)
    G2, hist2 = train_honest(images, steps=6, checkpoint=ckpt, **kw)
    assert hist2["resumed_from"] == 3 and hist2["d_loss"] == hist["d_loss"]
    assert _same_weights(G2, G)
    assert np.array_equal(sample_honest(load_generator(ckpt), 5, z_seed=0), out)

    big = _images(4, 64)
    G64, _ = train_honest(big, steps=2, batch_size=2, z_dim=8, width=4)
    assert sample_honest(G64, 3, z_seed=0, truncation=0.5).shape == (3, 64, 64, 3)
