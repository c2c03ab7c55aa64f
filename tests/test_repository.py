"""The repository is self-contained: a fresh clone has every file its tests, docs and demo use."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"
THIS_FILE = PurePosixPath("tests/test_repository.py")  # it spells out the patterns it looks for

# References that only resolve on the machine the project was developed on: the sibling `shared`
# folder (as a relative path or joined onto the repository's parent), absolute paths of that
# machine, and `Path(__file__).parents[k]` reaching above the repository root (checked below).
OUTSIDE_PATTERNS = {
    "a relative path into a sibling folder": re.compile(r"\.\./shared\b"),
    "a sibling folder named shared": re.compile(r"""\.parent\s*/\s*["']shared["']"""),
    "an absolute path of the development machine": re.compile(r"(?<![\w./~-])/work/"),
}
FILE_PARENTS = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
# Inline Markdown links and images: [text](target) or ![alt](target "title").
MARKDOWN_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*)?\)")


def repository_files() -> list[PurePosixPath]:
    """The tracked files (what a clone gets)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return sorted({PurePosixPath(name) for name in listed.split("\0") if name})


def read_text(path: Path) -> str | None:
    """The file's text, or None for binary files (NUL bytes or not UTF-8) and deleted files."""
    if not path.is_file():  # deleted in the work tree but still in the index
        return None
    raw = path.read_bytes()
    if b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def escapes_root(relative: PurePosixPath, target: str) -> bool:
    """True when a relative link `target` in the file `relative` resolves above the repo root."""
    if re.match(r"^[a-zA-Z][\w+.-]*:|^#|^/", target):  # URL, anchor or site-absolute path
        return False
    depth = len(relative.parent.parts)
    for part in PurePosixPath(target.split("#", 1)[0]).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def outside_references(relative: PurePosixPath, text: str) -> list[str]:
    """Each reference in the file to a path outside the repository, as `line: what: excerpt`."""
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for what, pattern in OUTSIDE_PATTERNS.items():
            if pattern.search(line):
                found.append(f"{number}: {what}: {line.strip()[:120]}")
        if relative.suffix == ".py":
            # parents[k] of a file `depth` folders down is the repo root for k == depth.
            for match in FILE_PARENTS.finditer(line):
                if int(match.group(1)) > len(relative.parent.parts):
                    found.append(f"{number}: a parent above the repository: {line.strip()[:120]}")
        if relative.suffix == ".md":
            for match in MARKDOWN_LINK.finditer(line):
                if escapes_root(relative, match.group(1)):
                    found.append(f"{number}: a link out of the repository: {match.group(0)}")
    return found


def test_no_repository_file_refers_to_a_path_outside_the_repository():
    problems = []
    for relative in repository_files():
        if relative == THIS_FILE:
            continue
        text = read_text(REPO / relative)
        if text is not None:
            problems += [f"{relative}:{found}" for found in outside_references(relative, text)]
    assert not problems, "references outside the repository:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("relative", "line", "expected"),
    [
        # The sibling folder is spelled in two parts: this file must not refer to it itself.
        ("README.md", "see [the digest](../" + "shared/reference/digest.md) here", 2),
        ("README.md", "see [the digest](tests/data/reference/digest.md) here", 0),
        ("docs/a.md", "[up one is still inside](../README.md)", 0),
        ("docs/a.md", "[two up leaves](../../x.md#part)", 1),
        ("README.md", "[site](https://example.org/../x) [anchor](#the-day-rule)", 0),
        ("tests/t.py", 'SHARED = Path(__file__).resolve().parents[2] / "shared"', 1),
        ("tests/t.py", "REPO = Path(__file__).resolve().parents[1]", 0),
        ("tests/t.py", 'FIXTURES = REPO.parent / "shared" / "fixtures"', 1),
        ("tests/t.py", 'lake = tmp_path / "shared" / "lake"', 0),
        ("scripts/x.sh", "cp /work/shared/reference/x.md .", 1),
        ("README.md", "https://github.com/org/work/tree and ~/work/x", 0),
    ],
)
def test_outside_references_are_found_when_present(relative, line, expected):
    assert len(outside_references(PurePosixPath(relative), line)) == expected


def test_recorded_data_matches_the_checksums_in_its_provenance():
    provenance = (TEST_DATA / "PROVENANCE.md").read_text(encoding="utf-8")
    listed = dict(
        (name, sha)
        for sha, name in re.findall(r"^\| `([0-9a-f]{64})` \| `([^`]+)` \|$", provenance, re.M)
    )
    shipped = {
        path.relative_to(TEST_DATA).as_posix()
        for path in TEST_DATA.rglob("*")
        if path.is_file() and path.name != "PROVENANCE.md"
    }
    assert set(listed) == shipped  # every shipped file has its provenance, and no listed is missing
    for name, sha in listed.items():
        assert hashlib.sha256((TEST_DATA / name).read_bytes()).hexdigest() == sha, name
