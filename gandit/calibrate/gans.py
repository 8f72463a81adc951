"""Reference GANs in PyTorch: the *memorizer* cheat and an *honest* baseline.

The memorizer is the cheat seen in Kaggle's Generative Dog Images (2019): a conditional GAN with
one class per training image. Sampled with a one-hot class vector it replays (a near-copy of) that
training image; sampled with a mixed vector such as ``[0.99, 0.01, 0, ...]`` it produces a
near-copy that is slightly off, which is how such submissions slipped past exact-duplicate checks.
Here the generator turns a class embedding (the class weights times an ``n_classes x emb_dim``
table) plus a small noise vector into an image; the discriminator is a projection discriminator
(Miyato & Koyama 2018) with spectral norm, trained with the hinge loss. An optional reconstruction
term (L1 between ``G(class i, z)`` and training image ``i``, weight ``recon_weight``) is what makes
the class-to-image mapping exact and fast to learn; cheaters added the same term (or trained long
enough that the adversarial loss alone did it). With ``recon_weight=0`` it is a plain conditional
GAN.

The honest baseline is a DCGAN-style unconditional generator (transposed convolutions, batch norm)
and a spectrally normalised discriminator, hinge loss, two time-scale update rule (``lr_d >
lr_g``), an exponential moving average of the generator weights and truncated-normal noise at
sampling time: the ingredients of the competition's winning recipes, at a size that trains on a
CPU. It is a correct implementation, not a good generator.

Both trainers take ``uint8`` images ``(N, H, W, 3)`` with ``H == W`` in :data:`SIZES` and return
``(generator, history)``. They do no I/O except the optional checkpoint file. Training is a pure
function of the images, the hyperparameters and ``seed``: weights are initialised under
``torch.manual_seed(seed)`` (in a forked RNG, the caller's global RNG state is untouched) and the
randomness of step ``t`` (which images, which noise) is drawn from a generator seeded by
``(seed, t)``, so a run resumed from a checkpoint at step ``t`` continues exactly as an
uninterrupted one. On CPU the result is bit-identical run to run (same thread count); on CUDA
deterministic algorithms are requested (``warn_only``) but not guaranteed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

#: Image sizes the generators support.
SIZES = (32, 64)
CHECKPOINT_FORMAT = "gandit.calibrate.gans/1"

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Networks


def _channels(size: int, width: int) -> list[tuple[int, int]]:
    """Generator (resolution, channels) from 4x4 up to ``size // 2``: ``width * min(8, size // res)``."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}")
    out, res = [], 4
    while res <= size // 2:
        out.append((res, width * min(8, size // res)))
        res *= 2
    return out


class _SubPixelOut(nn.Module):
    """Last layer: 3x3 conv to ``3 * 4`` channels at ``size // 2``, then a 2x pixel shuffle to RGB at
    ``size`` (sub-pixel convolution; on a CPU several times cheaper than a full-resolution conv)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 12, 3, 1, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.pixel_shuffle(self.conv(h), 2))


class MemorizerGenerator(nn.Module):
    """Conditional generator: ``(class_weights (B, n_classes), z (B, z_dim)) -> (B, 3, size, size)``
    in [-1, 1]. The class code is ``class_weights @ embed``, so one-hot weights pick one class and
    mixed weights interpolate between class embeddings. Code and noise are concatenated, mapped to
    a 4x4 feature map and upsampled by stride-2 transposed convolutions (LeakyReLU, no
    normalisation) up to ``size // 2``, then a sub-pixel output layer."""

    def __init__(self, n_classes: int, size: int = 64, emb_dim: int = 128, z_dim: int = 16, width: int = 16):
        super().__init__()
        chans = _channels(size, width)
        self.n_classes, self.size, self.emb_dim, self.z_dim, self.width = n_classes, size, emb_dim, z_dim, width
        self.embed = nn.Parameter(torch.randn(n_classes, emb_dim))
        self.fc = nn.Linear(emb_dim + z_dim, 4 * 4 * chans[0][1])
        blocks: list[nn.Module] = []
        for (_, cin), (_, cout) in zip(chans, chans[1:]):
            blocks += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
        self.blocks = nn.Sequential(*blocks)
        self.out = _SubPixelOut(chans[-1][1])

    def forward(self, class_weights: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        code = class_weights.to(self.embed.dtype) @ self.embed
        h = F.leaky_relu(self.fc(torch.cat([code, z], 1)), 0.2)
        return self.out(self.blocks(h.view(h.shape[0], -1, 4, 4)))


class HonestGenerator(nn.Module):
    """DCGAN-style unconditional generator: ``z (B, z_dim) -> (B, 3, size, size)`` in [-1, 1]
    (linear to 4x4, stride-2 transposed convolutions with batch norm and ReLU up to ``size // 2``,
    sub-pixel output layer)."""

    def __init__(self, size: int = 64, z_dim: int = 128, width: int = 16):
        super().__init__()
        chans = _channels(size, width)
        self.size, self.z_dim, self.width = size, z_dim, width
        c0 = chans[0][1]
        self.fc = nn.Linear(z_dim, 4 * 4 * c0, bias=False)
        self.bn0 = nn.BatchNorm2d(c0)
        blocks: list[nn.Module] = []
        for (_, cin), (_, cout) in zip(chans, chans[1:]):
            blocks += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.out = _SubPixelOut(chans[-1][1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn0(self.fc(z).view(z.shape[0], -1, 4, 4)))
        return self.out(self.blocks(h))


class _DBackbone(nn.Module):
    """DCGAN discriminator body with spectral norm: stride-2 4x4 convolutions from ``size`` down to
    4x4 (``width``, ``2 * width``, ... channels, LeakyReLU 0.1), sum-pooled to ``(B, C)``."""

    def __init__(self, size: int, width: int):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {size}")
        layers: list[nn.Module] = []
        cin, res = 3, size // 2
        while res >= 4:
            cout = width * min(8, size // (2 * res))
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.1)]
            cin, res = cout, res // 2
        self.net = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).sum(dim=(2, 3))


class ProjectionDiscriminator(nn.Module):
    """Projection discriminator: ``D(x, y) = w . phi(x) + embed(y) . phi(x)``, spectral norm on
    every layer including the class embedding."""

    def __init__(self, n_classes: int, size: int = 64, width: int = 16):
        super().__init__()
        self.backbone = _DBackbone(size, width)
        c = self.backbone.out_channels
        self.linear = spectral_norm(nn.Linear(c, 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


class HonestDiscriminator(nn.Module):
    """Unconditional spectrally normalised DCGAN discriminator, one logit per image."""

    def __init__(self, size: int = 64, width: int = 16):
        super().__init__()
        self.backbone = _DBackbone(size, width)
        self.linear = spectral_norm(nn.Linear(self.backbone.out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.backbone(x)).squeeze(1)


# --------------------------------------------------------------------------------------------
# Helpers


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic algorithms for the duration of training; the caller's settings are restored."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench, prev_det = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev_bench, prev_det


def _subseed(seed: int, tag: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{tag}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _rng(seed: int, tag: str, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(_subseed(seed, tag, index))


def _batch_indices(seed: int, step: int, batch_size: int, n: int) -> torch.Tensor:
    """Images for ``step``: positions ``[step*B, (step+1)*B)`` of a stream of per-epoch
    permutations, so every image is seen equally often and any step can be recomputed."""
    start, stop = step * batch_size, (step + 1) * batch_size
    parts = []
    for epoch in range(start // n, (stop - 1) // n + 1):
        perm = torch.randperm(n, generator=_rng(seed, "epoch", epoch))
        lo, hi = max(start - epoch * n, 0), min(stop - epoch * n, n)
        parts.append(perm[lo:hi])
    return torch.cat(parts)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if images.shape[1] != images.shape[2] or images.shape[1] not in SIZES:
        raise ValueError(f"images must be square with side in {SIZES}, got {images.shape[1]}x{images.shape[2]}")
    if images.shape[0] < 1:
        raise ValueError("need at least one training image")
    return np.ascontiguousarray(images)


def _fingerprint(images: np.ndarray) -> str:
    h = hashlib.sha256(repr(images.shape).encode())
    h.update(images.tobytes())
    return h.hexdigest()


def _to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return images_u8.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    x = (x.clamp(-1, 1) + 1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _truncated_normal(shape: tuple[int, ...], generator: torch.Generator, threshold: float | None) -> torch.Tensor:
    """Standard normal samples; with ``threshold`` those with ``|z| > threshold`` are redrawn."""
    z = torch.randn(shape, generator=generator)
    if threshold is None:
        return z
    if threshold <= 0:
        raise ValueError("truncation threshold must be positive")
    while True:
        bad = z.abs() > threshold
        count = int(bad.sum())
        if count == 0:
            return z
        z[bad] = torch.randn(count, generator=generator)


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load_checkpoint(path: str | os.PathLike | None, kind: str, config: dict, fingerprint: str) -> dict | None:
    if path is None or not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("kind") != kind:
        raise ValueError(f"checkpoint '{path}' is not a {kind} checkpoint of {CHECKPOINT_FORMAT}")
    if state["config"] != config:
        diff = {k: (state["config"].get(k), v) for k, v in config.items() if state["config"].get(k) != v}
        raise ValueError(f"checkpoint '{path}' was written with other settings (saved, requested): {diff}")
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint '{path}' was written for other training images")
    return state


def _state(kind: str, config: dict, fingerprint: str, step: int, parts: dict[str, Any], history: dict) -> dict:
    """A checkpoint: the state dicts of ``parts`` (networks, optimizers) under their names."""
    return dict(format=CHECKPOINT_FORMAT, kind=kind, config=config, fingerprint=fingerprint, step=step,
                history=history, **{name: part.state_dict() for name, part in parts.items()})


def _restore(state: dict, parts: dict[str, Any]) -> tuple[dict, int]:
    """Load a checkpoint into ``parts``; its history and step."""
    for name, part in parts.items():
        part.load_state_dict(state[name])
    return {k: list(v) for k, v in state["history"].items()}, int(state["step"])


def _new_history(names: tuple[str, ...]) -> dict[str, list[float]]:
    return {name: [] for name in names}


def _finish_history(history: dict, start: int, steps: int, seconds: float) -> dict:
    out = {k: list(v) for k, v in history.items()}
    out["resumed_from"] = start if start > 0 else None
    out["seconds"] = seconds
    out["seconds_per_step"] = seconds / (steps - start) if steps > start else None
    return out


def _check_run_args(steps: int, batch_size: int, start: int, checkpoint) -> None:
    if steps < 0 or batch_size < 1:
        raise ValueError("steps must be >= 0 and batch_size >= 1")
    if start > steps:
        raise ValueError(f"checkpoint '{checkpoint}' is at step {start}, past the requested {steps} steps")


# --------------------------------------------------------------------------------------------
# Memorizer


def train_memorizer(
    images: np.ndarray,
    steps: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
    checkpoint: str | os.PathLike | None = None,
    *,
    recon_weight: float = 10.0,
    emb_dim: int = 128,
    z_dim: int = 16,
    width: int = 16,
    lr_g: float = 1e-3,
    lr_d: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    checkpoint_every: int = 250,
) -> tuple[MemorizerGenerator, dict]:
    """Train a memorizer conditional GAN, one class per image (class ``i`` is ``images[i]``).

    Per step: a batch of classes (each image equally often), one generator forward with noise
    ``z``, a hinge-loss update of the projection discriminator on real/fake pairs of those
    classes, then a generator update on ``-D(G(y, z), y) + recon_weight * |G(y, z) - x_y|_1``
    (images in [-1, 1]). Returns the generator (eval mode, on ``device``) and a history with the
    per-step losses ``d_loss``, ``g_adv``, ``recon_l1`` (mean absolute error in [-1, 1] units),
    ``seconds``, ``seconds_per_step`` and ``resumed_from``. ``progress(step, total)`` is called
    once at the start (with the step resumed from) and after every step.

    With ``checkpoint``, the full training state (networks, optimizers, step, history; the
    random state needs no saving, it is a function of ``seed`` and the step) is written there
    atomically every ``checkpoint_every`` steps and at the end, and training resumes from it if
    the file exists (it must come from the same images and settings; ``steps`` may differ).
    """
    images = _check_images(images)
    n, size = images.shape[0], images.shape[1]
    device = torch.device(device)
    config = dict(n=n, size=size, batch_size=batch_size, seed=seed, recon_weight=float(recon_weight),
                  emb_dim=emb_dim, z_dim=z_dim, width=width, lr_g=float(lr_g), lr_d=float(lr_d),
                  betas=[float(b) for b in betas])
    fingerprint = _fingerprint(images)
    with _deterministic():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            G = MemorizerGenerator(n, size, emb_dim, z_dim, width)
            D = ProjectionDiscriminator(n, size, width)
        G.to(device).train()
        D.to(device).train()
        opt_g = torch.optim.Adam(G.parameters(), lr=lr_g, betas=tuple(betas))
        opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=tuple(betas))
        history = _new_history(("d_loss", "g_adv", "recon_l1"))
        start = 0
        parts = dict(G=G, D=D, opt_g=opt_g, opt_d=opt_d)
        state = _load_checkpoint(checkpoint, "memorizer", config, fingerprint)
        if state is not None:
            history, start = _restore(state, parts)
        _check_run_args(steps, batch_size, start, checkpoint)

        def save(step: int) -> None:
            _save_checkpoint(checkpoint, _state("memorizer", config, fingerprint, step, parts, history))

        data = torch.from_numpy(images).to(device)
        t0 = time.perf_counter()
        if progress is not None:
            progress(start, steps)
        for step in range(start, steps):
            idx = _batch_indices(seed, step, batch_size, n).to(device)
            z = torch.randn(batch_size, z_dim, generator=_rng(seed, "z", step)).to(device)
            real = _to_float(data[idx])
            fake = G(F.one_hot(idx, n).float(), z)

            # Discriminator: hinge loss on (real, y) vs (fake, y).
            _requires_grad(D, True)
            logits = D(torch.cat([real, fake.detach()]), torch.cat([idx, idx]))
            d_loss = _hinge_d(logits[:batch_size], logits[batch_size:])
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

            # Generator: adversarial term plus reconstruction of each class's own image.
            _requires_grad(D, False)
            g_adv = -D(fake, idx).mean()
            recon = (fake - real).abs().mean()
            g_loss = g_adv + recon_weight * recon if recon_weight else g_adv
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()

            history["d_loss"].append(d_loss.item())
            history["g_adv"].append(g_adv.item())
            history["recon_l1"].append(recon.item())
            done = step + 1
            if checkpoint is not None and (done % checkpoint_every == 0 or done == steps):
                save(done)
            if progress is not None:
                progress(done, steps)
        seconds = time.perf_counter() - t0
        _requires_grad(D, True)
    G.eval()
    return G, _finish_history(history, start, steps, seconds)


@torch.no_grad()
def sample_memorizer(G: MemorizerGenerator, class_weights, z_seed: int, *, batch_size: int = 256) -> np.ndarray:
    """Images from a memorizer: ``class_weights`` ``(B, n_classes)`` (one-hot, or mixed such as
    0.99/0.01 between two classes: the class code is the weighted sum of the class embeddings),
    noise from ``z_seed``. Returns uint8 ``(B, H, W, 3)``."""
    w = torch.as_tensor(np.asarray(class_weights, dtype=np.float32))
    if w.ndim != 2 or w.shape[1] != G.n_classes:
        raise ValueError(f"class_weights must be (B, {G.n_classes}), got {tuple(w.shape)}")
    z = torch.randn(w.shape[0], G.z_dim, generator=torch.Generator().manual_seed(z_seed))
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        out = [_to_uint8(G(w[i:i + batch_size].to(device), z[i:i + batch_size].to(device)))
               for i in range(0, w.shape[0], batch_size)]
    finally:
        G.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, G.size, G.size, 3), np.uint8)


# --------------------------------------------------------------------------------------------
# Honest baseline


@torch.no_grad()
def _ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    for pe, p in zip(ema.parameters(), live.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema.buffers(), live.buffers()):
        be.copy_(b)


@torch.no_grad()
def _standing_stats(G: HonestGenerator, seed: int, batches: int = 8, batch_size: int = 64) -> None:
    """Recompute the batch-norm statistics of (EMA) generator ``G`` from its own activations
    (the live generator's running statistics do not match the averaged weights)."""
    device = next(G.parameters()).device
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    G.train()
    gen = _rng(seed, "standing", 0)
    for _ in range(batches):
        G(torch.randn(batch_size, G.z_dim, generator=gen).to(device))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    G.eval()


def train_honest(
    images: np.ndarray,
    steps: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
    checkpoint: str | os.PathLike | None = None,
    *,
    z_dim: int = 128,
    width: int = 16,
    lr_g: float = 1e-4,
    lr_d: float = 4e-4,
    betas: tuple[float, float] = (0.0, 0.9),
    ema_decay: float = 0.999,
    flip: bool = True,
    checkpoint_every: int = 250,
) -> tuple[HonestGenerator, dict]:
    """Train the honest baseline: DCGAN generator, spectrally normalised discriminator, hinge
    loss, TTUR (``lr_d > lr_g``), random horizontal flips of the real images, EMA of the
    generator weights (decay ``min(ema_decay, (1+t)/(10+t))``). Returns the EMA generator (eval
    mode, batch-norm statistics recomputed for the averaged weights) and a history with per-step
    ``d_loss`` and ``g_loss``. Checkpointing and resumption as in :func:`train_memorizer`."""
    images = _check_images(images)
    n, size = images.shape[0], images.shape[1]
    device = torch.device(device)
    config = dict(n=n, size=size, batch_size=batch_size, seed=seed, z_dim=z_dim, width=width,
                  lr_g=float(lr_g), lr_d=float(lr_d), betas=[float(b) for b in betas],
                  ema_decay=float(ema_decay), flip=bool(flip))
    fingerprint = _fingerprint(images)
    with _deterministic():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            G = HonestGenerator(size, z_dim, width)
            D = HonestDiscriminator(size, width)
        G_ema = copy.deepcopy(G)
        for m in (G, D, G_ema):
            m.to(device).train()
        _requires_grad(G_ema, False)
        opt_g = torch.optim.Adam(G.parameters(), lr=lr_g, betas=tuple(betas))
        opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=tuple(betas))
        history = _new_history(("d_loss", "g_loss"))
        start = 0
        parts = dict(G=G, D=D, G_ema=G_ema, opt_g=opt_g, opt_d=opt_d)
        state = _load_checkpoint(checkpoint, "honest", config, fingerprint)
        if state is not None:
            history, start = _restore(state, parts)
        _check_run_args(steps, batch_size, start, checkpoint)

        def save(step: int) -> None:
            _save_checkpoint(checkpoint, _state("honest", config, fingerprint, step, parts, history))

        data = torch.from_numpy(images).to(device)
        t0 = time.perf_counter()
        if progress is not None:
            progress(start, steps)
        for step in range(start, steps):
            idx = _batch_indices(seed, step, batch_size, n).to(device)
            gen = _rng(seed, "z", step)
            z = torch.randn(batch_size, z_dim, generator=gen).to(device)
            real = _to_float(data[idx])
            if flip:
                mirror = (torch.rand(batch_size, generator=gen) < 0.5).to(device)
                real = torch.where(mirror[:, None, None, None], real.flip(3), real)
            fake = G(z)

            _requires_grad(D, True)
            logits = D(torch.cat([real, fake.detach()]))
            d_loss = _hinge_d(logits[:batch_size], logits[batch_size:])
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

            _requires_grad(D, False)
            g_loss = -D(fake).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            _ema_update(G_ema, G, min(ema_decay, (1.0 + step) / (10.0 + step)))

            history["d_loss"].append(d_loss.item())
            history["g_loss"].append(g_loss.item())
            done = step + 1
            if checkpoint is not None and (done % checkpoint_every == 0 or done == steps):
                save(done)
            if progress is not None:
                progress(done, steps)
        seconds = time.perf_counter() - t0
        _requires_grad(D, True)
        _standing_stats(G_ema, seed)
    return G_ema, _finish_history(history, start, steps, seconds)


@torch.no_grad()
def sample_honest(G: HonestGenerator, n: int, z_seed: int, *, truncation: float | None = 1.0,
                  batch_size: int = 256) -> np.ndarray:
    """``n`` images from an honest generator, noise from ``z_seed`` drawn from a standard normal
    truncated to ``[-truncation, truncation]`` (``None``: not truncated). uint8 ``(n, H, W, 3)``."""
    z = _truncated_normal((n, G.z_dim), torch.Generator().manual_seed(z_seed), truncation)
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        out = [_to_uint8(G(z[i:i + batch_size].to(device))) for i in range(0, n, batch_size)]
    finally:
        G.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, G.size, G.size, 3), np.uint8)


# --------------------------------------------------------------------------------------------
# Loading


def load_generator(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The generator saved in a checkpoint written by :func:`train_memorizer` (the memorizer) or
    :func:`train_honest` (the EMA generator, batch-norm statistics recomputed), in eval mode."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"'{checkpoint}' is not a {CHECKPOINT_FORMAT} checkpoint")
    c = state["config"]
    if state["kind"] == "memorizer":
        G: nn.Module = MemorizerGenerator(c["n"], c["size"], c["emb_dim"], c["z_dim"], c["width"])
        G.load_state_dict(state["G"])
        G.to(device)
    elif state["kind"] == "honest":
        G = HonestGenerator(c["size"], c["z_dim"], c["width"])
        G.load_state_dict(state["G_ema"])
        G.to(device)
        with _deterministic():
            _standing_stats(G, c["seed"])
    else:
        raise ValueError(f"'{checkpoint}': unknown kind {state['kind']!r}")
    return G.eval()
