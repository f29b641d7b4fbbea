"""sr_models.files: a file appears under its name only complete, readable, and nothing is left behind."""

from __future__ import annotations

import stat

import pytest

from sr_models.files import FILE_MODE, atomic_write, write_bytes_atomic, write_text_atomic


def test_the_old_file_stays_until_the_new_one_is_complete(tmp_path):
    # Catches a writer that opens the target itself: inside the block a reader still sees the old file.
    path = tmp_path / "a.csv"
    path.write_text("old\n")
    with atomic_write(path, "w", newline="") as fh:
        fh.write("new,1\r\n")
        fh.flush()
        assert path.read_text() == "old\n"
    assert path.read_bytes() == b"new,1\r\n"  # newline="" keeps the line ending as written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(path) as fh:
            fh.write(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_written_files_are_readable_by_others_and_folders_are_made(tmp_path):
    # mkstemp alone makes a private 0600 file, which a web server running as another user cannot serve.
    path = write_bytes_atomic(tmp_path / "deep" / "er" / "f.png", b"\x89PNG")
    assert path.read_bytes() == b"\x89PNG"
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE == 0o644
    text = write_text_atomic(tmp_path / "t.html", "µ <b>")
    assert text.read_bytes() == "µ <b>".encode("utf-8")


def test_temporary_names_follow_the_pattern_generation_cleans_up(tmp_path):
    # ratings.stimulus_images removes stale ".<name>.*.tmp" files of killed workers.
    path = tmp_path / "img_001.png"
    with atomic_write(path) as fh:
        names = [p.name for p in tmp_path.iterdir()]
        fh.write(b"x")
    assert len(names) == 1 and names[0].startswith(".img_001.png.") and names[0].endswith(".tmp")
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(path, "a"):
            pass
