"""The audit result as plain data (schema ``gandit.audit/1``), built once and rendered to JSON,
JUnit XML, the terminal and (later) HTML, so the renderings cannot disagree.

Floats are rounded to 6 decimals, NaN and infinities become ``null``, nothing carries a
timestamp: the same inputs give byte-identical JSON.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gandit.checks import Check

SCHEMA = "gandit.audit/1"
DECIMALS = 6


@dataclass
class Match:
    train: str
    similarity: float | None
    weight: float | None = None
    box: list[int] | None = None
    flip: bool = False
    train_sha256: str | None = None     #: of the training file's bytes


@dataclass
class ImageResult:
    name: str
    sha256: str
    flagged: bool
    waived: bool
    kind: str | None
    score: float
    nn_similarity: float | None
    matches: list[Match] = field(default_factory=list)
    waiver_reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)     #: every detector's score, by kind
    evidence: dict[str, float] = field(default_factory=dict)   #: the measurements behind the scores


@dataclass
class Metrics:
    fid: float | None
    mifid: float | None
    memorization_distance: float | None
    mifid_epsilon: float
    mifid_penalized: bool | None


@dataclass
class SubmissionSummary:
    images: int
    flagged: int
    distinct_train_matched: int
    waived: int
    data_copying: dict[str, Any]
    near_replays: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditResult:
    verdict: str
    reason: str
    provenance: dict[str, Any]
    thresholds: dict[str, float]
    checks: list[Check]
    metrics: Metrics
    submission: SubmissionSummary
    images: list[ImageResult]
    nn_similarity_reference: dict[str, Any] | None = None
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": self.schema,
            "verdict": self.verdict,
            "reason": self.reason,
            "provenance": self.provenance,
            "thresholds": self.thresholds,
            "checks": [c.to_dict() for c in self.checks],
            "metrics": asdict(self.metrics),
            "submission": asdict(self.submission),
            "images": [asdict(i) for i in self.images],
        }
        if self.nn_similarity_reference is not None:
            data["nn_similarity_reference"] = self.nn_similarity_reference
        return clean_numbers(data)


#: Keys whose floats keep 6 significant digits instead of 6 decimals (a p-value of 1e-9 is
#: not 0).
SIGNIFICANT_KEYS = frozenset({"p_value"})


def clean_numbers(value: Any, significant: bool = False) -> Any:
    """Round floats to 6 decimals (6 significant digits under ``SIGNIFICANT_KEYS``); NaN/inf →
    None; recurse through dicts, lists, tuples."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        rounded = float(f"{value:.{DECIMALS}g}") if significant else round(value, DECIMALS)
        return 0.0 if rounded == 0 else rounded
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {k: clean_numbers(v, k in SIGNIFICANT_KEYS) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_numbers(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return clean_numbers(value.item())
    return value


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def schema(name: str = "audit") -> dict[str, Any]:
    """The JSON Schema shipped in the wheel (``gandit/data/<name>.schema.json``)."""
    return json.loads(resources.files("gandit").joinpath(f"data/{name}.schema.json").read_text("utf-8"))


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """A result.json written by ``gandit audit``, validated against the shipped schema;
    ``UsageError`` (one line, exit 2) naming the file when it is not one."""
    import jsonschema

    from gandit.errors import UsageError

    p = Path(path)
    fix = "pass a result.json written by gandit audit"
    try:
        data = json.loads(p.read_text("utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read '{p}': {err.strerror or err} — {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"'{p}' is not JSON ({err}) — {fix}") from None
    try:
        jsonschema.validate(data, schema())
    except jsonschema.ValidationError as err:
        where = "/".join(str(k) for k in err.absolute_path) or "the top level"
        raise UsageError(f"'{p}' is not a {SCHEMA} result ({where}: {err.message.splitlines()[0]}) — {fix}") from None
    return data


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-gandit-", dir=p.parent if str(p.parent) else ".")
    try:
        os.chmod(tmp, 0o666 & ~_umask())   # as open() would create it (mkstemp makes 0600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
