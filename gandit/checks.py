"""Rule and safety checks: the ``checks`` list of result.json.

Check ids are a contract (DESIGN.md): ``archive.open``, ``archive.unsafe_path``,
``archive.symlink``, ``archive.limits``, ``format.decode``, ``format.count``,
``format.size``, ``format.mode``, ``format.format``, ``format.duplicate``,
``forensics.flagged``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "warn"]

#: How many offending entry names a message spells out before it says "and N more".
MESSAGE_NAMES = 5


@dataclass(frozen=True)
class Check:
    id: str
    status: Status
    message: str
    entries: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "message": self.message,
                "entries": list(self.entries)}


def names_phrase(names: list[str] | tuple[str, ...], limit: int = MESSAGE_NAMES) -> str:
    """``'a.png', 'b.png' and 3 more`` — for messages; the full list goes in ``entries``."""
    shown = ", ".join(repr(n) for n in names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown
