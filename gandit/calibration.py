"""Thresholds from a calibration file (``gandit.calibration/1``), the last layer of precedence:
built-in defaults < rule file ``[thresholds]`` < ``--calibration``."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from gandit.errors import UsageError
from gandit.forensics import KINDS

CALIBRATION_SCHEMA = "gandit.calibration/1"
#: Built-in thresholds on detector scores (each detector maps its evidence onto [0, 1]).
DEFAULT_THRESHOLDS = {kind: 0.5 for kind in KINDS}


@dataclass(frozen=True)
class Calibration:
    path: str
    sha256: str
    thresholds: dict[str, float]
    train_fingerprint: str | None
    #: the honest share of near-replays the audit assumes without --holdout (overrides the
    #: rule file's ``near_replay_rate``); None when the file has none
    near_replay_rate: float | None = None


def load_calibration(path: str | os.PathLike) -> Calibration:
    p = Path(path)
    try:
        raw = p.read_bytes()
        data = json.loads(raw)
    except OSError as err:
        raise UsageError(f"cannot read calibration file '{p}': {err.strerror or err} — fix the --calibration path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"calibration file '{p}' is not JSON ({err}) — pass a file written by gandit calibrate") from None
    if not isinstance(data, dict) or data.get("schema") != CALIBRATION_SCHEMA:
        raise UsageError(f"calibration file '{p}' is not a {CALIBRATION_SCHEMA} file — pass one written by gandit calibrate")
    thresholds = data.get("thresholds")
    if not isinstance(thresholds, dict):
        raise UsageError(f"calibration file '{p}' has no thresholds object")
    for kind, value in thresholds.items():
        if kind not in DEFAULT_THRESHOLDS:
            raise UsageError(f"calibration file '{p}': unknown threshold '{kind}' — known: {', '.join(DEFAULT_THRESHOLDS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise UsageError(f"calibration file '{p}': threshold '{kind}' must be a number in [0, 1]")
    rate = data.get("near_replay_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate < 1.0):
        raise UsageError(f"calibration file '{p}': near_replay_rate must be a number in (0, 1) or null")
    return Calibration(str(p), hashlib.sha256(raw).hexdigest(), {k: float(v) for k, v in thresholds.items()},
                       data.get("train_fingerprint"), None if rate is None else float(rate))


def effective_thresholds(rule_thresholds: dict[str, float], calibration: Calibration | None) -> dict[str, float]:
    merged = dict(DEFAULT_THRESHOLDS)
    merged.update(rule_thresholds)
    if calibration is not None:
        merged.update(calibration.thresholds)
    return merged

