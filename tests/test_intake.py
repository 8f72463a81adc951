"""Intake: safe reading of zips, tars and folders, against hostile archives built in each test."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import uuid
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageFile

from gandit import intake
from gandit.errors import ArchiveError, GanditError
from gandit.intake import CORE_CHECKS, DECODABLE_FORMATS, Limits, read_submission
from intake_fixtures import (
    encode,
    nothing_written,
    pixels,
    png,
    png_claiming,
    tar_file,
    tar_special,
    write_tar,
    write_tree,
    write_zip,
)

MB = 1_000_000


def check(image_set, check_id):
    found = [c for c in image_set.checks if c.id == check_id]
    assert len(found) == 1, f"expected one {check_id}, got {image_set.checks}"
    return found[0]


def names(image_set):
    return [image.name for image in image_set.images]


def assert_only_failing(image_set, *failing):
    """The named checks fail (one line, naming entries); every other core check passes."""
    for c in image_set.checks:
        if c.id in failing:
            assert c.status == "fail" and c.entries and "\n" not in c.message, c
            assert list(c.entries) == sorted(set(c.entries))
        elif c.id in CORE_CHECKS:
            assert (c.status, c.entries) == ("pass", ()), c
    assert [c.id for c in image_set.checks] == sorted(c.id for c in image_set.checks)


# --- happy paths ----------------------------------------------------------------------------

NESTED = {"b.png": 1, "dir/a.png": 2, "dir/sub/c.png": 3, "a.png": 4}
NESTED_NAMES = sorted(NESTED)


def assert_nested_decoded(image_set):
    assert names(image_set) == NESTED_NAMES
    assert image_set.entries_seen == 4
    for image in image_set.images:
        raw = png(NESTED[image.name])
        assert image.sha256 == hashlib.sha256(raw).hexdigest()
        assert (image.format, image.mode, image.width, image.height) == ("png", "RGB", 8, 8)
        assert image.pixels.dtype == np.uint8 and image.pixels.shape == (8, 8, 3)
        np.testing.assert_array_equal(image.pixels, pixels(NESTED[image.name]))
        assert not image.pixels.flags.writeable
    assert [c.id for c in image_set.checks] == sorted(CORE_CHECKS)
    assert_only_failing(image_set)


def test_zip_with_nested_folders_is_read_sorted_with_exact_pixels_and_hashes(tmp_path):
    path = write_zip(tmp_path / "sub.zip", [("dir/", b"")] + [(n, png(s)) for n, s in NESTED.items()])
    with nothing_written(tmp_path):
        result = read_submission(path)
    assert_nested_decoded(result)
    assert result.source == str(path)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz", ""])
def test_tar_of_any_compression_is_read(tmp_path, compression):
    members = [tar_special("dir", tarfile.DIRTYPE)] + [tar_file(n, png(s)) for n, s in NESTED.items()]
    path = write_tar(tmp_path / "sub.tar", members, compression)
    with nothing_written(tmp_path):
        result = read_submission(str(path))
    assert_nested_decoded(result)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_container_is_recognised_by_content_not_extension(tmp_path):
    tar_named_zip = write_tar(tmp_path / "really-a-tar.zip", [tar_file("a.png", png(1))])
    zip_named_tar = write_zip(tmp_path / "really-a-zip.tar.gz", [("b.png", png(2))])
    assert names(read_submission(tar_named_zip)) == ["a.png"]
    assert names(read_submission(zip_named_tar)) == ["b.png"]


def test_folder_is_read_with_relative_names_and_a_manifest_hash(tmp_path):
    root = write_tree(tmp_path / "submission", {n: png(s) for n, s in NESTED.items()})
    (root / "empty-dir").mkdir()
    with nothing_written(tmp_path):
        result = read_submission(root)
    assert_nested_decoded(result)
    manifest = "".join(f"{n}\0{hashlib.sha256(png(NESTED[n])).hexdigest()}\n" for n in NESTED_NAMES)
    assert result.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    (root / "a.png").write_bytes(png(99))
    assert read_submission(root).sha256 != result.sha256


def test_empty_zip_gives_no_images_and_passing_checks(tmp_path):
    path = write_zip(tmp_path / "empty.zip", [])
    result = read_submission(path)
    assert result.images == [] and result.entries_seen == 0
    assert [(c.id, c.status) for c in result.checks] == [(i, "pass") for i in sorted(CORE_CHECKS)]


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK"])
def test_other_modes_are_converted_to_rgb_and_the_original_mode_is_kept(tmp_path, mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    data = encode(Image.fromarray(pixels(5)).convert(mode), fmt)
    path = write_zip(tmp_path / "modes.zip", [("x.img", data)])
    [entry] = read_submission(path).images
    assert (entry.mode, entry.format) == (mode, fmt.lower())
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(entry.pixels, expected)
    if mode == "L":
        assert (entry.pixels[..., 0] == entry.pixels[..., 2]).all()


@pytest.mark.parametrize("fmt", DECODABLE_FORMATS)
def test_every_allowed_format_decodes_and_is_named_in_lower_case(tmp_path, fmt):
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(pixels(6), fmt, **options)
    path = write_zip(tmp_path / "f.zip", [("img", data)])
    [entry] = read_submission(path).images
    mode = "P" if fmt == "GIF" else "RGB"                # GIF stores a palette
    assert (entry.format, entry.mode, entry.pixels.shape) == (fmt.lower(), mode, (8, 8, 3))
    if fmt in ("PNG", "WEBP", "BMP", "TIFF"):          # lossless: the pixels come back exactly
        np.testing.assert_array_equal(entry.pixels, pixels(6))


def test_a_format_pillow_knows_but_the_rules_do_not_is_not_decoded(tmp_path):
    path = write_zip(tmp_path / "ppm.zip", [("a.ppm", encode(pixels(1), "PPM")), ("b.png", png(2))])
    result = read_submission(path)
    assert names(result) == ["b.png"]
    assert check(result, "format.decode").entries == ("a.ppm",)


# --- unsafe paths ---------------------------------------------------------------------------

TRAVERSALS = ["../evil.png", "a/../../evil.png", "..\\..\\evil.png", "ok/.. /evil.png"]
ABSOLUTES = ["/gandit-abs-{}.png", "C:\\evil.png", "C:/evil.png", "\\\\server\\share\\evil.png"]


def hostile_names():
    unique = uuid.uuid4().hex
    return TRAVERSALS + [ABSOLUTES[0].format(unique)] + ABSOLUTES[1:]


def test_zip_traversal_and_absolute_paths_are_refused_and_nothing_is_written(tmp_path):
    bad = hostile_names()
    entries = [(n, png(i)) for i, n in enumerate(bad)] + [("good.png", png(50))]
    path = write_zip(tmp_path / "evil.zip", entries)
    with nothing_written(tmp_path, absolute_names=(bad[len(TRAVERSALS)],)):
        result = read_submission(path)
    assert names(result) == ["good.png"]
    unsafe = check(result, "archive.unsafe_path")
    assert unsafe.status == "fail" and set(unsafe.entries) == set(bad)
    assert "'..' component" in unsafe.message and "absolute path" in unsafe.message
    assert_only_failing(result, "archive.unsafe_path")
    assert not any(p.name == "evil.png" for p in tmp_path.parent.rglob("*"))


def test_tar_traversal_absolute_paths_and_devices_are_refused(tmp_path):
    bad = hostile_names()
    members = [tar_file(n, png(i)) for i, n in enumerate(bad)]
    members += [tar_special("fifo.png", tarfile.FIFOTYPE), tar_special("tty.png", tarfile.CHRTYPE),
                tar_file("good.png", png(50))]
    path = write_tar(tmp_path / "evil.tar.gz", members)
    with nothing_written(tmp_path, absolute_names=(bad[len(TRAVERSALS)],)):
        result = read_submission(path)
    assert names(result) == ["good.png"]
    unsafe = check(result, "archive.unsafe_path")
    assert set(unsafe.entries) == set(bad) | {"fifo.png", "tty.png"}
    assert unsafe.message.startswith("10 entries with unsafe paths were not read: ")
    assert unsafe.message.endswith(" and 5 more")   # five named, the rest counted
    assert_only_failing(result, "archive.unsafe_path")


def test_nul_in_a_zip_name_is_refused(tmp_path):
    path = write_zip(tmp_path / "nul.zip", [("aXb.png", png(1)), ("good.png", png(2))])
    path.write_bytes(path.read_bytes().replace(b"aXb.png", b"a\0b.png"))   # local + central
    result = read_submission(path)
    assert names(result) == ["good.png"]
    unsafe = check(result, "archive.unsafe_path")
    assert unsafe.entries == ("a\0b.png",) and "NUL in name" in unsafe.message
    assert "\0" not in unsafe.message


# --- links ----------------------------------------------------------------------------------

def test_zip_symlink_entry_is_refused(tmp_path):
    path = write_zip(tmp_path / "link.zip", [("link.png", b"/etc/passwd"), ("good.png", png(1))],
                     modes={"link.png": stat.S_IFLNK | 0o777})
    with nothing_written(tmp_path):
        result = read_submission(path)
    assert names(result) == ["good.png"]
    link = check(result, "archive.symlink")
    assert link.status == "fail" and link.entries == ("link.png",) and "symlink" in link.message
    assert_only_failing(result, "archive.symlink")


def test_tar_symlink_and_hardlink_are_refused(tmp_path):
    members = [tar_file("good.png", png(1)),
               tar_special("sym.png", tarfile.SYMTYPE, "/etc/passwd"),
               tar_special("hard.png", tarfile.LNKTYPE, "good.png")]
    path = write_tar(tmp_path / "links.tar", members, "")
    with nothing_written(tmp_path):
        result = read_submission(path)
    assert names(result) == ["good.png"]
    link = check(result, "archive.symlink")
    assert link.entries == ("hard.png", "sym.png")
    assert "'hard.png' (hard link)" in link.message and "'sym.png' (symlink)" in link.message
    assert_only_failing(result, "archive.symlink")


def test_folder_symlinks_to_files_and_folders_outside_are_not_followed(tmp_path):
    outside = write_tree(tmp_path / "outside", {"secret.png": png(7), "deep/other.png": png(8)})
    root = write_tree(tmp_path / "submission", {"good.png": png(1), "sub/fine.png": png(2)})
    (root / "file-link.png").symlink_to(outside / "secret.png")
    (root / "sub" / "dir-link").symlink_to(outside, target_is_directory=True)
    (root / "broken.png").symlink_to(tmp_path / "missing.png")
    with nothing_written(tmp_path):
        result = read_submission(root)
    assert names(result) == ["good.png", "sub/fine.png"]
    assert check(result, "archive.symlink").entries == ("broken.png", "file-link.png", "sub/dir-link")
    assert result.entries_seen == 2
    assert_only_failing(result, "archive.symlink")


def test_folder_fifo_is_refused_without_blocking(tmp_path):
    root = write_tree(tmp_path / "submission", {"good.png": png(1)})
    os.mkfifo(root / "pipe.png")
    result = read_submission(root)
    assert names(result) == ["good.png"]
    assert check(result, "archive.unsafe_path").entries == ("pipe.png",)


# --- limits ---------------------------------------------------------------------------------

@pytest.fixture
def bytes_read_from_zips(monkeypatch):
    """Counts the uncompressed bytes intake pulls out of zip entries."""
    total = [0]
    original = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = original(self, n)
        total[0] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    return total


def test_zip_bomb_entry_is_cut_off_at_the_file_limit(tmp_path, bytes_read_from_zips):
    path = write_zip(tmp_path / "bomb.zip", [("bomb.png", bytes(50 * MB)), ("good.png", png(1))])
    assert path.stat().st_size < 200_000
    limits = Limits(max_file_bytes=5 * MB, max_total_bytes=8 * MB)
    with nothing_written(tmp_path):
        result = read_submission(path, limits)
    assert bytes_read_from_zips[0] <= 5 * MB + 1 + len(png(1))
    assert names(result) == ["good.png"]          # 50 MB were not counted against the 8 MB
    limit = check(result, "archive.limits")
    assert limit.entries == ("bomb.png",) and "over 5000000 bytes" in limit.message
    assert_only_failing(result, "archive.limits")


def test_tar_bomb_entry_is_cut_off_and_the_rest_is_read(tmp_path):
    members = [tar_file("bomb.png", bytes(20 * MB)), tar_file("good.png", png(1))]
    path = write_tar(tmp_path / "bomb.tar.bz2", members, "bz2")
    result = read_submission(path, Limits(max_file_bytes=1 * MB))
    assert names(result) == ["good.png"]
    assert check(result, "archive.limits").entries == ("bomb.png",)


def test_tar_member_bigger_than_the_total_budget_stops_reading(tmp_path):
    members = [tar_file("a.png", png(1)), tar_file("bomb.png", bytes(20 * MB)), tar_file("c.png", png(3))]
    path = write_tar(tmp_path / "bomb.tar.xz", members, "xz")
    result = read_submission(path, Limits(max_file_bytes=1 * MB, max_total_bytes=10 * MB))
    assert names(result) == ["a.png"]
    limit = check(result, "archive.limits")
    assert limit.entries == ("bomb.png",) and "reading stopped here" in limit.message


def test_huge_tar_extended_header_is_refused(tmp_path, monkeypatch):
    long_name = "d" * 3000 + "/long.png"      # stored in a pax header of ~3 kB
    path = write_tar(tmp_path / "pax.tar.gz", [tar_file("a.png", png(1)), tar_file(long_name, png(2))])
    assert names(read_submission(path)) == ["a.png", long_name]
    monkeypatch.setattr(intake, "_MAX_TAR_HEADER_BYTES", 1000)
    result = read_submission(path)
    assert names(result) == ["a.png"]
    broken = check(result, "archive.open")
    assert broken.entries == ("a.png",) and "extended header" in broken.message


def test_too_many_entries_stops_reading_where_it_says(tmp_path):
    entries = [(f"{i}.png", png(i)) for i in range(5)]
    path = write_zip(tmp_path / "many.zip", entries)
    result = read_submission(path, Limits(max_entries=3))
    assert names(result) == ["0.png", "1.png", "2.png"]
    assert result.entries_seen == 3
    limit = check(result, "archive.limits")
    assert limit.entries == ("3.png",) and "more than 3 entries" in limit.message
    assert_only_failing(result, "archive.limits")


def test_total_bytes_limit_stops_reading(tmp_path):
    images = [(f"{i}.png", png(i, size=32)) for i in range(4)]
    size = max(len(data) for _, data in images)
    path = write_zip(tmp_path / "total.zip", images)
    result = read_submission(path, Limits(max_total_bytes=int(2.5 * size)))
    assert names(result) == ["0.png", "1.png"]
    limit = check(result, "archive.limits")
    assert limit.entries == ("2.png",) and "reading stopped here" in limit.message


@pytest.fixture
def loaded_sizes(monkeypatch):
    """The sizes of every image Pillow is asked to load (allocate)."""
    sizes = []
    original = ImageFile.ImageFile.load

    def recording_load(self):
        sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    return sizes


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (5000, 5000), (20_000, 1000)])
def test_png_bomb_is_refused_before_anything_is_allocated(tmp_path, loaded_sizes, width, height):
    bomb = png_claiming(width, height)
    assert len(bomb) < 200
    path = write_zip(tmp_path / "pngbomb.zip", [("bomb.png", bomb), ("good.png", png(1))])
    result = read_submission(path)
    assert names(result) == ["good.png"]
    assert set(loaded_sizes) == {(8, 8)}           # only good.png was ever loaded
    limit = check(result, "archive.limits")
    assert limit.entries == ("bomb.png",) and "pixels" in limit.message
    assert_only_failing(result, "archive.limits")


def test_png_header_within_max_pixels_is_loaded(tmp_path):
    path = write_zip(tmp_path / "small.zip", [("big.png", png(1, size=64))])
    result = read_submission(path, Limits(max_pixels=64 * 64))
    assert names(result) == ["big.png"]
    result = read_submission(path, Limits(max_pixels=64 * 64 - 1))
    assert "'big.png' (declares 64x64 pixels, over 4095)" in check(result, "archive.limits").message


# --- decoding -------------------------------------------------------------------------------

def test_undecodable_entries_fail_format_decode_with_a_reason_each(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)   # as another module might
    truncated = png(1, size=64)[:-300]
    path = write_zip(tmp_path / "bad.zip", [("notes.png", b"just text\n"), ("a.png", truncated),
                                           ("good.png", png(2))])
    result = read_submission(path)
    assert names(result) == ["good.png"]
    decode = check(result, "format.decode")
    assert decode.entries == ("a.png", "notes.png")
    assert decode.message == ("2 entries are not decodable images (PNG, JPEG, WEBP, BMP, GIF, "
                              "TIFF): 'a.png' (truncated or corrupt), 'notes.png' (not an image)")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True                  # restored
    assert_only_failing(result, "format.decode")


def test_message_names_five_entries_and_counts_the_rest(tmp_path):
    path = write_zip(tmp_path / "text.zip", [(f"t{i}.png", b"text") for i in range(7)])
    decode = check(read_submission(path), "format.decode")
    assert len(decode.entries) == 7
    assert decode.message.startswith("7 entries are not decodable images")
    assert decode.message.endswith("'t4.png' (not an image) and 2 more")


# --- names ----------------------------------------------------------------------------------

def test_duplicate_names_keep_the_first(tmp_path):
    path = write_zip(tmp_path / "dup.zip", [("a.png", png(1)), ("b.png", png(2)), ("a.png", png(3)),
                                           ("./b.png", png(4))])
    result = read_submission(path)
    assert names(result) == ["a.png", "b.png"]
    np.testing.assert_array_equal(result.images[0].pixels, pixels(1))
    dup = check(result, "archive.duplicate_name")
    assert dup.status == "fail" and dup.entries == ("./b.png", "a.png")
    assert_only_failing(result, "archive.duplicate_name")


def test_os_metadata_is_skipped_with_one_warning(tmp_path):
    junk = ["__MACOSX/._a.png", "__MACOSX/sub/._b.png", ".DS_Store", "sub/Thumbs.db", "sub/._c.png"]
    path = write_zip(tmp_path / "mac.zip", [(n, b"\0\5\26\7junk") for n in junk] + [("a.png", png(1))])
    result = read_submission(path)
    assert names(result) == ["a.png"]
    ignored = check(result, "archive.ignored")
    assert ignored.status == "warn" and ignored.entries == tuple(sorted(junk))
    assert ignored.message.startswith("5 entries of operating-system metadata were skipped")
    assert_only_failing(result)                    # in particular, format.decode passes


# --- damaged archives -----------------------------------------------------------------------

def test_zip_entry_with_a_bad_crc_fails_archive_open_and_the_rest_is_kept(tmp_path):
    data = {n: png(i, size=16) for i, n in enumerate(["a.png", "b.png", "c.png"])}
    path = write_zip(tmp_path / "crc.zip", list(data.items()), compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    raw[raw.index(data["b.png"]) + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    result = read_submission(path)
    assert names(result) == ["a.png", "c.png"]
    broken = check(result, "archive.open")
    assert broken.entries == ("b.png",) and "CRC" in broken.message
    assert_only_failing(result, "archive.open")


def test_encrypted_zip_entry_fails_archive_open(tmp_path):
    path = write_zip(tmp_path / "enc.zip", [("a.png", png(1)), ("b.png", png(2))])
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 1)   # b.png's central record
    raw[central + 8] |= 0x1                                             # general-purpose flags
    path.write_bytes(bytes(raw))
    result = read_submission(path)
    assert names(result) == ["a.png"]
    assert "'b.png' (encrypted)" in check(result, "archive.open").message


@pytest.mark.parametrize("compression", ["gz", ""])
def test_truncated_tar_keeps_what_was_read_and_names_where_it_broke(tmp_path, compression):
    members = [tar_file(f"{n}.png", png(i, size=64)) for i, n in enumerate("abc")]
    path = write_tar(tmp_path / "cut.tar", members, compression)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with nothing_written(tmp_path):
        result = read_submission(path)
    assert names(result) == ["a.png"]
    broken = check(result, "archive.open")
    assert broken.status == "fail" and broken.entries == ("b.png",)
    assert_only_failing(result, "archive.open")


# --- submissions that cannot be opened ------------------------------------------------------

def assert_one_line_naming(err, path):
    message = str(err.value)
    assert isinstance(err.value, GanditError) and err.value.exit_code == 2
    assert repr(str(path)) in message and "\n" not in message and " — " in message


def test_random_bytes_are_not_a_submission(tmp_path):
    path = tmp_path / "noise.zip"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ArchiveError) as err:
        read_submission(path)
    assert_one_line_naming(err, path)
    assert "not a zip, tar or folder" in str(err.value)


def test_missing_path_is_an_archive_error(tmp_path):
    path = tmp_path / "nowhere.zip"
    with pytest.raises(ArchiveError) as err:
        read_submission(path)
    assert_one_line_naming(err, path)
    assert "no such file" in str(err.value)


def test_zip_with_a_cut_central_directory_is_an_archive_error(tmp_path):
    path = write_zip(tmp_path / "cut.zip", [("a.png", png(1)), ("b.png", png(2))])
    raw = path.read_bytes()
    path.write_bytes(raw[:-30])
    with pytest.raises(ArchiveError) as err:
        read_submission(path)
    assert_one_line_naming(err, path)


def test_limits_defaults_match_the_design():
    assert Limits() == Limits(max_entries=20_000, max_file_bytes=5_000_000,
                              max_total_bytes=2_000_000_000, max_pixels=16_777_216)
    with pytest.raises(AttributeError):
        Limits().max_entries = 1                      # frozen
