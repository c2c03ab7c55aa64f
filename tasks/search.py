"""The catalog's search index and dataset copies (sql/search.sql), in step with the lake's files.

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
from string import Template
from typing import Any

import duckdb

from arxiv_digest.resources import sql_sections
from tasks.lake import DayFile, Lake

logger = logging.getLogger(__name__)

# Postings indexed since the last sort are scanned whole by every search; past this many the
# index is rewritten in term order (about 40 days of papers at ~270 papers a day).
UNSORTED_ROWS = 1_000_000
# Datasets copied whole into the catalog (mirror.<name>), kept in step the same way, so named
# queries over years read one local table instead of a Parquet file per day (on S3, a request
# per file). A dataset with a column `digest_date`-partitioned like every other; add one here to
# make its queries fast, and describe it in sql/dictionary.toml.
MIRRORED = ("dedup_log",)


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
    """The index's tables and macros and the dataset copies, empty (after
    tasks.catalog.create_schema: the copies take their columns from the typed stand-ins)."""
    from tasks.catalog import load_extension

    load_extension(con, "fts")
    sections = sql_sections("search.sql")
    execute_section(con, sections["schema"])
    for dataset in MIRRORED:
        execute_section(con, Template(sections["mirror_table"]).safe_substitute(table=dataset))
    if con.execute("SELECT count(*) FROM search.stopwords").fetchone() == (0,):
        con.executemany("INSERT INTO search.stopwords VALUES (?)", [[w] for w in fts_stopwords()])


def _stored_files(con: duckdb.DuckDBPyConnection, dataset: str) -> list[DayFile]:
    rows = con.execute(sql_sections("search.sql")["stored_files"], {"dataset": dataset})
    return [DayFile(*row) for row in rows.fetchall()]


def _record_files(con: duckdb.DuckDBPyConnection, dataset: str, files: list[DayFile]) -> None:
    con.executemany(
        "INSERT INTO search.files VALUES (?, ?, ?, ?, ?)",
        [[dataset, f.url, f.digest_date, f.size, f.mtime_ns] for f in files],
    )


def _add_new_columns(con: duckdb.DuckDBPyConnection, target: str, staged: str) -> None:
    """Columns the new files have and the copy lacks (a dataset gained a column); older rows
    get NULL there, as in the dataset's view."""
    known = {row[0] for row in con.execute(f"DESCRIBE {target}").fetchall()}
    for name, kind, *_ in con.execute(f"DESCRIBE {staged}").fetchall():
        if name not in known:
            quoted = '"' + name.replace('"', '""') + '"'
            con.execute(f"ALTER TABLE {target} ADD COLUMN {quoted} {kind}")


def _changes(
    con: duckdb.DuckDBPyConnection, lake: Lake, dataset: str
) -> tuple[set[date], list[DayFile]]:
    """The days of a dataset whose files changed, and their current files; those days' files
    are forgotten (the caller records the current ones once their rows are in)."""
    current = lake.day_files(dataset)
    days = changed_days(_stored_files(con, dataset), current)
    if days:
        con.execute(
            sql_sections("search.sql")["forget_files"], {"dataset": dataset, "days": sorted(days)}
        )
    return days, [f for f in current if f.digest_date in days]


def sync_mirror(con: duckdb.DuckDBPyConnection, lake: Lake, dataset: str) -> int:
    """Bring the catalog's copy of a dataset (mirror.<dataset>) up to date; returns the days
    replaced."""
    sections = {
        name: Template(text).safe_substitute(table=dataset)
        for name, text in sql_sections("search.sql").items()
        if name.startswith("mirror_")
    }
    days, files = _changes(con, lake, dataset)
    if days:
        execute_section(con, sections["mirror_forget"], {"days": sorted(days)})
    if files:
        execute_section(con, sections["mirror_stage"], {"files": [f.url for f in files]})
        _add_new_columns(con, f"mirror.{dataset}", "new_rows")
        execute_section(con, sections["mirror_insert"])
        _record_files(con, dataset, files)
    return len(days)


def sync_search(con: duckdb.DuckDBPyConnection, lake: Lake) -> SearchSync:
    """Bring the index up to date with the lake's papers files: forget the days whose files
    changed or went away, index their current files, and sort the index when enough papers were
    added since its last sort (or it was just made); likewise the copies of MIRRORED datasets.
    Runs inside the caller's transaction."""
    sections = sql_sections("search.sql")
    create_search_schema(con)
    never_sorted = con.execute("SELECT count(*) FROM search.state").fetchone() == (0,)
    days, files = _changes(con, lake, "papers")
    indexed = 0
    if days:
        execute_section(con, sections["forget_days"], {"days": sorted(days)})
    if files:
        execute_section(con, sections["stage_docs"], {"files": [f.url for f in files]})
        indexed = con.execute("SELECT count(*) FROM new_docs").fetchone()[0]  # type: ignore[index]
        _add_new_columns(con, "search.docs", "new_docs")
        execute_section(con, sections["index_docs"])
        _record_files(con, "papers", files)
    for dataset in MIRRORED:
        sync_mirror(con, lake, dataset)
    unsorted = con.execute(sections["unsorted_rows"]).fetchone()[0]  # type: ignore[index]
    resort = never_sorted or unsorted > UNSORTED_ROWS
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
