"""The concise terminal summary of an audit (rich), rendered from the result dict."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}
SHOWN_FLAGS = 10


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def print_summary(result: dict[str, Any], console: Console) -> None:
    verdict = result["verdict"]
    banner = Text(f" {verdict.upper()} ", style="bold white on green" if verdict == "pass" else "bold white on red")
    console.print(banner, Text(" " + result["reason"]))
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("message", overflow="fold")
    for c in result["checks"]:
        table.add_row(c["id"], Text(c["status"], style=STATUS_STYLE[c["status"]]), c["message"])
    console.print(table)
    m, s = result["metrics"], result["submission"]
    mifid_note = " (memorization penalty active)" if m["mifid_penalized"] else ""
    console.print(f"FID {_num(m['fid'])}   MiFID {_num(m['mifid'])}{mifid_note}   "
                  f"memorization distance {_num(m['memorization_distance'], '{:.4f}')} "
                  f"(epsilon {m['mifid_epsilon']})")
    console.print(f"{s['images']} images, {s['flagged']} flagged ({s['waived']} waived), "
                  f"{s['distinct_train_matched']} distinct training images matched; "
                  f"weights: {result['provenance']['weights']['source']}, "
                  f"preprocessing: {result['provenance']['preprocessing']}")
    flagged = [i for i in result["images"] if i["flagged"]]
    for i in flagged[:SHOWN_FLAGS]:
        match = i["matches"][0] if i["matches"] else None
        where = ""
        if match:
            where = f" ← {match['train']}" + (f" box {match['box']}" if match["box"] else "") \
                + (" mirrored" if match["flip"] else "")
        waived = " [waived]" if i["waived"] else ""
        console.print(Text(f"  {i['kind']:<6} {i['score']:.3f}  {i['name']}{where}{waived}"))
    if len(flagged) > SHOWN_FLAGS:
        console.print(f"  … and {len(flagged) - SHOWN_FLAGS} more flagged images (see --json)")
