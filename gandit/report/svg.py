"""Inline SVG charts for the HTML pages: numbers in, markup out (no script, no fonts fetched).

Series are told apart by line pattern as well as colour, so charts read without colour; every
chart carries a ``<title>`` and a text description for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 16, 44
#: Stroke patterns of successive series (solid, dashed, dotted, dash-dot).
DASHES = ("", "6 4", "2 3", "8 3 2 3")
COLOURS = ("#1f5fa8", "#c0392b", "#2e7d32", "#6a1b9a")


@dataclass(frozen=True)
class Series:
    label: str
    counts: np.ndarray          #: per bin; drawn as shares of the series' total


def histogram_svg(series: list[Series], edges: np.ndarray, *, title: str, x_label: str, chart_id: str,
                  y_label: str = "share of images", markers: dict[str, float] | None = None) -> Markup:
    """Step outlines of several histograms over the same ``edges``, each normalised to shares,
    with optional vertical ``markers`` (label → x)."""
    edges = np.asarray(edges, dtype=float)
    lo, hi = float(edges[0]), float(edges[-1])
    shares = [np.asarray(s.counts, float) / max(float(np.sum(s.counts)), 1.0) for s in series]
    top = max([float(s.max()) for s in shares if len(s)] + [1e-9])
    top = float(np.ceil(top * 10) / 10) if top > 0.1 else float(np.ceil(top * 100) / 100)
    pw, ph = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(v: float) -> float:
        return MARGIN_LEFT + (v - lo) / (hi - lo) * pw

    def y(v: float) -> float:
        return MARGIN_TOP + ph - v / top * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'class="chart" aria-labelledby="{chart_id}">',
             f'<title id="{chart_id}">{escape(title)}</title>',
             f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        parts.append(f'<line x1="{x(v):.1f}" y1="{MARGIN_TOP + ph}" x2="{x(v):.1f}" y2="{MARGIN_TOP + ph + 4}" stroke="#555"/>'
                     f'<text x="{x(v):.1f}" y="{MARGIN_TOP + ph + 16}" text-anchor="middle">{v:.1f}</text>')
        t = top * i / 5
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>')
    parts.append(f'<text x="{MARGIN_LEFT + pw / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text transform="translate(14 {MARGIN_TOP + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 f'{escape(y_label)}</text>')
    for k, share in enumerate(shares):
        pts = [(x(lo), y(0.0))]
        for j, v in enumerate(share):
            pts += [(x(edges[j]), y(v)), (x(edges[j + 1]), y(v))]
        pts.append((x(hi), y(0.0)))
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        dash = DASHES[k % len(DASHES)]
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[k % len(COLOURS)]}" stroke-width="2"'
                     + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
    for label, v in (markers or {}).items():
        if lo <= v <= hi:
            parts.append(f'<line x1="{x(v):.1f}" y1="{MARGIN_TOP}" x2="{x(v):.1f}" y2="{MARGIN_TOP + ph}" '
                         f'stroke="#333" stroke-dasharray="1 3"/>'
                         f'<text x="{x(v) - 4:.1f}" y="{MARGIN_TOP + 12}" text-anchor="end">{escape(label)}</text>')
    # legend, top left inside the plot
    for k, s in enumerate(series):
        ly = MARGIN_TOP + 14 + 16 * k
        dash = DASHES[k % len(DASHES)]
        parts.append(f'<line x1="{MARGIN_LEFT + 10}" y1="{ly - 4}" x2="{MARGIN_LEFT + 40}" y2="{ly - 4}" '
                     f'stroke="{COLOURS[k % len(COLOURS)]}" stroke-width="2"'
                     + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
                     f'<text x="{MARGIN_LEFT + 46}" y="{ly}">{escape(s.label)} (n = {int(np.sum(s.counts)):,})</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class RocCurve:
    label: str
    false_flag_rate: list[float | None]     #: x of each point, in [0, 1]; None = no honest images
    recall: list[float | None]              #: y of each point, in [0, 1]; None = no cheating images
    point: tuple[float, float] | None = None   #: the operating point (false-flag rate, recall), marked


def roc_svg(curves: list[RocCurve], *, title: str, chart_id: str, x_label: str = "false-flag rate (honest images)",
            y_label: str = "recall (cheating images)") -> Markup:
    """ROC curves (points joined in order of falling recall, from (0, 0) to (1, 1)), the chance
    diagonal, and each curve's operating point as a ring; curves without points are listed in
    the legend as "no data"."""
    size = 300
    left, right, top, bottom = 56, 200, 16, 44
    width, height = left + size + right, top + size + bottom

    def x(v: float) -> float:
        return left + v * size

    def y(v: float) -> float:
        return top + size - v * size

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'class="chart" aria-labelledby="{chart_id}">',
             f'<title id="{chart_id}">{escape(title)}</title>',
             f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#999"/>',
             f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}" stroke="#bbb" '
             f'stroke-dasharray="2 4"/>']
    for i in range(6):
        v = i / 5
        parts.append(f'<line x1="{x(v):.1f}" y1="{top + size}" x2="{x(v):.1f}" y2="{top + size + 4}" stroke="#555"/>'
                     f'<text x="{x(v):.1f}" y="{top + size + 16}" text-anchor="middle">{v:.1f}</text>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    parts.append(f'<text x="{left + size / 2:.1f}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text transform="translate(14 {top + size / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 f'{escape(y_label)}</text>')
    for k, curve in enumerate(curves):
        colour, dash = COLOURS[k % len(COLOURS)], DASHES[k % len(DASHES)]
        pts = sorted({(float(f), float(r)) for f, r in zip(curve.false_flag_rate, curve.recall)
                      if f is not None and r is not None} | {(0.0, 0.0), (1.0, 1.0)})
        has_data = any(f is not None and r is not None for f, r in zip(curve.false_flag_rate, curve.recall))
        if has_data:
            path = " ".join(f"{x(f):.1f},{y(r):.1f}" for f, r in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"'
                         + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            if curve.point is not None:
                f, r = curve.point
                parts.append(f'<circle cx="{x(f):.1f}" cy="{y(r):.1f}" r="5" fill="none" stroke="{colour}" '
                             f'stroke-width="2"><title>{escape(curve.label)}: false-flag rate {f:.3f}, '
                             f'recall {r:.3f}</title></circle>')
        ly = top + 12 + 18 * k
        parts.append(f'<line x1="{left + size + 14}" y1="{ly - 4}" x2="{left + size + 40}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
                     f'<text x="{left + size + 46}" y="{ly}">{escape(curve.label)}'
                     f'{"" if has_data else " (no data)"}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
