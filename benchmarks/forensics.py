"""Forensics benchmark: a labelled attack suite built from real photos, audited by gandit.

Uses the corpus of ``benchmarks/corpus.py`` (training photos and ≥ 2,000 honest held-out
photos of the same distribution, never overlapping a training photo). Builds, with a seed:

* honest: every held-out photo, preprocessed like the training set (centre crop, LANCZOS 64);
* copy: training photos, either preprocessing, any PIL resize filter, half mirrored;
* blend99 / blend70: ``w*a + (1-w)*b`` of two preprocessed training photos, w = 0.99 / 0.7;
* crop: RandomResizedCrop-like boxes (area 50–100%, aspect 3/4–4/3) of training photos,
  any filter, half mirrored;
* replay: a crop or the whole photo, then Gaussian blur, noise, JPEG re-encoding and a
  colour drift; a third are mixed 0.9/0.1 with another degraded training photo;
* memorizer (with ``--memorizer-classes N``): samples of a conditional GAN trained here with
  one class per training photo (``gandit.calibrate.gans``), one-hot and 0.9/0.1 class mixes.

All go into one folder submission and ``gandit.audit.run_audit`` runs on it as a host would.
Reports per-kind recall (flagged at the default thresholds and at zero false flags on the
honest set), blend-source accuracy, crop-box IoU, score margins and audit time; and the
submission-level near-replay test (``gandit.nearreplay``): each kind's share of near-replays,
and p-values of submissions made of half the honest photos plus k memorizer samples or
replays, tested against the other half as held-out images.

Recall is also given by the corpus kind of each attack's source photo
(``recall_by_source_kind``): the corpus's wallpaper tiles overlap and repeat self-similar
content, its other photos are held once, as a dataset of distinct photos holds them.
``--sources photo,cutout`` builds every attack from photos of those kinds only.

``--variants N`` adds N images of each attack setting the suite does not hold (``VARIANTS``):
blends 0.8/0.2 and 0.6/0.4, mirrored replays (a memorizer trained with horizontal flips),
replays mixed 0.8/0.2 and 0.7/0.3, and a photo mixed with its own mirror image (0.7/0.3 as it
is, 0.5/0.5 degraded: what a memorizer trained with flips blurs its photos into), and soft
replays (blur radius 1.5-2.5 instead of 0.4-1.2, the rest of the degradation as before). They are
drawn with their own random stream, after the suite, so the suite's images are the same with or
without them.

    python benchmarks/forensics.py [--per-kind 150] [--train-count 1600] [--out results.json]
                                   [--sources KINDS] [--variants N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gandit.audit import AuditOptions, load_inputs, run_audit  # noqa: E402
from gandit.calibrate.attacks import (FILTERS, blend_images, copy_image, crop_resize, degrade,  # noqa: E402
                                      random_crop_box)
from gandit.dataset import load_photo, preprocess  # noqa: E402
from gandit.nearreplay import counts_to_near_replay_test, is_near_replay  # noqa: E402

SIZE = (64, 64)


def corpus_dir() -> Path:
    return Path(os.environ.get("GANDIT_BENCH_DATA", Path.home() / ".cache" / "gandit-bench")) / "corpus"


def photo_pool(train_paths, pool: np.ndarray | None) -> np.ndarray:
    """The indices into ``train_paths`` that attacks draw from (None: all of them, drawn as
    before ``--sources`` existed)."""
    return np.arange(len(train_paths)) if pool is None else np.asarray(pool)


def build(rng, train_paths, honest_paths, per_kind, out: Path, pool: np.ndarray | None = None) -> dict:
    """The labelled submission in ``out``; attacks take their photos from ``pool``
    (``photo_pool``)."""
    pool = photo_pool(train_paths, pool)
    truth = {}
    out.mkdir(parents=True, exist_ok=True)

    def save(name, pixels, label):
        Image.fromarray(np.ascontiguousarray(pixels)).save(out / name)
        truth[name] = label

    for i, p in enumerate(honest_paths):
        save(f"honest_{i:05d}.png", preprocess(load_photo(p), "center-crop", SIZE), {"kind": "honest"})
    photos: dict[int, np.ndarray] = {}

    def photo(j):
        if j not in photos:
            photos[j] = load_photo(train_paths[j])
        return photos[j]

    m = len(pool)
    for i in range(per_kind):
        j = int(pool[rng.integers(m)])
        mode = ["center-crop", "kaggle2019"][i % 2]
        img = copy_image(photo(j), mode, FILTERS[i % len(FILTERS)], SIZE)  # via 256x256, as before
        flip = bool(rng.integers(2))
        save(f"copy_{i:05d}.png", img[:, ::-1] if flip else img, {"kind": "copy", "train": [j], "flip": flip})
    for w, tag in ((0.99, "blend99"), (0.7, "blend70")):
        for i in range(per_kind):
            save(f"{tag}_{i:05d}.png", *blend_attack(rng, photo, pool, w, tag))
    for i in range(per_kind):
        j = int(pool[rng.integers(m)])
        p = photo(j)
        box = random_crop_box(rng, p.shape[1], p.shape[0])
        img = crop_resize(p, box, FILTERS[i % len(FILTERS)])
        flip = bool(rng.integers(2))
        save(f"crop_{i:05d}.png", img[:, ::-1] if flip else img,
             {"kind": "crop", "train": [j], "box": list(box), "flip": flip})
    for i in range(per_kind):
        save(f"replay_{i:05d}.png", *replay_attack(rng, photo, pool, bool(i % 2), 0.9 if i % 3 == 0 else None))
    return truth


def blend_attack(rng, photo, pool: np.ndarray, weight: float, kind: str) -> tuple[np.ndarray, dict]:
    """``weight * a + (1 - weight) * b`` of two distinct photos of ``pool`` (``photo``: pool
    index → pixels), each preprocessed like the training set, and its label."""
    a, b = (int(pool[v]) for v in rng.choice(len(pool), 2, replace=False))
    pa, pb = (preprocess(photo(k), "center-crop", SIZE) for k in (a, b))
    return blend_images(pa, pb, weight), {"kind": kind, "train": [a, b], "weights": [weight, 1 - weight]}


def replay_attack(rng, photo, pool: np.ndarray, crop: bool, mix: float | None,
                  kind: str = "replay", blur: tuple[float, float] = (0.4, 1.2)) -> tuple[np.ndarray, dict]:
    """A degraded reproduction of a crop (or the whole) of a photo of ``pool`` (Gaussian blur of
    a radius within ``blur``, ``calibrate.attacks.degrade``), mixed ``mix`` / ``1 - mix`` with
    another degraded photo where ``mix`` is given, and its label."""
    m = len(pool)
    jj = int(rng.integers(m))
    j = int(pool[jj])
    p = photo(j)
    box = random_crop_box(rng, p.shape[1], p.shape[0]) if crop else (0, 0, p.shape[1], p.shape[0])
    img = degrade(rng, crop_resize(p, box, Image.Resampling.LANCZOS), blur)
    label = {"kind": kind, "train": [j]}
    if mix is not None:
        k = int(pool[(jj + 1 + rng.integers(m - 1)) % m])
        other = degrade(rng, preprocess(photo(k), "kaggle2019", SIZE))
        img = blend_images(img, other, mix)
        label = {"kind": kind, "train": [j, k], "mix": mix}
    return img, label


#: Attack settings beyond the suite's own (``--variants``): blends of other weights, mirrored
#: replays (a memorizer trained with flips), replays mixed 0.8/0.2 and 0.7/0.3, and a photo
#: mixed with its own mirror image, 0.7/0.3 as it is and 0.5/0.5 degraded (what a memorizer
#: trained with flips blurs its photos into), and soft replays (``SOFT_BLUR``).
VARIANTS = ("blend80", "blend60", "replay_mirrored", "replay_mix80", "replay_mix70", "mirror_mix70",
            "mirror_replay50", "replay_soft")
#: Blur radii of the soft replays (``replay_soft``: a memorizer's blurrier reproductions), against
#: the suite's 0.4-1.2.
SOFT_BLUR = (1.5, 2.5)


def add_variants(rng, train_paths, count: int, out: Path, truth: dict, pool: np.ndarray | None = None) -> None:
    """``count`` images of each of ``VARIANTS`` added to the submission in ``out`` (photos
    from ``pool``, ``photo_pool``), labelled in ``truth``. Drawn with their own ``rng`` after
    the suite, so the suite's own images are the same with or without them."""
    pool = photo_pool(train_paths, pool)
    photos: dict[int, np.ndarray] = {}

    def photo(j):
        if j not in photos:
            photos[j] = load_photo(train_paths[j])
        return photos[j]

    def save(name, pixels, label):
        Image.fromarray(np.ascontiguousarray(pixels)).save(out / name)
        truth[name] = label

    for w, kind in ((0.8, "blend80"), (0.6, "blend60")):
        for i in range(count):
            save(f"{kind}_{i:05d}.png", *blend_attack(rng, photo, pool, w, kind))
    for i in range(count):
        img, label = replay_attack(rng, photo, pool, bool(i % 2), 0.9 if i % 3 == 0 else None, "replay_mirrored")
        save(f"replay_mirrored_{i:05d}.png", img[:, ::-1], dict(label, flip=True))
    for w, kind in ((0.8, "replay_mix80"), (0.7, "replay_mix70")):
        for i in range(count):
            save(f"{kind}_{i:05d}.png", *replay_attack(rng, photo, pool, bool(i % 2), w, kind))
    for w, kind in ((0.7, "mirror_mix70"), (0.5, "mirror_replay50")):
        for i in range(count):
            j = int(pool[rng.integers(len(pool))])
            a = preprocess(photo(j), "center-crop", SIZE)
            img = blend_images(a, np.ascontiguousarray(a[:, ::-1]), w)
            save(f"{kind}_{i:05d}.png", degrade(rng, img) if kind == "mirror_replay50" else img,
                 {"kind": kind, "train": [j], "weights": [w, 1 - w], "mirror": True})
    for i in range(count):
        save(f"replay_soft_{i:05d}.png", *replay_attack(rng, photo, pool, bool(i % 2), None, "replay_soft", SOFT_BLUR))


def add_memorizer(rng, train_paths, classes, steps, count, out: Path, truth: dict,
                  checkpoint: Path | None = None, pool: np.ndarray | None = None) -> dict:
    """Train a per-image conditional memorizer on ``classes`` training photos (drawn from
    ``pool``, ``photo_pool``) and add
    ``count`` samples (half one-hot, half 0.9/0.1 mixes) to the submission. With
    ``checkpoint``, training resumes from that file (same photos and settings; a longer run
    continues a shorter one) and leaves it there. Reports how closely the one-hot samples
    reproduce their class's photo (PSNR at 64x64 and 16x16 area means): how well trained it is."""
    import torch

    from gandit.calibrate.gans import sample_memorizer, train_memorizer
    pool = photo_pool(train_paths, pool)
    chosen = sorted(int(pool[v]) for v in rng.choice(len(pool), classes, replace=False))
    images = np.stack([preprocess(load_photo(train_paths[j]), "center-crop", SIZE) for j in chosen])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        generator, history = train_memorizer(images, steps, seed=0, checkpoint=checkpoint)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    weights = np.zeros((count, classes), np.float32)
    labels = []
    for i in range(count):
        a = int(rng.integers(classes))
        if i % 2:
            b = int((a + 1 + rng.integers(classes - 1)) % classes)
            weights[i, a], weights[i, b] = 0.9, 0.1
            labels.append({"kind": "memorizer", "train": [chosen[a], chosen[b]], "mix": 0.9})
        else:
            weights[i, a] = 1.0
            labels.append({"kind": "memorizer", "train": [chosen[a]]})
    samples = sample_memorizer(generator, weights, z_seed=1)
    for i, (img, label) in enumerate(zip(samples, labels)):
        Image.fromarray(img).save(out / f"memorizer_{i:05d}.png")
        truth[f"memorizer_{i:05d}.png"] = label
    one_hot = np.flatnonzero(weights.max(axis=1) == 1.0)
    target = images[weights[one_hot].argmax(axis=1)]
    return {"classes": classes, "steps": steps, "train_seconds": round(seconds, 1),
            "resumed_from": history["resumed_from"], "samples": count,
            "recon_l1_last_100_steps": float(np.mean(history["recon_l1"][-100:])) if history["recon_l1"] else None,
            "one_hot_psnr64_median": float(np.median(_psnr(samples[one_hot], target, 1))),
            "one_hot_psnr16_median": float(np.median(_psnr(samples[one_hot], target, 4)))}


def _psnr(a: np.ndarray, b: np.ndarray, block: int) -> np.ndarray:
    """Per-image PSNR (dB) of uint8 (N, H, W, 3) stacks after ``block`` x ``block`` area means."""
    def means(x):
        n, h, w, c = x.shape
        return x.astype(np.float64).reshape(n, h // block, block, w // block, block, c).mean(axis=(2, 4))
    mse = ((means(a) - means(b)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))


def iou(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def source_box(entry: dict, box) -> tuple[str, list[float]]:
    """A box in a training photo's pixels (None: the whole photo) as (source picture, box in
    the source picture's pixels), from the photo's corpus manifest ``entry``."""
    bx, by, bw, bh = entry["box"]
    sw, sh = entry["size"]
    x, y, w, h = box if box is not None else (0, 0, sw, sh)
    return entry["source_file"], [bx + x * bw / sw, by + y * bh / sh, w * bw / sw, h * bh / sh]


def evaluate(result: dict, truth: dict, train_rel: list[str], manifest: dict[str, dict] | None = None) -> dict:
    """Per-kind figures; ``manifest`` (training file name → its corpus manifest entry) adds the
    crop-box IoU measured in the source picture, where a match to another training photo that
    holds the same region of the same picture (overlapping tiles) counts."""
    by_name = {i["name"]: i for i in result["images"]}
    kinds = sorted({t["kind"] for t in truth.values()})
    honest = [by_name[n] for n, t in truth.items() if t["kind"] == "honest"]
    honest_max = {k: max([i["scores"].get(k, 0.0) for i in honest] or [0.0]) for k in ("copy", "crop", "blend", "replay")}
    honest_any = max([i["score"] if i["kind"] else 0.0 for i in honest] or [0.0])
    report = {"honest_images": len(honest), "honest_flagged": sum(i["flagged"] for i in honest),
              "honest_flagged_names": sorted(i["name"] for i in honest if i["flagged"]),
              "honest_max_score_by_kind": honest_max, "kinds": {}}
    for kind in kinds:
        if kind == "honest":
            continue
        items = [(by_name[n], t) for n, t in truth.items() if t["kind"] == kind]
        flagged = [i["flagged"] for i, _ in items]
        # zero false flags: a kind-wise threshold just above the best honest score of that kind
        at_zero = [any(i["scores"].get(k, 0.0) > honest_max[k] and i["scores"].get(k, 0.0) >= 0.0
                       for k in honest_max) for i, _ in items]
        entry = {"images": len(items), "recall": float(np.mean(flagged)),
                 "recall_at_zero_false_flags": float(np.mean(at_zero)),
                 "kind_reported": {k: sum(1 for i, _ in items if i["kind"] == k and i["flagged"])
                                   for k in ("copy", "crop", "blend", "replay")},
                 "missed": sorted(i["name"] for i, _ in items if not i["flagged"])[:10]}
        if any(t.get("mirror") for _, t in items):   # a photo mixed with its own mirror image
            entry["mirror_both_named"] = float(np.mean(
                [{(train_rel[t["train"][0]], False), (train_rel[t["train"][0]], True)}
                 <= {(m["train"], m["flip"]) for m in i["matches"]} for i, t in items if i["flagged"]] or [0.0]))
        if kind.startswith("blend"):
            named = [set(m["train"] for m in i["matches"][:2]) == {train_rel[t["train"][0]], train_rel[t["train"][1]]}
                     and i["kind"] == "blend" for i, t in items]
            weight_err = [abs(i["matches"][0]["weight"] - t["weights"][0]) for i, t in items
                          if i["kind"] == "blend" and i["matches"] and i["matches"][0]["weight"] is not None
                          and i["matches"][0]["train"] == train_rel[t["train"][0]]]
            entry["both_sources_named"] = float(np.mean(named))
            # named with the evidence that the image is, value for value, the rounded mix of the two
            entry["named_exact"] = float(np.mean([ok and i["evidence"].get("blend_exact_share", 0.0) > 0
                                                  for ok, (i, _) in zip(named, items)]))
            entry["weight_abs_error_median"] = float(np.median(weight_err)) if weight_err else None
        if manifest:
            # the corpus kind of the (first) source: wallpaper tiles overlap each other and hold
            # self-similar content (bands, skies) that other tiles repeat; photos are held once
            by_source: dict[str, list[bool]] = {}
            for (i, t), hit in zip(items, flagged):
                by_source.setdefault(manifest[train_rel[t["train"][0]]].get("kind", "?"), []).append(hit)
            entry["recall_by_source_kind"] = {k: {"images": len(v), "recall": float(np.mean(v))}
                                              for k, v in sorted(by_source.items())}
        if kind in ("copy", "crop", "memorizer") or kind.startswith("replay"):
            entry["source_named"] = float(np.mean([any(m["train"] == train_rel[t["train"][0]] for m in i["matches"])
                                                   for i, t in items if i["flagged"]] or [0.0]))
            mixed = [(i, t) for i, t in items if i["flagged"] and "mix" in t]
            if mixed:   # a mix names both photos
                entry["mix_both_named"] = float(np.mean([{train_rel[j] for j in t["train"]} <= {m["train"] for m in i["matches"]}
                                                         for i, t in mixed]))
            if any("flip" in t for _, t in items) and kind != "crop":
                entry["flip_correct"] = float(np.mean([i["matches"][0]["flip"] == t.get("flip", False)
                                                       for i, t in items if i["flagged"] and i["matches"]] or [0.0]))
        if kind == "crop":
            ious = []
            for i, t in items:
                m = next((m for m in i["matches"] if m["train"] == train_rel[t["train"][0]]), None)
                if m is None:
                    ious.append(0.0)
                elif m["box"] is None:
                    ious.append(iou([0, 0, 1, 1], [0, 0, 1, 1]) if t["box"][0] == 0 else 0.0)
                else:
                    ious.append(iou(m["box"], t["box"]))
            ious = np.array(ious)
            entry["box_iou_median"] = float(np.median(ious))
            entry["box_iou_at_least_0.8"] = float(np.mean(ious >= 0.8))
            if manifest:
                in_source = []
                for i, t in items:
                    pic, want = source_box(manifest[train_rel[t["train"][0]]], t["box"])
                    got = [source_box(manifest[m["train"]], m["box"]) for m in i["matches"] if m["train"] in manifest]
                    in_source.append(max([iou(b, want) for p_, b in got if p_ == pic] or [0.0]))
                entry["source_box_iou_at_least_0.8"] = float(np.mean(np.array(in_source) >= 0.8))
            entry["flip_correct"] = float(np.mean([i["matches"][0]["flip"] == t["flip"] for i, t in items
                                                   if i["matches"]] or [0.0]))
        report["kinds"][kind] = entry
    report["honest_max_score_any"] = honest_any
    return report


def near_replay_report(result: dict, truth: dict, mixed_counts=(10, 25, 50, 100, 150)) -> dict:
    """Near-replay shares by kind, and the submission-level test on honest halves: the odd
    honest photos (by name) are a submission, the even ones its held-out set; k images of a
    cheating kind are added to the submission."""
    by_name = {i["name"]: i for i in result["images"]}
    thresholds = result["thresholds"]
    near = {n: is_near_replay(by_name[n]["scores"], by_name[n]["evidence"], thresholds) for n in truth}
    kinds = sorted({t["kind"] for t in truth.values()})
    out = {"share": {k: float(np.mean([near[n] for n, t in truth.items() if t["kind"] == k])) for k in kinds}}
    honest = sorted(n for n, t in truth.items() if t["kind"] == "honest")
    held, sub = honest[0::2], honest[1::2]
    k_held, k_sub = sum(near[n] for n in held), sum(near[n] for n in sub)

    def p(extra: list[str]) -> float:
        return counts_to_near_replay_test(k_sub + sum(near[n] for n in extra), len(sub) + len(extra),
                                          holdout_near=k_held, holdout_images=len(held))["p_value"]

    out["honest_half"] = {"images": len(sub), "near_replays": k_sub, "holdout_images": len(held),
                          "holdout_near_replays": k_held, "p_value": p([])}
    for kind in ("memorizer", "replay"):
        names = sorted(n for n, t in truth.items() if t["kind"] == kind)
        if names:
            out[f"honest_half_plus_{kind}"] = {str(k): p(names[:k]) for k in mixed_counts if k <= len(names)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=150)
    ap.add_argument("--train-count", type=int, default=1600)
    ap.add_argument("--honest-count", type=int, default=2200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "gandit-bench" / "features")
    ap.add_argument("--out", type=Path, default=None, help="write the report (JSON) here")
    ap.add_argument("--memorizer-classes", type=int, default=0, help="train a memorizer GAN on this many photos")
    ap.add_argument("--memorizer-steps", type=int, default=1000)
    ap.add_argument("--memorizer-checkpoint", type=Path, default=None,
                    help="resume the memorizer's training from this file and keep it there")
    ap.add_argument("--result", type=Path, default=None, help="also keep the audit's result.json, with truth labels")
    ap.add_argument("--variants", type=int, default=0,
                    help="also this many images of each attack setting beyond the suite's (VARIANTS)")
    ap.add_argument("--sources", default=None,
                    help="attack only training photos of these corpus kinds (comma-separated: wallpaper, photo, "
                         "cutout); default: all")
    args = ap.parse_args()
    root = corpus_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    train = sorted(root / i["path"] for i in manifest["images"] if i["split"] == "train")[:args.train_count]
    honest = sorted(root / i["path"] for i in manifest["images"] if i["split"] == "honest")[:args.honest_count]
    rng = np.random.default_rng(args.seed)
    kind_of = {Path(i["path"]).name: i.get("kind") for i in manifest["images"]}
    pool = None
    if args.sources:
        wanted = {k.strip() for k in args.sources.split(",") if k.strip()}
        pool = np.array([j for j, p in enumerate(train) if kind_of.get(p.name) in wanted], dtype=np.int64)
        if len(pool) < max(2, args.memorizer_classes):
            ap.error(f"--sources {args.sources}: {len(pool)} training photos of those kinds; need at least "
                     f"{max(2, args.memorizer_classes)} (2, and one per --memorizer-classes)")
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = Path(tmp) / "train"
        train_dir.mkdir()
        for p in train:
            (train_dir / p.name).write_bytes(p.read_bytes())
        sub = Path(tmp) / "submission"
        t0 = time.perf_counter()
        truth = build(rng, train, honest, args.per_kind, sub, pool)
        memorizer = (add_memorizer(rng, train, args.memorizer_classes, args.memorizer_steps, args.per_kind, sub, truth,
                                   args.memorizer_checkpoint, pool)
                     if args.memorizer_classes else None)
        if args.variants:
            add_variants(np.random.default_rng([args.seed, 1]), train, args.variants, sub, truth, pool)
        t_build = time.perf_counter() - t0
        options = AuditOptions(sub, train_dir, device="cpu", cache=args.cache)
        inputs = load_inputs(options)
        t0 = time.perf_counter()
        result = run_audit(options, inputs=inputs).to_dict()
        t_audit = time.perf_counter() - t0
    train_rel = [p.name for p in train]
    if args.result:
        for image in result["images"]:
            image["truth"] = truth.get(image["name"])
        args.result.write_text(json.dumps(result))
    by_name = {Path(i["path"]).name: i for i in manifest["images"] if i["split"] == "train"}
    report = evaluate(result, truth, train_rel, by_name)
    report["near_replays"] = near_replay_report(result, truth)
    report.update(train_images=len(train), submission_images=len(truth), build_seconds=round(t_build, 1),
                  audit_seconds=round(t_audit, 1), per_kind=args.per_kind, seed=args.seed, memorizer=memorizer,
                  sources=args.sources or "all", variants=args.variants)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
