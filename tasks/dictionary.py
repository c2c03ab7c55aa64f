"""The data dictionary: every lake dataset, catalog view and table with its columns, DuckDB types
and one-line meanings (names and types from the code, meanings from sql/dictionary.toml)."""

from __future__ import annotations

import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.fs as pafs

from arxiv_digest.resources import ROOT, SQL_DIR
from tasks.lake import SCHEMAS, Lake

DICTIONARY = SQL_DIR / "dictionary.toml"
README = ROOT / "README.md"
README_START = (
    "<!-- data dictionary: generated from sql/dictionary.toml by `python -m tasks.dictionary`;"
    " do not edit by hand -->"
)
README_END = "<!-- end of data dictionary -->"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str  # dataset (lake, and its view) | view | table (the catalog's own)
    key: str
    about: str
    columns: tuple[Column, ...]


def catalog_columns() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """name -> (kind, [(column, DuckDB type)]) of every dataset, view and catalog table, read
    from a catalog made in memory from the code (as registration makes it, lake empty)."""
    from tasks.catalog import create_schema, refresh_views
    from tasks.search import create_search_schema

    con = duckdb.connect()
    try:
        with tempfile.TemporaryDirectory(prefix="arxiv-digest-dictionary-") as empty:
            create_schema(con)
            refresh_views(con, Lake(url=empty, fs=pafs.LocalFileSystem(), root=empty))
            create_search_schema(con)
        found = con.execute(
            "SELECT schema_name, table_name, 'table' FROM duckdb_tables() "
            "WHERE schema_name NOT IN ('empty') AND NOT temporary "
            "UNION ALL SELECT schema_name, view_name, 'view' FROM duckdb_views() "
            "WHERE NOT internal AND NOT temporary"
        ).fetchall()
        out: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        for schema, name, kind in found:
            full = name if schema == "main" else f"{schema}.{name}"
            described = con.execute(f'DESCRIBE "{schema}"."{name}"').fetchall()
            out[full] = (
                "dataset" if full in SCHEMAS else kind,
                [(row[0], row[1]) for row in described],
            )
        return out
    finally:
        con.close()


def _order(name: str, kind: str) -> tuple[int, int, str]:
    datasets = list(SCHEMAS)
    if kind == "dataset":
        return (0, datasets.index(name), name)
    return (1 if kind == "view" else 2 + ("." in name), 0, name)


def load_meanings(path: Path = DICTIONARY) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def build(
    found: dict[str, tuple[str, list[tuple[str, str]]]], meanings: dict[str, Any]
) -> list[Relation]:
    """The dictionary's relations in order: datasets (SCHEMAS order), views, catalog tables."""
    relations = []
    for name, (kind, columns) in sorted(
        found.items(), key=lambda item: _order(item[0], item[1][0])
    ):
        entry = meanings.get(name, {})
        described = dict(entry.get("columns", {}))
        if "same_as" in entry:
            described = dict(meanings.get(entry["same_as"], {}).get("columns", {})) | described
        relations.append(
            Relation(
                name=name,
                kind=kind,
                key=str(entry.get("key", "")),
                about=str(entry.get("about", "")),
                columns=tuple(Column(c, t, str(described.get(c, ""))) for c, t in columns),
            )
        )
    return relations


def problems(relations: list[Relation], meanings: dict[str, Any]) -> list[str]:
    """What sql/dictionary.toml lacks or holds in excess, one line each (empty: complete)."""
    out = []
    names = {r.name for r in relations}
    for relation in relations:
        if not relation.about:
            out.append(f"{relation.name}: no `about` line")
        out += [f"{relation.name}.{c.name}: no meaning" for c in relation.columns if not c.meaning]
        own = meanings.get(relation.name, {}).get("columns", {})
        present = {c.name for c in relation.columns}
        out += [f"{relation.name}.{c}: described but not a column" for c in own if c not in present]
    out += [f"{name}: described but not in the catalog" for name in meanings if name not in names]
    return out


def data_dictionary() -> list[Relation]:
    return build(catalog_columns(), load_meanings())


def schema_text(relations: list[Relation]) -> str:
    """Every relation, then its columns aligned: name, type, meaning."""
    blocks = []
    for r in relations:
        head = f"{r.name} ({r.kind}{'; key ' + r.key if r.key else ''}): {r.about}"
        width = max(len(c.name) for c in r.columns)
        type_width = max(len(c.type) for c in r.columns)
        lines = [
            f"  {c.name.ljust(width)}  {c.type.ljust(type_width)}  {c.meaning}".rstrip()
            for c in r.columns
        ]
        blocks.append("\n".join([head, *lines]))
    return "\n\n".join(blocks) + "\n"


def schema_rows(relations: list[Relation]) -> tuple[list[str], list[tuple[str, ...]]]:
    """The dictionary as one result set (for --format csv, json, markdown)."""
    columns = ["relation", "kind", "key", "column", "type", "meaning"]
    rows: list[tuple[str, ...]] = [
        (r.name, r.kind, r.key, c.name, c.type, c.meaning) for r in relations for c in r.columns
    ]
    return columns, rows


def readme_table(relations: list[Relation]) -> str:
    """The README's table: one row per relation, its key, meaning and columns."""
    lines = [
        README_START,
        "| dataset / view / table | kind | key | what | columns |",
        "|---|---|---|---|---|",
    ]
    for r in relations:
        columns = ", ".join(c.name for c in r.columns)
        key = r.key or "—"
        about = r.about.replace("|", "\\|")
        lines.append(f"| `{r.name}` | {r.kind} | {key} | {about} | {columns} |")
    lines.append(README_END)
    return "\n".join(lines)


def readme_with_table(readme: str, table: str) -> str:
    """README text with its generated block replaced by `table`."""
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    return readme[:start] + table + readme[end:]


def main() -> int:
    """Rewrite the README's data dictionary from the code and sql/dictionary.toml."""
    relations = data_dictionary()
    missing = problems(relations, load_meanings())
    if missing:
        print("sql/dictionary.toml is incomplete:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    text = README.read_text(encoding="utf-8")
    README.write_text(readme_with_table(text, readme_table(relations)), encoding="utf-8")
    print(f"README.md: data dictionary of {len(relations)} relations written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
