"""One error hierarchy. Every message is one line naming the file or key at fault and the fix.

The CLI turns any :class:`GanditError` into that line on stderr and exit code 2 (the audit
could not run). Problems *inside* a readable submission are not errors: they are failed
checks (see :mod:`gandit.checks`).
"""

from __future__ import annotations


class GanditError(Exception):
    """Base class: the run cannot go on. ``str(err)`` is the one-line message."""

    exit_code = 2


class UsageError(GanditError):
    """A bad flag or combination of flags."""


class RuleFileError(GanditError):
    """A rule file that cannot be read, parsed or validated."""


class ArchiveError(GanditError):
    """A submission that cannot be opened at all (not a zip/tar/folder, unreadable)."""


class TrainingSetError(GanditError):
    """A training folder that is missing, unreadable or holds no images."""


class WeightsError(GanditError):
    """Inception weights that cannot be found, read or verified."""


class StatsError(GanditError):
    """A statistics (.npz) or result (.json) file that cannot be read."""


class WorkerDiedError(GanditError):
    """A worker process ended before it returned its batch (killed: out of memory, most often)."""
