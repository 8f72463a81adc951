#!/usr/bin/env python3
"""Rebuild the bundled demo data under ``samples/`` deterministically.

Usage::

    .venv/bin/python scripts/build_samples.py [--emoji-dir DIR]

Sources (all redistributable, licences written beside them by this script):

* Noto Emoji PNGs at 64x64 from the npm package ``emoji-datasource-google`` (the
  images are Google's Noto Emoji, Apache-2.0). The package is fetched with
  ``npm pack`` at a pinned version and its tarball checked against a pinned SHA-256,
  or read from ``--emoji-dir``, the ``img/google/64`` folder of an unpacked copy.
* Colour photos bundled inside scikit-image (``skimage.data``), public domain or CC0.

Output (byte-identical on every run on the same library versions):

* ``samples/train/emoji/<codepoint>.png``    training emoji, RGB 64x64 on white
* ``samples/train/photos/<name>.jpg``        training photos at their own size
* ``samples/holdout/emoji/<codepoint>.png``  other emoji (disjoint), for honest images
* ``samples/submissions/honest.zip``         48 holdout-derived 64x64 PNGs
* ``samples/submissions/copies.zip``         36 holdout-derived + 12 training copies
* ``samples/submissions/truth.json``         ground truth of both zips
* ``samples/LICENSES.md``, ``samples/LICENSE-*.txt``

Selection rules for emoji: one file per base code point (only files whose name,
less ``fe0f``, is a single code point, so skin-tone, gender and ZWJ variants are
dropped); no flags (regional indicators and the Flags category), keycaps, skin-tone
swatches, clock faces, moon phases, or the Symbols category (boxed letters, zodiac and
arrow tiles, coloured shapes: near-identical templates). Colour variants of one shape
(hearts, circles, books, ...) and mirror pairs are near-duplicates too, so a greedy
pass in seeded random order keeps an emoji only if its grey-level normalised
correlation with every emoji kept before it, and with its mirror image, is below
``NEAR_DUP_NCC``. Train and holdout are then split from that one list,
so no holdout emoji is a near-duplicate of a training emoji.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

SEED = 20190601  # month of Kaggle's Generative Dog Images competition

EMOJI_PACKAGE = "emoji-datasource-google"
EMOJI_VERSION = "16.0.0"
# SHA-256 of the registry tarball emoji-datasource-google-16.0.0.tgz
EMOJI_TGZ_SHA256 = "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"
EMOJI_IMG_DIR = "package/img/google/64/"

N_TRAIN_EMOJI = 200
N_HOLDOUT_EMOJI = 120
N_SUBMISSION = 48
N_COPIES = 12
NEAR_DUP_NCC = 0.90
EMOJI_SIZE = 64

# Code points that are modifiers or joiners, never a base emoji.
MODIFIERS = {"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff", "200d", "2640", "2642", "fe0f"}
KEYCAPS = {"20e3", "1f51f"}
# Template families that pixel correlation does not catch: clock faces (same dial,
# other hands) and moon phases (same disc, other shading).
TEMPLATE_RANGES = [("1f550", "1f567"), ("1f311", "1f318")]
EXCLUDED_CATEGORIES = {"Flags", "Symbols", "Component"}

# skimage.data colour photos that load without a download, with their licence as
# stated in each loader's docstring (scikit-image 0.26). Left out on purpose:
# ``cat`` (the same picture as ``chelsea``), ``immunohistochemistry`` (only "no known
# copyright restrictions", no licence), ``stereo_motorcycle`` (Middlebury 2014, no
# licence stated), ``colorwheel`` and ``logo`` (not photos).
PHOTOS = {
    "astronaut": (
        "Eileen Collins, NASA astronaut; NASA Great Images database",
        "Public domain (NASA; \"No known copyright restrictions, released into the public "
        "domain\")",
    ),
    "chelsea": (
        "Chelsea the cat; photograph by Stefan van der Walt",
        "CC0 (\"No copyright restrictions. CC0 by the photographer\")",
    ),
    "coffee": (
        "Coffee cup, courtesy of Pikolo Espresso Bar; photograph by Rachel Michetti",
        "CC0 (\"No copyright restrictions. CC0 by the photographer\")",
    ),
    "hubble_deep_field": (
        "Hubble eXtreme Deep Field; NASA, from HubbleSite",
        "Public domain (NASA; \"may be freely used in the public domain\")",
    ),
    "retina": (
        "Fundus photograph of a normal left eye; Mikael Häggström, via Wikimedia Commons",
        "CC0 1.0 Universal Public Domain Dedication",
    ),
    "rocket": (
        "Launch of DSCOVR on Falcon 9; SpaceX Photos",
        "Public domain (released into the public domain by SpaceX)",
    ),
}
JPEG_OPTIONS = {"quality": 95, "subsampling": 2, "optimize": True, "progressive": False}
PNG_OPTIONS = {"optimize": True}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

FILTERS = {
    "LANCZOS": Image.Resampling.LANCZOS,
    "BILINEAR": Image.Resampling.BILINEAR,
    "BICUBIC": Image.Resampling.BICUBIC,
    "NEAREST": Image.Resampling.NEAREST,
}

# The twelve copies: (source, resize, filter, flip, jpeg_quality). Emoji copies take
# training emoji chosen with the seed; photo copies take each photo once.
EMOJI_COPY_SPECS = [
    (None, None, False, None),
    (None, None, True, None),
    ("roundtrip-96", "LANCZOS", False, None),
    ("roundtrip-80", "BILINEAR", True, None),
    ("roundtrip-112", "BICUBIC", False, None),
    (None, None, False, 90),
]
PHOTO_COPY_SPECS = {
    "astronaut": ("squash", "LANCZOS", False, None),
    "chelsea": ("center-crop", "BICUBIC", True, None),
    "coffee": ("squash", "BILINEAR", False, None),
    "hubble_deep_field": ("center-crop", "LANCZOS", True, None),
    "retina": ("squash", "BICUBIC", False, None),
    "rocket": ("center-crop", "NEAREST", False, None),
}


class BuildError(Exception):
    pass


# --------------------------------------------------------------------------- sources


@dataclass
class EmojiSource:
    pngs: dict[str, bytes]  # file name -> PNG bytes
    emoji_json: bytes
    licence: bytes  # the package's own LICENSE (MIT, for the data files)
    version: str


def fetch_emoji_package(workdir: Path) -> Path:
    spec = f"{EMOJI_PACKAGE}@{EMOJI_VERSION}"
    cmd = ["npm", "pack", spec, "--pack-destination", str(workdir), "--silent"]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise BuildError("npm is not installed; install it or pass --emoji-dir") from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"`{' '.join(cmd)}` failed (exit {exc.returncode})") from exc
    tgz = workdir / f"{EMOJI_PACKAGE}-{EMOJI_VERSION}.tgz"
    if not tgz.is_file():
        raise BuildError(f"npm pack did not produce {tgz.name}")
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if digest != EMOJI_TGZ_SHA256:
        raise BuildError(f"{tgz.name}: sha256 {digest}, expected {EMOJI_TGZ_SHA256}")
    return tgz


def read_emoji_tarball(tgz: Path) -> EmojiSource:
    pngs: dict[str, bytes] = {}
    extra: dict[str, bytes] = {}
    wanted = {"package/emoji.json", "package/LICENSE", "package/package.json"}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            if name.startswith(EMOJI_IMG_DIR) and name.endswith(".png") and name.count("/") == 4:
                pngs[name[len(EMOJI_IMG_DIR):]] = tar.extractfile(member).read()
            elif name in wanted:
                extra[name] = tar.extractfile(member).read()
    missing = wanted - extra.keys()
    if missing or not pngs:
        raise BuildError(f"{tgz.name}: missing {sorted(missing) or EMOJI_IMG_DIR}")
    version = json.loads(extra["package/package.json"])["version"]
    return EmojiSource(pngs, extra["package/emoji.json"], extra["package/LICENSE"], version)


def read_emoji_dir(img_dir: Path) -> EmojiSource:
    """``img_dir`` is ``package/img/google/64`` of an unpacked package."""
    if not img_dir.is_dir():
        raise BuildError(f"--emoji-dir {img_dir}: not a folder")
    parents = img_dir.resolve().parents
    if len(parents) < 3:
        raise BuildError(f"--emoji-dir {img_dir}: expected .../package/img/google/64")
    package = parents[2]
    files = {n: package / n for n in ("emoji.json", "LICENSE", "package.json")}
    missing = [n for n, p in files.items() if not p.is_file()]
    if missing:
        raise BuildError(
            f"--emoji-dir must be img/google/64 inside an unpacked {EMOJI_PACKAGE} package; "
            f"{package} lacks {', '.join(missing)}"
        )
    version = json.loads(files["package.json"].read_text())["version"]
    pngs = {p.name: p.read_bytes() for p in sorted(img_dir.glob("*.png"))}
    return EmojiSource(pngs, files["emoji.json"].read_bytes(), files["LICENSE"].read_bytes(),
                       version)


# --------------------------------------------------------------------------- images


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **PNG_OPTIONS)
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **options)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.convert("RGB")


def on_white(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        rgba = im.convert("RGBA")
    if rgba.size != (EMOJI_SIZE, EMOJI_SIZE):
        raise BuildError(f"emoji image of size {rgba.size}, expected 64x64")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def hue_shift(img: Image.Image, delta: int) -> Image.Image:
    """Rotate hue by ``delta``/256 of a turn (whites and greys are unchanged)."""
    if delta == 0:
        return img.copy()
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + delta) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def to_square_64(img: Image.Image, resize: str | None, filt: str | None) -> Image.Image:
    size = (EMOJI_SIZE, EMOJI_SIZE)
    if resize is None:
        out = img.copy()
    elif resize == "squash":
        out = img.resize(size, FILTERS[filt])
    elif resize == "center-crop":
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        out = img.crop((left, top, left + s, top + s)).resize(size, FILTERS[filt])
    elif resize.startswith("roundtrip-"):
        mid = int(resize.split("-")[1])
        out = img.resize((mid, mid), FILTERS[filt]).resize(size, FILTERS[filt])
    else:
        raise ValueError(resize)
    if out.size != size:
        raise BuildError(f"copy of size {out.size}, expected 64x64")
    return out


def pixel_key(img: Image.Image) -> str:
    return hashlib.sha256(np.asarray(img).tobytes()).hexdigest()


# --------------------------------------------------------------------------- emoji


def candidate_emoji(src: EmojiSource) -> dict[str, str]:
    """Base code point -> file name, one per base code point."""
    meta = {e["image"]: e for e in json.loads(src.emoji_json)}
    chosen: dict[str, str] = {}
    for fname in sorted(src.pngs):
        cps = fname[: -len(".png")].split("-")
        core = [c for c in cps if c != "fe0f"]
        if len(core) != 1:
            continue  # skin tones, genders, ZWJ sequences, keycaps
        cp = core[0]
        if cp in MODIFIERS or cp in KEYCAPS or "1f1e6" <= cp <= "1f1ff":
            continue
        if any(len(cp) == len(lo) and lo <= cp <= hi for lo, hi in TEMPLATE_RANGES):
            continue
        info = meta.get(fname)
        if info is None or info.get("category") in EXCLUDED_CATEGORIES:
            continue
        if cp not in chosen:
            chosen[cp] = fname
    return chosen


Images = dict[str, Image.Image]
Entries = list[tuple[Image.Image, dict]]


def select_emoji(src: EmojiSource, rng: random.Random) -> tuple[Images, Images]:
    cands = candidate_emoji(src)
    order = sorted(cands)
    rng.shuffle(order)
    need = N_TRAIN_EMOJI + N_HOLDOUT_EMOJI
    kept: list[str] = []
    images: dict[str, Image.Image] = {}
    feats: list[np.ndarray] = []  # each kept emoji and its mirror image
    for cp in order:
        img = on_white(src.pngs[cands[cp]])
        g = np.asarray(img, dtype=np.float64).mean(axis=2)
        g = g - g.mean()
        norm = np.linalg.norm(g)
        if norm == 0:
            continue  # blank image
        g = (g / norm).ravel()
        if feats and float(np.max(np.stack(feats) @ g)) >= NEAR_DUP_NCC:
            continue
        feats.append(g)
        feats.append(g.reshape(EMOJI_SIZE, EMOJI_SIZE)[:, ::-1].ravel())
        kept.append(cp)
        images[cp] = img
        if len(kept) == need:
            break
    if len(kept) < need:
        raise BuildError(f"only {len(kept)} distinct emoji, need {need}")
    train = {cp: images[cp] for cp in kept[:N_TRAIN_EMOJI]}
    holdout = {cp: images[cp] for cp in kept[N_TRAIN_EMOJI:]}
    return train, holdout


# --------------------------------------------------------------------------- photos


def load_photos() -> dict[str, bytes]:
    import skimage
    import skimage.data

    out = {}
    for name in sorted(PHOTOS):
        arr = getattr(skimage.data, name)()
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise BuildError(f"skimage.data.{name}: {arr.shape} {arr.dtype}, expected RGB uint8")
        out[name] = jpeg_bytes(Image.fromarray(arr, "RGB"), **JPEG_OPTIONS)
    return out


# --------------------------------------------------------------------------- submissions


def truth_entry(**kw) -> dict:
    entry = {"kind": None, "train": None, "holdout": None, "flip": False, "filter": None,
             "resize": None, "jpeg_quality": None, "hue_shift": 0}
    entry.update(kw)
    return entry


def honest_images(holdout: dict[str, bytes], n: int, rng: random.Random) -> Entries:
    """``n`` distinct holdout emoji, a third plain, the rest with a small hue shift."""
    names = rng.sample(sorted(holdout), n)
    out = []
    for i, cp in enumerate(names):
        delta = 0 if i % 3 == 0 else rng.choice([-12, -9, -6, -4, 4, 6, 9, 12])
        img = hue_shift(decode(holdout[cp]), delta)
        out.append((img, truth_entry(holdout=f"emoji/{cp}.png", hue_shift=delta)))
    return out


def copy_images(train_emoji: dict[str, bytes], photos: dict[str, bytes],
                rng: random.Random) -> Entries:
    out = []
    picks = rng.sample(sorted(train_emoji), len(EMOJI_COPY_SPECS))
    for cp, (resize, filt, flip, quality) in zip(picks, EMOJI_COPY_SPECS):
        img = to_square_64(decode(train_emoji[cp]), resize, filt)
        out.append((img, f"emoji/{cp}.png", resize, filt, flip, quality))
    for name in sorted(PHOTO_COPY_SPECS):
        resize, filt, flip, quality = PHOTO_COPY_SPECS[name]
        img = to_square_64(decode(photos[name]), resize, filt)
        out.append((img, f"photos/{name}.jpg", resize, filt, flip, quality))
    result = []
    for img, train, resize, filt, flip, quality in out:
        if flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if quality is not None:
            img = decode(jpeg_bytes(img, quality=quality, subsampling=2))
        result.append((img, truth_entry(kind="copy", train=train, flip=flip, filter=filt,
                                        resize=resize, jpeg_quality=quality)))
    if len(result) != N_COPIES:
        raise BuildError(f"{len(result)} copies, expected {N_COPIES}")
    return result


def name_entries(items: Entries, label: str) -> tuple[dict[str, bytes], dict[str, dict]]:
    files, truth, seen = {}, {}, {}
    for i, (img, entry) in enumerate(items):
        if img.size != (EMOJI_SIZE, EMOJI_SIZE) or img.mode != "RGB":
            raise BuildError(f"{label}: entry {i} is {img.mode} {img.size}")
        key = pixel_key(img)
        if key in seen:
            raise BuildError(f"{label}: entries {seen[key]} and {i} decode to the same pixels")
        seen[key] = i
        name = f"img_{i:03d}.png"
        files[name] = png_bytes(img)
        truth[name] = entry
    return files, truth


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, so external_attr means mode bits everywhere
            info.external_attr = (0o100644 << 16)
            zf.writestr(info, files[name])
    path.write_bytes(buf.getvalue())


# --------------------------------------------------------------------------- licences


def apache_licence_text() -> str:
    for candidate in (Path("/usr/share/common-licenses/Apache-2.0"),):
        if candidate.is_file():
            return candidate.read_text()
    raise BuildError("Apache-2.0 licence text not found (/usr/share/common-licenses/Apache-2.0, "
                     "Debian's base-files)")


def licences_md(n_train: int, n_holdout: int) -> str:
    import skimage

    photo_rows = "\n".join(
        f"| `train/photos/{name}.jpg` | `skimage.data.{name}()` | {credit} | {lic} |"
        for name, (credit, lic) in sorted(PHOTOS.items())
    )
    return f"""# Demo data: sources and licences

Everything in this folder is generated by `scripts/build_samples.py`; rebuild it with

    .venv/bin/python scripts/build_samples.py            # fetches the emoji with `npm pack`
    .venv/bin/python scripts/build_samples.py --emoji-dir path/to/package/img/google/64

The output is deterministic (fixed seed {SEED}, fixed PNG/JPEG options, no metadata, zips
with fixed timestamps, modes and entry order): a rebuild with the same library versions
gives byte-identical files.

## Layout

| path | what |
|---|---|
| `train/emoji/<codepoint>.png` | {n_train} Noto emoji, RGB 64x64 composited on white |
| `train/photos/<name>.jpg` | {len(PHOTOS)} scikit-image photos at their own size, JPEG quality 95 |
| `holdout/emoji/<codepoint>.png` | {n_holdout} other Noto emoji (none of them, nor a near-duplicate, in `train/`) |
| `submissions/honest.zip` | {N_SUBMISSION} PNGs from holdout emoji only (some hue-shifted a little) |
| `submissions/copies.zip` | {N_SUBMISSION - N_COPIES} holdout-derived PNGs + {N_COPIES} training copies |
| `submissions/truth.json` | ground truth of both zips, entry by entry |

`truth.json` maps `honest.zip` and `copies.zip` to their entries; each entry has `kind`
(`"copy"` or `null`), `train` (path relative to `train/`, or `null`), `holdout` (path
relative to `holdout/` for holdout-derived entries, or `null`), `flip` (mirrored left-right),
`filter` (PIL resampling filter, or `null`), `resize` (`squash`: whole photo resized to 64x64
ignoring aspect; `center-crop`: largest centred square, then resized; `roundtrip-N`: 64 -> N
-> 64; `null`: none), `jpeg_quality` (re-encoded through JPEG at that quality, or `null`) and
`hue_shift` (hue rotation in 1/256 of a turn applied to a holdout emoji).

## Noto Emoji (`train/emoji/`, `holdout/emoji/`, and the zips)

- Images: Noto Emoji by Google (<https://github.com/googlefonts/noto-emoji>), licensed under
  the Apache License 2.0; full text in `LICENSE-noto-emoji.txt`. Changes made here: composited
  onto a white background and converted to RGB; in the zips, some have their hue rotated, are
  mirrored, resampled or re-encoded as described in `truth.json`.
- Obtained from the npm package `{EMOJI_PACKAGE}@{EMOJI_VERSION}` (`img/google/64/`), whose
  README states that the Google/Noto images are available under the Apache License 2.0. The
  package's own data files are MIT-licensed (Copyright (c) 2013 Cal Henderson); that licence
  is copied to `LICENSE-emoji-datasource.txt`.
- Selection: one image per base code point (skin-tone, gender and ZWJ variants dropped); no
  flags, keycaps, clock faces, moon phases or Symbols-category tiles; colour variants of one
  shape and mirror pairs kept once (grey-level correlation below {NEAR_DUP_NCC} with every
  other kept emoji and its mirror image).

## scikit-image photos (`train/photos/`, and copies in `copies.zip`)

Taken from the images bundled inside scikit-image {skimage.__version__} (`skimage.data`, no
download); credit and licence as stated in each loader's documentation.

| file | loader | credit | licence |
|---|---|---|---|
{photo_rows}

Not used: `cat` (the same photo as `chelsea`), `immunohistochemistry` (documented only as
"no known copyright restrictions"), `stereo_motorcycle` (Middlebury 2014 stereo data, no
licence stated), `colorwheel` and `logo` (not photos).
"""


# --------------------------------------------------------------------------- main


def build(src: EmojiSource, out: Path) -> None:
    if src.version != EMOJI_VERSION:
        raise BuildError(f"{EMOJI_PACKAGE} {src.version} given, this script pins {EMOJI_VERSION}")
    rng = random.Random(SEED)
    train_imgs, holdout_imgs = select_emoji(src, rng)
    train_emoji = {cp: png_bytes(img) for cp, img in train_imgs.items()}
    holdout_emoji = {cp: png_bytes(img) for cp, img in holdout_imgs.items()}
    photos = load_photos()

    honest = honest_images(holdout_emoji, N_SUBMISSION, rng)
    mixed = honest_images(holdout_emoji, N_SUBMISSION - N_COPIES, rng)
    mixed += copy_images(train_emoji, photos, rng)
    rng.shuffle(mixed)
    honest_files, honest_truth = name_entries(honest, "honest.zip")
    copies_files, copies_truth = name_entries(mixed, "copies.zip")

    for sub in ("train", "holdout", "submissions"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("train/emoji", "train/photos", "holdout/emoji", "submissions"):
        (out / sub).mkdir(parents=True)
    for cp, data in train_emoji.items():
        (out / "train/emoji" / f"{cp}.png").write_bytes(data)
    for name, data in photos.items():
        (out / "train/photos" / f"{name}.jpg").write_bytes(data)
    for cp, data in holdout_emoji.items():
        (out / "holdout/emoji" / f"{cp}.png").write_bytes(data)
    write_zip(out / "submissions/honest.zip", honest_files)
    write_zip(out / "submissions/copies.zip", copies_files)
    truth = {"honest.zip": honest_truth, "copies.zip": copies_truth}
    (out / "submissions/truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    (out / "LICENSE-noto-emoji.txt").write_text(apache_licence_text())
    (out / "LICENSE-emoji-datasource.txt").write_bytes(src.licence)
    (out / "LICENSES.md").write_text(licences_md(len(train_emoji), len(holdout_emoji)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--emoji-dir", type=Path,
                    help=f"img/google/64 folder of an unpacked {EMOJI_PACKAGE}@{EMOJI_VERSION} "
                         "(default: fetch it with npm pack)")
    ap.add_argument("--out", type=Path, default=SAMPLES,
                    help="output folder; its train/, holdout/ and submissions/ are replaced "
                         "(default: samples/)")
    args = ap.parse_args(argv)
    try:
        if args.emoji_dir is not None:
            src = read_emoji_dir(args.emoji_dir)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                src = read_emoji_tarball(fetch_emoji_package(Path(tmp)))
        args.out.mkdir(parents=True, exist_ok=True)
        build(src, args.out)
    except BuildError as exc:
        print(f"build_samples: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
