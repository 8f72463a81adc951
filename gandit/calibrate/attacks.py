"""Direct attacks made from training photos: the cheats that need no generator.

A cheater who wants training images in a submission resizes them (a **copy**, with any resize
filter, maybe mirrored), mixes two of them pixel by pixel (a **blend**, 0.99/0.01 slips past an
exact-duplicate check, 0.7/0.3 past a near-duplicate one), cuts a region (a **crop**, as
torchvision's ``RandomResizedCrop`` does: 50–100% of the area, aspect 3/4–4/3) or degrades one
(a **replay**: blur, noise, JPEG re-encoding, colour drift, sometimes mixed 0.9/0.1 with another
degraded photo). ``gandit calibrate`` and ``benchmarks/forensics.py`` build their labelled
attack suites from these.

Pure: uint8 arrays and a ``numpy.random.Generator`` in, uint8 images and their ground truth
out; no file is read. :func:`plan_attacks` draws *what* to make (which photos, boxes, filters,
flips, a degradation seed) from the photo sizes alone, so the caller loads only the photos
that the plan names; :func:`render_attack` makes the image from those arrays.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from gandit.dataset import preprocess

#: Resize filters a cheater may use, in the order the attack suites cycle through them.
FILTERS = [Image.Resampling.LANCZOS, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC,
           Image.Resampling.BOX, Image.Resampling.NEAREST]
FILTER_NAMES = {Image.Resampling.LANCZOS: "lanczos", Image.Resampling.BILINEAR: "bilinear",
                Image.Resampling.BICUBIC: "bicubic", Image.Resampling.BOX: "box",
                Image.Resampling.NEAREST: "nearest"}
#: Attacks :func:`plan_attacks` can make, and the finding kind each one is (DESIGN.md).
ATTACK_KINDS = {"copy": "copy", "blend99": "blend", "blend70": "blend", "crop": "crop", "replay": "replay"}
#: Pixel weight of the first photo in each blend attack.
BLEND_WEIGHTS = {"blend99": 0.99, "blend70": 0.7}
#: Share of replays that are mixed 0.9/0.1 with another degraded photo, and that mix.
REPLAY_MIX_EVERY = 3
REPLAY_MIX = 0.9
#: Copies are brought to this multiple of the target size with the named preprocessing first,
#: then resized with the attack's filter (as a cheater resizing a large photo would).
COPY_OVERSAMPLE = 4
SIZE = (64, 64)


def random_crop_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of a RandomResizedCrop-like box: 50–100% of the area, aspect 3/4–4/3
    (log-uniform); the whole photo when 50 draws find no box that fits."""
    for _ in range(50):
        area = rng.uniform(0.5, 1.0) * width * height
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w, h = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if w <= width and h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    return 0, 0, width, height


def crop_resize(photo: np.ndarray, box: tuple[int, int, int, int], resample: int,
                size: tuple[int, int] = SIZE) -> np.ndarray:
    """The ``box`` of a uint8 photo resized to ``size`` = (width, height) with ``resample``."""
    x, y, w, h = box
    return np.asarray(Image.fromarray(photo).crop((x, y, x + w, y + h)).resize(tuple(size), resample))


def degrade(rng: np.random.Generator, image: np.ndarray, blur: tuple[float, float] = (0.4, 1.2)) -> np.ndarray:
    """Gaussian blur (radius within ``blur``: 0.4–1.2), colour drift (gain 0.9–1.1, offset ±12
    per channel), Gaussian noise (sigma 2–8) and JPEG re-encoding (quality 40–84) of a uint8
    image. The same random draws for any ``blur``."""
    im = Image.fromarray(image).filter(ImageFilter.GaussianBlur(rng.uniform(*blur)))
    x = np.asarray(im).astype(np.float64)
    x = x * rng.uniform(0.9, 1.1, size=3) + rng.uniform(-12, 12, size=3)      # colour drift
    x = x + rng.normal(0, rng.uniform(2, 8), x.shape)
    im = Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(40, 85)))
    return np.asarray(Image.open(buf).convert("RGB"))


def copy_image(photo: np.ndarray, mode: str, resample: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A whole-photo copy: ``mode`` preprocessing at ``COPY_OVERSAMPLE`` times ``size``, then
    resized to ``size`` with ``resample``."""
    big = preprocess(photo, mode, (size[0] * COPY_OVERSAMPLE, size[1] * COPY_OVERSAMPLE))
    return np.asarray(Image.fromarray(big).resize(tuple(size), resample))


def blend_images(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """``weight * a + (1 - weight) * b`` of two uint8 images of one shape, rounded."""
    return np.round(weight * a.astype(np.float64) + (1 - weight) * b.astype(np.float64)).astype(np.uint8)


def mirror(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


@dataclass(frozen=True)
class AttackPlan:
    """What one attack image is made of (its ground truth). ``photos`` index the photo pool
    that was planned over; the first is the main source."""

    attack: str                                  #: a key of ATTACK_KINDS
    photos: tuple[int, ...]
    weights: tuple[float, ...] | None = None     #: pixel weights of a blend or mixed replay
    mode: str | None = None                      #: preprocessing of a copy
    box: tuple[int, int, int, int] | None = None  #: crop box in the photo's pixels
    flip: bool = False
    resample: int = Image.Resampling.LANCZOS
    seed: int | None = None                      #: degradation seed of a replay

    @property
    def kind(self) -> str:
        return ATTACK_KINDS[self.attack]


def plan_attacks(rng: np.random.Generator, photo_sizes: np.ndarray, attack: str, count: int,
                 modes: tuple[str, ...] = ("center-crop", "kaggle2019")) -> list[AttackPlan]:
    """``count`` plans of one ``attack`` over a pool of photos with ``photo_sizes`` (M, 2) =
    (width, height). Copies alternate the preprocessing ``modes`` and cycle the filters, half
    are mirrored; blends mix two distinct photos; crops cycle the filters, half mirrored;
    replays alternate crops and whole photos, every third mixed 0.9/0.1 with another photo."""
    if attack not in ATTACK_KINDS:
        raise ValueError(f"unknown attack {attack!r}; known: {', '.join(ATTACK_KINDS)}")
    m = len(photo_sizes)
    needs = 2 if attack in BLEND_WEIGHTS else 1
    if m < needs:
        raise ValueError(f"{attack} needs at least {needs} photos, got {m}")
    plans = []
    for i in range(count):
        resample = FILTERS[i % len(FILTERS)]
        if attack == "copy":
            j = int(rng.integers(m))
            plans.append(AttackPlan(attack, (j,), mode=modes[i % len(modes)], resample=resample,
                                    flip=bool(rng.integers(2))))
        elif attack in BLEND_WEIGHTS:
            a, b = (int(v) for v in rng.choice(m, 2, replace=False))
            w = BLEND_WEIGHTS[attack]
            plans.append(AttackPlan(attack, (a, b), (w, round(1 - w, 6))))
        elif attack == "crop":
            j = int(rng.integers(m))
            box = random_crop_box(rng, int(photo_sizes[j][0]), int(photo_sizes[j][1]))
            plans.append(AttackPlan(attack, (j,), box=box, resample=resample, flip=bool(rng.integers(2))))
        else:  # replay
            j = int(rng.integers(m))
            width, height = int(photo_sizes[j][0]), int(photo_sizes[j][1])
            box = random_crop_box(rng, width, height) if i % 2 else (0, 0, width, height)
            seed = int(rng.integers(2 ** 63 - 1))
            if i % REPLAY_MIX_EVERY == 0 and m > 1:
                k = int((j + 1 + rng.integers(m - 1)) % m)
                plans.append(AttackPlan(attack, (j, k), (REPLAY_MIX, round(1 - REPLAY_MIX, 6)), box=box, seed=seed))
            else:
                plans.append(AttackPlan(attack, (j,), box=box, seed=seed))
    return plans


def render_attack(plan: AttackPlan, photos: Mapping[int, np.ndarray], prepared: np.ndarray,
                  size: tuple[int, int]) -> np.ndarray:
    """The uint8 (H, W, 3) image of ``plan`` at ``size`` = (width, height). ``photos``: the
    original photos (after EXIF orientation) of at least the plan's copy, crop and replay
    sources, by pool index; ``prepared``: uint8 (M, H, W, 3), every pool photo brought to
    ``size`` with the rule's preprocessing (blends mix these, as a cheater mixing the
    competition's own resized photos would)."""
    if plan.attack == "copy":
        out = copy_image(photos[plan.photos[0]], plan.mode or "center-crop", plan.resample, size)
    elif plan.attack in BLEND_WEIGHTS:
        a, b = plan.photos
        out = blend_images(prepared[a], prepared[b], plan.weights[0])
    elif plan.attack == "crop":
        out = crop_resize(photos[plan.photos[0]], plan.box, plan.resample, size)
    elif plan.attack == "replay":
        rng = np.random.default_rng(plan.seed)
        out = degrade(rng, crop_resize(photos[plan.photos[0]], plan.box, Image.Resampling.LANCZOS, size))
        if len(plan.photos) > 1:
            out = blend_images(out, degrade(rng, prepared[plan.photos[1]]), plan.weights[0])
    else:
        raise ValueError(f"unknown attack {plan.attack!r}")
    return mirror(out) if plan.flip else np.ascontiguousarray(out)
