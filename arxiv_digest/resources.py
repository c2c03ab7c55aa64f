"""Load SQL and prompt files by name (they live at the repository's top level, not in strings)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
QUERIES_DIR = SQL_DIR / "queries"
PROMPTS_DIR = ROOT / "prompts"

_PARAM = re.compile(r"(?<![\w$])\$([A-Za-z_]\w*)")
_SECTION = re.compile(r"^-- name: (\S+)\s*$", re.MULTILINE)
# A parameter's default, declared in a query's header: `-- default: $weeks = 4`.
_DEFAULT = re.compile(r"^-- default: \$([A-Za-z_]\w*) = (.*?)\s*$", re.MULTILINE)


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def sql_sections(name: str) -> dict[str, str]:
    """The `-- name: X` sections of a SQL file, keyed by X."""
    text = read_sql(name)
    parts = _SECTION.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def analyst_queries() -> dict[str, str]:
    """Every example analyst query in sql/queries/, keyed by file stem."""
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(QUERIES_DIR.glob("*.sql"))}


def query_params(sql: str) -> list[str]:
    """The `$name` parameters a query expects, in first-use order, without duplicates; those
    with a declared default (query_defaults) are not asked for."""
    defaults = query_defaults(sql)
    seen: dict[str, None] = {}
    for match in _PARAM.finditer(sql):
        if match.group(1) not in defaults:
            seen.setdefault(match.group(1), None)
    return list(seen)


def query_defaults(sql: str) -> dict[str, str]:
    """The parameter defaults a query declares (`-- default: $name = value` lines)."""
    return {match.group(1): match.group(2) for match in _DEFAULT.finditer(sql)}
