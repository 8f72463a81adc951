"""Evidence pictures for the HTML report: the submitted image, the matched training photo with
the box drawn, the aligned region and the difference, as ``data:`` URIs.

Pure picture functions (arrays in, arrays out) and one class at the I/O edge,
:class:`ReportSources`, which finds the submitted images (verified by SHA-256 against the
result) and the training photos (only inside the training folder) again.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from gandit.dataset import load_photo
from gandit.errors import GanditError
from gandit.forensics.copy import region_to_point_renders
from gandit.images import ImageSet

#: Longest side of a training photo's context thumbnail (JPEG: it is context, not evidence).
CONTEXT_SIDE = 176
CONTEXT_QUALITY = 82
#: Differences are amplified this much so small residuals are visible.
DIFF_GAIN = 4


def array_to_data_uri(image: np.ndarray, fmt: str = "png") -> str:
    """A ``data:`` URI of a uint8 RGB image: PNG (lossless, for submitted pixels and
    differences) or JPEG (photo context)."""
    buf = io.BytesIO()
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    if fmt == "png":
        im.save(buf, format="PNG", optimize=True)
    else:
        im.save(buf, format="JPEG", quality=CONTEXT_QUALITY)
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def photo_to_context(photo: np.ndarray, box: list[int] | None, max_side: int = CONTEXT_SIDE) -> np.ndarray:
    """The photo scaled to ``max_side`` with the box drawn as a dark-and-light double outline
    (visible on any background, without colour)."""
    im = Image.fromarray(photo)
    scale = min(1.0, max_side / max(im.width, im.height))
    small = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
    if box is not None:
        x, y, w, h = box
        x0, y0 = x * scale, y * scale
        x1, y1 = (x + w) * scale - 1, (y + h) * scale - 1
        draw = ImageDraw.Draw(small)
        draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0), width=3)
        draw.rectangle((x0 + 1, y0 + 1, x1 - 1, y1 - 1), outline=(255, 230, 0), width=1)
    return np.asarray(small, dtype=np.uint8)


def photo_to_point_region(photo: np.ndarray, box: list[int] | None, flip: bool, submitted: np.ndarray,
                          jitter: int = 1) -> np.ndarray:
    """The region of a point-sampled match (a NEAREST resize) as the detector verified it: of the
    point renders of ``box`` (``copy.region_to_point_renders``: NEAREST resizes of the box and of
    every box within ``jitter`` photo pixels of it, and bilinear point samples), the one closest
    to the ``submitted`` image, mirrored when ``flip``; uint8 at the submitted image's size. An
    antialiased render of the same box smooths what a NEAREST resize keeps, and would show a
    true match as a large difference."""
    height, width = submitted.shape[:2]
    full = [0, 0, photo.shape[1], photo.shape[0]]
    renders = region_to_point_renders(photo, tuple(float(v) for v in (box or full)), (width, height), jitter=jitter)
    target = (submitted[:, ::-1] if flip else submitted).astype(np.float32) / 255.0
    best = renders[int(np.argmin(((renders - target) ** 2).mean(axis=(1, 2, 3))))]
    out = np.clip(np.round(best * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out[:, ::-1]) if flip else out


def is_point_sampled(image: dict[str, Any]) -> bool:
    """Whether a result image's copy or crop was verified on point samples of its photo
    (``evidence.copy_point_sampled`` / ``crop_point_sampled``)."""
    kind = image.get("kind")
    return kind in ("copy", "crop") and (image.get("evidence") or {}).get(f"{kind}_point_sampled") == 1.0


def regions_to_mix(regions: list[np.ndarray], weights: list[float | None]) -> np.ndarray:
    """The pixel mix the matches describe: weights as given (summing to 1), or the first
    region alone when there are no weights."""
    if not regions:
        raise ValueError("no regions to mix")
    if any(w is None for w in weights) or len(regions) == 1:
        return regions[0].astype(np.float64)
    return sum(float(w) * r.astype(np.float64) for r, w in zip(regions, weights))


def images_to_difference(submitted: np.ndarray, reconstruction: np.ndarray, gain: float = DIFF_GAIN) -> np.ndarray:
    """``|submitted - reconstruction| * gain``, per channel, clipped: black where they agree."""
    diff = np.abs(submitted.astype(np.float64) - reconstruction) * gain
    return np.clip(np.round(diff), 0, 255).astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (browsers smooth small images; pixels should stay pixels)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


@dataclass
class ReportSources:
    """Where the report finds pictures again: the submitted images by entry name (only those
    whose bytes still match the result's SHA-256) and the training folder."""

    submission: dict[str, np.ndarray] = field(default_factory=dict)
    train_root: Path | None = None
    notes: list[str] = field(default_factory=list)     #: what could not be found, for the reader
    _photos: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)

    def photo(self, relpath: str) -> np.ndarray | None:
        """A training photo by its path relative to the training folder; ``None`` when it is
        gone, unreadable or would lie outside the folder."""
        if self.train_root is None:
            return None
        if relpath not in self._photos:
            root = self.train_root.resolve()
            path = (root / relpath).resolve()
            photo = None
            if path.is_relative_to(root) and path.is_file():
                try:
                    photo = load_photo(path)
                except ValueError:
                    photo = None
            if photo is None:
                self.notes.append(f"training image '{relpath}' could not be read from '{self.train_root}'")
            self._photos[relpath] = photo
        return self._photos[relpath]


def sources_from_audit(images: ImageSet, train_root: str | os.PathLike | None) -> ReportSources:
    """The pictures of an audit that has just run (nothing is read twice)."""
    return ReportSources({e.name: e.pixels for e in images.images},
                         Path(train_root) if train_root is not None else None)


def sources_from_result(result: dict[str, Any], submission: str | os.PathLike | None = None,
                        train: str | os.PathLike | None = None, *, with_train: bool = True) -> ReportSources:
    """Find the pictures of a result again: by default at the paths the audit recorded.
    What is missing or changed is listed in ``notes``; the report says so."""
    from gandit.intake import Limits, read_submission
    from gandit.rules import load_rules

    paths = result.get("provenance", {}).get("paths", {})
    notes: list[str] = []
    sub_path = submission if submission is not None else paths.get("submission")
    pixels: dict[str, np.ndarray] = {}
    if sub_path is None:
        notes.append("the result names no submission path: submitted images are not shown")
    elif not os.path.exists(sub_path):
        notes.append(f"submission '{sub_path}' is not there any more: submitted images are not shown "
                     "(pass --submission PATH)")
    else:
        try:
            source = result["provenance"]["rules"]["source"]
            limits = load_rules(source.removeprefix("bundled:")).limits
        except (GanditError, KeyError, TypeError):
            limits = Limits()
        try:
            image_set = read_submission(sub_path, limits)
        except GanditError as err:
            notes.append(f"submission '{sub_path}' could not be read again ({err}): submitted images are not shown")
        else:
            expected = {i["name"]: i.get("sha256") for i in result.get("images", [])}
            changed = 0
            for e in image_set.images:
                if e.name in expected:
                    if expected[e.name] == e.sha256:
                        pixels[e.name] = e.pixels
                    else:
                        changed += 1
            if changed:
                notes.append(f"{changed} entries of '{sub_path}' differ from the audited ones (SHA-256): "
                             "they are not shown")
            missing = sum(1 for n in expected if n not in pixels) - changed
            if missing > 0:
                notes.append(f"{missing} audited entries are not in '{sub_path}' any more")
    train_path = None
    if with_train:
        train_path = train if train is not None else paths.get("train")
        if train_path is None or not os.path.isdir(train_path):
            notes.append(f"training folder '{train_path}' is not there: training images are not shown "
                         "(pass --train DIR)")
            train_path = None
    sources = ReportSources(pixels, Path(train_path) if train_path is not None else None)
    sources.notes.extend(notes)
    return sources
