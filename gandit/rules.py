"""Rule files: load, validate, run the format checks.

A rule file is TOML (DESIGN.md, "Rule file (TOML)"). Every key is optional; a key that is
absent keeps gandit's built-in default, and a ``[submission]`` key that is absent is not
checked. Unknown sections or keys, wrong types and out-of-range values are errors
(:class:`~gandit.errors.RuleFileError`, one line naming the file and the key), so a typo never
turns a rule off silently. Precedence: built-in defaults < rule file < ``--calibration``
(thresholds only; applied by the caller, not here).

Sections and keys::

    [competition] name
    [submission]  count, width, height, mode, formats
    [limits]      max_entries, max_file_bytes, max_total_bytes, max_pixels   (gandit.intake.Limits)
    [metric]      name ("fid" | "mifid"), mifid_epsilon, preprocessing, size
    [verdict]     max_flagged, data_copying_alpha, data_copying_cells, near_replay_alpha, near_replay_rate
    [thresholds]  copy, crop, blend, replay                  (detector scores in [0, 1])

Preprocessing of training photos (``[metric] preprocessing``), implemented in
:mod:`gandit.dataset`; this module only validates the name:

``center-crop``
    Take the largest centred square of the photo, then resize it to the comparison size
    (:attr:`Rules.compare_size`) with PIL's ``LANCZOS`` (antialiasing) filter, on uint8 RGB.
``kaggle2019``
    Squash the whole photo (no crop, aspect ratio not kept) to the comparison size with PIL's
    ``LANCZOS``, which is the old ``Image.ANTIALIAS`` that Kaggle's 2019 scoring used.

Bundled rule files live in ``rules/*.toml`` at the top of the repository and ship in the wheel
as the data package ``gandit._rules``.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import math
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from PIL import Image, ImageMode

from gandit.dataset import PREPROCESSING_MODES  # named preprocessing of training photos
from gandit.forensics import KINDS
from gandit.checks import MESSAGE_NAMES, Check, names_phrase
from gandit.errors import RuleFileError
from gandit.images import ImageEntry, ImageSet
from gandit.intake import Limits

#: Finding kinds that carry a threshold (DESIGN.md, result.json ``kind``).
KNOWN_KINDS = KINDS
#: Values of ``[metric] name``.
METRIC_NAMES = ("fid", "mifid")
#: Comparison size when neither ``[metric] size`` nor the submission's size is set.
DEFAULT_COMPARE_SIZE = 64


@dataclass(frozen=True)
class SubmissionRules:
    """``[submission]``: what a submission must look like; ``None`` = not checked."""

    count: int | None = None                  #: decoded images expected
    width: int | None = None
    height: int | None = None
    mode: str | None = None                   #: PIL mode as decoded, e.g. "RGB"
    formats: tuple[str, ...] | None = None    #: lower-case decoded formats, e.g. ("png",)


@dataclass(frozen=True)
class MetricRules:
    """``[metric]``: which score the competition used and how training photos are prepared."""

    name: str = "fid"                   #: "fid" or "mifid"
    mifid_epsilon: float = 0.1          #: cosine-distance threshold of MiFID's memorization term
    preprocessing: str = "center-crop"  #: one of PREPROCESSING_MODES
    size: int | None = None             #: square comparison size; see Rules.compare_size


@dataclass(frozen=True)
class VerdictRules:
    """``[verdict]``: the policy that turns flagged images into a failed submission."""

    max_flagged: int = 0  #: flagged (unwaived) images tolerated before the submission fails
    #: with --holdout: the submission fails when the C_T data-copying test's one-sided p-value
    #: is below this (0 = the test is reported, never decisive)
    data_copying_alpha: float = 0.0
    #: k-means cells of the C_T test (fewer are used when the sets are small)
    data_copying_cells: int = 20
    #: the submission fails when the near-replay test's one-sided p-value (``gandit.nearreplay``)
    #: is below this (0 = the test is reported, never decisive)
    near_replay_alpha: float = 0.0
    #: without --holdout: the share of honest images assumed to be near-replays at most (the
    #: benchmark corpora measured 0.1-1.2%); with --holdout the held-out images' share is used
    near_replay_rate: float = 0.02


@dataclass(frozen=True)
class Rules:
    """A validated rule file with gandit's defaults filled in."""

    name: str                     #: ``[competition] name``; the file's stem when absent
    source: str                   #: "bundled:<stem>" or the file path as given
    sha256: str                   #: of the rule file's bytes
    submission: SubmissionRules
    limits: Limits
    metric: MetricRules
    verdict: VerdictRules
    thresholds: dict[str, float] = field(default_factory=dict)  #: only the kinds the file sets

    @property
    def compare_size(self) -> tuple[int, int]:
        """``(width, height)`` that training photos are brought to before comparison.

        ``[metric] size`` (square) if set; else the submission's width and height (one of them
        alone stands for both); else 64x64.
        """
        if self.metric.size is not None:
            return (self.metric.size, self.metric.size)
        width = self.submission.width or self.submission.height
        height = self.submission.height or self.submission.width
        if width is None or height is None:
            return (DEFAULT_COMPARE_SIZE, DEFAULT_COMPARE_SIZE)
        return (width, height)


# --------------------------------------------------------------------------------------------
# Finding rule files

def _bundled_dir() -> Traversable:
    """The folder of bundled rule files: the installed data package, else the source tree."""
    try:
        return importlib.resources.files("gandit._rules")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "rules"


def _bundled_files() -> dict[str, Traversable]:
    folder = _bundled_dir()
    try:
        children = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {child.name[: -len(".toml")]: child for child in children
            if child.name.endswith(".toml") and child.is_file()}


def bundled_rule_names() -> list[str]:
    """Stems of the bundled rule files, sorted (``default``, ...)."""
    return sorted(_bundled_files())


def load_rules(name_or_path: str = "default") -> Rules:
    """Load and validate a rule file: an existing file path first, else a bundled name."""
    path = Path(name_or_path)
    if path.is_file():
        label = str(name_or_path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise RuleFileError(f"{label}: cannot read the rule file: "
                                f"{_one_line(err.strerror or str(err))}") from err
        return _rules_from_bytes(data, label=label, source=label, stem=path.stem)

    bundled = _bundled_files()
    if name_or_path in bundled:
        label = f"{name_or_path}.toml (bundled)"
        try:
            data = bundled[name_or_path].read_bytes()
        except OSError as err:
            raise RuleFileError(f"{label}: cannot read the rule file: "
                                f"{_one_line(err.strerror or str(err))}") from err
        return _rules_from_bytes(data, label=label, source=f"bundled:{name_or_path}",
                                 stem=name_or_path)

    known = ", ".join(sorted(bundled)) or "(none found)"
    raise RuleFileError(f"unknown rules {_one_line(repr(name_or_path))}: not a file and not "
                        f"one of {known} — pass a .toml path or a bundled name "
                        f"(gandit rules list)")


# --------------------------------------------------------------------------------------------
# Parsing and validation

class _Invalid(Exception):
    """Raised by a validator: ``expected`` completes "'section.key' must be ..."."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid("a positive integer")
    return value


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid("an integer of 0 or more")
    return value


def _non_empty_str(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid("a number")
    return float(value)


def _epsilon(value: object) -> float:
    try:
        number = _number(value)
    except _Invalid:
        number = math.nan
    if not 0.0 < number <= 1.0:
        raise _Invalid("a number in (0, 1]")
    return number


def _unit_interval(value: object) -> float:
    try:
        number = _number(value)
    except _Invalid:
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise _Invalid("a number in [0, 1]")
    return number


def _open_unit_interval(value: object) -> float:
    try:
        number = _number(value)
    except _Invalid:
        number = math.nan
    if not 0.0 < number < 1.0:
        raise _Invalid("a number in (0, 1)")
    return number


def _choice(options: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str) or value not in options:
            raise _Invalid("one of " + ", ".join(f'"{o}"' for o in options))
        return value
    return check


def _pil_mode(value: object) -> str:
    expected = 'a PIL mode such as "RGB", "RGBA", "L" or "P" (case matters)'
    if not isinstance(value, str):
        raise _Invalid(expected)
    try:
        ImageMode.getmode(value)
    except KeyError:
        raise _Invalid(expected) from None
    return value


def _decodable_formats() -> frozenset[str]:
    Image.init()
    return frozenset(name.lower() for name in [*Image.ID, *Image.MIME])


def _formats(value: object) -> tuple[str, ...]:
    expected = ('a non-empty list of decoded image formats as PIL names them '
                '(e.g. ["png"], ["png", "jpeg"])')
    if (not isinstance(value, list) or not value
            or not all(isinstance(item, str) for item in value)):
        raise _Invalid(expected)
    known = _decodable_formats()
    cleaned: list[str] = []
    for item in value:
        fmt = item.strip().lower()
        if fmt not in known:
            close = difflib.get_close_matches(fmt, sorted(known), n=1)
            hint = f' — did you mean "{close[0]}"?' if close else ""
            raise _Invalid(f"a list of decoded image formats as PIL names them "
                           f"({_show(item)} is not one{hint})")
        if fmt not in cleaned:
            cleaned.append(fmt)
    return tuple(cleaned)


_Validator = Callable[[object], Any]

#: section -> key -> validator. The order of keys is the order error messages list them in.
_SCHEMA: dict[str, dict[str, _Validator]] = {
    "competition": {"name": _non_empty_str},
    "submission": {"count": _positive_int, "width": _positive_int, "height": _positive_int,
                   "mode": _pil_mode, "formats": _formats},
    "limits": {f.name: _positive_int for f in fields(Limits)},
    "metric": {"name": _choice(METRIC_NAMES), "mifid_epsilon": _epsilon,
               "preprocessing": _choice(PREPROCESSING_MODES), "size": _positive_int},
    "verdict": {"max_flagged": _non_negative_int, "data_copying_alpha": _unit_interval,
                "data_copying_cells": _positive_int, "near_replay_alpha": _unit_interval,
                "near_replay_rate": _open_unit_interval},
    "thresholds": {kind: _unit_interval for kind in KNOWN_KINDS},
}


def _rules_from_bytes(data: bytes, *, label: str, source: str, stem: str) -> Rules:
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RuleFileError(f"{label}: not UTF-8 text (byte {err.start}); save the rule file "
                            f"as UTF-8") from err
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RuleFileError(f"{label}: not valid TOML: {_one_line(str(err))}") from err

    values = _validate(document, label)
    competition = values.get("competition", {})
    return Rules(
        name=competition.get("name", stem),
        source=source,
        sha256=digest,
        submission=SubmissionRules(**values.get("submission", {})),
        limits=Limits(**values.get("limits", {})),
        metric=MetricRules(**values.get("metric", {})),
        verdict=VerdictRules(**values.get("verdict", {})),
        thresholds=dict(values.get("thresholds", {})),
    )


def _validate(document: dict[str, Any], label: str) -> dict[str, dict[str, Any]]:
    """Check every section and key against ``_SCHEMA``; return the cleaned values."""
    values: dict[str, dict[str, Any]] = {}
    for section, table in document.items():
        if section not in _SCHEMA:
            raise RuleFileError(f"{label}: unknown section {_key_repr(section)} — known "
                                f"sections: {', '.join(_SCHEMA)}")
        if not isinstance(table, dict):
            raise RuleFileError(f"{label}: '{section}' must be a table ([{section}]), "
                                f"got {_show(table)}")
        keys = _SCHEMA[section]
        cleaned: dict[str, Any] = {}
        for key, value in table.items():
            path = f"{section}.{key}"
            if key not in keys:
                raise RuleFileError(f"{label}: unknown key {_key_repr(path)} — known keys: "
                                    f"{', '.join(keys)}")
            try:
                cleaned[key] = keys[key](value)
            except _Invalid as err:
                raise RuleFileError(f"{label}: {_key_repr(path)} must be {err.expected}, "
                                    f"got {_show(value)}") from None
        values[section] = cleaned
    return values


def _key_repr(path: str) -> str:
    return _one_line(f"'{path}'")


def _show(value: object, limit: int = 60) -> str:
    """A value as TOML would spell it, shortened, on one line — for error messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(item, limit) for item in value) + "]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Showing rules

def rules_to_dict(rules: Rules) -> dict:
    """The effective settings, defaults filled in, as plain JSON-ready data (``rules show``).

    Sections mirror the rule file; ``metric.compare_size`` is the derived comparison size and
    ``thresholds`` holds only the kinds the file sets (the rest come from calibration).
    """
    submission = asdict(rules.submission)
    if submission["formats"] is not None:
        submission["formats"] = list(submission["formats"])
    metric = asdict(rules.metric)
    metric["compare_size"] = list(rules.compare_size)
    return {
        "source": rules.source,
        "sha256": rules.sha256,
        "competition": {"name": rules.name},
        "submission": submission,
        "limits": asdict(rules.limits),
        "metric": metric,
        "verdict": asdict(rules.verdict),
        "thresholds": {kind: rules.thresholds[kind] for kind in KNOWN_KINDS
                       if kind in rules.thresholds},
    }


# --------------------------------------------------------------------------------------------
# Format checks

def format_checks(rules: Rules, images: ImageSet) -> list[Check]:
    """``format.count/size/mode/format/duplicate`` for the decoded images, sorted by id."""
    checks = [
        _count_check(rules.submission, images.images),
        _size_check(rules.submission, images.images),
        _mode_check(rules.submission, images.images),
        _format_check(rules.submission, images.images),
        _duplicate_check(images.images),
    ]
    return sorted(checks, key=lambda check: check.id)


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def _found(values: list[str]) -> str:
    """``found 32x32, 65x64`` — distinct offending values, most common first."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    ordered = sorted(counts, key=lambda v: (-counts[v], v))
    shown = ", ".join(ordered[:MESSAGE_NAMES])
    rest = len(ordered) - MESSAGE_NAMES
    return f"found {shown}" + (f" and {rest} more" if rest > 0 else "")


def _mismatch_check(check_id: str, what: str, offenders: list[tuple[str, str]]) -> Check:
    """A pass, or a fail naming every offending entry; ``offenders`` = (name, found value)."""
    if not offenders:
        return Check(check_id, "pass", f"every image is {what}")
    offenders = sorted(offenders)
    names = [name for name, _ in offenders]
    message = (f"{_images(len(names))} {_are(len(names))} not {what}: {names_phrase(names)} "
               f"({_found([found for _, found in offenders])})")
    return Check(check_id, "fail", message, tuple(names))


def _count_check(rule: SubmissionRules, images: list[ImageEntry]) -> Check:
    if rule.count is None:
        return Check("format.count", "pass", "not checked: the rules set no count")
    found = len(images)
    if found == rule.count:
        return Check("format.count", "pass", f"{_images(found)}, as expected")
    return Check("format.count", "fail", f"expected {_images(rule.count)}, found {found}")


def _size_check(rule: SubmissionRules, images: list[ImageEntry]) -> Check:
    if rule.width is None and rule.height is None:
        return Check("format.size", "pass", "not checked: the rules set no size")
    if rule.width is not None and rule.height is not None:
        what = f"{rule.width}x{rule.height}"
    elif rule.width is not None:
        what = f"{rule.width} pixels wide"
    else:
        what = f"{rule.height} pixels high"
    offenders = [(image.name, f"{image.width}x{image.height}") for image in images
                 if (rule.width is not None and image.width != rule.width)
                 or (rule.height is not None and image.height != rule.height)]
    return _mismatch_check("format.size", what, offenders)


def _mode_check(rule: SubmissionRules, images: list[ImageEntry]) -> Check:
    if rule.mode is None:
        return Check("format.mode", "pass", "not checked: the rules set no mode")
    offenders = [(image.name, image.mode) for image in images if image.mode != rule.mode]
    return _mismatch_check("format.mode", rule.mode, offenders)


def _format_check(rule: SubmissionRules, images: list[ImageEntry]) -> Check:
    if rule.formats is None:
        return Check("format.format", "pass", "not checked: the rules set no formats")
    allowed = set(rule.formats)
    what = " or ".join(rule.formats)
    offenders = [(image.name, image.format.lower()) for image in images
                 if image.format.lower() not in allowed]
    return _mismatch_check("format.format", what, offenders)


def _pixel_key(image: ImageEntry) -> bytes:
    """Identity of the decoded pixels: shape, dtype and bytes (C order)."""
    pixels = image.pixels
    digest = hashlib.sha256(f"{pixels.shape}|{pixels.dtype.str}|".encode())
    digest.update(pixels.tobytes())
    return digest.digest()


def _duplicate_check(images: list[ImageEntry]) -> Check:
    groups: dict[bytes, list[str]] = {}
    for image in images:
        groups.setdefault(_pixel_key(image), []).append(image.name)
    repeated = sorted(sorted(names) for names in groups.values() if len(names) > 1)
    if not repeated:
        return Check("format.duplicate", "pass", "no two images have the same pixels")
    pairs = [(copy, names[0]) for names in repeated for copy in names[1:]]
    shown = ", ".join(f"{copy!r} = {first!r}" for copy, first in pairs[:MESSAGE_NAMES])
    rest = len(pairs) - MESSAGE_NAMES
    if rest > 0:
        shown += f" and {rest} more"
    verb = "repeats" if len(pairs) == 1 else "repeat"
    message = f"{_images(len(pairs))} {verb} another's pixels: {shown}"
    entries = tuple(sorted(name for names in repeated for name in names))
    return Check("format.duplicate", "fail", message, entries)
