#!/usr/bin/env python
"""Embedding throughput and FID matrix-square-root time: gandit against pytorch-fid 0.3.0.

One run on this machine, same weights and same images on both sides:

1. N deterministic 64x64 RGB uint8 images: ``samples/holdout/emoji/*.png`` cycled to N (seeded
   random pixels where that folder is missing);
2. gandit's ``build_model(resolve_weights())`` + ``embed_batch`` over batches of B
   (fp32, channels_last, ``torch.inference_mode`` — all inside gandit) → images/s;
3. pytorch-fid's ``InceptionV3([BLOCK_INDEX_BY_DIM[2048]])`` loaded with the *same* weights
   (``state_dict_for_pytorch_fid`` saved as its torch hub checkpoint in a temporary
   ``TORCH_HOME``) and run as its ``get_activations`` runs it: contiguous NCHW floats in [0, 1],
   ``torch.no_grad()``, ``pred[0].squeeze(3).squeeze(2)`` → images/s;
4. max |feature difference| between the two (the run fails, exit 1, above 1e-4);
5. ``scipy.linalg.sqrtm(s1 @ s2)`` + trace (pytorch-fid's way) against gandit's
   ``trace_sqrt_product(s1, s2)`` on two seeded 2048x2048 covariances, and the difference of
   the resulting FIDs (``statistics_to_fid`` against ``calculate_frechet_distance``).

Both sides convert uint8 HWC batches to float tensors inside the timed loop (gandit's
``embed_batch`` does it itself; for pytorch-fid it stands in for its DataLoader's ``ToTensor``);
PNG decoding is done once, before any timing, and is not measured. One warm-up batch per side
is not timed. The two sides take turns pass by pass (gandit, pytorch-fid, gandit, ...), so
that load from other processes falls on both alike; with ``--repeat R`` each side's best of R
passes is reported. A last batch smaller than B is timed too (a new shape for oneDNN), so pick
N a multiple of B for clean numbers.

Usage::

    python benchmarks/embed.py [--images N] [--batch-size B] [--repeat R] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg
import torch
from PIL import Image

import gandit
from gandit.features.inception import (FEATURE_DIM, OFFICIAL_FILENAME, build_model, embed_batch,
                                       resolve_weights, state_dict_for_pytorch_fid)
from gandit.metrics import features_to_statistics, statistics_to_fid, trace_sqrt_product

REPO = Path(__file__).resolve().parent.parent
HOLDOUT = REPO / "samples" / "holdout" / "emoji"
IMAGE_SIZE = 64
MAX_FEATURE_DIFF = 1e-4


# --------------------------------------------------------------------------- inputs

def load_images(n: int, seed: int) -> tuple[np.ndarray, str]:
    """(N, 64, 64, 3) uint8: the holdout emoji cycled to N, else seeded random pixels."""
    files = sorted(HOLDOUT.glob("*.png"))
    if not files:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8), f"random (seed {seed})"
    decoded = []
    for path in files[:n]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
            decoded.append(np.asarray(im, dtype=np.uint8))
    images = np.stack([decoded[i % len(decoded)] for i in range(n)])
    return images, f"{HOLDOUT.relative_to(REPO)}/*.png ({len(files)} files, cycled)"


def batches(images: np.ndarray, size: int):
    for start in range(0, len(images), size):
        yield images[start:start + size]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- embedding

def time_interleaved(embedders: dict, images: np.ndarray, batch_size: int,
                     repeat: int) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Wall time of each of ``repeat`` passes over all images per embedder, the embedders taking
    turns pass by pass (so that load from other processes hits both alike), and the features
    of each one's last pass. Each embedder has had its warm-up batch before this is called."""
    times: dict[str, list[float]] = {name: [] for name in embedders}
    feats: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        for name, embed in embedders.items():
            start = time.perf_counter()
            out = [embed(batch) for batch in batches(images, batch_size)]
            times[name].append(time.perf_counter() - start)
            feats[name] = np.concatenate(out)
    return times, feats


def build_pytorch_fid_model(weights) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 with gandit's weights, via a temporary torch hub cache."""
    from pytorch_fid.inception import InceptionV3

    with tempfile.TemporaryDirectory(prefix="gandit-bench-torch-home-") as home:
        target = Path(home) / "hub" / "checkpoints" / OFFICIAL_FILENAME
        target.parent.mkdir(parents=True)
        torch.save(state_dict_for_pytorch_fid(weights), target)
        previous = os.environ.get("TORCH_HOME")
        os.environ["TORCH_HOME"] = home  # only this process, only while pytorch-fid loads
        try:
            if Path(torch.hub.get_dir()) != Path(home) / "hub":
                raise RuntimeError(f"torch hub dir is {torch.hub.get_dir()}, not the temporary {home}/hub")
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]]).eval()
        finally:
            if previous is None:
                del os.environ["TORCH_HOME"]
            else:
                os.environ["TORCH_HOME"] = previous
    return model


def pytorch_fid_embed(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """One batch as pytorch-fid's ``get_activations`` runs it (``ToTensor`` + ``no_grad``)."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().float().div(255)
    with torch.no_grad():
        pred = model(x)[0]
    return pred.squeeze(3).squeeze(2).cpu().numpy()


# --------------------------------------------------------------------------- FID maths

def random_statistics(rng: np.random.Generator, rows: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (SPD for rows > dim) covariance of non-negative, correlated feature rows, loosely
    like Inception pool3 activations: |Gaussian| plus a shared low-rank component."""
    rank = min(64, dim)
    f = np.abs(rng.standard_normal((rows, dim)))
    f += 0.3 * np.abs(rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, dim)))
    return features_to_statistics(f)


def time_best(fn, repeat: int):
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return times, value


def sqrtm_trace(s1: np.ndarray, s2: np.ndarray) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.trace(np.real(covmean)))


def bench_sqrtm(rows: int, dim: int, seed: int, repeat: int) -> dict:
    from pytorch_fid.fid_score import calculate_frechet_distance

    mu1, s1 = random_statistics(np.random.default_rng(seed + 1), rows, dim)
    mu2, s2 = random_statistics(np.random.default_rng(seed + 2), rows, dim)
    mu2 = mu2 + 0.05  # a non-zero mean term too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sqrtm_times, tr_scipy = time_best(lambda: sqrtm_trace(s1, s2), repeat)
        eigh_times, tr_gandit = time_best(lambda: trace_sqrt_product(s1, s2), repeat)
        fid_gandit = statistics_to_fid(mu1, s1, mu2, s2)
        fid_pytorch_fid = float(calculate_frechet_distance(mu1, s1, mu2, s2))
    return {
        "cov_rows": rows, "cov_dim": dim,
        "sqrtm_s": min(sqrtm_times), "sqrtm_times_s": sqrtm_times,
        "trace_sqrt_product_s": min(eigh_times), "trace_sqrt_product_times_s": eigh_times,
        "speedup": min(sqrtm_times) / min(eigh_times),
        "trace_scipy": tr_scipy, "trace_gandit": tr_gandit, "trace_abs_diff": abs(tr_scipy - tr_gandit),
        "fid_gandit": fid_gandit, "fid_pytorch_fid": fid_pytorch_fid,
        "fid_abs_diff": abs(fid_gandit - fid_pytorch_fid),
        "warnings": sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught}),
    }


# --------------------------------------------------------------------------- report

def cpu_name() -> str:
    name = platform.processor()
    if name and name not in ("x86_64", "aarch64", "arm64", "i386"):
        return name
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name or platform.machine()


THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env() -> dict[str, str]:
    """The thread-count variables that were set (numpy/scipy's OpenBLAS and torch read them)."""
    return {k: os.environ[k] for k in THREAD_ENV_VARS if k in os.environ}


def machine_info() -> dict:
    return {
        "platform.processor": platform.processor(),
        "cpu": cpu_name(),
        "os.cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch.get_num_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gandit": gandit.__version__,
        "load_average_1_5_15": list(os.getloadavg()),
        "thread_env": thread_env(),
    }


def render(result: dict) -> str:
    e, m, machine = result["embed"], result["sqrtm"], result["machine"]
    dim = f"{m['cov_dim']}x{m['cov_dim']}"
    lines = [
        f"images: {result['images']} x {IMAGE_SIZE}x{IMAGE_SIZE} from {result['image_source']}; "
        f"batch size {result['batch_size']}; best of {result['repeat']}; "
        f"weights: {result['weights']['source']} ({result['weights']['sha256'][:12]}…)",
        "",
        "| measure | gandit | pytorch-fid 0.3.0 | gandit speed-up |",
        "|---|---:|---:|---:|",
        f"| Inception pool3 embedding (images/s) | {e['gandit_images_per_s']:.2f} | "
        f"{e['pytorch_fid_images_per_s']:.2f} | {e['ratio']:.2f}x |",
        f"| tr sqrt(S1 S2), {dim} (s) | {m['trace_sqrt_product_s']:.3f} (eigh) | "
        f"{m['sqrtm_s']:.3f} (sqrtm) | {m['speedup']:.2f}x |",
        "",
        "| check | value |",
        "|---|---:|",
        f"| max \\|feature difference\\| (limit {MAX_FEATURE_DIFF:g}) | {e['max_abs_feature_diff']:.3g} |",
        f"| \\|FID difference\\| (statistics_to_fid vs calculate_frechet_distance) | {m['fid_abs_diff']:.3g} "
        f"(FID {m['fid_gandit']:.4f}) |",
        f"| \\|trace difference\\| (eigh vs sqrtm) | {m['trace_abs_diff']:.3g} |",
        f"| peak RSS after gandit's model + warm-up batch (MiB) | {result['peak_rss_mib_after_gandit']:.0f} |",
        f"| peak RSS, whole run (MiB) | {result['peak_rss_mib']:.0f} |",
        "",
        f"machine: {machine['cpu']} (platform.processor() = {machine['platform.processor']!r}), "
        f"os.cpu_count() = {machine['os.cpu_count']}, torch {machine['torch']} with "
        f"{machine['torch.get_num_threads']} threads, numpy {machine['numpy']}, scipy {machine['scipy']}, "
        f"Python {machine['python']}, thread variables {machine['thread_env'] or 'unset'}; "
        f"load average at the end {machine['load_average_1_5_15'][0]:.2f} (1 min)",
        f"command: {result['command']}",
    ]
    if m["warnings"]:
        lines.append("warnings: " + "; ".join(m["warnings"]))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", type=int, default=200, help="number of 64x64 images to embed")
    p.add_argument("--batch-size", type=int, default=50, help="images per forward pass")
    p.add_argument("--repeat", type=int, default=1, help="timed passes per measurement (best is reported)")
    p.add_argument("--cov-dim", type=int, default=FEATURE_DIM, help="covariance size for the sqrtm timing")
    p.add_argument("--cov-rows", type=int, default=5000, help="random feature rows behind each covariance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args(argv)
    for name in ("images", "batch_size", "repeat", "cov_dim"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.cov_rows <= args.cov_dim:
        p.error("--cov-rows must exceed --cov-dim (the covariances must be positive definite)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = list(os.getloadavg())
    images, source = load_images(args.images, args.seed)

    weights = resolve_weights()
    model = build_model(weights)
    embedders = {"gandit": lambda b: embed_batch(model, b)}
    embedders["gandit"](images[:args.batch_size])  # warm-up, not timed
    rss_after_gandit = peak_rss_mib()
    pf_model = build_pytorch_fid_model(weights)
    embedders["pytorch_fid"] = lambda b: pytorch_fid_embed(pf_model, b)
    embedders["pytorch_fid"](images[:args.batch_size])  # warm-up, not timed
    times, feats = time_interleaved(embedders, images, args.batch_size, args.repeat)
    g_times, p_times, g_feats, p_feats = times["gandit"], times["pytorch_fid"], feats["gandit"], feats["pytorch_fid"]
    del embedders, model, pf_model

    diff = float(np.abs(g_feats.astype(np.float64) - p_feats.astype(np.float64)).max())
    g_rate, p_rate = args.images / min(g_times), args.images / min(p_times)
    sqrtm = bench_sqrtm(args.cov_rows, args.cov_dim, args.seed, args.repeat)

    result = {
        "benchmark": "embed",
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "images": args.images, "image_source": source, "batch_size": args.batch_size, "repeat": args.repeat,
        "weights": {"source": weights.source, "sha256": weights.sha256},
        "embed": {
            "gandit_images_per_s": g_rate, "gandit_times_s": g_times,
            "pytorch_fid_images_per_s": p_rate, "pytorch_fid_times_s": p_times,
            "ratio": g_rate / p_rate,
            "max_abs_feature_diff": diff, "max_abs_feature_diff_limit": MAX_FEATURE_DIFF,
            "parity_ok": diff <= MAX_FEATURE_DIFF,
        },
        "sqrtm": sqrtm,
        "peak_rss_mib_after_gandit": rss_after_gandit,
        "peak_rss_mib": peak_rss_mib(),
        "machine": machine_info(),
        "load_average_at_start_1_5_15": load_at_start,
    }
    print(render(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not result["embed"]["parity_ok"]:
        print(f"FAIL: max |feature difference| {diff:.3g} > {MAX_FEATURE_DIFF:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
