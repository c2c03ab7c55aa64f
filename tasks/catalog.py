"""The DuckDB catalog: views over the lake plus runs/days tables, registered briefly and retried."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa

from arxiv_digest.errors import CatalogError
from arxiv_digest.resources import read_sql, sql_sections
from arxiv_digest.settings import Settings
from tasks.lake import SCHEMAS, Lake

logger = logging.getLogger(__name__)

LAKE_TABLES = tuple(SCHEMAS)


@dataclass
class RunRecord:
    """One flow run as the catalog remembers it."""

    run_id: str
    flow: str
    target_date: date | None
    days: list[str]
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    candidates: int = 0
    papers_added: int = 0
    dropped: int = 0
    arxiv_requests: int = 0
    llm_calls: int = 0
    cost_usd: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "flow": self.flow, "target_date": self.target_date,
            "days": self.days, "started_at": self.started_at, "finished_at": self.finished_at,
            "status": self.status, "candidates": self.candidates,
            "papers_added": self.papers_added, "dropped": self.dropped,
            "arxiv_requests": self.arxiv_requests, "llm_calls": self.llm_calls,
            "cost_usd": self.cost_usd,
            "stage_seconds": json.dumps(self.stage_seconds, sort_keys=True), "error": self.error,
        }


RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("flow", pa.string()), ("target_date", pa.date32()),
    ("days", pa.list_(pa.string())), ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")), ("status", pa.string()),
    ("candidates", pa.int32()), ("papers_added", pa.int32()), ("dropped", pa.int32()),
    ("arxiv_requests", pa.int32()), ("llm_calls", pa.int32()), ("cost_usd", pa.float64()),
    ("stage_seconds", pa.string()), ("error", pa.string()),
])


def httpfs_extension_path() -> Path:
    """The httpfs build shipped by the `duckdb-extension-httpfs` package (no download needed)."""
    import duckdb_extension_httpfs

    base = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    version = duckdb.__version__
    matches = sorted(base.glob(f"v{version}/httpfs.duckdb_extension")) or sorted(
        base.glob("*/httpfs.duckdb_extension"))
    if not matches:
        raise CatalogError(f"no httpfs extension for DuckDB {version} under {base}")
    return matches[0]


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def configure_s3(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Load httpfs by path and give this connection (only) the lake's S3 credentials.

    The secret is TEMPORARY: it lives in this connection's memory and never in the DuckDB file.
    """
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"LOAD {_sql_literal(str(httpfs_extension_path()))}")
    options = {
        "TYPE": "s3",
        "REGION": _sql_literal(settings.aws_region),
        "URL_STYLE": "'path'" if settings.aws_endpoint_url else "'vhost'",
    }
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        options["KEY_ID"] = _sql_literal(settings.aws_access_key_id)
        options["SECRET"] = _sql_literal(settings.aws_secret_access_key.get_secret_value())
    if settings.aws_session_token:
        options["SESSION_TOKEN"] = _sql_literal(settings.aws_session_token.get_secret_value())
    if settings.aws_endpoint_url:
        parts = urlsplit(settings.aws_endpoint_url)
        options["ENDPOINT"] = _sql_literal(parts.netloc or parts.path)
        options["USE_SSL"] = "true" if parts.scheme == "https" else "false"
    body = ", ".join(f"{key} {value}" for key, value in options.items())
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET lake_s3 ({body})")


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflict" in text


@contextmanager
def open_catalog(
    settings: Settings,
    *,
    read_only: bool = False,
    attempts: int = 40,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection; waits (with backoff) while another process holds the file."""
    path = Path(settings.duckdb_path)
    if read_only and not path.exists():
        raise CatalogError(
            f"no catalog at {path}: run `arxiv-digest run` or `arxiv-digest catalog rebuild` first"
        )
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"cannot create {path.parent}: {exc.strerror}") from None
    con = None
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_conflict(exc) or attempt == attempts - 1:
                raise CatalogError(f"cannot open the catalog {path}: {exc}") from None
            sleep(min(2.0, 0.05 * 2**attempt))
    assert con is not None
    try:
        if settings.lake_on_s3:
            configure_s3(con, settings)
        yield con
    finally:
        con.close()


def _with_retries(
    action: Callable[[duckdb.DuckDBPyConnection], None],
    settings: Settings,
    *,
    attempts: int = 20,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run one write transaction, retried when a concurrent writer got there first."""
    for attempt in range(attempts):
        with open_catalog(settings, sleep=sleep) as con:
            try:
                con.execute("BEGIN TRANSACTION")
                action(con)
                con.execute("COMMIT")
                return
            except duckdb.TransactionException as exc:
                con.execute("ROLLBACK")
                if attempt == attempts - 1 or not _is_lock_conflict(exc):
                    raise CatalogError(f"catalog registration failed: {exc}") from None
            except duckdb.Error as exc:
                raise CatalogError(f"catalog registration failed: {_first_line(exc)}") from None
        sleep(min(2.0, 0.05 * 2**attempt))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(read_sql("schema.sql"))


def refresh_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """One view per lake dataset (an empty typed view until the dataset has files)."""
    sections = sql_sections("views.sql")
    for table in LAKE_TABLES:
        template = sections["lake_view"] if lake.has_data(table) else sections["empty_view"]
        con.execute(Template(template).substitute(table=table, glob=lake.glob(table)))
    con.execute(sections["derived_views"])


def _upsert_days(con: duckdb.DuckDBPyConnection, run_id: str | None, days: Sequence[str]) -> None:
    if not days:
        return
    con.execute(
        """
        INSERT OR REPLACE INTO days
        SELECT m.digest_date, s.status,
               m.query, m.candidates, m.papers, m.dropped, m.config_hash, $run_id, now()
        FROM day_manifests m JOIN day_states s USING (digest_date)
        WHERE m.digest_date IN (SELECT unnest(CAST($days AS DATE[])))
        """,
        {"run_id": run_id, "days": list(days)},
    )


def _insert_run(con: duckdb.DuckDBPyConnection, run: Mapping[str, Any]) -> None:
    columns = list(RUNS_SCHEMA.names)
    placeholders = ", ".join(f"${c}" for c in columns)
    con.execute(
        f"INSERT OR REPLACE INTO runs ({', '.join(columns)}) VALUES ({placeholders})",
        {c: run[c] for c in columns},
    )


def register_run(
    settings: Settings, lake: Lake, run: RunRecord, days: Sequence[str],
    *, sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Record a run and refresh the catalog's views and days (one short transaction)."""
    row = run.as_row()
    lake.write_run(run.run_id, pa.Table.from_pylist([row], schema=RUNS_SCHEMA))

    def action(con: duckdb.DuckDBPyConnection) -> None:
        create_schema(con)
        refresh_views(con, lake)
        _upsert_days(con, run.run_id, days)
        _insert_run(con, row)

    _with_retries(action, settings, sleep=sleep)


def refresh_catalog(settings: Settings, lake: Lake) -> None:
    """Make sure the schema and every view exist (after data arrived outside a flow run)."""

    def action(con: duckdb.DuckDBPyConnection) -> None:
        create_schema(con)
        refresh_views(con, lake)

    _with_retries(action, settings)


def rebuild_catalog(settings: Settings, lake: Lake) -> dict[str, int]:
    """Recreate the catalog from the lake alone; returns row counts per view/table."""

    def action(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS days")
        con.execute("DROP TABLE IF EXISTS runs")
        create_schema(con)
        refresh_views(con, lake)
        if lake.has_data("runs"):
            con.execute(
                f"INSERT INTO runs SELECT {', '.join(RUNS_SCHEMA.names)} FROM read_parquet("
                f"{_sql_literal(lake.runs_glob())}, hive_partitioning = false)"
            )
        con.execute(
            """
            INSERT INTO days
            SELECT m.digest_date, s.status,
                   m.query, m.candidates, m.papers, m.dropped,
                   m.config_hash, last.run_id, now()
            FROM day_manifests m
            LEFT JOIN (
                SELECT d AS digest_date, arg_max(run_id, finished_at) AS run_id
                FROM (SELECT unnest(days) AS d, run_id, finished_at FROM runs)
                GROUP BY d
            ) last ON CAST(last.digest_date AS DATE) = m.digest_date
            JOIN day_states s ON s.digest_date = m.digest_date
            """
        )

    _with_retries(action, settings)
    with open_catalog(settings, read_only=True) as con:
        return {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
            for name in (*LAKE_TABLES, "runs", "days")
        }


def run_query(
    settings: Settings, sql: str, params: Mapping[str, Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one analyst query read-only; returns column names and rows."""
    with open_catalog(settings, read_only=True) as con:
        try:
            cursor = con.execute(sql, dict(params) if params else None)
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {_first_line(exc)}") from None
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()

