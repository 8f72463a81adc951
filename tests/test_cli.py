"""The smaller commands: rules, weights, score (with a training folder and with a .npz)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gandit.cli import main


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rules_list_show_check(tmp_path, capsys):
    code, out, _ = run(["rules", "list"], capsys)
    assert code == 0 and "kaggle-generative-dog-images" in out and "default" in out
    code, out, _ = run(["rules", "show", "kaggle-generative-dog-images"], capsys)
    shown = json.loads(out)
    assert code == 0 and shown["submission"]["count"] == 10000 and shown["metric"]["mifid_epsilon"] == 0.1
    bad = tmp_path / "bad.toml"
    bad.write_text("[metric]\nmifid_epsilon = 2.0\n")
    code, out, err = run(["rules", "check", str(bad)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "mifid_epsilon" in err
    good = tmp_path / "good.toml"
    good.write_text("[competition]\nname = 'mine'\n[submission]\ncount = 5\n")
    code, out, _ = run(["rules", "check", str(good)], capsys)
    assert code == 0 and "valid" in out


def test_weights_reports_the_source_and_hash(capsys):
    from gandit.features.inception import BUNDLED_SHA256

    code, out, _ = run(["weights"], capsys)
    assert code == 0 and "source: bundled" in out and BUNDLED_SHA256 in out


def test_score_with_a_folder_and_with_saved_stats_agree(samples, feature_cache, tmp_path, capsys):
    sub, train = samples / "submissions" / "honest.zip", samples / "train" / "emoji"
    stats = tmp_path / "train.npz"
    common = ["--cache", str(feature_cache), "--device", "cpu"]
    code, _, err = run(["score", str(sub), "--train", str(train), "--json", str(tmp_path / "a.json"),
                        "--save-stats", str(stats), *common], capsys)
    assert code == 0, err
    code, _, err = run(["score", str(sub), "--train", str(stats), "--json", str(tmp_path / "b.json"), *common], capsys)
    assert code == 0, err
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["schema"] == b["schema"] == "gandit.score/1"
    assert a["fid"] == pytest.approx(b["fid"], abs=1e-6)
    assert a["mifid"] is not None and b["mifid"] is None and b["memorization_distance"] is None
    assert a["reference_images"] == 200 and a["images"] == 48
    with np.load(stats) as data:
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)


def test_score_needs_two_images(samples, feature_cache, tmp_path, capsys):
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes((samples / "holdout" / "emoji").glob("*.png").__next__().read_bytes())
    code, _, err = run(["score", str(one), "--train", str(samples / "train" / "emoji"),
                        "--cache", str(feature_cache)], capsys)
    assert code == 2 and "at least 2" in err


def test_ctrl_c_says_interrupted_in_one_line_and_exits_130(samples, tmp_path, capsys, monkeypatch):
    import gandit.audit

    def interrupt(_options):
        raise KeyboardInterrupt

    monkeypatch.setattr(gandit.audit, "load_inputs", interrupt)
    out = tmp_path / "result.json"
    code, _, err = run(["audit", str(samples / "submissions" / "honest.zip"), "--train",
                        str(samples / "train" / "emoji"), "--json", str(out), "--no-cache"], capsys)
    assert code == 130 and err.strip().splitlines() == [
        "gandit: interrupted (cached features and checkpoints are kept; run again to resume)"]
    assert not out.exists()
