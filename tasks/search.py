"""The catalog's search index (sql/search.sql), kept in step with the lake's papers files.

Why not the fts extension's own index (PRAGMA create_fts_index): it can only be rebuilt whole, and
a year of papers (~100k) takes ~15 s to index on this machine, inside the registration's write
lock at every run; its match_bm25 macro is correlated (one lookup per paper) and answers in
~140 ms over a year. The index here is built with the extension's own tokenizer, stopwords and
stemmer, and queried with match_bm25's formula (tests/test_analyst_access.py compares the scores),
but a registration only indexes the days whose files changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from arxiv_digest.resources import sql_sections
from tasks.lake import DayFile, Lake

logger = logging.getLogger(__name__)

# Postings indexed since the last sort are scanned whole by every search; past this many the
# index is rewritten in term order (about 40 days of papers at ~270 papers a day).
UNSORTED_ROWS = 1_000_000


@dataclass(frozen=True)
class SearchSync:
    """What one synchronisation changed."""

    days_removed: int  # days whose papers left the index (changed or gone from the lake)
    papers_indexed: int
    sorted: bool


def changed_days(stored: Iterable[DayFile], current: Iterable[DayFile]) -> set[date]:
    """Days whose set of papers files (name, size, modification time) differs."""
    by_day: dict[date, set[DayFile]] = {}
    for file in stored:
        by_day.setdefault(file.digest_date, set()).add(file)
    now: dict[date, set[DayFile]] = {}
    for file in current:
        now.setdefault(file.digest_date, set()).add(file)
    return {day for day in by_day.keys() | now.keys() if by_day.get(day) != now.get(day)}


def execute_section(
    con: duckdb.DuckDBPyConnection, text: str, params: Mapping[str, Any] | None = None
) -> None:
    """Run every statement of a SQL section, each with the `$name` parameters it uses."""
    params = params or {}
    for statement in con.extract_statements(text):
        con.execute(statement, {name: params[name] for name in statement.named_parameters} or None)


def fts_stopwords() -> list[str]:
    """The English stopword list of the fts extension (what create_fts_index drops)."""
    from tasks.catalog import load_extension

    scratch = duckdb.connect()
    try:
        load_extension(scratch, "fts")
        scratch.execute("CREATE TABLE t (id INTEGER, body VARCHAR)")
        scratch.execute("PRAGMA create_fts_index('t', 'id', 'body')")
        return [row[0] for row in scratch.execute("SELECT sw FROM fts_main_t.stopwords").fetchall()]
    finally:
        scratch.close()


def create_search_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The index's tables and macros, empty (after tasks.catalog.create_schema: the documents
    table takes the papers' columns from their typed stand-in)."""
    from tasks.catalog import load_extension

    load_extension(con, "fts")
    execute_section(con, sql_sections("search.sql")["schema"])
    if con.execute("SELECT count(*) FROM search.stopwords").fetchone() == (0,):
        con.executemany("INSERT INTO search.stopwords VALUES (?)", [[w] for w in fts_stopwords()])


def _stored_files(con: duckdb.DuckDBPyConnection) -> list[DayFile]:
    rows = con.execute(sql_sections("search.sql")["stored_files"]).fetchall()
    return [DayFile(*row) for row in rows]


def _add_new_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Columns the new files have and the documents table lacks (a dataset gained a column);
    older papers get NULL there, as in the papers view."""
    known = {row[0] for row in con.execute("DESCRIBE search.docs").fetchall()}
    for name, kind, *_ in con.execute("DESCRIBE new_docs").fetchall():
        if name not in known:
            quoted = '"' + name.replace('"', '""') + '"'
            con.execute(f"ALTER TABLE search.docs ADD COLUMN {quoted} {kind}")


def sync_search(con: duckdb.DuckDBPyConnection, lake: Lake) -> SearchSync:
    """Bring the index up to date with the lake's papers files: forget the days whose files
    changed or went away, index their current files, and sort the index when enough papers were
    added since its last sort (or it was just made). Runs inside the caller's transaction."""
    sections = sql_sections("search.sql")
    fresh = not con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'search' AND "
        "table_name = 'state' AND database_name = current_database()"
    ).fetchone() == (1,)
    create_search_schema(con)
    current = lake.day_files("papers")
    days = changed_days(_stored_files(con), current)
    indexed = 0
    if days:
        execute_section(con, sections["forget_days"], {"days": sorted(days)})
        files = [f for f in current if f.digest_date in days]
        if files:
            execute_section(con, sections["stage_docs"], {"files": [f.url for f in files]})
            indexed = con.execute("SELECT count(*) FROM new_docs").fetchone()[0]  # type: ignore[index]
            _add_new_columns(con)
            execute_section(con, sections["index_docs"])
            con.executemany(
                "INSERT INTO search.files VALUES (?, ?, ?, ?)",
                [[f.url, f.digest_date, f.size, f.mtime_ns] for f in files],
            )
    unsorted = con.execute(sections["unsorted_rows"]).fetchone()[0]  # type: ignore[index]
    resort = fresh or unsorted > UNSORTED_ROWS
    if resort:
        execute_section(con, sections["sort_index"])
    if days:
        logger.info(
            "search index: %d day(s) changed, %d papers indexed%s",
            len(days),
            indexed,
            ", index sorted" if resort else "",
        )
    return SearchSync(days_removed=len(days), papers_indexed=indexed, sorted=resort)
