"""`gandit audit` end to end on the bundled samples: verdicts, evidence against the ground truth,
the result.json contract, determinism, cache reuse and repair, exit codes, hostile input."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import jsonschema
import pytest

from gandit.cli import main
from gandit.report.result import schema

from intake_fixtures import encode, pixels


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def audit_args(samples: Path, submission: str | Path, cache: Path, *extra: str) -> list[str]:
    sub = submission if isinstance(submission, Path) else samples / "submissions" / submission
    return ["audit", str(sub), "--train", str(samples / "train"), "--cache", str(cache), "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def copies_result(tmp_path_factory, samples, feature_cache):
    """The copies sample audited once for the module (JSON + JUnit), with the exit code."""
    out = tmp_path_factory.mktemp("copies")
    code = main(audit_args(samples, "copies.zip", feature_cache, "--json", str(out / "result.json"),
                           "--junit", str(out / "junit.xml")))
    return code, out


def test_copies_sample_fails_and_names_every_copy_with_its_evidence(copies_result, truth):
    code, out = copies_result
    result = json.loads((out / "result.json").read_text())
    assert code == 1 and result["verdict"] == "fail"
    expected = {name: t for name, t in truth["copies.zip"].items() if t["kind"] == "copy"}
    flagged = {i["name"]: i for i in result["images"] if i["flagged"]}
    assert set(flagged) == set(expected)  # every copy found, no honest image accused
    for name, t in expected.items():
        image = flagged[name]
        match = image["matches"][0]
        assert match["train"] == t["train"], name
        assert match["flip"] == t["flip"], name
        assert match["similarity"] > 0.85
        if t["resize"] == "center-crop":  # the centred square of a non-square photo: a region
            assert image["kind"] == "crop" and match["box"] is not None
            x, y, w, h = match["box"]
            assert w == h and x >= 0 and y >= 0
        else:
            assert image["kind"] == "copy" and match["box"] is None, name
    check = next(c for c in result["checks"] if c["id"] == "forensics.flagged")
    assert check["status"] == "fail" and sorted(check["entries"]) == sorted(expected)
    assert result["submission"]["flagged"] == len(expected)
    assert result["submission"]["distinct_train_matched"] == len({t["train"] for t in expected.values()})


def test_honest_sample_passes_with_no_image_flagged(samples, feature_cache, tmp_path, capsys):
    code, stdout, _ = run(audit_args(samples, "honest.zip", feature_cache, "--json", str(tmp_path / "r.json")), capsys)
    result = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and result["verdict"] == "pass", stdout
    assert not any(i["flagged"] for i in result["images"])
    assert max(i["score"] for i in result["images"]) < result["thresholds"]["copy"]
    assert "PASS" in stdout


def test_result_follows_the_contract(copies_result, samples):
    _, out = copies_result
    result = json.loads((out / "result.json").read_text())
    jsonschema.validate(result, schema("audit"))
    with zipfile.ZipFile(samples / "submissions" / "copies.zip") as zf:
        names = sorted(n for n in zf.namelist() if not n.endswith("/"))
    assert [i["name"] for i in result["images"]] == names  # every decoded entry, sorted by name
    ids = [c["id"] for c in result["checks"]]
    assert ids == sorted(ids)
    for required in ("archive.open", "archive.unsafe_path", "archive.symlink", "archive.limits", "format.decode",
                     "format.count", "format.size", "format.mode", "format.format", "format.duplicate",
                     "forensics.flagged"):
        assert required in ids
    m = result["metrics"]
    assert m["fid"] > 0 and m["mifid_epsilon"] == 0.1
    assert m["mifid"] == pytest.approx(m["fid"] / (1.0 if m["memorization_distance"] >= 0.1
                                                   else m["memorization_distance"]), rel=1e-5)
    text = (out / "result.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert result["provenance"]["weights"]["source"] == "bundled"
    assert result["provenance"]["preprocessing"] == "center-crop"
    # without --holdout the near-replay count is tested against the rules' assumed honest share,
    # and reported only (the default rules' near_replay_alpha is 0)
    near = result["submission"]["near_replays"]
    assert near["test"] == "binomial" and near["rate"] == 0.02 and near["holdout_images"] is None
    assert near["near_replays"] >= 12 and 0 < near["p_value"] < 1e-9
    assert next(c for c in result["checks"] if c["id"] == "forensics.near_replays")["status"] == "pass"


def test_junit_has_a_case_per_check_and_per_flagged_image(copies_result):
    _, out = copies_result
    result = json.loads((out / "result.json").read_text())
    root = ET.parse(out / "junit.xml").getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    for check in result["checks"]:
        case = cases[("gandit.checks", check["id"])]
        assert (case.find("failure") is not None) == (check["status"] == "fail")
    flagged = [i for i in result["images"] if i["flagged"]]
    for image in flagged:
        failure = cases[("gandit.images", image["name"])].find("failure")
        assert failure is not None and image["matches"][0]["train"] in failure.get("message")
    assert sum(1 for c in root.iter("testcase") if c.get("classname") == "gandit.images") == len(flagged)


def test_same_inputs_give_byte_identical_json_and_a_warm_cache_embeds_nothing(
        copies_result, samples, feature_cache, tmp_path, monkeypatch, capsys):
    _, out = copies_result
    from gandit.features import embed

    def no_forward(self, images):
        raise AssertionError("a warm cache must not run Inception")

    monkeypatch.setattr(embed.InceptionExtractor, "__call__", no_forward)
    code, _, err = run(audit_args(samples, "copies.zip", feature_cache, "--json", str(tmp_path / "again.json")), capsys)
    assert code == 1, err
    assert (tmp_path / "again.json").read_bytes() == (out / "result.json").read_bytes()


def test_corrupt_cache_entries_are_detected_and_recomputed(copies_result, samples, feature_cache, tmp_path, capsys):
    _, out = copies_result
    cache = shutil.copytree(feature_cache, tmp_path / "cache")
    from gandit.features.cache import FeatureCache

    read: list[str] = []
    real_get = FeatureCache.get

    def spy(self, key):
        read.append(key)
        return real_get(self, key)

    with pytest.MonkeyPatch.context() as mp:   # which entries does this audit read?
        mp.setattr(FeatureCache, "get", spy)
        run(audit_args(samples, "copies.zip", cache, "--json", str(tmp_path / "warm.json")), capsys)
    entries = sorted(p for p in cache.rglob("*.npyc") if p.stem in set(read))
    assert len(entries) > 200
    damaged = entries[:3]
    damaged[0].write_bytes(damaged[0].read_bytes()[:50])                       # truncated
    blob = bytearray(damaged[1].read_bytes()); blob[-40] ^= 0xFF; damaged[1].write_bytes(bytes(blob))  # bit flip
    damaged[2].write_bytes(b"")                                                # empty
    code, _, err = run(audit_args(samples, "copies.zip", cache, "--json", str(tmp_path / "r.json")), capsys)
    assert code == 1, err
    assert (tmp_path / "r.json").read_bytes() == (out / "result.json").read_bytes()
    store = FeatureCache(cache)
    for path in damaged:
        assert store.get(path.stem) is not None  # rewritten whole


def test_waivers_clear_flagged_images_from_the_verdict(copies_result, samples, feature_cache, tmp_path, capsys):
    _, out = copies_result
    flagged = [i for i in json.loads((out / "result.json").read_text())["images"] if i["flagged"]]
    waivers = tmp_path / "waivers.toml"
    waivers.write_text("".join(f'[[waiver]]\nsha256 = "{i["sha256"]}"\nreason = "cleared by reviewer"\n\n'
                               for i in flagged))
    code, _, err = run(audit_args(samples, "copies.zip", feature_cache, "--json", str(tmp_path / "r.json"),
                                  "--waivers", str(waivers)), capsys)
    result = json.loads((tmp_path / "r.json").read_text())
    assert code == 0, err
    assert result["submission"]["waived"] == len(flagged)
    assert all(i["waived"] and i["flagged"] for i in result["images"] if i["name"] in {f["name"] for f in flagged})


def test_kaggle_rules_fail_the_count_and_keep_auditing(samples, feature_cache, tmp_path, capsys):
    code, _, _ = run(audit_args(samples, "honest.zip", feature_cache, "--rules", "kaggle-generative-dog-images",
                                "--json", str(tmp_path / "r.json")), capsys)
    result = json.loads((tmp_path / "r.json").read_text())
    checks = {c["id"]: c for c in result["checks"]}
    assert code == 1
    assert checks["format.count"]["status"] == "fail" and "10000" in checks["format.count"]["message"]
    assert checks["format.size"]["status"] == "pass" and checks["format.format"]["status"] == "pass"
    assert result["provenance"]["preprocessing"] == "kaggle2019"
    assert len(result["images"]) == 48 and result["metrics"]["mifid"] is not None


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_hostile_entries_are_named_failed_checks_and_nothing_is_written_outside(
        samples, feature_cache, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good_1.png", encode(pixels(1, 64)))
        zf.writestr("good_2.png", encode(pixels(2, 64)))
        zf.writestr("../evil.png", encode(pixels(3, 64)))
        zf.writestr("/abs.png", encode(pixels(4, 64)))
        zf.writestr("notes.png", b"this is not an image")
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    monkeypatch.chdir(work)
    before = _snapshot(tmp_path)
    out = work / "result.json"
    code, _, err = run(audit_args(samples, archive, feature_cache, "--json", str(out)), capsys)
    assert code == 1 and "Traceback" not in err
    assert _snapshot(tmp_path) - before == {"work/result.json"}
    result = json.loads(out.read_text())
    checks = {c["id"]: c for c in result["checks"]}
    assert checks["archive.unsafe_path"]["status"] == "fail"
    assert set(checks["archive.unsafe_path"]["entries"]) == {"../evil.png", "/abs.png"}
    assert checks["archive.symlink"]["entries"] == ["link.png"]
    assert checks["format.decode"]["entries"] == ["notes.png"]
    assert [i["name"] for i in result["images"]] == ["good_1.png", "good_2.png"]  # the audit went on


@pytest.mark.parametrize("case", ["missing_train", "empty_train", "bad_rules", "unopenable_archive",
                                  "missing_submission", "json_dir_missing", "bad_waivers", "bad_flag",
                                  "cache_unwritable"])
def test_inputs_that_stop_the_run_give_one_line_and_exit_2_with_no_outputs(
        case, samples, feature_cache, tmp_path, capsys):
    train, submission = samples / "train", samples / "submissions" / "honest.zip"
    out = tmp_path / "out"
    out.mkdir()
    extra: list[str] = []
    if case == "missing_train":
        train = tmp_path / "nope"
    elif case == "empty_train":
        train = tmp_path / "empty"
        train.mkdir()
    elif case == "bad_rules":
        rules = tmp_path / "rules.toml"
        rules.write_text("[submission]\ncolour = 'red'\n")
        extra = ["--rules", str(rules)]
    elif case == "unopenable_archive":
        submission = tmp_path / "sub.zip"
        submission.write_bytes(os.urandom(4096))
    elif case == "missing_submission":
        submission = tmp_path / "missing.zip"
    elif case == "json_dir_missing":
        extra = ["--json", str(tmp_path / "no" / "such" / "dir" / "r.json")]
    elif case == "bad_waivers":
        waivers = tmp_path / "w.toml"
        waivers.write_text('[[waiver]]\nsha256 = "abc"\nreason = "x"\n')
        extra = ["--waivers", str(waivers)]
    elif case == "bad_flag":
        extra = ["--frobnicate"]
    cache = feature_cache
    if case == "cache_unwritable":  # the cache's layout is blocked by a file: writing fails mid-run
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "v1").write_text("not a folder")
        train = tmp_path / "train"
        train.mkdir()
        shutil.copy(next((samples / "train" / "emoji").glob("*.png")), train / "a.png")
    args = ["audit", str(submission), "--train", str(train), "--cache", str(cache), "--device", "cpu",
            "--json", str(out / "r.json"), "--junit", str(out / "j.xml")]
    if case == "json_dir_missing":
        args = args[:-4] + extra
    else:
        args += extra
    code, stdout, err = run(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gandit: error: "), err
    assert "Traceback" not in err and stdout == ""
    assert list(out.iterdir()) == []


def test_holdout_runs_the_data_copying_test_and_the_rules_can_make_it_decisive(samples, feature_cache, tmp_path,
                                                                                 capsys):
    stats, near = {}, {}
    for name in ("honest.zip", "copies.zip"):
        out = tmp_path / f"{name}.json"
        run(audit_args(samples, name, feature_cache, "--holdout", str(samples / "holdout"), "--json", str(out)), capsys)
        result = json.loads(out.read_text())
        jsonschema.validate(result, schema())
        dc = result["submission"]["data_copying"]
        assert dc["test"] == "C_T" and dc["statistic"] is not None and 0 <= dc["p_value"] <= 1, dc
        assert dc["holdout_images"] == 120
        stats[name] = dc
        near[name] = result["submission"]["near_replays"]
    # a quarter of copies (distance 0 to the training set) pulls C_T down, towards copying
    assert stats["copies.zip"]["statistic"] < stats["honest.zip"]["statistic"]
    # near-replays: the 12 copies (and no honest image), against the 120 held-out images
    truth = json.loads((samples / "submissions" / "truth.json").read_text())
    cheats = sum(v.get("kind") is not None for v in truth["copies.zip"].values())
    for name, test in near.items():
        assert test["test"] == "fisher" and test["holdout_images"] == 120 and test["images"] == 48, test
        assert test["holdout_near_replays"] == near["honest.zip"]["holdout_near_replays"] <= 1
    assert near["honest.zip"]["near_replays"] <= 1 and near["honest.zip"]["p_value"] > 0.1
    assert near["copies.zip"]["near_replays"] >= cheats == near["copies.zip"]["distinct_train"] == 12
    assert 0 < near["copies.zip"]["p_value"] < 1e-6     # kept to significant digits, not rounded to 0
    rules = tmp_path / "strict.toml"
    rules.write_text('[verdict]\nmax_flagged = 1000\ndata_copying_alpha = 0.5\nnear_replay_alpha = 0.001\n')
    code, _, _ = run(audit_args(samples, "copies.zip", feature_cache, "--holdout", str(samples / "holdout"),
                                "--rules", str(rules), "--json", str(tmp_path / "s.json")), capsys)
    result = json.loads((tmp_path / "s.json").read_text())
    check = next(c for c in result["checks"] if c["id"] == "forensics.data_copying")
    assert (check["status"] == "fail") == (stats["copies.zip"]["p_value"] < 0.5)
    near_check = next(c for c in result["checks"] if c["id"] == "forensics.near_replays")
    assert near_check["status"] == "fail" and "12 near-replays among 48 images" in near_check["message"]
    assert code == 1


def test_a_missing_holdout_folder_stops_the_run_with_one_line(samples, feature_cache, tmp_path, capsys):
    code, out, err = run(audit_args(samples, "honest.zip", feature_cache, "--holdout", str(tmp_path / "nope")), capsys)
    assert code == 2 and "held-out folder" in err and "--holdout" in err and len(err.strip().splitlines()) == 1
