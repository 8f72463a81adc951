"""The terminal summary of a calibration (rich), rendered from the calibration.json data."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def print_calibration_summary(data: dict[str, Any], console: Console) -> None:
    d, ff = data["derivation"], data["false_flags"]
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("kind", "threshold", "honest max", "set by", "recall", "AUC"):
        table.add_column(column)
    for kind, k in d["kinds"].items():
        roc = data["roc"][kind]
        top = "n/a" if k["honest_max"] is None else f"{k['honest_max']:.3f}"
        by = k["bounded_by"] or f"max + {d['margin']}"
        auc = "n/a" if roc["auc"] is None else f"{roc['auc']:.3f}"
        table.add_row(kind, f"{k['threshold']:.3f}", top, by, _pct(roc["at_threshold"]["recall"]), auc)
    console.print(table)
    honest = ", ".join(f"{data['sources'][n]['images']} {n}" for n in d["honest_sources"])
    console.print(f"honest reference images: {ff['honest_images']} ({honest}), "
                  f"{ff['flagged']} flagged; per-image false-flag rate < {ff['per_image_rate_upper_bound']:.2g} "
                  f"({ff['confidence']:.0%} one-sided); a {ff['submission_images']:,}-image honest submission needs "
                  f"~{ff['target_per_image_rate']:g} ({ff['honest_images_for_target']:,} honest images at 0 flagged)")
    det = data["detection"]
    parts = [f"{name.removeprefix('attack_')} {_pct(rate)}" for name, rate in det["by_source"].items()]
    console.print(f"flagged cheats: {det['flagged']} of {det['cheat_images']} ({_pct(det['recall'])}): "
                  + ", ".join(parts))
    nr = data.get("near_replays")
    if nr:
        bound = "n/a" if nr["rate_upper_bound"] is None else f"{nr['rate_upper_bound']:.2g}"
        console.print(f"near-replays: {nr['honest_near_replays']} of {nr['honest_images']} honest images "
                      f"(assumed share without held-out images < {bound}); "
                      + ", ".join(f"{name} {_pct(share)}" for name, share in nr["by_source"].items()))
    for note in data["notes"][1:]:
        console.print(f"note: {note}")
