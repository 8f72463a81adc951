#!/usr/bin/env python
"""Wall time of ``gandit audit samples/submissions/copies.zip --train samples/train --device cpu``,
cold and warm, through the library (``run_audit(AuditOptions(...))``).

1. cold: a fresh, empty temporary feature cache — every training image (~206) and every
   submission image (48) goes through Inception;
2. warm: the same cache again — every feature should come from it.

Each run happens in its own freshly spawned Python process, so the warm run gains nothing from
the cold run's in-process state (loaded weights, oneDNN primitives) — only from the on-disk
cache, as a second ``gandit audit`` would — and each run's peak RSS is its own. The timed
span is ``load_inputs`` + ``run_audit`` (reading rules, training folder, weights and the
archive; embedding; metrics; forensics); the process time adds interpreter start and imports.
The run checks that the warm result equals the cold one (``result.to_dict()``).

Usage::

    python benchmarks/audit_samples.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUBMISSION = REPO / "samples" / "submissions" / "copies.zip"
TRAIN = REPO / "samples" / "train"
TRUTH = REPO / "samples" / "submissions" / "truth.json"


def audit_once(cache: str) -> dict:
    """One audit in this (child) process: timings, peak RSS, cache counters and the result."""
    import torch

    from gandit.audit import AuditOptions, load_inputs, run_audit
    from gandit.features.embed import InceptionExtractor

    class CountingExtractor(InceptionExtractor):
        """gandit's extractor, counting the images that go through Inception."""

        forwards = 0

        def __call__(self, images):
            self.forwards += len(images)
            return super().__call__(images)

    options = AuditOptions(SUBMISSION, TRAIN, device="cpu", cache=Path(cache))
    start = time.perf_counter()
    inputs = load_inputs(options)
    extractor = inputs.extractor
    inputs.extractor = CountingExtractor(extractor.weights, extractor.device, extractor.batch_size)
    result = run_audit(options, inputs=inputs)
    wall = time.perf_counter() - start
    data = result.to_dict()
    return {
        "wall_s": wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "cache_hits": inputs.cache.hits,
        "cache_misses": inputs.cache.misses,
        "inception_forwards": inputs.extractor.forwards,
        "torch_threads": torch.get_num_threads(),
        "result": data,
    }


def run_in_fresh_process(cache: str) -> dict:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        run = pool.submit(audit_once, cache).result()
    run["process_wall_s"] = time.perf_counter() - start
    return run


def expected_copies() -> int | None:
    """Images of copies.zip that samples/submissions/truth.json records as made from training images."""
    try:
        truth = json.loads(TRUTH.read_text())[SUBMISSION.name]
    except (OSError, KeyError, ValueError):
        return None
    return sum(1 for entry in truth.values() if entry.get("kind"))


def summarize(name: str, run: dict) -> dict:
    result = run["result"]
    return {
        "run": name,
        "wall_s": run["wall_s"],
        "process_wall_s": run["process_wall_s"],
        "peak_rss_mib": run["peak_rss_mib"],
        "cache_hits": run["cache_hits"],
        "cache_misses": run["cache_misses"],
        "inception_forwards": run["inception_forwards"],
        "flagged": result["submission"]["flagged"],
        "images": result["submission"]["images"],
        "train_images": result["provenance"]["train_images"],
        "verdict": result["verdict"],
        "fid": result["metrics"]["fid"],
    }


def render(report: dict) -> str:
    cold, warm = report["cold"], report["warm"]
    rows = [
        ("audit wall time, load_inputs + run_audit (s)", f"{cold['wall_s']:.2f}", f"{warm['wall_s']:.2f}"),
        ("process wall time, incl. start and imports (s)", f"{cold['process_wall_s']:.2f}",
         f"{warm['process_wall_s']:.2f}"),
        ("peak RSS (MiB)", f"{cold['peak_rss_mib']:.0f}", f"{warm['peak_rss_mib']:.0f}"),
        ("images through Inception", f"{cold['inception_forwards']}", f"{warm['inception_forwards']}"),
        ("cache entries hit / missed (Inception, thumbnails, box index)", f"{cold['cache_hits']} / {cold['cache_misses']}",
         f"{warm['cache_hits']} / {warm['cache_misses']}"),
        ("flagged images", f"{cold['flagged']} of {cold['images']}", f"{warm['flagged']} of {warm['images']}"),
        ("verdict / FID", f"{cold['verdict']} / {cold['fid']:.4f}", f"{warm['verdict']} / {warm['fid']:.4f}"),
    ]
    m = report["machine"]
    lines = [
        f"gandit audit {SUBMISSION.relative_to(REPO)} --train {TRAIN.relative_to(REPO)} --device cpu "
        f"({cold['train_images']} training images, {cold['images']} submission images)",
        "",
        "| measure | cold cache | warm cache |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        f"warm result == cold result (to_dict): {report['warm_equals_cold']}",
        f"copies recorded in {TRUTH.relative_to(REPO)}: {report['expected_copies']}",
        f"machine: {m['cpu']} (platform.processor() = {m['platform.processor']!r}), "
        f"os.cpu_count() = {m['os.cpu_count']}, torch {m['torch']} with {m['torch.get_num_threads']} threads, "
        f"Python {m['python']}, thread variables {m['thread_env'] or 'unset'}; "
        f"load average at the end {m['load_average_1_5_15'][0]:.2f} (1 min)",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)


def machine_info(torch_threads: int) -> dict:
    import torch

    cpu = platform.processor()
    if not cpu or cpu in ("x86_64", "aarch64"):
        try:
            cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                        if line.lower().startswith("model name")), cpu)
        except OSError:
            pass
    return {
        "platform.processor": platform.processor(),
        "cpu": cpu or platform.machine(),
        "os.cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch.get_num_threads": torch_threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1_5_15": list(os.getloadavg()),
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                       if k in os.environ},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args(argv)

    load_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="gandit-bench-cache-") as cache:
        cold = run_in_fresh_process(cache)
        warm = run_in_fresh_process(cache)

    import gandit

    equal = cold["result"] == warm["result"]
    report = {
        "benchmark": "audit_samples",
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "gandit": gandit.__version__,
        "cold": summarize("cold", cold),
        "warm": summarize("warm", warm),
        "warm_equals_cold": equal,
        "expected_copies": expected_copies(),
        "machine": machine_info(cold["torch_threads"]),
        "load_average_at_start_1_5_15": load_at_start,
    }
    print(render(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not equal:
        differing = sorted(k for k in cold["result"] if cold["result"][k] != warm["result"].get(k))
        print(f"FAIL: the warm result differs from the cold one in {', '.join(differing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
