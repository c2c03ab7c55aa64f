"""Local paths: checked without creating anything, and files replaced whole, never half-written."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def directory_problem(path: Path) -> str | None:
    """Why `path` cannot be used as a writable directory (existing or to be created), or None.

    Looks only: the nearest existing ancestor must be a writable directory.
    """
    path = Path(os.path.abspath(path))
    for candidate in (path, *path.parents):
        try:
            if not candidate.exists():
                continue
        except OSError as exc:
            return f"{candidate} cannot be inspected ({exc.strerror or exc})"
        if not candidate.is_dir():
            return f"{candidate} is a file"
        if not os.access(candidate, os.W_OK | os.X_OK):
            return f"{candidate} is not writable"
        return None
    return None


def replace_file(path: Path, data: bytes) -> None:
    """Write `path` whole: a hidden temporary file beside it, then renamed over it.

    The temporary name is unique, so writers of one path at once never share it; it starts
    with a dot, so readers listing the directory skip it; a failed write leaves none behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
