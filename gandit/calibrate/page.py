"""The calibration page (``gandit calibrate --report``): calibration.json's data rendered with
the shared Jinja environment (``gandit.report.html``) and inline SVG ROC curves
(``gandit.report.svg.roc_svg``), so the page and the JSON cannot disagree."""

from __future__ import annotations

from typing import Any

from gandit.forensics import KINDS
from gandit.report.html import render
from gandit.report.svg import RocCurve, roc_svg

TEMPLATE = "calibration.html.j2"


def _curve(label: str, roc: dict[str, Any], point_key: str | None = "at_threshold") -> RocCurve:
    point = None
    if point_key and roc.get(point_key):
        at = roc[point_key]
        if at["false_flag_rate"] is not None and at["recall"] is not None:
            point = (at["false_flag_rate"], at["recall"])
    return RocCurve(label, roc["false_flag_rate"], roc["recall"], point)


def _any_point(roc: dict[str, Any]) -> tuple[float, float] | None:
    """The operating point of the combined curve: scale 1 (the thresholds themselves)."""
    if 1.0 not in roc["scales"]:
        return None
    i = roc["scales"].index(1.0)
    f, r = roc["false_flag_rate"][i], roc["recall"][i]
    return None if f is None or r is None else (f, r)


def calibration_view(data: dict[str, Any]) -> dict[str, Any]:
    """The template's context, from calibration.json's data."""
    roc = data["roc"]
    kinds = []
    for kind in KINDS:
        d = data["derivation"]["kinds"][kind]
        kinds.append({"kind": kind, **d, "auc": roc[kind]["auc"], "recall": roc[kind]["at_threshold"]["recall"],
                      "positives": roc[kind]["positives"]})
    per_kind = roc_svg([_curve(k, roc[k]) for k in KINDS], title="ROC per kind: honest reference images against "
                       "the cheating images of that kind (rings: the chosen thresholds)", chart_id="roc-kinds")
    combined = RocCurve("any kind", roc["any"]["false_flag_rate"], roc["any"]["recall"], _any_point(roc["any"]))
    any_chart = roc_svg([combined], title="ROC of the whole audit: every threshold scaled together "
                        "(ring: the chosen thresholds)", chart_id="roc-any")
    sources = [{"name": name, **s} for name, s in data["sources"].items()]
    return {
        "title": f"gandit calibration · {data['provenance']['rules']['name']}",
        "data": data, "kinds": kinds, "sources": sources, "kind_names": list(KINDS),
        "roc_kinds_svg": per_kind, "roc_any_svg": any_chart,
        "budget_items": sorted(data["training"]["budget"].items()),
    }


def render_calibration_page(data: dict[str, Any]) -> str:
    """The self-contained HTML page of a calibration (no script, nothing fetched)."""
    return render(TEMPLATE, **calibration_view(data))
