"""Local paths from settings, checked without creating anything: a refused run writes nothing."""

from __future__ import annotations

import os
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
