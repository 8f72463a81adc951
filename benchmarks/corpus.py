#!/usr/bin/env python
"""Build, offline, a labelled corpus of real photographs for benchmarking gandit's forensics.

The corpus has two disjoint splits of photo-like JPEGs (quality 95; sides about 150-500 px,
aspect ratios between 3:4 and 4:3, plus some 16:9), much like a dog-photo training set:

* ``train/``  -- stands in for a competition's training photos;
* ``honest/`` -- images from the same distribution whose content never comes from a training
  image, used to measure false accusations. At least half of them come from source pictures
  that no training image uses; the rest are tiles of wallpapers that training also uses, but
  from the other half of the picture (no spatial overlap: hard look-alikes). A picture whose
  halves are mirror images of each other is never shared (``MAX_MIRROR_EXPLAINED``).

``manifest.json`` lists every image with its split, source package, source file, the box
``[x, y, w, h]`` it was cut from (in source pixels) and how it was made, so that overlap can be
audited; :func:`check_disjoint` audits it and runs at the end of every build.

Sources (all fetched at run time from the package registries this machine reaches; nothing is
committed or redistributed -- each keeps its own licence, see its ``copyright`` file under
``sources/extracted/PKG/usr/share/doc``):

* Debian wallpaper packages, photographs only (hand-picked allowlists; abstract art, gradients
  and renders are left out): ``plasma-workspace-wallpapers`` (11 photos), ``mate-backgrounds``
  (``nature/``, 12), ``lomiri-wallpapers-16.04`` (14) and ``lomiri-wallpapers-20.04`` (1).
  Each ships some pictures at several resolutions/crops: only the largest of each is kept.
  They are large (1280x1024 up to 5312x2988), so many tiles are cut from each, at random
  positions, aspect ratios and zoom levels (always downscaled, never upscaled).
* ``gcompris-qt-data``: photographs (animals, monuments, tools, objects, fish, musicians, sea)
  packed inside its Qt resource files (``*.rcc``, parsed here); cartoons, paintings and
  drawings are left out by activity and by name. One image per photo.
* ``tuxpaint-stamps-default``: photo cut-outs (animals, food, plants, vehicles, household
  objects...) on transparent backgrounds, composited here onto a plain, slightly noisy
  gradient (never onto another photo). Its ``cartoon`` folders are left out.
* ``skimage.data``: the handful of bundled photographs (astronaut, coffee, chelsea, ...).

Source pictures are deduplicated (identical bytes, or 16x16 thumbnails within a small distance
at the same aspect ratio: the larger is kept), and pictures that likely show the same photo in
several places (same name stem, e.g. ``tajMahal`` in two gcompris activities) are grouped so
that a group never lands in both splits.

Data directory: ``$GANDIT_BENCH_DATA`` (default ``~/.cache/gandit-bench``). Downloads are
extracted under ``DATA/sources``; the corpus goes to ``DATA/corpus`` unless ``--out DIR`` says
otherwise. Every step is idempotent: packages already extracted and images already written are
skipped, and a rerun with other options rewrites only what changed (stray files are removed).
The build is deterministic given ``--seed``, ``--train-count`` and ``--honest-count``.

Needs ``apt-get`` and ``dpkg-deb`` (Debian/Ubuntu; ``apt-get download`` needs no root, but the
package lists must be there: ``apt-get update``), numpy, Pillow and scikit-image.

Usage::

    python benchmarks/corpus.py [--out DIR] [--seed 0] [--train-count 1600] [--honest-count 2200]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # wallpapers are large, and trusted

VERSION = 2  # bump when the recipe changes, so that old images are rewritten
JPEG_QUALITY = 95
# (width, height) ratios and their weights: mostly 4:3 / 3:4 / square-ish, some 16:9
ASPECTS = [((4, 3), 0.32), ((3, 4), 0.22), ((1, 1), 0.14), ((5, 4), 0.08), ((4, 5), 0.08),
           ((16, 9), 0.16)]
MIN_SIDE, MAX_SIDE = 150, 500
MAX_TILE_IOU = 0.5  # tiles of one picture within one split overlap at most this much
MIN_TILE_STD, MIN_TILE_GRAD = 12.0, 3.0  # flat tiles: grayscale std / mean |gradient| at 96 px
THUMB_DIST = 0.12  # 16x16 thumbnail distance below which two pictures count as the same
HONEST_SHARED_MAX = 0.45  # at most this share of honest images from pictures training uses
# A picture whose halves are mirror images (explained variance of one half by the other,
# mirrored, at 128 px, grayscale) is never shared: a tile of one half is a mirrored crop of the
# other. Measured on the allowlisted wallpapers: ColdRipple (a pier in fog shot along its axis)
# 0.980; the next, DarkestHour (a gradient sky over a horizon), 0.904.
MAX_MIRROR_EXPLAINED = 0.95

# --- source allowlists (photographs only) ----------------------------------------------------

PLASMA_PHOTOS = {"BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
                 "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am"}
LOMIRI_1604_SKIP = {"umang"}  # an abstract render
LOMIRI_2004_PHOTOS = {"Kleiber"}
GCOMPRIS_RCC = ["categorization", "clickgame", "details", "erase", "explore_farm_animals",
                "explore_monuments", "explore_world_animals", "explore_world_music"]
GCOMPRIS_SKIP = re.compile(r"gogh|portrait|eglise|texture|alphabet|numbers", re.I)
TUXPAINT_DIRS = {"animals", "food", "plants", "vehicles", "household", "hobbies", "sports",
                 "people", "military", "medical"}
SKIMAGE_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field",
                  "motorcycle_left", "grass", "gravel", "brick", "coins", "moon",
                  "immunohistochemistry", "retina"]
PACKAGES = ["plasma-workspace-wallpapers", "mate-backgrounds", "lomiri-wallpapers-16.04",
            "lomiri-wallpapers-20.04", "gcompris-qt-data", "tuxpaint-stamps-default"]
KEEP_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".rcc", "copyright")


# --- fetching -----------------------------------------------------------------------------------

def data_root() -> Path:
    return Path(os.environ.get("GANDIT_BENCH_DATA") or "~/.cache/gandit-bench").expanduser()


def fetch_package(pkg: str, sources: Path) -> Path:
    """``apt-get download`` PKG and extract its images into ``sources/extracted/PKG`` (once)."""
    dest = sources / "extracted" / pkg
    if (dest / ".done").exists():
        return dest
    with tempfile.TemporaryDirectory(dir=sources) as tmp:
        r = subprocess.run(["apt-get", "download", pkg], cwd=tmp, capture_output=True,
                           text=True)
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if r.returncode or not debs:
            raise SystemExit(f"apt-get download {pkg} failed (run 'apt-get update'?):\n"
                             f"{r.stderr.strip()}")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        # dpkg-deb streams the data tarball; keep only images, Qt resources and licences
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", debs[0]], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for m in tar:
                if m.isfile() and m.name.lower().endswith(KEEP_SUFFIXES):
                    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12
                        tar.extract(m, dest, filter="data")
                    else:
                        tar.extract(m, dest)
        if proc.wait():
            raise SystemExit(f"dpkg-deb failed on {debs[0]}")
        (dest / ".done").write_text(os.path.basename(debs[0]) + "\n")
    return dest


def read_rcc(path: Path) -> dict[str, bytes]:
    """Files in a Qt binary resource (``rcc``) file: {resource path: bytes} (zlib inflated)."""
    b = path.read_bytes()
    if b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    node_size = 22 if version >= 2 else 14
    out: dict[str, bytes] = {}

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", b[names + off:names + off + 2])
        return b[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    def walk(i: int, prefix: str) -> None:
        p = tree + i * node_size
        name_off, flags = struct.unpack(">IH", b[p:p + 6])
        here = prefix + (name(name_off) if i else "")
        if flags & 2:  # directory: child count, first child
            count, first = struct.unpack(">II", b[p + 6:p + 14])
            for c in range(count):
                walk(first + c, here + "/")
            return
        (off,) = struct.unpack(">I", b[p + 10:p + 14])
        (n,) = struct.unpack(">I", b[data + off:data + off + 4])
        blob = b[data + off + 4:data + off + 4 + n]
        if flags & 4:  # zstd: not needed for the files used here
            return
        out[here] = zlib.decompress(blob[4:]) if flags & 1 else blob

    walk(0, "")
    return out


# --- source pictures ----------------------------------------------------------------------------

@dataclass
class Picture:
    source: str  # package (or "skimage.data")
    file: str  # path inside the package (rcc members as "x.rcc!/member")
    kind: str  # "wallpaper" (tiled), "photo" (used whole) or "cutout" (composited)
    group: str  # pictures of one group always go to the same split
    load: Callable[[], Image.Image] = field(repr=False)
    size: tuple[int, int] = (0, 0)  # of the whole source picture
    visible: tuple[int, int, int, int] = (0, 0, 0, 0)  # cut-outs: box of the opaque part
    digest: str = ""

    @property
    def key(self) -> str:
        return f"{self.source}:{self.file}"


def _file_loader(path: Path) -> Callable[[], Image.Image]:
    return lambda: Image.open(path)


def _bytes_loader(blob: bytes) -> Callable[[], Image.Image]:
    return lambda: Image.open(io.BytesIO(blob))


def _stem_group(prefix: str, name: str) -> str:
    stem = Path(name).stem.lower()
    return prefix + ":" + (re.sub(r"[\d_\-\s]|background", "", stem) or stem)


def collect(sources: Path) -> list[Picture]:
    """Every candidate source picture, in a deterministic order."""
    pics: list[Picture] = []
    for pkg in PACKAGES:
        root = fetch_package(pkg, sources)

        def add(path: Path, kind: str, group: str | None = None, pkg=pkg, root=root) -> None:
            rel = str(path.relative_to(root))
            pics.append(Picture(pkg, rel, kind, group or f"{pkg}:{rel}", _file_loader(path)))

        if pkg == "plasma-workspace-wallpapers":
            for name in sorted(PLASMA_PHOTOS):
                # several sizes/crops of one picture: the group keeps them together, the
                # dedupe step keeps only the largest
                for f in sorted((root / "usr/share/wallpapers" / name / "contents/images")
                                .glob("*.*")):
                    add(f, "wallpaper", f"{pkg}:{name}")
        elif pkg == "mate-backgrounds":
            for f in sorted((root / "usr/share/backgrounds/mate/nature").glob("*.jpg")):
                add(f, "wallpaper")
        elif pkg.startswith("lomiri-wallpapers-"):
            for f in sorted((root / "usr/share/backgrounds").glob("*.jpg")):
                stem = f.stem.split("_by_")[0]
                if pkg.endswith("16.04") and stem in LOMIRI_1604_SKIP:
                    continue
                if pkg.endswith("20.04") and stem not in LOMIRI_2004_PHOTOS:
                    continue
                add(f, "wallpaper")
        elif pkg == "gcompris-qt-data":
            for act in GCOMPRIS_RCC:
                rcc = root / "usr/share/gcompris-qt/rcc" / f"{act}.rcc"
                for member, blob in sorted(read_rcc(rcc).items()):
                    if not member.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                        continue
                    if GCOMPRIS_SKIP.search(member) or "/resource/" not in member:
                        continue
                    rel = f"{rcc.relative_to(root)}!{member}"
                    pics.append(Picture(pkg, rel, "photo", _stem_group("gcompris", member),
                                        _bytes_loader(blob)))
        elif pkg == "tuxpaint-stamps-default":
            base = root / "usr/share/tuxpaint/stamps"
            for f in sorted(base.rglob("*.png")):
                parts = f.relative_to(base).parts
                if parts[0] in TUXPAINT_DIRS and "cartoon" not in parts and "thumbs" not in parts:
                    add(f, "cutout", _stem_group("tuxpaint", f.name))
    import skimage.data  # noqa: PLC0415 (imported late: slow)

    for name in SKIMAGE_PHOTOS:
        path = Path(skimage.data.__file__).parent / f"{name}.png"
        if not path.exists():  # a few are .jpg, and "chelsea" is also "cat"
            path = path.with_suffix(".jpg")
        if name == "immunohistochemistry":
            path = path.with_name("ihc.png")
        if path.exists():
            pics.append(Picture("skimage.data", path.name, "photo", f"skimage:{name}",
                                _file_loader(path)))
    return pics


def _thumb(im: Image.Image) -> np.ndarray:
    t = np.asarray(im.convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float32)
    return (t - t.mean()) / (t.std() + 1e-6)


def filter_and_dedupe(pics: list[Picture]) -> list[Picture]:
    """Drop too-small pictures; keep the largest of identical / near-identical pictures."""
    thumbs, kept = [], []
    for p in pics:
        im = p.load()
        p.size = im.size
        if p.kind == "cutout":  # measure the visible part only
            im = im.convert("RGBA")
            bbox = im.getchannel("A").point(lambda a: 255 if a > 16 else 0).getbbox()
            if bbox is None:
                continue
            p.visible = (bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1])
            im = im.crop(bbox)
        if min(im.size) < (120 if p.kind == "cutout" else MIN_SIDE):
            continue
        if p.kind == "photo" and ("A" in im.getbands() or im.mode == "P"):
            alpha = np.asarray(im.convert("RGBA"))[..., 3]
            if np.mean(alpha < 250) > 0.01:
                continue  # a cut-out, not a photo
        p.digest = hashlib.sha256(im.tobytes()).hexdigest()
        thumbs.append(_thumb(im.convert("RGB")))
        kept.append(p)
    # greedy, largest first: drop anything identical or close to a picture already kept
    order = sorted(range(len(kept)), key=lambda i: (-kept[i].size[0] * kept[i].size[1],
                                                    kept[i].key))
    out: list[int] = []
    wall_groups: set[str] = set()
    for i in order:
        p = kept[i]
        if p.kind == "wallpaper" and p.group in wall_groups:
            continue  # a smaller size / crop of a wallpaper already kept
        ar = p.size[0] / p.size[1] if p.kind != "cutout" else p.visible[2] / p.visible[3]
        dup = None
        for j in out:
            q = kept[j]
            qar = q.size[0] / q.size[1] if q.kind != "cutout" else q.visible[2] / q.visible[3]
            if p.digest == q.digest or (abs(np.log(ar / qar)) < 0.05 and float(
                    np.abs(thumbs[i] - thumbs[j]).mean()) < THUMB_DIST):
                dup = q
                break
        if dup is None:
            out.append(i)
            if p.kind == "wallpaper":
                wall_groups.add(p.group)
        else:
            print(f"  dedupe: dropped {p.key} (same as {dup.key})")
    return [kept[i] for i in sorted(out)]


# --- planning -----------------------------------------------------------------------------------

def _sample_out_size(rng: np.random.Generator, max_w: float, max_h: float) -> tuple[int, int]:
    """An output (w, h): allowed aspect, sides in [MIN_SIDE, MAX_SIDE], within (max_w, max_h)."""
    for _ in range(20):
        (aw, ah) = ASPECTS[rng.choice(len(ASPECTS), p=[w for _, w in ASPECTS])][0]
        a = aw / ah
        lo = MIN_SIDE * max(a, 1 / a)  # long side giving a short side of MIN_SIDE
        hi = min(MAX_SIDE, max_w if a >= 1 else max_h, (max_h if a >= 1 else max_w) * max(a, 1 / a))
        if hi < lo:
            continue
        long_side = rng.uniform(max(lo, 200.0), hi) if hi > 200 else hi
        w, h = (long_side, long_side / a) if a >= 1 else (long_side * a, long_side)
        return int(round(w)), int(round(h))
    return 0, 0


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _detail(gray: Image.Image, box, scale: float) -> tuple[float, float]:
    """(std, mean |gradient|) of BOX seen at 96x96, from GRAY (the picture downscaled by SCALE)."""
    x, y, w, h = (v * scale for v in box)
    x1, y1 = min(x + w, gray.width), min(y + h, gray.height)
    g = np.asarray(gray.resize((96, 96), Image.BILINEAR, box=(x, y, x1, y1)),
                   dtype=np.float32)
    return float(g.std()), float(np.abs(np.diff(g, axis=0)).mean()
                                 + np.abs(np.diff(g, axis=1)).mean())


def mirror_explained(im: Image.Image) -> float:
    """How well one half of a picture, cut across its long side, explains the other half
    mirrored: 1 - MSE / variance of grayscale 128-px thumbnails of the halves."""
    w, h = im.size
    side = (128, max(1, round(128 * h / w))) if w >= h else (max(1, round(128 * w / h)), 128)
    g = np.asarray(im.convert("L").resize(side, Image.BILINEAR), dtype=np.float64)
    if w < h:
        g = g.T
    half = g.shape[1] // 2
    a, b = g[:, :half], g[:, g.shape[1] - half:][:, ::-1]
    a, b = a - a.mean(), b - b.mean()
    return float(1.0 - ((a - b) ** 2).mean() / max(a.var(), 1e-9))


def plan_tiles(rng, region, n, gray: Image.Image, scale: float) -> list[tuple]:
    """N tiles (box, out_size) inside REGION (x, y, w, h) of a wallpaper.

    Random aspect, output size and zoom (source crop = output x zoom, zoom >= 1). Flat tiles
    (clear sky, out-of-focus background) are rejected, and tiles of one picture overlap each
    other at most MAX_TILE_IOU; where 40 draws find no such tile, the most detailed, least
    overlapping draw is taken. GRAY is a grayscale copy downscaled by SCALE, to test cheaply.
    """
    rx, ry, rw, rh = region
    tiles: list[tuple] = []
    for _ in range(n):
        best, best_score = None, None
        for _attempt in range(40):
            ow, oh = _sample_out_size(rng, rw, rh)
            if not ow:
                break
            zmax = min(rw / ow, rh / oh, 8.0)
            zoom = float(np.exp(rng.uniform(0, np.log(zmax)))) if zmax > 1 else 1.0
            bw, bh = min(rw, int(round(ow * zoom))), min(rh, int(round(oh * zoom)))
            bx = rx + int(rng.integers(0, rw - bw + 1))
            by = ry + int(rng.integers(0, rh - bh + 1))
            box = (bx, by, bw, bh)
            std, grad = _detail(gray, box, scale)
            detailed = std >= MIN_TILE_STD and grad >= MIN_TILE_GRAD
            overlap = max((_iou(box, t[0]) for t in tiles), default=0.0)
            score = (detailed, overlap <= MAX_TILE_IOU, -overlap, grad)
            if best_score is None or score > best_score:
                best, best_score = (box, (ow, oh)), score
            if detailed and overlap <= MAX_TILE_IOU:
                break
        if best is not None:
            tiles.append(best)
    return tiles


def assign_and_plan(pics: list[Picture], n_train: int, n_honest: int, rng) -> list[dict]:
    """Split pictures by group into train-only / honest-only / shared, and plan every image."""
    groups = sorted({p.group for p in pics})
    order = rng.permutation(len(groups))
    walls = [g for g in (groups[i] for i in order) if any(
        p.group == g and p.kind == "wallpaper" for p in pics)]
    others = [g for g in (groups[i] for i in order) if g not in set(walls)]
    # wallpapers: a third each train-only, honest-only and shared (split in two halves)
    k = len(walls) // 3
    role = {g: "train" for g in walls[:k]} | {g: "honest" for g in walls[k:2 * k]} | {
        g: "shared" for g in walls[2 * k:]}
    for p in pics:   # a mirror-symmetric picture's halves are one content: training keeps it whole
        if p.kind == "wallpaper" and role[p.group] == "shared" and mirror_explained(p.load()) > MAX_MIRROR_EXPLAINED:
            role[p.group] = "train"
    # whole photos / cut-outs: 40% of groups to train, the rest honest
    k = int(round(0.4 * len(others)))
    role |= {g: "train" for g in others[:k]} | {g: "honest" for g in others[k:]}

    jobs: list[dict] = []
    wall_pics = [p for p in pics if p.kind == "wallpaper"]
    for p in sorted((p for p in pics if p.kind != "wallpaper"), key=lambda p: p.key):
        split = role[p.group]
        if p.kind == "photo":
            ow, oh = _sample_out_size(rng, p.size[0], p.size[1])
            if not ow:
                continue
            # the largest box of the drawn aspect, at a random place; downscaled only
            a = ow / oh
            bw, bh = min(p.size[0], p.size[1] * a), min(p.size[1], p.size[0] / a)
            bw, bh = int(bw), int(bh)
            bx = int(rng.integers(0, p.size[0] - bw + 1))
            by = int(rng.integers(0, p.size[1] - bh + 1))
            box = (bx, by, bw, bh)
            s = min(1.0, ow / bw, oh / bh)  # never upscale
            out = (max(1, int(round(bw * s))), max(1, int(round(bh * s))))
        else:  # a cut-out: the whole visible stamp, on a new canvas (upscaled 1.6x at most)
            lim = max(300.0, 1.6 * max(p.visible[2:]))
            box, out = p.visible, _sample_out_size(rng, lim, lim)
        jobs.append(dict(pic=p, split=split, box=box, out=out))

    # tile counts: what the whole photos leave, shared out by sqrt(picture area)
    have = Counter(j["split"] for j in jobs)
    need = {"train": max(0, n_train - have["train"]), "honest": max(0, n_honest - have["honest"])}
    units = {"train": [], "honest": []}  # (picture, region, area) to cut tiles from
    for p in wall_pics:
        w, h = p.size
        r = role[p.group]
        if r in ("train", "honest"):
            units[r].append((p, (0, 0, w, h), w * h))
            continue
        # shared: cut across the long side, a 2% gap between the halves
        gap = int(0.01 * max(w, h))
        if w >= h:
            halves = [(0, 0, w // 2 - gap, h), (w // 2 + gap, 0, w - w // 2 - gap, h)]
        else:
            halves = [(0, 0, w, h // 2 - gap), (0, h // 2 + gap, w, h - h // 2 - gap)]
        t = int(rng.integers(2))
        units["train"].append((p, halves[t], w * h / 2))
        units["honest"].append((p, halves[1 - t], w * h / 2))
    counts: dict[tuple, int] = {}
    for split in ("train", "honest"):
        us = units[split]
        if split == "honest":  # cap the honest tiles from shared pictures
            shared = [u for u in us if role[u[0].group] == "shared"]
            only = [u for u in us if role[u[0].group] != "shared"]
            a_sh = sum(u[2] ** 0.5 for u in shared)
            a_on = sum(u[2] ** 0.5 for u in only)
            n_sh = min(round(need[split] * a_sh / (a_sh + a_on)),
                       int(HONEST_SHARED_MAX * n_honest))
            parts = [(shared, n_sh), (only, need[split] - n_sh)]
        else:
            parts = [(us, need[split])]
        for group_units, n in parts:
            area = np.sqrt([u[2] for u in group_units])  # sqrt: spread over pictures
            raw = n * area / area.sum()
            c = np.floor(raw).astype(int)
            for i in np.argsort(-(raw - c))[:n - c.sum()]:  # largest remainders
                c[i] += 1
            for u, ci in zip(group_units, c):
                counts[(u[0].key, split, u[1])] = int(ci)
    for p in wall_pics:
        im = p.load().convert("L")
        scale = min(1.0, 1600 / max(im.size))
        gray = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))),
                         Image.BILINEAR)
        for (key, split, region), n in sorted(counts.items(), key=lambda kv: (kv[0][0],
                                                                                kv[0][1])):
            if key != p.key or not n:
                continue
            for box, out in plan_tiles(rng, region, n, gray, scale):
                jobs.append(dict(pic=p, split=split, box=box, out=out, role=role[p.group]))
    for j in jobs:
        j.setdefault("role", role[j["pic"].group])
    return jobs


# --- rendering ----------------------------------------------------------------------------------

def _plain_background(rng, size: tuple[int, int]) -> Image.Image:
    """A muted two-colour gradient with a little sensor-like noise."""
    w, h = size
    c0 = rng.uniform(60, 235, 3)
    c1 = np.clip(c0 + rng.normal(0, 25, 3), 0, 255)
    t = np.linspace(0, 1, h)[:, None, None] if rng.random() < 0.5 else \
        np.linspace(0, 1, w)[None, :, None]
    img = c0 * (1 - t) + c1 * t + np.zeros((h, w, 1))
    img += rng.normal(0, 2.5, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def render(job: dict, im: Image.Image, rng) -> Image.Image:
    x, y, w, h = job["box"]
    if job["pic"].kind == "cutout":
        stamp = im.convert("RGBA").crop((x, y, x + w, y + h))
        canvas = _plain_background(rng, job["out"])
        fill = rng.uniform(0.6, 0.92)
        s = min(fill * canvas.width / stamp.width, fill * canvas.height / stamp.height)
        stamp = stamp.resize((max(1, round(stamp.width * s)), max(1, round(stamp.height * s))),
                             Image.LANCZOS)
        px = int(rng.integers(0, canvas.width - stamp.width + 1))
        py = int(rng.integers(0, canvas.height - stamp.height + 1))
        canvas.paste(stamp, (px, py), stamp)
        return canvas
    tile = im.convert("RGB").crop((x, y, x + w, y + h))
    return tile.resize(job["out"], Image.LANCZOS) if tile.size != tuple(job["out"]) else tile


# --- audit --------------------------------------------------------------------------------------

def check_disjoint(manifest: dict) -> None:
    """Assert that no honest image shares content with a training image.

    Per source file, no honest box may intersect a training box (positive area); and at least
    half of the honest images must come from source files no training image uses.
    """
    train = defaultdict(list)
    for e in manifest["images"]:
        if e["split"] == "train":
            train[(e["source"], e["source_file"])].append(e["box"])
    from_shared = 0
    for e in manifest["images"]:
        if e["split"] != "honest":
            continue
        boxes = train.get((e["source"], e["source_file"]), [])
        from_shared += bool(boxes)
        x, y, w, h = e["box"]
        for bx, by, bw, bh in boxes:
            assert (min(x + w, bx + bw) <= max(x, bx) or min(y + h, by + bh) <= max(y, by)), (
                f"{e['path']} overlaps a training tile of {e['source_file']}")
    n_honest = sum(e["split"] == "honest" for e in manifest["images"])
    assert from_shared <= n_honest / 2, f"{from_shared}/{n_honest} honest from shared sources"
    groups = defaultdict(set)
    for e in manifest["images"]:
        if e["role"] != "shared":
            groups[e["group"]].add(e["split"])
    both = [g for g, s in groups.items() if len(s) > 1]
    assert not both, f"groups in both splits: {both[:5]}"


# --- main ---------------------------------------------------------------------------------------

def _entry(job: dict) -> dict:
    """The manifest entry of one planned image."""
    p = job["pic"]
    return dict(path=job["path"], split=job["split"], source=p.source, source_file=p.file,
                source_size=list(p.size), box=list(map(int, job["box"])),
                size=list(map(int, job["out"])), kind=p.kind, group=p.group, role=job["role"])


def _recipe(entry: dict) -> tuple:
    return (entry["source"], entry["source_file"], tuple(entry["box"]), tuple(entry["size"]))


def build(out: Path, seed: int, n_train: int, n_honest: int) -> dict:
    sources = data_root() / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    print(f"sources: {sources}\ncorpus:  {out}")
    pics = filter_and_dedupe(collect(sources))
    print(f"{len(pics)} source pictures after filtering and dedupe: "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(p.source for p in pics).items())))
    rng = np.random.default_rng(seed)
    jobs = assign_and_plan(pics, n_train, n_honest, rng)

    params = dict(version=VERSION, seed=seed, train_count=n_train, honest_count=n_honest)
    old = out / "manifest.json"
    # an existing image is kept only if the old manifest says it was made the same way
    previous = {}
    if old.exists():
        prev = json.loads(old.read_text())
        if prev.get("params") == params:
            previous = {e["path"]: _recipe(e) for e in prev["images"]}
    entries, written = [], 0
    for split in ("train", "honest"):
        (out / split).mkdir(parents=True, exist_ok=True)
        sj = [j for j in jobs if j["split"] == split]
        perm = rng.permutation(len(sj))
        for n, i in enumerate(perm):  # shuffled names: nothing in a name tells its source
            sj[i]["path"] = f"{split}/{split[0]}{n:05d}.jpg"
    by_pic = defaultdict(list)
    for j in jobs:
        by_pic[j["pic"].key].append(j)
    for key in sorted(by_pic):
        pjobs = by_pic[key]
        todo = {j["path"] for j in pjobs if not (out / j["path"]).exists()
                or previous.get(j["path"]) != _recipe(_entry(j))}
        im = pjobs[0]["pic"].load() if todo else None
        for j in pjobs:
            # one rng per image, so that skipping existing files changes nothing else
            jrng = np.random.default_rng([seed, int(hashlib.sha1(j["path"].encode())
                                                    .hexdigest()[:8], 16)])
            if j["path"] in todo:
                render(j, im, jrng).save(out / j["path"], quality=JPEG_QUALITY)
                written += 1
            entries.append(_entry(j))
    entries.sort(key=lambda e: e["path"])
    listed = {e["path"] for e in entries}
    for split in ("train", "honest"):  # stray files from an earlier recipe
        for f in (out / split).iterdir():
            if f"{split}/{f.name}" not in listed:
                f.unlink()
    manifest = dict(params=params, images=entries)
    check_disjoint(manifest)
    old.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {written} images ({len(entries) - written} already there)")
    return manifest


def summary(manifest: dict, out: Path) -> None:
    c = Counter((e["source"], e["split"]) for e in manifest["images"])
    srcs = sorted({s for s, _ in c})
    print("\n| source | train | honest |\n|---|---:|---:|")
    for s in srcs:
        print(f"| {s} | {c[(s, 'train')]} | {c[(s, 'honest')]} |")
    tot = Counter(e["split"] for e in manifest["images"])
    shared = sum(e["split"] == "honest" and e["role"] == "shared" for e in manifest["images"])
    print(f"| **total** | {tot['train']} | {tot['honest']} |")
    print(f"\nhonest images cut from pictures that training also uses (other half): {shared}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"corpus size on disk: {size / 2**20:.1f} MiB; check_disjoint passed")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="corpus directory (default $GANDIT_BENCH_DATA/corpus, "
                         "$GANDIT_BENCH_DATA defaulting to ~/.cache/gandit-bench)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-count", type=int, default=1600)
    ap.add_argument("--honest-count", type=int, default=2200)
    a = ap.parse_args(argv)
    out = (a.out or data_root() / "corpus").expanduser().resolve()
    t0 = time.time()
    manifest = build(out, a.seed, a.train_count, a.honest_count)
    summary(manifest, out)
    print(f"took {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
