"""Safe intake of a submission (a zip, a tar of any compression, or a folder) into an ImageSet.

Everything is read in memory, one entry at a time: nothing is extracted or written, links are
never followed, and sizes are measured while reading instead of taken from headers. Problems
inside a readable submission become failed checks naming the entries, and the audit goes on
with the rest; a submission that cannot be opened at all raises
:class:`~gandit.errors.ArchiveError`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import lzma
import os
import re
import stat
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from gandit.checks import MESSAGE_NAMES, Check, names_phrase
from gandit.errors import ArchiveError
from gandit.images import ImageEntry, ImageSet


@dataclass(frozen=True)
class Limits:
    """Intake safety limits: the ``[limits]`` table of a rule file."""

    max_entries: int = 20_000              #: archive members (folders included) looked at
    max_file_bytes: int = 5_000_000        #: uncompressed bytes of one entry
    max_total_bytes: int = 2_000_000_000   #: uncompressed bytes of all entries together
    max_pixels: int = 16_777_216           #: width * height an image header may declare


#: The Pillow plugins allowed to open entries; anything else is ``format.decode``.
DECODABLE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")

#: Checks intake always reports (pass or fail); the optional ones appear only when they occur.
CORE_CHECKS = ("archive.open", "archive.unsafe_path", "archive.symlink", "archive.limits",
               "format.decode")

_CHUNK = 1 << 20
#: pax and GNU long-name headers are read whole by tarfile; a name never needs more.
_MAX_TAR_HEADER_BYTES = 1 << 20
_OS_JUNK_FILES = {".DS_Store", "Thumbs.db"}
_DRIVE = re.compile(r"^[A-Za-z]:")

_FILE, _DIR, _SYMLINK, _HARDLINK, _SPECIAL = "file", "dir", "symlink", "hard link", "special"

_TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError)
_DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, struct.error, zlib.error)

_PASS_MESSAGES = {
    "archive.open": "every entry could be read",
    "archive.unsafe_path": "no unsafe paths",
    "archive.symlink": "no links",
    "archive.limits": "within the intake limits",
    "format.decode": "every readable entry is a decodable image",
}
# {n} entries, {are}/{were} follow n; {names} is "'a.png' (reason), ..." (up to MESSAGE_NAMES).
_FAIL_MESSAGES = {
    "archive.open": "{n} {entries} could not be read (damaged or truncated archive): {names}",
    "archive.unsafe_path": "{n} {entries} with unsafe paths {were} not read: {names}",
    "archive.symlink": "{n} {entries} {are} links and {were} not followed: {names}",
    "archive.limits": "{n} {entries} {are} over the intake limits: {names}",
    "format.decode": "{n} {entries} {are} not decodable images ("
                     + ", ".join(DECODABLE_FORMATS) + "): {names}",
}


def read_submission(path: str | os.PathLike, limits: Limits = Limits()) -> ImageSet:
    """Read a zip, tar(.gz/.bz2/.xz) or folder of images into an :class:`ImageSet`.

    The container is recognised by content, not by file name. ``sha256`` is that of the
    archive's bytes; for a folder, of the lines ``f"{name}\\0{sha256}\\n"`` over the regular
    files read in full (all of them, less skipped metadata and entries refused before or at
    a limit), sorted by name.
    """
    source = os.fspath(path)
    kind = _path_kind(source)
    if kind == _DIR:
        tally = _read_members(_folder_members(source), limits)
        manifest = "".join(f"{name}\0{digest}\n" for name, digest in sorted(tally.manifest))
        return tally.image_set(source, hashlib.sha256(manifest.encode("utf-8")).hexdigest())
    with _open_file(source) as fileobj:
        digest = _file_sha256(fileobj)
        if _is_zip(fileobj):
            with _open_zip(source, fileobj) as archive:
                tally = _read_members(_zip_members(archive), limits)
        else:
            with _open_tar(source, fileobj) as archive:
                tally = _read_members(_tar_members(archive), limits)
    return tally.image_set(source, digest)


# --- opening --------------------------------------------------------------------------------

def _cannot_open(source: str, why: str, fix: str = "pass the archive or folder of images") -> ArchiveError:
    return ArchiveError(f"cannot open submission {source!r}: {why} — {fix}")


def _path_kind(source: str) -> str:
    """``_DIR`` or ``_FILE`` for the path the user gave (followed if it is a link)."""
    try:
        mode = os.stat(source).st_mode
        if stat.S_ISDIR(mode):
            os.scandir(source).close()     # a folder we cannot list fails here, not later
            return _DIR
    except OSError as exc:
        raise _cannot_open(source, _os_reason(exc), "check the path and its permissions") from None
    if not stat.S_ISREG(mode):
        raise _cannot_open(source, "not a regular file or folder")
    return _FILE


def _open_file(source: str) -> BinaryIO:
    try:
        return open(source, "rb")
    except OSError as exc:
        raise _cannot_open(source, _os_reason(exc), "check the path and its permissions") from None


def _file_sha256(fileobj: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: fileobj.read(_CHUNK), b""):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def _is_zip(fileobj: BinaryIO) -> bool:
    found = zipfile.is_zipfile(fileobj)
    fileobj.seek(0)
    return found


def _open_zip(source: str, fileobj: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise _cannot_open(source, f"unreadable zip directory ({_one_line(exc)})",
                           "re-create the zip") from None


def _open_tar(source: str, fileobj: BinaryIO) -> tarfile.TarFile:
    """Open a tar as a one-pass stream; this is also the tar test (like ``tarfile.is_tarfile``,
    but with the guarded header reader, which ``is_tarfile`` cannot be given)."""
    try:
        return tarfile.open(fileobj=fileobj, mode="r|*", tarinfo=_GuardedTarInfo)
    except _TAR_ERRORS:
        raise _cannot_open(source, "not a zip, tar or folder") from None


class _OversizedTarHeader(tarfile.TarError):
    pass


class _GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses huge pax / GNU long-name headers, which tarfile reads whole."""

    _META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                   tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)

    def _proc_member(self, tarfile_):   # tarfile's hook for each header read
        if self.type in self._META_TYPES and self.size > _MAX_TAR_HEADER_BYTES:
            raise _OversizedTarHeader(f"extended header of {self.size} bytes")
        return super()._proc_member(tarfile_)


# --- one generator per container kind -------------------------------------------------------

class _EntryUnreadable(Exception):
    """Reading one entry's bytes failed; the container may still go on."""


class _ContainerBroken(Exception):
    """The container cannot be read past ``name`` (a truncated or damaged archive)."""

    def __init__(self, name: str, reason: str):
        super().__init__(reason)
        self.name, self.reason = name, reason


@dataclass(frozen=True)
class _Member:
    """One archive member: ``read(n)`` returns at most n bytes of it, in stream order only."""

    name: str
    kind: str
    read: Callable[[int], bytes]
    pass_cost: int = 0   #: bytes the container must decompress to get past it (tar); 0 = free


def _zip_members(archive: zipfile.ZipFile) -> Iterator[_Member]:
    for info in archive.infolist():
        # orig_filename: zipfile cuts ``filename`` at a NUL, which would hide it
        yield _Member(info.orig_filename, _zip_kind(info), functools.partial(_read_zip, archive, info))


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return _DIR
    if stat.S_ISLNK(mode):
        return _SYMLINK
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return _SPECIAL
    return _FILE


def _read_zip(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.flag_bits & 0x1:
        raise _EntryUnreadable("encrypted")
    try:
        with archive.open(info) as entry:
            return _read_capped(entry, limit)
    except NotImplementedError:
        raise _EntryUnreadable("unsupported compression method") from None
    except _ZIP_ERRORS as exc:
        raise _EntryUnreadable(_one_line(exc)) from None


def _tar_members(archive: tarfile.TarFile) -> Iterator[_Member]:
    previous = "(start of archive)"
    while True:
        try:
            member = archive.next()
        except _TAR_ERRORS as exc:
            raise _ContainerBroken(previous, f"the archive breaks after it: {_one_line(exc)}") from None
        if member is None:
            return
        yield _Member(member.name, _tar_kind(member), functools.partial(_read_tar, archive, member),
                      pass_cost=max(member.size, 0))
        previous = member.name


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return _DIR
    if member.issym():
        return _SYMLINK
    if member.islnk():
        return _HARDLINK
    return _FILE if member.isreg() else _SPECIAL


def _read_tar(archive: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    try:
        entry = archive.extractfile(member)
        if entry is None:
            raise _EntryUnreadable("not a regular file")
        with entry:
            return _read_capped(entry, limit)
    except _TAR_ERRORS as exc:
        raise _EntryUnreadable(f"the archive ends early or is damaged: {_one_line(exc)}") from None


def _folder_members(root: str) -> Iterator[_Member]:
    failures: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=failures.append, followlinks=False):
        yield from _unlistable_members(root, failures)
        dirnames.sort()
        for dirname in list(dirnames):
            path = os.path.join(dirpath, dirname)
            if os.path.islink(path):       # os.walk lists links to folders here; never enter them
                dirnames.remove(dirname)
                yield _Member(_relative(root, path), _SYMLINK, _refuse)
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            yield _Member(_relative(root, path), _file_kind(path), functools.partial(_read_file, path))
    yield from _unlistable_members(root, failures)


def _unlistable_members(root: str, failures: list[OSError]) -> Iterator[_Member]:
    """Sub-folders that could not be listed, as members whose read fails with the reason."""
    for exc in failures:
        name = _relative(root, exc.filename) if exc.filename else "(folder)"
        yield _Member(name, _FILE, functools.partial(_raise_unreadable, _os_reason(exc)))
    failures.clear()


def _relative(root: str, path: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def _file_kind(path: str) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return _FILE                     # gone or unreadable: reading it reports why
    if stat.S_ISLNK(mode):
        return _SYMLINK
    if stat.S_ISDIR(mode):
        return _DIR
    return _FILE if stat.S_ISREG(mode) else _SPECIAL


def _read_file(path: str, limit: int) -> bytes:
    # O_NOFOLLOW and the fstat close the gap between listing a file and opening it
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _EntryUnreadable(_os_reason(exc)) from None
    try:
        with os.fdopen(fd, "rb") as entry:
            if not stat.S_ISREG(os.fstat(entry.fileno()).st_mode):
                raise _EntryUnreadable("no longer a regular file")
            return _read_capped(entry, limit)
    except OSError as exc:
        raise _EntryUnreadable(_os_reason(exc)) from None


def _refuse(limit: int) -> bytes:
    raise AssertionError("links are never read")


def _raise_unreadable(reason: str, limit: int) -> bytes:
    raise _EntryUnreadable(reason)


def _read_capped(entry: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` bytes, read in chunks: declared sizes are never trusted."""
    parts, size = [], 0
    while size < limit:
        part = entry.read(min(_CHUNK, limit - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


# --- the shared path: admit, read, decode ---------------------------------------------------

@dataclass
class _Tally:
    """What reading found so far."""

    images: list[ImageEntry] = field(default_factory=list)
    problems: dict[str, dict[str, str]] = field(default_factory=dict)  #: check id -> name -> reason
    manifest: list[tuple[str, str]] = field(default_factory=list)      #: (name, sha256) read
    entries_seen: int = 0
    bytes_read: int = 0

    def reject(self, check_id: str, name: str, reason: str) -> None:
        self.problems.setdefault(check_id, {}).setdefault(name, reason)

    def image_set(self, source: str, sha256: str) -> ImageSet:
        return ImageSet(source=source, sha256=sha256,
                        images=sorted(self.images, key=lambda image: image.name),
                        checks=_checks(self.problems), entries_seen=self.entries_seen)


class _Rejected(Exception):
    def __init__(self, check_id: str, reason: str):
        super().__init__(reason)
        self.check_id, self.reason = check_id, reason


def _read_members(members: Iterator[_Member], limits: Limits) -> _Tally:
    tally = _Tally()
    kept: set[str] = set()
    try:
        for count, member in enumerate(members, start=1):
            if count > limits.max_entries:
                tally.reject("archive.limits", member.name,
                             f"reading stopped here: more than {limits.max_entries} entries")
                break
            if member.kind == _DIR:
                continue
            if not _admit(member, tally, kept):
                continue
            if not _read_and_decode(member, tally, limits):
                break
    except _ContainerBroken as broken:
        tally.reject("archive.open", broken.name, broken.reason)
    return tally


def _admit(member: _Member, tally: _Tally, kept: set[str]) -> bool:
    """Whether a member is a safe, new, regular file worth reading; records why not."""
    if member.kind == _FILE:
        tally.entries_seen += 1
    unsafe = _unsafe_path_reason(member.name)
    if unsafe:
        tally.reject("archive.unsafe_path", member.name, unsafe)
    elif member.kind in (_SYMLINK, _HARDLINK):
        tally.reject("archive.symlink", member.name, member.kind)
    elif member.kind == _SPECIAL:
        tally.reject("archive.unsafe_path", member.name, "device, fifo or socket")
    elif _is_os_junk(member.name):
        tally.reject("archive.ignored", member.name, "operating-system file")
    elif _name_key(member.name) in kept:
        tally.reject("archive.duplicate_name", member.name, "repeats an earlier name")
    else:
        kept.add(_name_key(member.name))
        return True
    return False


def _read_and_decode(member: _Member, tally: _Tally, limits: Limits) -> bool:
    """Read one regular entry within the limits and decode it; False when reading must stop."""
    remaining = max(limits.max_total_bytes - tally.bytes_read, 0)
    stop_reason = f"reading stopped here: over {limits.max_total_bytes} bytes in total"
    if member.pass_cost > remaining:
        tally.reject("archive.limits", member.name, stop_reason)
        return False
    try:
        data = member.read(min(limits.max_file_bytes, remaining) + 1)
    except _EntryUnreadable as exc:
        tally.reject("archive.open", member.name, str(exc))
        return True
    tally.bytes_read += max(len(data), member.pass_cost)
    if len(data) > limits.max_file_bytes:
        tally.reject("archive.limits", member.name, f"over {limits.max_file_bytes} bytes")
        return True
    if len(data) > remaining:
        tally.reject("archive.limits", member.name, stop_reason)
        return False
    digest = hashlib.sha256(data).hexdigest()
    tally.manifest.append((member.name, digest))
    try:
        tally.images.append(_decode(member.name, data, digest, limits.max_pixels))
    except _Rejected as rejected:
        tally.reject(rejected.check_id, member.name, rejected.reason)
    return True


def _unsafe_path_reason(name: str) -> str | None:
    if not name:
        return "empty name"
    if "\0" in name:
        return "NUL in name"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "absolute path"
    # '..' in either separator; Windows also reads '.. ' and '...' as '..'
    if any(part.startswith("..") and not part.rstrip(". ") for part in re.split(r"[/\\]", name)):
        return "'..' component"
    return None


def _is_os_junk(name: str) -> bool:
    """macOS / Windows metadata that archivers add: __MACOSX/, ._*, .DS_Store, Thumbs.db."""
    parts = name.split("/")
    return "__MACOSX" in parts[:-1] or parts[-1] in _OS_JUNK_FILES or parts[-1].startswith("._")


def _name_key(name: str) -> str:
    """What a name would extract to: 'a.png', './a.png' and 'a//a.png' collide."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _decode(name: str, data: bytes, digest: str, max_pixels: int) -> ImageEntry:
    """Decode one image; raises _Rejected before anything large is allocated."""
    with _strict_pillow():
        try:
            with Image.open(io.BytesIO(data), formats=DECODABLE_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise _Rejected("archive.limits",
                                    f"declares {width}x{height} pixels, over {max_pixels}")
                image.load()
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
                fmt, mode = image.format, image.mode
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _Rejected("archive.limits", "declares more pixels than Pillow allows") from None
        except UnidentifiedImageError:
            raise _Rejected("format.decode", "not an image") from None
        except _DECODE_ERRORS:
            raise _Rejected("format.decode", "truncated or corrupt") from None
    pixels.flags.writeable = False
    return ImageEntry(name=name, sha256=digest, format=(fmt or "").lower(), mode=mode,
                      width=width, height=height, pixels=pixels)


@contextlib.contextmanager
def _strict_pillow() -> Iterator[None]:
    """Truncated images raise, whatever another module set; bomb warnings become errors."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", message="Palette images with Transparency")
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


# --- checks ---------------------------------------------------------------------------------

def _checks(problems: dict[str, dict[str, str]]) -> list[Check]:
    checks = [_core_check(check_id, problems.get(check_id, {})) for check_id in CORE_CHECKS]
    duplicates = sorted(problems.get("archive.duplicate_name", {}))
    if duplicates:
        checks.append(Check("archive.duplicate_name", "fail",
                            f"{_count(len(duplicates))} {_verb(duplicates, 'repeats', 'repeat')} "
                            f"an earlier name and {_verb(duplicates, 'was', 'were')} skipped "
                            f"(the first was kept): {names_phrase(duplicates)}",
                            tuple(duplicates)))
    ignored = sorted(problems.get("archive.ignored", {}))
    if ignored:
        checks.append(Check("archive.ignored", "warn",
                            f"{_count(len(ignored))} of operating-system metadata "
                            f"{_verb(ignored, 'was', 'were')} skipped: {names_phrase(ignored)}",
                            tuple(ignored)))
    return sorted(checks, key=lambda check: check.id)


def _core_check(check_id: str, found: dict[str, str]) -> Check:
    if not found:
        return Check(check_id, "pass", _PASS_MESSAGES[check_id])
    names = sorted(found)
    message = _FAIL_MESSAGES[check_id].format(
        n=len(names), entries="entry" if len(names) == 1 else "entries",
        are=_verb(names, "is", "are"), were=_verb(names, "was", "were"),
        names=_reasons_phrase([(name, found[name]) for name in names]))
    return Check(check_id, "fail", message, tuple(names))


def _reasons_phrase(found: list[tuple[str, str]]) -> str:
    """``'a.png' (truncated or corrupt), 'b.txt' (not an image) and 3 more``."""
    shown = ", ".join(f"{name!r} ({reason})" for name, reason in found[:MESSAGE_NAMES])
    rest = len(found) - MESSAGE_NAMES
    return f"{shown} and {rest} more" if rest > 0 else shown


def _count(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _verb(names: list[str], one: str, many: str) -> str:
    return one if len(names) == 1 else many


def _one_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or _one_line(exc)).lower()
