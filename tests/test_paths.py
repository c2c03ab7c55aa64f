"""Local files replaced whole: the one temporary-file-and-rename helper (lake and outputs)."""

from __future__ import annotations

import pytest

from arxiv_digest.paths import replace_file


def test_replace_file_swaps_in_the_new_bytes_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "day" / "part-0.parquet"
    replace_file(target, b"old")
    replace_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["part-0.parquet"]


def test_replace_file_that_cannot_rename_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "README.md"
    target.mkdir()  # a directory where the file should go: the rename fails
    with pytest.raises(OSError):
        replace_file(target, b"text")
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
