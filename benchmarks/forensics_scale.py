#!/usr/bin/env python
"""Cost of the forensics at scale: a submission against ~20,000 training photos.

The forensics needs only pixels and Inception features of the training side, which the audit
caches. This script builds such a training side without Inception: ``--train`` "photos" that
are random crops (40-100% of the area) of the corpus's real photos (``benchmarks/corpus.py``),
each in both preprocessing variants at 64x64, with seeded random unit vectors standing in for
the Inception features (the nearest-neighbour search costs the same). The submission is
``--queries`` images: honest held-out photos, copies, 0.7/0.3 blends and crops of the
synthetic training photos, in equal parts and a seeded random order (``--kinds`` picks some of
them: ``honest`` times an honest submission).

It times what the audit adds to a plain FID/MiFID run, in the order the audit runs it:
the box index (as ``audit.train_to_box_index`` builds it: an inverted file from
``align.IVF_MIN_ROWS`` rows on; ``--exact`` keeps the exact scan; ``--cache DIR`` builds it
through the audit's cache, so that a second run times the warm case, its arrays loaded), the
whole-image index (``whole.pixels_to_whole_index``, which the audit builds at the start of the
analysis), then ``audit.images_to_findings`` (Inception and pixel neighbours, copy detector,
per-image search, alignment, decomposition and scores; given the photos themselves, as the
audit gives them from ``--train``, for point-sampled verification), first on the first
``--warmup`` images alone, then on all: the difference is the cost per image, the rest of the
first run what the findings cost whatever the submission's size (the copy detector's
descriptors of the training side, the Inception neighbour index, starting the workers). It
reports both, the fixed cost of the two indexes, the extrapolation to ``--extrapolate`` images
and the peak memory (of this process and of the largest forked worker); and per kind the share
flagged with its sources named, to compare index settings
(recall proper is ``benchmarks/forensics.py``'s: features here are random, and the synthetic
photos overlap each other), each honest photo flagged listed with its evidence.

    python benchmarks/forensics_scale.py [--train 20000] [--queries 2000] [--exact] [--kinds honest,...]
                                         [--warmup 24] [--cache DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gandit.audit import images_to_findings, train_to_box_index  # noqa: E402
from gandit.calibrate.attacks import blend_images, crop_resize, random_crop_box  # noqa: E402
from gandit.dataset import load_photo, preprocess  # noqa: E402
from gandit.features.cache import FeatureCache  # noqa: E402
from gandit.features.embed import TrainFeatures  # noqa: E402
from gandit.features.inception import FEATURE_DIM  # noqa: E402
from gandit.forensics.align import IVF_MIN_ROWS, canvases_to_box_index  # noqa: E402
from gandit.forensics.whole import pixels_to_whole_index  # noqa: E402
from forensics import SIZE, corpus_dir  # noqa: E402  (benchmarks/forensics.py)


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, FEATURE_DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_train(rng, sources: list[np.ndarray], count: int) -> tuple[TrainFeatures, list[tuple[int, ...]]]:
    """The training side, and where each photo was cut: (source, x, y, width, height)."""
    pixels = np.zeros((count, 2, SIZE[1], SIZE[0], 3), np.uint8)
    sizes = np.zeros((count, 2), np.int64)
    cuts = []
    for i in range(count):
        k = int(rng.integers(len(sources)))
        src = sources[k]
        h, w = src.shape[:2]
        area = rng.uniform(0.4, 1.0)
        cw, ch = max(16, int(w * np.sqrt(area))), max(16, int(h * np.sqrt(area)))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        photo = np.ascontiguousarray(src[y:y + ch, x:x + cw])
        pixels[i, 0] = preprocess(photo, "center-crop", SIZE)
        pixels[i, 1] = preprocess(photo, "kaggle2019", SIZE)
        sizes[i] = (cw, ch)
        cuts.append((k, x, y, cw, ch))
    return TrainFeatures([f"s{i:06d}.png" for i in range(count)], unit(rng, count), pixels, sizes), cuts


KINDS = ("honest", "copy", "blend70", "crop")


def queries(rng, honest: list[np.ndarray], train: TrainFeatures, count: int,
            kinds: tuple[str, ...] = KINDS) -> tuple[list[np.ndarray], list[tuple[str, tuple[int, ...]]]]:
    """The submitted images and their truth, ``kinds`` in equal parts in a seeded random order:
    (kind, source photos), where an honest image's "source" is its index in ``honest`` (no
    training photo). Not in turn: the analysis's batches take every m-th image, and with as many
    batches as kinds each batch would hold one kind, the slowest kinds' batches setting the time."""
    out, truth = [], []
    m = len(train.relpaths)
    order = rng.permutation(count)
    for i in range(count):
        kind = kinds[int(order[i]) % len(kinds)]
        if kind == "honest":
            h = int(rng.integers(len(honest)))
            out.append(preprocess(honest[h], "center-crop", SIZE))
            truth.append((kind, (h,)))
        elif kind == "copy":
            j = int(rng.integers(m))
            out.append(train.pixels[j, 0].copy())
            truth.append((kind, (j,)))
        elif kind == "blend70":
            a, b = (int(v) for v in rng.choice(m, 2, replace=False))
            out.append(blend_images(train.pixels[a, 0], train.pixels[b, 0], 0.7))
            truth.append((kind, (a, b)))
        else:
            j = int(rng.integers(m))
            photo = train.pixels[j, 1]
            out.append(crop_resize(photo, random_crop_box(rng, SIZE[0], SIZE[1]), Image.Resampling.BILINEAR))
            truth.append((kind, (j,)))
    return out, truth


def detection(findings, truth, honest_paths: list[str]) -> dict:
    """Per kind: share flagged with its first source named (blends: both named); honest: how
    many are flagged, each with its photo (``honest_paths``) and evidence. The synthetic training
    photos are random crops of a few hundred pictures, so they overlap each other: a copy may be
    named after an overlapping twin (counted as missed here)."""
    out = {}
    for kind in dict.fromkeys(k for k, _ in truth):
        rows = [(f, src) for f, (k, src) in zip(findings, truth) if k == kind]
        flagged = [f.kind is not None and f.score >= 0.5 for f, _ in rows]
        if kind == "honest":
            # each false flag with what decided it, for a reviewer to look at
            out[kind] = {"images": len(rows), "flagged": int(sum(flagged)),
                         "flagged_as": [{"photo": honest_paths[h], "kind": f.kind, "score": round(f.score, 4),
                                         "sources": [s.photo for s in f.sources],
                                         "evidence": {k: round(v, 4) if np.isfinite(v) else None   # strict JSON
                                                      for k, v in sorted(f.evidence.items())}}
                                        for (f, (h,)), ok in zip(rows, flagged) if ok]}
            continue
        named = [ok and set(src) <= {s.photo for s in f.sources} for (f, src), ok in zip(rows, flagged)]
        out[kind] = {"images": len(rows), "flagged": round(float(np.mean(flagged)), 3),
                     "sources_named": round(float(np.mean(named)), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--extrapolate", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--exact", action="store_true", help="exact box index at any size (no inverted file)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep the box index's arrays in this feature cache, as the audit does: a second run "
                         "with the same --train and --seed loads them (the warm case)")
    ap.add_argument("--warmup", type=int, default=24,
                    help="images timed alone first: the difference to the full run is the cost per image, "
                         "what is left of the first run the cost of any submission (default 24)")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"kinds of submitted images, in turn (of {', '.join(KINDS)}); e.g. 'honest' for "
                         "an honest submission, whose images mostly stop before the replay tests")
    args = ap.parse_args()
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not kinds or set(kinds) - set(KINDS):
        ap.error(f"--kinds: expected some of {', '.join(KINDS)}, got {args.kinds!r}")
    if args.warmup < 1 or args.warmup >= args.queries:
        ap.error(f"--warmup {args.warmup}: expected 1 to --queries - 1 ({args.queries - 1}) images")
    if args.exact and args.cache:
        ap.error("--exact and --cache: the audit caches its default index only")
    root = corpus_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    train_src = [load_photo(root / i["path"]) for i in manifest["images"] if i["split"] == "train"]
    honest_paths = [i["path"] for i in manifest["images"] if i["split"] == "honest"]
    honest_src = [load_photo(root / p) for p in honest_paths]
    train, cuts = synthetic_train(rng, train_src, args.train)

    def photos(j: int) -> np.ndarray:   # the training photos themselves, as the audit's --train loader gives them
        k, x, y, cw, ch = cuts[j]
        return np.ascontiguousarray(train_src[k][y:y + ch, x:x + cw])
    _ = train.thumbs
    submitted, truth = queries(rng, honest_src, train, args.queries, kinds)
    feats = unit(rng, len(submitted))
    t_build = time.perf_counter() - t0
    del honest_src

    t0 = time.perf_counter()
    cache = FeatureCache(args.cache) if args.cache else None
    if cache is not None:
        index = train_to_box_index(train, cache)
    else:
        index = canvases_to_box_index(train.thumbs[:, train.canvas_variant],
                                      ivf_min_rows=np.iinfo(np.int64).max if args.exact else IVF_MIN_ROWS)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    whole = pixels_to_whole_index(train.pixels)
    t_whole = time.perf_counter() - t0
    thresholds = {"copy": 0.5, "crop": 0.5, "blend": 0.5, "replay": 0.5}
    # What the findings cost whatever the submission's size (the copy detector's descriptors of
    # the training side, the Inception neighbour index, starting the workers): the first
    # ``--warmup`` images alone, then all of them; the difference is the cost per image.
    n_small = args.warmup
    t0 = time.perf_counter()
    images_to_findings(submitted[:n_small], feats[:n_small], train, thresholds, index=index, whole=whole,
                       photos=photos)
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    findings, _ = images_to_findings(submitted, feats, train, thresholds, index=index, whole=whole, photos=photos)
    t_find = time.perf_counter() - t0
    per_image = (t_find - t_small) / (len(submitted) - n_small)
    fixed_findings = max(0.0, t_small - n_small * per_image)
    fixed = t_index + t_whole + fixed_findings
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "command": " ".join(["python", "benchmarks/forensics_scale.py"] + sys.argv[1:]),
        "train_photos": args.train, "queries": len(submitted), "kinds": list(kinds), "build_seconds": round(t_build, 1),
        "box_index": type(index.index).__name__, "box_index_seconds": round(t_index, 1),
        "box_index_cache": None if cache is None else ("warm" if cache.hits == 3 else "cold"),
        "box_index_rows": int(index.index.ntotal),
        "box_index_mb": round(index.vectors.nbytes / 2**20, 1),
        "whole_index_seconds": round(t_whole, 1),
        "findings_seconds": round(t_find, 1), "warmup_images": n_small, "warmup_seconds": round(t_small, 1),
        "findings_fixed_seconds": round(fixed_findings, 1), "seconds_per_image": round(per_image, 4),
        f"extrapolated_{args.extrapolate}_seconds": round(fixed + per_image * args.extrapolate, 0),
        "detection": detection(findings, truth, honest_paths),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        # the analysis's forked workers (``gandit.parallel``): the largest one's, the pages it
        # shares with this process included
        "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 0),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
