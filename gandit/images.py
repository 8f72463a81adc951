"""The in-memory form of a set of decoded images (a submission), shared by intake and rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gandit.checks import Check


@dataclass(frozen=True)
class ImageEntry:
    """One decoded image of a submission."""

    name: str           #: entry name as in the archive ('/'-separated, relative)
    sha256: str         #: hex digest of the entry's raw bytes (waivers key on it)
    format: str         #: decoded format, lower case: "png", "jpeg", "webp", ...
    mode: str           #: PIL mode as decoded: "RGB", "RGBA", "L", "P", ...
    width: int
    height: int
    pixels: np.ndarray = field(repr=False)  #: uint8 (height, width, 3), RGB as PIL's convert("RGB")


@dataclass
class ImageSet:
    """A submission after safe intake: decoded images sorted by name, and intake's checks."""

    source: str                       #: the path the user gave
    sha256: str                       #: of the archive's bytes; for a folder, of its sorted manifest
    images: list[ImageEntry]          #: decodable images, sorted by name
    checks: list[Check]               #: archive.* and format.decode checks (one per id)
    entries_seen: int = 0             #: regular-file entries looked at (images or not)
