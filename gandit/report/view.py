"""The audit report's content: the result dict (the same data as result.json) plus the
evidence pictures, assembled once into a plain context that ``templates/report.html.j2``
renders. Nothing here decides anything: verdict, kinds, scores and matches are the result's.

Size: a report must pass as a mail attachment (about 15 MB). The evidence gallery shows at
most ``gallery_max`` flagged images and stops earlier when its pictures reach
``picture_budget`` bytes; every flagged image is still listed, with its matches, in the table
below the gallery, and the page says how many cards were left out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from gandit.metrics import SIMILARITY_BINS, similarities_to_histogram
from gandit.report.evidence import (ReportSources, array_to_data_uri, images_to_difference, is_point_sampled,
                                    photo_to_context, photo_to_point_region, regions_to_mix, upscale)
from gandit.dataset import photo_to_region
from gandit.report.svg import Series, histogram_svg

GALLERY_MAX = 200
PICTURE_BUDGET = 10_000_000        #: bytes of data URIs in the gallery and the sample grid
SAMPLE_GRID = 64
SHOWN_ENTRIES = 20                 #: offending entries spelled out per check
ZOOM = 2                           #: submitted images and regions are shown at 2x, pixel for pixel

KIND_MEANING = {
    "copy": "the whole training image, resized, maybe mirrored or re-encoded",
    "crop": "a region of a training image (box drawn), resized, maybe mirrored",
    "blend": "a pixel mix of two or more training images (weights shown)",
    "replay": "a degraded reproduction of a training image or region (as a memorizer GAN outputs)",
}


@dataclass(frozen=True)
class ReportOptions:
    no_train_images: bool = False  #: show match paths and hashes, never training pixels
    gallery_max: int = GALLERY_MAX
    picture_budget: int = PICTURE_BUDGET
    sample_grid: int = SAMPLE_GRID


def _alt_for(image: dict[str, Any]) -> str:
    if not image["flagged"]:
        return f"submitted image {image['name']}: not flagged"
    match = image["matches"][0]["train"] if image["matches"] else "no match"
    waived = ", waived" if image["waived"] else ""
    return f"submitted image {image['name']}: flagged {image['kind']} of {match}{waived}"


def _match_text(m: dict[str, Any]) -> str:
    parts = [m["train"]]
    if m.get("weight") is not None:
        parts.append(f"weight {m['weight']:.3f}")
    if m.get("box") is not None:
        x, y, w, h = m["box"]
        parts.append(f"box x={x} y={y} w={w} h={h}")
    if m.get("flip"):
        parts.append("mirrored")
    if m.get("similarity") is not None:
        parts.append(f"similarity {m['similarity']:.3f}")
    return ", ".join(parts)


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def uri(self, image: np.ndarray, fmt: str = "png") -> str:
        uri = array_to_data_uri(image, fmt)
        self.used += len(uri)
        return uri


def _card(image: dict[str, Any], sources: ReportSources, options: ReportOptions, size: tuple[int, int],
          threshold: float | None, budget: _Budget) -> dict[str, Any]:
    submitted = sources.submission.get(image["name"])
    card: dict[str, Any] = {
        "name": image["name"], "kind": image["kind"], "score": image["score"], "threshold": threshold,
        "waived": image["waived"], "waiver_reason": image.get("waiver_reason"),
        "nn_similarity": image["nn_similarity"], "sha256": image.get("sha256"),
        "alt": _alt_for(image), "submitted": None, "difference": None, "reconstruction": None,
        "evidence": sorted((image.get("evidence") or {}).items()),
        "scores": sorted((image.get("scores") or {}).items()), "matches": [],
    }
    if submitted is not None:
        card["submitted"] = budget.uri(upscale(submitted, ZOOM))
        size = (submitted.shape[1], submitted.shape[0])
    regions, weights = [], []
    point = submitted is not None and len(image["matches"]) == 1 and is_point_sampled(image)
    for m in image["matches"]:
        entry = {"train": m["train"], "train_sha256": m.get("train_sha256"), "similarity": m.get("similarity"),
                 "weight": m.get("weight"), "box": m.get("box"), "flip": m.get("flip", False),
                 "text": _match_text(m), "context": None, "region": None, "point_sampled": point,
                 "alt": f"training image {m['train']}" + (" with the matched box drawn" if m.get("box") else "")}
        photo = None if options.no_train_images else sources.photo(m["train"])
        if photo is not None:
            if point:
                region = photo_to_point_region(photo, m.get("box"), bool(m.get("flip")), submitted)
            else:
                region = photo_to_region(photo, m.get("box"), bool(m.get("flip")), size)
            regions.append(region)
            weights.append(m.get("weight"))
            entry["context"] = budget.uri(photo_to_context(photo, m.get("box")), "jpeg")
            entry["region"] = budget.uri(upscale(region, ZOOM))
            entry["region_alt"] = (f"region of {m['train']} as the submission shows it"
                                   + (" (mirrored)" if m.get("flip") else "")
                                   + (" (point-sampled: a NEAREST resize of the box, within a pixel)" if point else ""))
        card["matches"].append(entry)
    if submitted is not None and regions and len(regions) == len(image["matches"]):
        mix = regions_to_mix(regions, weights)
        if len(regions) > 1 and all(w is not None for w in weights):
            card["reconstruction"] = budget.uri(upscale(np.clip(np.round(mix), 0, 255).astype(np.uint8), ZOOM))
        card["difference"] = budget.uri(upscale(images_to_difference(submitted, mix), ZOOM))
    return card


def _sample(images: list[dict[str, Any]], n: int, seed_text: str) -> list[dict[str, Any]]:
    """A random sample of the submission, the same for the same submission."""
    if len(images) <= n:
        return list(images)
    seed = int.from_bytes(hashlib.sha256(seed_text.encode("utf-8")).digest()[:8], "little")
    picks = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
    return [images[i] for i in picks]


def _histogram(result: dict[str, Any]) -> Any:
    sims = np.array([i["nn_similarity"] for i in result["images"] if i["nn_similarity"] is not None])
    series = [Series("submitted images", similarities_to_histogram(sims))]
    flagged = np.array([i["nn_similarity"] for i in result["images"]
                        if i["flagged"] and i["nn_similarity"] is not None])
    ref = result.get("nn_similarity_reference")
    if ref and ref.get("images"):
        label = ("held-out real images" if ref["source"] == "holdout"
                 else "training images vs each other (leave one out)")
        series.append(Series(label, np.array(ref["counts"])))
    if len(flagged):
        series.append(Series("flagged submitted images", similarities_to_histogram(flagged)))
    markers = {}
    if result["metrics"].get("mifid_epsilon") is not None:
        markers["1 − MiFID ε"] = 1.0 - float(result["metrics"]["mifid_epsilon"])
    return histogram_svg(series, SIMILARITY_BINS, chart_id="nn-histogram",
                         title="Per-image cosine similarity of Inception features to the nearest training image",
                         x_label="cosine similarity to the nearest training image (Inception pool3)",
                         markers=markers)


def result_to_view(result: dict[str, Any], sources: ReportSources, options: ReportOptions = ReportOptions()
                   ) -> dict[str, Any]:
    """The template context of the audit report."""
    prov = result["provenance"]
    size = tuple(prov.get("compare_size") or (64, 64))
    thresholds = result["thresholds"]
    budget = _Budget(options.picture_budget)

    flagged = [i for i in result["images"] if i["flagged"]]
    flagged.sort(key=lambda i: (i["waived"], -i["score"], i["name"]))
    cards = []
    for image in flagged:
        if len(cards) >= options.gallery_max or budget.used >= budget.limit:
            break
        cards.append(_card(image, sources, options, size, thresholds.get(image["kind"]), budget))
    omitted = len(flagged) - len(cards)
    omitted_why = ""
    if omitted:
        omitted_why = (f"the gallery shows at most {options.gallery_max} images" if len(cards) >= options.gallery_max
                       else f"the gallery's pictures reached {budget.limit / 1e6:.0f} MB")

    grid = []
    for image in _sample(result["images"], options.sample_grid, prov.get("submission_sha256") or ""):
        pixels = sources.submission.get(image["name"])
        grid.append({"name": image["name"], "flagged": image["flagged"], "kind": image["kind"],
                     "waived": image["waived"], "alt": _alt_for(image),
                     "uri": budget.uri(upscale(pixels, 1)) if pixels is not None else None})

    checks = []
    order = {"fail": 0, "warn": 1, "pass": 2}
    for c in sorted(result["checks"], key=lambda c: (order.get(c["status"], 3), c["id"])):
        entries = list(c.get("entries") or [])
        checks.append({**c, "shown": entries[:SHOWN_ENTRIES], "more": max(0, len(entries) - SHOWN_ENTRIES)})

    submission_label = (prov.get("paths") or {}).get("submission") or "submission"
    kinds = {}
    for i in flagged:
        kinds[i["kind"]] = kinds.get(i["kind"], 0) + 1
    return {
        "title": f"gandit audit: {submission_label}",
        "submission_label": submission_label,
        "result": result,
        "verdict": result["verdict"],
        "reason": result["reason"],
        "summary": result["submission"],
        "metrics": result["metrics"],
        "data_copying": result["submission"].get("data_copying") or {},
        "near_replays": result["submission"].get("near_replays") or {},
        "thresholds": [(k, v, KIND_MEANING.get(k, "")) for k, v in thresholds.items()],
        "calibration": prov.get("calibration"),
        "checks": checks,
        "histogram": _histogram(result) if result["images"] else None,
        "reference": result.get("nn_similarity_reference"),
        "cards": cards,
        "omitted": omitted,
        "omitted_why": omitted_why,
        "flagged": [{"name": i["name"], "kind": i["kind"], "score": i["score"], "waived": i["waived"],
                     "threshold": thresholds.get(i["kind"]),
                     "matches": [_match_text(m) + (f", sha256 {m['train_sha256'][:16]}…"
                                                   if options.no_train_images and m.get("train_sha256") else "")
                                 for m in i["matches"]]} for i in flagged],
        "flagged_kinds": sorted(kinds.items()),
        "grid": grid,
        "grid_total": len(result["images"]),
        "no_train_images": options.no_train_images,
        "notes": list(dict.fromkeys(sources.notes)),
        "provenance": prov,
        "picture_bytes": budget.used,
    }


def render_report(result: dict[str, Any], sources: ReportSources, options: ReportOptions = ReportOptions(),
                  rendered_at: str | None = None) -> str:
    """The self-contained HTML report of an audit result."""
    from gandit.report.html import render

    return render("report.html.j2", scripts=("report.js",), rendered_at=rendered_at,
                  **result_to_view(result, sources, options))
