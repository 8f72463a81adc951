"""The HTML report: one self-contained file with the verdict, checks, metrics, evidence for every
flagged image, hostile names shown as text, waivers, re-rendering from result.json, and
`--no-train-images`. The real-browser checks are in test_report_browser.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from browser import Chromium, find_chromium, page_requests_outside
from gandit.cli import main
from gandit.report.evidence import ReportSources, images_to_difference, photo_to_context, regions_to_mix
from gandit.report.view import ReportOptions, render_report, result_to_view

#: Entry names an attacker might choose: markup and script in file names (one with a folder).
HOSTILE = {
    "<img src=x onerror=\"document.title='pwned'\">.png": "img_008.png",
    "x\"><script>document.title='pwned'</script>.png": "img_024.png",
}
WAIVED = "img_026.png"


class _Page(HTMLParser):
    """Text, tags and attributes of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        (self.script_bodies if self._in_script else self.text).append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def build_hostile_submission(samples: Path, out: Path) -> tuple[Path, dict[str, bytes]]:
    """The copies sample plus hostile-named duplicates of two of its copies."""
    members: dict[str, bytes] = {}
    with zipfile.ZipFile(samples / "submissions" / "copies.zip") as zf:
        for info in zf.infolist():
            members[info.filename] = zf.read(info)
    for name, original in HOSTILE.items():
        members[name] = members[original]
    archive = out / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return archive, members


@pytest.fixture(scope="module")
def audited(tmp_path_factory, samples, feature_cache):
    """One audit with --report, --json and --waivers of the hostile-named copies sample."""
    out = tmp_path_factory.mktemp("report")
    archive, members = build_hostile_submission(samples, out)
    waivers = out / "waivers.toml"
    waivers.write_text(f'[[waiver]]\nsha256 = "{hashlib.sha256(members[WAIVED]).hexdigest()}"\n'
                       f'reason = "cleared: <b>public domain</b>"\n')
    code = main(["audit", str(archive), "--train", str(samples / "train"), "--cache", str(feature_cache),
                 "--device", "cpu", "--json", str(out / "result.json"), "--report", str(out / "report.html"),
                 "--waivers", str(waivers)])
    result = json.loads((out / "result.json").read_text())
    return code, out, result


def test_report_shows_the_verdict_and_every_flagged_entry_with_its_match(audited):
    code, out, result = audited
    html = (out / "report.html").read_text("utf-8")
    page = parse(html)
    text = " ".join(page.text)
    flagged = [i for i in result["images"] if i["flagged"]]
    assert code == 1 and result["verdict"] == "fail" and len(flagged) == 14   # 12 copies + 2 renamed
    assert "✘ FAIL" in text and result["reason"] in text
    for image in flagged:
        assert image["name"] in text
        assert image["matches"][0]["train"] in text
    # every flagged image has a card with the submitted image, its region and the difference
    cards = [attrs for tag, attrs in page.tags if tag == "article"]
    assert sorted(a["data-name"] for a in cards) == sorted(i["name"] for i in flagged)
    alts = [attrs.get("alt", "") for tag, attrs in page.tags if tag == "img"]
    for image in flagged:
        assert any(a.startswith(f"submitted image {image['name']}: flagged {image['kind']} of ") for a in alts)
    for check in result["checks"]:
        assert check["id"] in text
    near = result["submission"]["near_replays"]
    assert f"{near['near_replays']} of {near['images']} (p = {near['p_value']:.3g})" in text
    assert f"assumed honest share of {100 * near['rate']:.2f}%" in text


def test_hostile_entry_names_are_text_and_the_only_script_is_gandits(audited):
    _, out, _ = audited
    html = (out / "report.html").read_text("utf-8")
    page = parse(html)
    text = " ".join(page.text)
    for name in HOSTILE:
        assert name in text                         # shown, as text
    assert "document.title='pwned'" not in "".join(page.script_bodies)
    assert [t for t, _ in page.tags if t == "script"] == ["script"]
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)   # no event handlers
    assert "<b>public domain</b>" not in html and "&lt;b&gt;public domain&lt;/b&gt;" in html


def test_report_is_self_contained_and_small(audited):
    _, out, _ = audited
    html = (out / "report.html").read_text("utf-8")
    page = parse(html)
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0] and "img-src data:" in csp[0]
    script_hash = re.search(r"script-src 'sha256-([^']+)'", csp[0]).group(1)
    import base64
    assert base64.b64decode(script_hash) == hashlib.sha256(page.script_bodies[0].encode()).digest()
    for tag, attrs in page.tags:
        for key in ("src", "href", "srcset", "action", "data", "poster"):
            if attrs.get(key) is not None:
                assert attrs[key].startswith("data:image/"), (tag, key, attrs[key][:60])
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html)    # no CSS fetches
    assert len(html.encode()) < 15_000_000


def test_waived_images_are_shown_as_waived_and_not_counted(audited):
    _, out, result = audited
    view_cards = {c["name"]: c for c in result_to_view(result, ReportSources())["cards"]}
    assert view_cards[WAIVED]["waived"] and view_cards[WAIVED]["waiver_reason"] == "cleared: <b>public domain</b>"
    assert result["submission"]["waived"] == 1
    counted = next(c for c in result["checks"] if c["id"] == "forensics.flagged")
    assert WAIVED not in counted["entries"] and len(counted["entries"]) == 13
    html = (out / "report.html").read_text("utf-8")
    card = re.search(r'<article class="card waived"[^>]*data-name="img_026.png"', html)
    assert card is not None


def test_report_command_rerenders_from_the_result_and_says_what_is_missing(audited, tmp_path, capsys):
    _, out, result = audited
    again = tmp_path / "again.html"
    assert main(["report", str(out / "result.json"), "--out", str(again)]) == 0
    first, second = (out / "report.html").read_text("utf-8"), again.read_text("utf-8")
    strip = lambda h: re.sub(r"rendered [0-9-]+ [0-9:]+ UTC", "", h)   # noqa: E731
    assert strip(first) == strip(second)                 # same pictures, same content
    gone = tmp_path / "gone.html"
    capsys.readouterr()
    assert main(["report", str(out / "result.json"), "--out", str(gone),
                 "--submission", str(tmp_path / "moved.zip")]) == 0
    err = capsys.readouterr().err
    html = gone.read_text("utf-8")
    assert "moved.zip" in err and "Missing: submission" in html and "submitted image not available" in html
    assert html.count("<article") == sum(i["flagged"] for i in result["images"])


def test_no_train_images_shows_paths_and_hashes_but_no_training_pixels(audited, tmp_path):
    _, out, result = audited
    shared = tmp_path / "shared.html"
    assert main(["report", str(out / "result.json"), "--out", str(shared), "--no-train-images"]) == 0
    html = shared.read_text("utf-8")
    page = parse(html)
    imgs = [a for t, a in page.tags if t == "img"]
    assert not any(a["src"].startswith("data:image/jpeg") for a in imgs)      # no photo context
    assert not any("region of" in a.get("alt", "") or "difference" in a.get("alt", "") for a in imgs)
    flagged = [i for i in result["images"] if i["flagged"]]
    for image in flagged:
        for m in image["matches"]:
            assert m["train_sha256"] and m["train_sha256"] in html and m["train"] in html
    # the only pictures left are submitted images: gallery cards and the sample grid
    assert len(imgs) == len(flagged) + min(64, len(result["images"]))


def test_a_result_that_is_not_a_gandit_result_stops_with_one_line(tmp_path, capsys):
    bad = tmp_path / "r.json"
    bad.write_text('{"schema": "something else"}')
    assert main(["report", str(bad), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "r.json" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
    assert main(["report", str(tmp_path / "none.json"), "--out", str(tmp_path / "r.html")]) == 2


def _synthetic_result(n: int, flagged: int) -> dict:
    images = []
    for i in range(n):
        is_flagged = i < flagged
        images.append({"name": f"gen_{i:05d}.png", "sha256": f"{i:064x}", "flagged": is_flagged, "waived": False,
                       "kind": "crop" if is_flagged else None, "score": 0.9 if is_flagged else 0.1,
                       "nn_similarity": 0.7, "scores": {}, "evidence": {}, "waiver_reason": None,
                       "matches": [{"train": f"photos/p{i % 50}.jpg", "similarity": 0.8, "weight": None,
                                    "box": [1, 2, 30, 30], "flip": False, "train_sha256": None}] if is_flagged else []})
    return {"schema": "gandit.audit/1", "verdict": "fail", "reason": "forensics.flagged: many.",
            "provenance": {"gandit": "0.1.0", "rules": {"name": "default", "source": "bundled:default", "sha256": "0"},
                           "weights": {"source": "bundled", "sha256": "0"}, "preprocessing": "center-crop",
                           "compare_size": [64, 64], "detectors": ["copy"], "device": "cpu",
                           "submission_sha256": "ab", "train_fingerprint": "cd", "train_images": 50,
                           "train_skipped": [], "calibration": None, "paths": None},
            "thresholds": {"copy": 0.5, "crop": 0.5, "blend": 0.5, "replay": 0.5},
            "checks": [{"id": "forensics.flagged", "status": "fail", "message": "many", "entries": []}],
            "metrics": {"fid": None, "mifid": None, "memorization_distance": None, "mifid_epsilon": 0.1,
                        "mifid_penalized": None},
            "submission": {"images": n, "flagged": flagged, "distinct_train_matched": 50, "waived": 0,
                           "data_copying": {"test": "C_T", "statistic": None, "p_value": None}},
            "images": images}


def test_a_large_gallery_is_capped_and_says_what_it_leaves_out_while_the_table_lists_all():
    result = _synthetic_result(500, 300)
    sources = ReportSources({f"gen_{i:05d}.png": np.full((64, 64, 3), i % 255, np.uint8) for i in range(500)})
    html = render_report(result, sources, ReportOptions(gallery_max=25))
    page = parse(html)
    text = " ".join(page.text)
    assert html.count("<article") == 25
    assert "25 of 300 flagged images are shown here" in text and "at most 25" in text
    rows = [a for t, a in page.tags if t == "tr" and "data-name" in a]
    assert len(rows) == 300
    grid = [a for t, a in page.tags if t == "img" and "not flagged" in a.get("alt", "")]
    assert 0 < len(grid) <= 64
    budget = render_report(result, sources, ReportOptions(picture_budget=30_000))
    assert 0 < budget.count("<article") < 300 and "reached" in budget


def test_evidence_pictures_draw_the_box_and_show_differences():
    photo = np.zeros((100, 200, 3), np.uint8)
    context = photo_to_context(photo, [50, 20, 80, 60], max_side=100)
    assert context.shape == (50, 100, 3)
    ys, xs = np.nonzero(context.max(axis=2))
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (26, 11, 63, 38)      # the box, scaled by 1/2
    a = np.full((4, 4, 3), 100, np.uint8)
    b = np.full((4, 4, 3), 140, np.uint8)
    assert (images_to_difference(a, regions_to_mix([a], [None])) == 0).all()
    mix = regions_to_mix([a, b], [0.75, 0.25])
    assert np.allclose(mix, 110) and (images_to_difference(b, mix) == 120).all()


def _png_pixels(uri: str) -> np.ndarray:
    import base64

    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


@pytest.mark.parametrize("flip", [False, True])
def test_a_point_sampled_crop_is_shown_as_the_nearest_resize_the_detector_verified(tmp_path, flip):
    """A crop resized with NEAREST, flagged on point samples of its photo: the report shows the
    box's NEAREST render (the recorded box is a pixel off, as a box recovered from a 64-px
    canvas is) and the difference is black. An antialiased render of the same box, as for any
    other match, differs by 6.7 levels on average and up to 70 at the edges of the fur."""
    from PIL import Image
    import skimage.data as sd

    photo = sd.chelsea()
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo).save(tmp_path / "photos" / "cat.png")
    x, y, w, h = 60, 40, 200, 180
    crop = np.asarray(Image.fromarray(photo).crop((x, y, x + w, y + h)).resize((64, 64), Image.Resampling.NEAREST))
    submitted = np.ascontiguousarray(crop[:, ::-1]) if flip else crop
    result = _synthetic_result(1, 1)
    image = result["images"][0]
    image["matches"][0].update(train="photos/cat.png", box=[x + 1, y, w - 1, h + 1], flip=flip)
    sources = ReportSources({image["name"]: submitted}, tmp_path)

    def card(point: float) -> dict:
        image.update(evidence={"crop_point_sampled": point, "copy_point_sampled": 0.0}, scores={"crop": 0.9})
        return result_to_view(result, sources)["cards"][0]

    point, area = card(1.0), card(0.0)
    shown = _png_pixels(point["matches"][0]["region"])[::2, ::2]
    assert (shown == submitted).all()
    assert (_png_pixels(point["difference"]) == 0).all()
    assert point["matches"][0]["point_sampled"] and "NEAREST" in point["matches"][0]["region_alt"]
    smooth = _png_pixels(area["difference"])[::2, ::2].astype(np.float64) / 4     # DIFF_GAIN
    assert smooth.mean() > 5 and not area["matches"][0]["point_sampled"]


CHROMIUM = find_chromium()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no Chromium on this machine (apt install chromium)")
    chromium = Chromium(CHROMIUM)
    yield chromium
    chromium.close()


def _not_blank(png: bytes) -> float:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return float((np.abs(pixels - 255) > 8).mean())


def test_headless_chromium_shows_every_flagged_entry_and_fetches_nothing(audited, browser, tmp_path):
    _, out, result = audited
    page = out / "report.html"
    flagged = [i["name"] for i in result["images"] if i["flagged"]]
    for javascript in (True, False):
        visit = browser.visit(page.as_uri(), javascript=javascript, expressions={
            "images_loaded": "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
            "cards": "document.querySelectorAll('article.card').length",
            "controls_hidden": "document.getElementById('gallery-controls').hidden"})
        assert page_requests_outside(visit, page) == []           # nothing from the network, ever
        assert visit.title.startswith("gandit audit:")            # no hostile name ran as script
        for name in flagged:
            assert name in visit.text
        assert visit.values["images_loaded"] is True and visit.values["cards"] == len(flagged)
        assert visit.values["controls_hidden"] is (not javascript)   # filters appear only with JS
        assert not [e for e in visit.console_errors if "Content Security Policy" in e or "Uncaught" in e]
        assert _not_blank(visit.screenshot) > 0.05
        (tmp_path / f"screenshot-js-{javascript}.png").write_bytes(visit.screenshot)


def test_the_network_check_catches_a_page_that_fetches(browser, tmp_path):
    """The check above can fail: a page with a remote image is caught (and its CSP blocks it)."""
    page = tmp_path / "leaky.html"
    page.write_text('<!doctype html><title>leaky</title><p>x</p><img src="http://127.0.0.1:9/pixel.png">')
    visit = browser.visit(page.as_uri())
    assert page_requests_outside(visit, page) == ["http://127.0.0.1:9/pixel.png"]


def test_outputs_are_written_with_the_users_umask_not_private(tmp_path):
    from gandit.report.result import write_atomic

    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "report.html", "<p>x</p>")
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644   # a report is meant to be shared
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]      # no temporary file left


def test_a_result_with_only_the_contracts_required_fields_renders(audited, samples, tmp_path):
    """`gandit report` takes any schema-valid gandit.audit/1 result, not only this version's."""
    _, out, result = audited
    from gandit.report.result import schema

    contract = schema()
    minimal = {k: v for k, v in result.items() if k in contract["required"]}
    required_prov = contract["properties"]["provenance"]["required"]
    minimal["provenance"] = {k: v for k, v in result["provenance"].items() if k in required_prov}
    minimal["provenance"]["rules"] = {k: result["provenance"]["rules"][k] for k in ("name", "sha256")}
    minimal["images"] = [{**{k: i[k] for k in ("name", "flagged", "waived", "kind", "score", "nn_similarity")},
                          "matches": [{k: m[k] for k in ("train", "similarity", "weight", "box", "flip")}
                                      for m in i["matches"]]} for i in result["images"]]
    (tmp_path / "minimal.json").write_text(json.dumps(minimal))
    assert main(["report", str(tmp_path / "minimal.json"), "--out", str(tmp_path / "m.html"),
                 "--submission", str(out / "hostile.zip"), "--train", str(samples / "train")]) == 0
    html = (tmp_path / "m.html").read_text("utf-8")
    assert html.count("<article") == sum(i["flagged"] for i in result["images"])


def test_two_outputs_on_one_path_stop_the_audit_before_any_work(samples, tmp_path, capsys):
    same = tmp_path / "out.html"
    code = main(["audit", str(samples / "submissions" / "copies.zip"), "--train", str(samples / "train"),
                 "--json", str(same), "--report", str(same)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--report" in err and "--json" in err
    assert list(tmp_path.iterdir()) == []
