#!/usr/bin/env python
"""Size and render time of the HTML report, for the bundled samples and for a 10,000-image
submission; optionally a screenshot of the sample report in headless Chromium (the README's).

1. samples: ``gandit audit samples/submissions/copies.zip --train samples/train`` once
   (features from the cache in ``--cache``), then the report is rendered from the result and the
   audit's pictures (what ``--report`` does) and timed.
2. 10,000 images: the samples' result replicated to 10,000 entries (each a renamed copy of one
   of the 48 submitted images, with its finding, so a quarter are flagged: 2,500; and a second
   time from the 12 flagged images only, so all 10,000 are flagged), written as a folder; then ``gandit report RESULT.json --submission FOLDER`` is timed end to end (reading
   10,000 images again, checking their SHA-256, rendering). The findings are replicated, not
   recomputed: this measures the report, not the forensics.

Usage::

    python benchmarks/report.py [--cache DIR] [--screenshot samples/report.png] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUBMISSION = Path("samples/submissions/copies.zip")   # relative: the report shows the path as given
TRAIN = Path("samples/train")


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), load {os.getloadavg()[0]:.1f}")


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2000) -> None:
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                    None)
    if chromium is None:
        raise SystemExit("--screenshot needs Chromium (apt install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={png.resolve()}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    from PIL import Image   # keep the PNG small: a palette image is plenty for a page

    Image.open(png).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "gandit-bench" / "features")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.cache, args.screenshot, args.json = (p.resolve() if p else p for p in (args.cache, args.screenshot, args.json))
    os.chdir(REPO)

    from gandit.audit import AuditOptions, load_inputs, run_audit
    from gandit.cli import main as cli
    from gandit.report.evidence import sources_from_audit
    from gandit.report.result import to_json
    from gandit.report.view import render_report

    numbers: dict = {"machine": machine(), "command": shlex.join([sys.executable, *sys.argv])}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        options = AuditOptions(SUBMISSION, TRAIN, cache=args.cache, device="cpu")
        inputs = load_inputs(options)
        result = run_audit(options, inputs=inputs).to_dict()
        t0 = time.perf_counter()
        html = render_report(result, sources_from_audit(inputs.submission, TRAIN), rendered_at="(benchmark)")
        numbers["samples"] = {"images": len(result["images"]), "flagged": result["submission"]["flagged"],
                              "render_s": round(time.perf_counter() - t0, 3), "bytes": len(html.encode())}
        sample_html = work / "report.html"
        sample_html.write_text(html, "utf-8")
        if args.screenshot:
            screenshot(sample_html, args.screenshot)

        raw = {}
        with zipfile.ZipFile(SUBMISSION) as zf:
            for info in zf.infolist():
                raw[info.filename] = zf.read(info)
        by_name = {i["name"]: i for i in result["images"]}
        every = sorted(by_name)
        only_flagged = sorted(n for n, i in by_name.items() if i["flagged"])
        for case, names in (("10k", every), ("10k-all-flagged", only_flagged)):
            numbers[case] = replicate_and_report(work / case, result, raw, names, args.images, cli, to_json)
    rows = [("samples, render only", numbers["samples"]["images"], numbers["samples"]["flagged"],
             numbers["samples"]["render_s"], numbers["samples"]["bytes"])]
    for case in ("10k", "10k-all-flagged"):
        n = numbers[case]
        label = "every image flagged" if case.endswith("all-flagged") else "a quarter flagged"
        rows.append((f"{n['images']:,} images, {label}: `gandit report` (read + verify + render)", n["images"],
                     n["flagged"],
                     n["report_s"], n["bytes"]))
    print("| case | images | flagged | time (s) | size (MB) |\n|---|---:|---:|---:|---:|")
    for label, images, flagged, seconds, size in rows:
        print(f"| {label} | {images:,} | {flagged:,} | {seconds} | {size / 1e6:.2f} |")
    print(f"\nmachine: {numbers['machine']}\ncommand: {numbers['command']}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


def replicate_and_report(work: Path, result: dict, raw: dict[str, bytes], names: list[str], count: int,
                         cli, to_json) -> dict:
    """``count`` entries, each a renamed copy of one of ``names`` (a distinct file: a PNG text
    chunk varies) with its finding, as a folder; then ``gandit report`` on it, timed."""
    folder = work / "submission"
    folder.mkdir(parents=True)
    by_name = {i["name"]: i for i in result["images"]}
    images = []
    for k in range(count):
        src = names[k % len(names)]
        data = raw[src]
        name = f"gen_{k:05d}.png"
        payload = data[:-12] + _text_chunk(f"copy {k}") + data[-12:]
        (folder / name).write_bytes(payload)
        images.append({**by_name[src], "name": name, "sha256": hashlib.sha256(payload).hexdigest()})
    big = {**result, "images": images}
    big["submission"] = {**result["submission"], "images": len(images), "flagged": sum(i["flagged"] for i in images)}
    big["provenance"] = {**result["provenance"], "paths": {"submission": str(folder), "train": str(TRAIN),
                                                           "holdout": None}}
    (work / "result.json").write_text(to_json(big))
    t0 = time.perf_counter()
    code = cli(["report", str(work / "result.json"), "--out", str(work / "report.html")])
    elapsed = time.perf_counter() - t0
    assert code == 0
    return {"images": len(images), "flagged": big["submission"]["flagged"], "report_s": round(elapsed, 2),
            "bytes": (work / "report.html").stat().st_size}


def _text_chunk(text: str) -> bytes:
    import struct
    import zlib

    body = b"tEXt" + b"Comment\0" + text.encode("latin-1")
    return struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


if __name__ == "__main__":
    main()
