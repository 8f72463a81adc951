"""Reviewer waivers: images a reviewer has cleared, by the SHA-256 of the entry's bytes.

```toml
[[waiver]]
sha256 = "9f86d08…"
reason = "public-domain photo the rules allow"
```
Waived images stay in the result (``waived: true``) and do not count towards the verdict.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from gandit.errors import UsageError

_HEX64 = re.compile(r"[0-9a-f]{64}")


def load_waivers(path: str | os.PathLike) -> dict[str, str]:
    """``{sha256: reason}``; raises UsageError (exit 2) naming the file and the entry at fault."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read waivers file '{p}': {err.strerror or err} — fix the --waivers path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"waivers file '{p}' is not valid TOML: {err} — fix the syntax") from None
    unknown = set(data) - {"waiver"}
    if unknown:
        raise UsageError(f"waivers file '{p}': unknown key '{sorted(unknown)[0]}' — only [[waiver]] tables are allowed")
    waivers: dict[str, str] = {}
    for n, item in enumerate(data.get("waiver", []), start=1):
        if not isinstance(item, dict) or set(item) - {"sha256", "reason"}:
            raise UsageError(f"waivers file '{p}': waiver {n} may hold only sha256 and reason")
        digest, reason = str(item.get("sha256", "")).lower(), item.get("reason")
        if not _HEX64.fullmatch(digest):
            raise UsageError(f"waivers file '{p}': waiver {n} needs sha256 = 64 hex digits of the entry's bytes")
        if not isinstance(reason, str) or not reason.strip():
            raise UsageError(f"waivers file '{p}': waiver {n} needs a reason")
        waivers[digest] = reason.strip()
    return waivers
