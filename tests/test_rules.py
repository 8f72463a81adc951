"""Rule files: loading, validation, defaults, and the format checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from gandit.checks import Check
from gandit.errors import GanditError, RuleFileError
from gandit.images import ImageEntry, ImageSet
from gandit.intake import Limits
from gandit.rules import (
    KNOWN_KINDS,
    PREPROCESSING_MODES,
    MetricRules,
    Rules,
    SubmissionRules,
    VerdictRules,
    bundled_rule_names,
    format_checks,
    load_rules,
    rules_to_dict,
)

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
FORMAT_IDS = ["format.count", "format.duplicate", "format.format", "format.mode", "format.size"]


def write_rules(tmp_path: Path, text: str, name: str = "rules.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_text(tmp_path: Path, text: str) -> Rules:
    return load_rules(write_rules(tmp_path, text))


# --------------------------------------------------------------------------------------------
# Bundled rule files

def test_bundled_names_are_the_rule_files_in_the_repository():
    names = bundled_rule_names()
    assert names == sorted(p.stem for p in RULES_DIR.glob("*.toml"))
    assert {"default", "kaggle-generative-dog-images"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", bundled_rule_names())
def test_every_bundled_rule_file_loads_and_validates(name):
    rules = load_rules(name)
    assert rules.source == f"bundled:{name}"
    assert rules.sha256 == hashlib.sha256((RULES_DIR / f"{name}.toml").read_bytes()).hexdigest()
    assert rules.name.strip()
    assert rules.metric.name in ("fid", "mifid")
    assert rules.metric.preprocessing in PREPROCESSING_MODES
    assert set(rules.thresholds) <= set(KNOWN_KINDS)
    json.dumps(rules_to_dict(rules))  # JSON-ready


def test_default_rules_are_permissive():
    rules = load_rules()
    assert rules == load_rules("default")
    assert rules.name == "Default (no format rules)"
    assert rules.submission == SubmissionRules()
    assert rules.limits == Limits()
    assert rules.metric == MetricRules(name="fid", mifid_epsilon=0.1,
                                       preprocessing="center-crop", size=None)
    assert rules.verdict == VerdictRules(max_flagged=0)
    assert rules.thresholds == {}
    assert rules.compare_size == (64, 64)


def test_kaggle_rules_match_the_competition():
    rules = load_rules("kaggle-generative-dog-images")
    assert rules.name == "Generative Dog Images (Kaggle, 2019)"
    assert rules.submission == SubmissionRules(count=10000, width=64, height=64, mode="RGB",
                                               formats=("png",))
    assert rules.limits == Limits(max_entries=20000, max_file_bytes=5_000_000,
                                  max_total_bytes=2_000_000_000, max_pixels=16_777_216)
    assert rules.metric == MetricRules(name="mifid", mifid_epsilon=0.1,
                                       preprocessing="kaggle2019", size=None)
    assert rules.verdict.max_flagged == 0
    assert rules.compare_size == (64, 64)


def test_a_file_path_is_loaded_and_keeps_the_path_as_source(tmp_path):
    text = '[competition]\nname = "Mine"\n'
    path = write_rules(tmp_path, text)
    rules = load_rules(path)
    assert rules.name == "Mine"
    assert rules.source == path
    assert rules.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_an_existing_file_wins_over_a_bundled_name(tmp_path, monkeypatch):
    (tmp_path / "default").write_text('[competition]\nname = "Local file"\n')
    monkeypatch.chdir(tmp_path)
    assert load_rules("default").name == "Local file"
    assert load_rules("default").source == "default"


# --------------------------------------------------------------------------------------------
# Defaults and precedence

def test_an_empty_file_gives_every_default_and_is_named_by_its_stem(tmp_path):
    rules = load_rules(write_rules(tmp_path, "", name="my-contest.toml"))
    assert rules.name == "my-contest"
    assert rules.submission == SubmissionRules()
    assert rules.limits == Limits()
    assert rules.metric == MetricRules()
    assert rules.verdict == VerdictRules()
    assert rules.thresholds == {}


def test_an_absent_key_keeps_its_default(tmp_path):
    rules = load_text(tmp_path, """
        [submission]
        width = 32
        [limits]
        max_entries = 5
        [metric]
        name = "mifid"
        [thresholds]
        crop = 0.75
    """)
    assert rules.submission == SubmissionRules(width=32)
    assert rules.limits == Limits(max_entries=5)
    assert rules.limits.max_file_bytes == Limits().max_file_bytes
    assert rules.metric == MetricRules(name="mifid", mifid_epsilon=0.1,
                                       preprocessing="center-crop", size=None)
    assert rules.verdict.max_flagged == 0
    assert rules.thresholds == {"crop": 0.75}


def test_values_are_normalised(tmp_path):
    rules = load_text(tmp_path, """
        [submission]
        formats = ["PNG", "jpeg", "png"]
        [metric]
        mifid_epsilon = 1
        [thresholds]
        copy = 1
        blend = 0
    """)
    assert rules.submission.formats == ("png", "jpeg")
    assert rules.metric.mifid_epsilon == 1.0 and isinstance(rules.metric.mifid_epsilon, float)
    assert rules.thresholds == {"copy": 1.0, "blend": 0.0}
    assert all(isinstance(v, float) for v in rules.thresholds.values())


def test_rules_to_dict_shows_effective_settings(tmp_path):
    rules = load_text(tmp_path, """
        [competition]
        name = "Small"
        [submission]
        count = 3
        formats = ["png"]
        [metric]
        size = 48
        [thresholds]
        replay = 0.5
        copy = 0.25
    """)
    shown = rules_to_dict(rules)
    assert shown["competition"] == {"name": "Small"}
    assert shown["source"] == rules.source and shown["sha256"] == rules.sha256
    assert shown["submission"] == {"count": 3, "width": None, "height": None, "mode": None,
                                   "formats": ["png"]}
    assert shown["limits"] == {"max_entries": 20_000, "max_file_bytes": 5_000_000,
                               "max_total_bytes": 2_000_000_000, "max_pixels": 16_777_216}
    assert shown["metric"] == {"name": "fid", "mifid_epsilon": 0.1,
                               "preprocessing": "center-crop", "size": 48,
                               "compare_size": [48, 48]}
    assert shown["verdict"] == {"max_flagged": 0, "data_copying_alpha": 0.0, "data_copying_cells": 20,
                                "near_replay_alpha": 0.0, "near_replay_rate": 0.02}
    assert list(shown["thresholds"].items()) == [("copy", 0.25), ("replay", 0.5)]
    assert json.loads(json.dumps(shown)) == shown


# --------------------------------------------------------------------------------------------
# compare_size

@pytest.mark.parametrize("text, expected", [
    ("", (64, 64)),
    ("[submission]\nwidth = 32\nheight = 48\n", (32, 48)),
    ("[submission]\nwidth = 32\n", (32, 32)),
    ("[submission]\nheight = 40\n", (40, 40)),
    ("[submission]\nwidth = 32\nheight = 48\n[metric]\nsize = 128\n", (128, 128)),
    ("[metric]\nsize = 299\n", (299, 299)),
])
def test_compare_size(tmp_path, text, expected):
    assert load_text(tmp_path, text).compare_size == expected


# --------------------------------------------------------------------------------------------
# Invalid rule files: one line, naming the file and the key

def assert_one_line_error(err: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(err.value)
    assert "\n" not in message and "\r" not in message
    for part in parts:
        assert part in message, (part, message)
    assert isinstance(err.value, GanditError) and err.value.exit_code == 2
    return message


def test_unknown_key_message_is_exact(tmp_path):
    path = write_rules(tmp_path, '[submission]\ncolour = "red"\n')
    with pytest.raises(RuleFileError) as err:
        load_rules(path)
    assert str(err.value) == (f"{path}: unknown key 'submission.colour' — known keys: "
                              "count, width, height, mode, formats")


def test_unknown_section_is_named(tmp_path):
    path = write_rules(tmp_path, "[submision]\ncount = 3\n")
    with pytest.raises(RuleFileError) as err:
        load_rules(path)
    assert str(err.value) == (f"{path}: unknown section 'submision' — known sections: "
                              "competition, submission, limits, metric, verdict, thresholds")


@pytest.mark.parametrize("text, key, expected", [
    # unknown keys
    ('[metric]\nepsilon = 0.1\n', "'metric.epsilon'", "known keys: name, mifid_epsilon"),
    ('[thresholds]\ncopies = 0.5\n', "'thresholds.copies'", "copy, crop, blend, replay"),
    ('[limits]\nmax_files = 3\n', "'limits.max_files'", "max_entries"),
    ('[submission.extra]\nx = 1\n', "'submission.extra'", "unknown key"),
    # wrong types
    ('[submission]\ncount = "10000"\n', "'submission.count'", 'positive integer, got "10000"'),
    ('[submission]\ncount = 10000.0\n', "'submission.count'", "positive integer, got 10000.0"),
    ('[submission]\nformats = "png"\n', "'submission.formats'", 'list of decoded image formats'),
    ('[submission]\nformats = [1]\n', "'submission.formats'", "got [1]"),
    ('[submission]\nmode = 3\n', "'submission.mode'", "PIL mode"),
    ('[competition]\nname = 3\n', "'competition.name'", "non-empty string"),
    ('[metric]\nmifid_epsilon = "0.1"\n', "'metric.mifid_epsilon'", "number in (0, 1]"),
    ('[thresholds]\ncopy = "high"\n', "'thresholds.copy'", "number in [0, 1]"),
    ('submission = 5\n', "'submission'", "must be a table"),
    # bool where an int (or number) is expected
    ('[submission]\nwidth = true\n', "'submission.width'", "positive integer, got true"),
    ('[verdict]\nmax_flagged = false\n', "'verdict.max_flagged'", "got false"),
    ('[limits]\nmax_pixels = true\n', "'limits.max_pixels'", "got true"),
    ('[thresholds]\ncrop = true\n', "'thresholds.crop'", "got true"),
    # out of range / unknown values
    ('[submission]\ncount = -5\n', "'submission.count'", "positive integer, got -5"),
    ('[submission]\nwidth = 0\n', "'submission.width'", "got 0"),
    ('[submission]\nheight = -64\n', "'submission.height'", "got -64"),
    ('[submission]\nformats = []\n', "'submission.formats'", "non-empty list"),
    ('[submission]\nformats = ["jpg"]\n', "'submission.formats'", 'did you mean "jpeg"'),
    ('[submission]\nmode = "rgb"\n', "'submission.mode'", 'got "rgb"'),
    ('[competition]\nname = "  "\n', "'competition.name'", "non-empty string"),
    ('[limits]\nmax_entries = 0\n', "'limits.max_entries'", "positive integer"),
    ('[metric]\nmifid_epsilon = 0\n', "'metric.mifid_epsilon'", "(0, 1], got 0"),
    ('[metric]\nmifid_epsilon = 1.5\n', "'metric.mifid_epsilon'", "got 1.5"),
    ('[metric]\nmifid_epsilon = nan\n', "'metric.mifid_epsilon'", "got nan"),
    ('[metric]\nname = "kid"\n', "'metric.name'", 'one of "fid", "mifid", got "kid"'),
    ('[metric]\npreprocessing = "resize"\n', "'metric.preprocessing'",
     '"center-crop", "kaggle2019"'),
    ('[metric]\nsize = 0\n', "'metric.size'", "positive integer"),
    ('[verdict]\nmax_flagged = -1\n', "'verdict.max_flagged'", "integer of 0 or more, got -1"),
    ('[thresholds]\nblend = 1.2\n', "'thresholds.blend'", "[0, 1], got 1.2"),
    ('[thresholds]\nreplay = -0.1\n', "'thresholds.replay'", "got -0.1"),
])
def test_invalid_rule_files_name_the_file_and_key(tmp_path, text, key, expected):
    path = write_rules(tmp_path, text)
    with pytest.raises(RuleFileError) as err:
        load_rules(path)
    message = assert_one_line_error(err, key, expected)
    assert message.startswith(f"{path}: ")


def test_a_valid_value_next_to_an_invalid_one_does_not_hide_it(tmp_path):
    path = write_rules(tmp_path, "[submission]\ncount = 10\nwidth = 64\nheight = 0\n")
    with pytest.raises(RuleFileError, match=r"'submission\.height' must be a positive integer"):
        load_rules(path)


def test_toml_syntax_error_names_file_line_and_column(tmp_path):
    path = write_rules(tmp_path, '[submission]\ncount = 10\nwidth = \n')
    with pytest.raises(RuleFileError) as err:
        load_rules(path)
    message = assert_one_line_error(err, "not valid TOML", "line 3", "column")
    assert message.startswith(f"{path}: ")


def test_a_key_given_twice_is_a_syntax_error(tmp_path):
    path = write_rules(tmp_path, '[metric]\nname = "fid"\nname = "mifid"\n')
    with pytest.raises(RuleFileError) as err:
        load_rules(path)
    assert_one_line_error(err, path, "not valid TOML", "line 3")


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[competition]\nname = "Caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(RuleFileError) as err:
        load_rules(str(path))
    assert_one_line_error(err, str(path), "UTF-8")


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    path = write_rules(tmp_path, "")

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(RuleFileError) as err:
        load_rules(path)
    assert str(err.value) == f"{path}: cannot read the rule file: Permission denied"


def test_a_missing_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(RuleFileError) as err:
        load_rules(missing)
    assert str(err.value) == (
        f"unknown rules '{missing}': not a file and not one of default, "
        "kaggle-generative-dog-images — pass a .toml path or a bundled name (gandit rules list)")


def test_an_unknown_bundled_name_lists_the_bundled_ones():
    with pytest.raises(RuleFileError) as err:
        load_rules("kaggle-dogs")
    assert str(err.value) == (
        "unknown rules 'kaggle-dogs': not a file and not one of default, "
        "kaggle-generative-dog-images — pass a .toml path or a bundled name (gandit rules list)")


def test_a_directory_is_not_a_rule_file(tmp_path):
    with pytest.raises(RuleFileError, match="not a file"):
        load_rules(str(tmp_path))


# --------------------------------------------------------------------------------------------
# Format checks

def pixels(seed: int, width: int = 4, height: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def entry(name: str, array: np.ndarray | None = None, *, seed: int | None = None,
          mode: str = "RGB", fmt: str = "png") -> ImageEntry:
    if array is None:
        array = pixels(seed if seed is not None else sum(map(ord, name)))
    height, width = array.shape[:2]
    return ImageEntry(name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                      format=fmt, mode=mode, width=width, height=height, pixels=array)


def image_set(*entries: ImageEntry) -> ImageSet:
    return ImageSet(source="test.zip", sha256="0" * 64,
                    images=sorted(entries, key=lambda e: e.name), checks=[],
                    entries_seen=len(entries))


STRICT = """
[submission]
count = 3
width = 4
height = 4
mode = "RGB"
formats = ["png"]
"""


@pytest.fixture
def strict(tmp_path) -> Rules:
    return load_text(tmp_path, STRICT)


def by_id(checks: list[Check]) -> dict[str, Check]:
    assert [c.id for c in checks] == FORMAT_IDS
    for check in checks:
        assert "\n" not in check.message
        assert list(check.entries) == sorted(check.entries)
    return {c.id: c for c in checks}


def statuses(checks: list[Check]) -> dict[str, str]:
    return {c.id: c.status for c in checks}


def test_a_conforming_submission_passes_every_check(strict):
    images = image_set(entry("a.png", seed=1), entry("b.png", seed=2), entry("c.png", seed=3))
    checks = by_id(format_checks(strict, images))
    assert all(c.status == "pass" and c.entries == () for c in checks.values())
    assert checks["format.count"].message == "3 images, as expected"


def test_default_rules_check_nothing_but_duplicates():
    images = image_set(entry("a.png", pixels(1, 8, 5), mode="L", fmt="jpeg"),
                       entry("b.webp", pixels(2, 3, 3), mode="RGBA", fmt="webp"))
    checks = by_id(format_checks(load_rules("default"), images))
    assert statuses(checks.values()) == dict.fromkeys(FORMAT_IDS, "pass")
    assert checks["format.count"].message == "not checked: the rules set no count"
    assert checks["format.size"].message == "not checked: the rules set no size"
    assert checks["format.mode"].message == "not checked: the rules set no mode"
    assert checks["format.format"].message == "not checked: the rules set no formats"
    assert checks["format.duplicate"].message == "no two images have the same pixels"


def test_wrong_count(strict):
    images = image_set(entry("a.png", seed=1), entry("b.png", seed=2))
    checks = by_id(format_checks(strict, images))
    assert checks["format.count"].status == "fail"
    assert checks["format.count"].message == "expected 3 images, found 2"
    assert checks["format.count"].entries == ()
    assert statuses(checks.values()) == {**dict.fromkeys(FORMAT_IDS, "pass"),
                                         "format.count": "fail"}


def test_count_counts_decoded_images_only(tmp_path):
    rules = load_text(tmp_path, "[submission]\ncount = 1\n")
    images = image_set(entry("a.png", seed=1))
    images.entries_seen = 5  # e.g. undecodable entries, reported by intake as format.decode
    assert by_id(format_checks(rules, images))["format.count"].status == "pass"


def test_wrong_size_names_every_offending_entry(strict):
    images = image_set(entry("c.png", pixels(3, 8, 8)), entry("a.png", pixels(1, 4, 5)),
                       entry("b.png", seed=2))
    checks = by_id(format_checks(strict, images))
    size = checks["format.size"]
    assert size.status == "fail"
    assert size.entries == ("a.png", "c.png")
    assert size.message == "2 images are not 4x4: 'a.png', 'c.png' (found 4x5, 8x8)"
    assert statuses(checks.values()) == {**dict.fromkeys(FORMAT_IDS, "pass"),
                                         "format.size": "fail"}


def test_size_with_only_a_width(tmp_path):
    rules = load_text(tmp_path, "[submission]\nwidth = 4\n")
    images = image_set(entry("tall.png", pixels(1, 4, 9)), entry("wide.png", pixels(2, 9, 4)))
    size = by_id(format_checks(rules, images))["format.size"]
    assert (size.status, size.entries) == ("fail", ("wide.png",))
    assert size.message == "1 image is not 4 pixels wide: 'wide.png' (found 9x4)"


def test_many_offenders_are_shortened_in_the_message_but_all_listed(strict):
    names = [f"{i:02d}.png" for i in range(8)]
    images = image_set(*(entry(n, pixels(i, 5, 5)) for i, n in enumerate(names)))
    size = by_id(format_checks(strict, images))["format.size"]
    assert size.entries == tuple(names)
    assert "and 3 more" in size.message
    assert "'05.png'" not in size.message


def test_wrong_mode(strict):
    images = image_set(entry("a.png", seed=1, mode="L"), entry("b.png", seed=2, mode="RGBA"),
                       entry("c.png", seed=3))
    checks = by_id(format_checks(strict, images))
    mode = checks["format.mode"]
    assert (mode.status, mode.entries) == ("fail", ("a.png", "b.png"))
    assert mode.message.startswith("2 images are not RGB: 'a.png', 'b.png' (found ")
    assert statuses(checks.values()) == {**dict.fromkeys(FORMAT_IDS, "pass"),
                                         "format.mode": "fail"}


def test_jpeg_where_png_is_required_is_judged_by_decoded_format(strict):
    images = image_set(entry("a.png", seed=1, fmt="jpeg"),   # named .png, decoded as JPEG
                       entry("b.jpg", seed=2, fmt="png"),    # named .jpg, decoded as PNG
                       entry("c.png", seed=3))
    checks = by_id(format_checks(strict, images))
    fmt = checks["format.format"]
    assert (fmt.status, fmt.entries) == ("fail", ("a.png",))
    assert fmt.message == "1 image is not png: 'a.png' (found jpeg)"
    assert statuses(checks.values()) == {**dict.fromkeys(FORMAT_IDS, "pass"),
                                         "format.format": "fail"}


def test_several_allowed_formats(tmp_path):
    rules = load_text(tmp_path, '[submission]\nformats = ["png", "webp"]\n')
    images = image_set(entry("a", seed=1, fmt="png"), entry("b", seed=2, fmt="webp"),
                       entry("c", seed=3, fmt="gif"))
    fmt = by_id(format_checks(rules, images))["format.format"]
    assert (fmt.status, fmt.entries) == ("fail", ("c",))
    assert fmt.message == "1 image is not png or webp: 'c' (found gif)"


def test_duplicates_name_every_image_of_every_group(strict):
    same = pixels(7)
    other = pixels(8)
    images = image_set(entry("b.png", same.copy()), entry("a.png", same.copy()),
                       entry("d.png", same.copy()), entry("c.png", seed=3),
                       entry("e.png", other.copy()), entry("f.png", other.copy()))
    checks = by_id(format_checks(strict, images))
    dup = checks["format.duplicate"]
    assert dup.status == "fail"
    assert dup.entries == ("a.png", "b.png", "d.png", "e.png", "f.png")
    assert dup.message == ("3 images repeat another's pixels: 'b.png' = 'a.png', "
                           "'d.png' = 'a.png', 'f.png' = 'e.png'")


def test_one_duplicate_pair(tmp_path):
    images = image_set(entry("x.png", pixels(1)), entry("y.png", pixels(1)))
    dup = by_id(format_checks(load_rules("default"), images))["format.duplicate"]
    assert (dup.status, dup.entries) == ("fail", ("x.png", "y.png"))
    assert dup.message == "1 image repeats another's pixels: 'y.png' = 'x.png'"


def test_duplicates_are_judged_on_decoded_pixels_not_on_file_bytes(strict):
    # different raw bytes (sha256 of the entry) and different formats, same decoded pixels
    a = entry("a.png", pixels(5), fmt="png")
    b = entry("b.png", pixels(5), fmt="jpeg")
    assert a.sha256 != b.sha256
    dup = by_id(format_checks(strict, image_set(a, b)))["format.duplicate"]
    assert dup.entries == ("a.png", "b.png")


def test_different_images_are_not_duplicates(strict):
    base = pixels(9)
    changed = base.copy()
    changed[3, 3, 2] ^= 1  # one channel of one pixel differs by one
    images = image_set(entry("a.png", base), entry("b.png", changed), entry("c.png", seed=3))
    dup = by_id(format_checks(strict, images))["format.duplicate"]
    assert (dup.status, dup.entries) == ("pass", ())


def test_same_bytes_in_a_different_shape_are_not_duplicates():
    flat = pixels(4, 4, 4)
    reshaped = np.ascontiguousarray(flat.reshape(2, 8, 3))
    assert flat.tobytes() == reshaped.tobytes()
    images = image_set(entry("a.png", flat), entry("b.png", reshaped))
    dup = by_id(format_checks(load_rules("default"), images))["format.duplicate"]
    assert dup.status == "pass"


def test_non_contiguous_pixels_are_compared_by_value():
    base = pixels(6, 4, 4)
    view = np.asfortranarray(base)
    images = image_set(entry("a.png", base), entry("b.png", view))
    dup = by_id(format_checks(load_rules("default"), images))["format.duplicate"]
    assert dup.entries == ("a.png", "b.png")


def test_an_empty_submission(strict):
    checks = by_id(format_checks(strict, image_set()))
    assert checks["format.count"].message == "expected 3 images, found 0"
    assert statuses(checks.values()) == {**dict.fromkeys(FORMAT_IDS, "pass"),
                                         "format.count": "fail"}


def test_data_copying_policy_keys_are_validated(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[verdict]\ndata_copying_alpha = 0.001\ndata_copying_cells = 8\n")
    rules = load_rules(str(good))
    assert rules.verdict.data_copying_alpha == 0.001 and rules.verdict.data_copying_cells == 8
    bad = tmp_path / "bad.toml"
    bad.write_text("[verdict]\ndata_copying_alpha = 2\n")
    with pytest.raises(RuleFileError, match="data_copying_alpha"):
        load_rules(str(bad))


def test_near_replay_policy_keys_are_validated(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[verdict]\nnear_replay_alpha = 1e-6\nnear_replay_rate = 0.005\n")
    rules = load_rules(str(good))
    assert rules.verdict.near_replay_alpha == 1e-6 and rules.verdict.near_replay_rate == 0.005
    for key, value in [("near_replay_rate", "0"), ("near_replay_rate", "1"), ("near_replay_alpha", "-0.1"),
                       ("near_replay_rate", '"2%"')]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[verdict]\n{key} = {value}\n")
        with pytest.raises(RuleFileError, match=key):
            load_rules(str(bad))
    kaggle = load_rules("kaggle-generative-dog-images")
    assert kaggle.verdict.near_replay_alpha == 1e-6 and kaggle.verdict.near_replay_rate == 0.02
