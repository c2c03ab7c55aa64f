"""The DuckDB catalog: views over the lake plus runs/days tables, registered briefly and retried."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa

from arxiv_digest.errors import CatalogError, LakeError
from arxiv_digest.paths import directory_problem
from arxiv_digest.resources import query_defaults, sql_sections
from arxiv_digest.settings import Settings
from tasks.analyst import admit, lake_prefix
from tasks.lake import PARTITION, SCHEMAS, Lake
from tasks.search import sync_search

if TYPE_CHECKING:
    from tasks.ingest import FetchedWindow
    from tasks.models import DayPapers

logger = logging.getLogger(__name__)

LAKE_TABLES = tuple(SCHEMAS)
# How DuckDB names a file that is not Parquet ("No magic bytes found at end of file '...'").
_DAMAGED_FILE = re.compile(r"(?:magic bytes|Parquet|parquet)[^']*'(?P<path>[^']+\.parquet)'")


@dataclass
class RunRecord:
    """One flow run as the catalog remembers it."""

    run_id: str
    flow: str
    target_date: date | None
    days: list[str]
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"  # running | completed | failed | died (ended without an outcome)
    candidates: int = 0
    papers_added: int = 0
    dropped: int = 0
    arxiv_requests: int = 0
    llm_calls: int = 0  # LLM requests actually sent (cache hits excluded)
    cost_usd: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stored as a JSON object
    error: str | None = None
    # Who runs it and when it last showed life: a later run tells a dead `running` run by them.
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    # Parallel days add to the counts and timings at once (and the heartbeat reads them).
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @classmethod
    def start(cls, flow: str, target: date | None, days: list[date], run_id: str) -> RunRecord:
        """A run starting now, in this process."""
        return cls(
            run_id=run_id,
            flow=flow,
            target_date=target,
            days=[d.isoformat() for d in days],
            started_at=datetime.now(UTC),
            host=socket.gethostname(),
            pid=os.getpid(),
        )

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of a block to the run's per-stage timings."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.stage_seconds[stage] = round(self.stage_seconds.get(stage, 0.0) + elapsed, 4)

    def account_day(self, window: FetchedWindow, day: DayPapers) -> None:
        """Add one fetched and stored day to the run's counts."""
        with self._lock:
            self.candidates += len(window.candidates)
            self.papers_added += day.added
            self.dropped += len(day.drops)
            self.arxiv_requests += window.requests_made

    def account_llm(self, calls: int, cost_usd: float) -> None:
        """Add one digested day's LLM requests (cache hits excluded) and their cost."""
        with self._lock:
            self.llm_calls += calls
            self.cost_usd += cost_usd

    def finish(self, error: BaseException | None = None) -> RunRecord:
        """The run ended now: completed, or failed with `error`."""
        self.finished_at = datetime.now(UTC)
        self.status = "failed" if error else "completed"
        self.error = str(error) if error else None
        return self

    def snapshot(self) -> RunRecord:
        """A copy of the mutable fields, taken while no day thread is changing them."""
        with self._lock:
            return replace(self, days=list(self.days), stage_seconds=dict(self.stage_seconds))

    def as_row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "target_date": self.target_date,
            "days": self.days,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "candidates": self.candidates,
            "papers_added": self.papers_added,
            "dropped": self.dropped,
            "arxiv_requests": self.arxiv_requests,
            "llm_calls": self.llm_calls,
            "cost_usd": self.cost_usd,
            "stage_seconds": json.dumps(self.stage_seconds, sort_keys=True),
            "error": self.error,
            "host": self.host,
            "pid": self.pid,
            "heartbeat_at": self.heartbeat_at,
        }


RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("flow", pa.string()),
        ("target_date", pa.date32()),
        ("days", pa.list_(pa.string())),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),
        ("candidates", pa.int32()),
        ("papers_added", pa.int32()),
        ("dropped", pa.int32()),
        ("arxiv_requests", pa.int32()),
        ("llm_calls", pa.int32()),
        ("cost_usd", pa.float64()),
        ("stage_seconds", pa.string()),
        ("error", pa.string()),
        ("host", pa.string()),
        ("pid", pa.int64()),
        ("heartbeat_at", pa.timestamp("us", tz="UTC")),
    ]
)


def extension_path(name: str) -> Path:
    """A DuckDB extension's build shipped by the `duckdb-extension-<name>` package (httpfs, aws,
    fts), loaded by file path: DuckDB cannot download extensions here."""
    import importlib

    package = importlib.import_module(f"duckdb_extension_{name}")
    base = Path(str(package.__file__)).parent / "extensions"
    version = duckdb.__version__
    matches = sorted(base.glob(f"v{version}/{name}.duckdb_extension")) or sorted(
        base.glob(f"*/{name}.duckdb_extension")
    )
    if not matches:
        raise CatalogError(f"no {name} extension for DuckDB {version} under {base}")
    return matches[0]


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"LOAD {_sql_literal(str(extension_path(name)))}")


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def configure_s3(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Load httpfs by path and give this connection (only) the lake's S3 credentials.

    With AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY set, those keys; without them, the standard AWS
    credential chain (the `aws` extension: profiles and SSO through AWS_PROFILE and the shared
    config/credentials files, web identity, container and instance roles), refreshed when
    temporary credentials expire. The secret is TEMPORARY: it lives in this connection's memory
    and never in the DuckDB file. httpfs copies AWS_* variables into plain settings when it
    loads, where `current_setting` and `duckdb_settings()` would show them; those are emptied,
    so the secret (which DuckDB redacts) is the only place the credentials live.
    """
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    load_extension(con, "httpfs")
    for setting in ("s3_access_key_id", "s3_secret_access_key", "s3_session_token"):
        con.execute(f"SET {setting} = ''")
    options = {
        "TYPE": "s3",
        "REGION": _sql_literal(settings.aws_region),
        "URL_STYLE": "'path'" if settings.aws_endpoint_url else "'vhost'",
    }
    key_id, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    if key_id and secret:
        options["KEY_ID"] = _sql_literal(key_id)
        options["SECRET"] = _sql_literal(secret.get_secret_value())
        if settings.aws_session_token:
            options["SESSION_TOKEN"] = _sql_literal(settings.aws_session_token.get_secret_value())
    else:
        load_extension(con, "aws")
        options["PROVIDER"] = "credential_chain"
        options["REFRESH"] = "'auto'"
    if settings.aws_endpoint_url:
        parts = urlsplit(settings.aws_endpoint_url)
        options["ENDPOINT"] = _sql_literal(parts.netloc or parts.path)
        options["USE_SSL"] = "true" if parts.scheme == "https" else "false"
    body = ", ".join(f"{key} {value}" for key, value in options.items())
    try:
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET lake_s3 ({body})")
    except duckdb.Error as exc:
        if options.get("PROVIDER") != "credential_chain":
            raise
        raise CatalogError(
            f"the lake is on S3 ({settings.lake_url}) but the AWS credential chain found no "
            "credentials: set AWS_PROFILE (a profile or SSO session; run `aws sso login` when "
            "it has expired), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an "
            f"instance or container role applies ({' '.join(str(exc).split())})"
        ) from None


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflict" in text


class CorruptCatalogError(CatalogError):
    """The catalog file is not a DuckDB database any more (derived data: rebuild it)."""


# A DuckDB file starts with an 8-byte checksum, then these magic bytes.
_DUCKDB_MAGIC = b"DUCK"


def _looks_corrupt(path: Path) -> bool:
    """Whether an existing catalog file lacks DuckDB's header (read without opening it, so no
    lock is taken and a running flow is not disturbed)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(12)
    except OSError:
        return False  # missing or unreadable: connecting says what is wrong
    # A file shorter than the header may be one another process is creating this instant:
    # connecting tells (DuckDB refuses a short or empty file as "not a valid DuckDB database").
    return len(header) == 12 and header[8:12] != _DUCKDB_MAGIC


def _corrupt_catalog(path: Path, detail: str = "not a DuckDB database") -> CorruptCatalogError:
    return CorruptCatalogError(
        f"the catalog {path} is damaged ({detail}): run `arxiv-digest catalog rebuild` to "
        "recreate it from the lake"
    )


def check_catalog_path(settings: Settings, *, writing: bool = True) -> None:
    """DIGEST_DUCKDB_PATH names a file we can open (and, `writing`, create); checked without
    writing anything."""
    path = Path(settings.duckdb_path)
    name = f"DIGEST_DUCKDB_PATH={settings.duckdb_path!r}"
    if path.is_dir():
        raise CatalogError(
            f"{name} is a directory: point it at a file, e.g. {path / 'digest.duckdb'}"
        )
    problem = directory_problem(path.parent) if writing else None
    if problem:
        raise CatalogError(f"{name} cannot be created: {problem}")
    if _looks_corrupt(path):
        raise _corrupt_catalog(path)


def _set_aside(path: Path) -> None:
    """Move a damaged catalog (and its write-ahead log) aside, to be made anew from the lake."""
    moved = path.with_name(f"{path.name}.corrupt")
    try:
        path.replace(moved)
        wal = path.with_name(f"{path.name}.wal")
        if wal.exists():
            wal.replace(path.with_name(f"{path.name}.wal.corrupt"))
    except OSError as exc:
        raise CatalogError(
            f"the catalog {path} is damaged and cannot be moved aside: {exc.strerror or exc}"
        ) from None
    logger.warning(
        "the catalog %s was damaged: moved to %s; rebuilding it from the lake", path, moved
    )


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
    check_catalog_path(settings, writing=not read_only)
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
            if "not a valid DuckDB database" in str(exc):
                raise _corrupt_catalog(path) from None
            if not _is_lock_conflict(exc) or attempt == attempts - 1:
                raise CatalogError(f"cannot open the catalog {path}: {exc}") from None
            sleep(min(2.0, 0.05 * 2**attempt))
        except duckdb.Error as exc:
            # A file with DuckDB's header but damaged inside (e.g. truncated).
            raise _corrupt_catalog(path, _first_line(exc)) from None
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[str]:
    """`table` readable as `name` on this connection only, while the block runs."""
    con.register(name, table)
    try:
        yield name
    finally:
        con.unregister(name)


def _column_definitions(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    """`name TYPE` of each column by name, the type being DuckDB's reading of the Arrow type
    (so what DuckDB reads from Parquet written with `schema` fits the table)."""
    with _registered(con, "arrow_schema", schema.empty_table()) as source:
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return {row[0]: f"{_quote(row[0])} {row[1]}" for row in described}


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The catalog tables (runs, days) and the typed empty stand-ins of every lake dataset,
    their columns from the Arrow schemas. Only what is missing is made (one query when the
    catalog is complete: registration holds DuckDB's single write lock)."""
    sections = sql_sections("schema.sql")
    existing = dict(con.execute(sections["existing_columns"]).fetchall())
    runs = existing.get("main.runs")
    if runs is None:
        definitions = _column_definitions(con, RUNS_SCHEMA).values()
        con.execute(Template(sections["runs"]).substitute(columns=",\n    ".join(definitions)))
    elif missing := [name for name in RUNS_SCHEMA.names if name not in runs]:
        by_name = _column_definitions(con, RUNS_SCHEMA)  # a catalog older than these columns
        for name in missing:
            con.execute(Template(sections["runs_column"]).substitute(column=by_name[name]))
    con.execute(sections["days"])
    if "main.term_week_papers" not in existing:
        con.execute(sections["term_week_counts"])
    con.execute(sections["empty_schema"])
    for table in LAKE_TABLES:
        columns = [*SCHEMAS[table].names, PARTITION]
        if sorted(existing.get(f"empty.{table}") or []) != sorted(columns):
            empty = SCHEMAS[table].append(pa.field(PARTITION, pa.date32())).empty_table()
            with _registered(con, f"empty_{table}", empty) as source:
                con.execute(
                    Template(sections["empty_table"]).substitute(table=table, source=source)
                )


def refresh_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """One view per lake dataset (an empty typed view until the dataset has files)."""
    sections = sql_sections("views.sql")
    for table in LAKE_TABLES:
        template = sections["lake_view"] if lake.has_data(table) else sections["empty_view"]
        try:
            con.execute(
                Template(template).substitute(table=table, glob=_sql_literal(lake.glob(table)))
            )
        except duckdb.Error as exc:
            # A view reads every file's schema: a damaged one is named with what to do.
            damaged = _DAMAGED_FILE.search(str(exc))
            if damaged is None:
                raise
            reason = _first_line(exc).split(" '", 1)[0]
            raise LakeError(lake.corrupt_file_message(damaged["path"], reason)) from None
    con.execute(sections["derived_views"])
    con.execute(sections["term_views"])


def refresh_term_weeks(con: duckdb.DuckDBPyConnection, days: Sequence[str] | None = None) -> None:
    """Sum the `terms` of the weeks holding `days` again (every week when None) into
    term_week_counts: each registration reads only the files of the weeks it touched. Every
    week is summed while the tables are empty (a catalog made before they existed)."""
    sections = sql_sections("catalog.sql")
    if days is not None and con.execute(sections["term_weeks_any"]).fetchone() is None:
        days = None
    ranges = (
        [("1900-01-01", "2999-12-31")]
        if days is None
        else _week_ranges(date.fromisoformat(str(day)[:10]) for day in days)
    )
    for first, last in ranges:
        for section in ("term_weeks_delete", "term_weeks_insert"):
            # Each statement on its own: DuckDB binds parameters to one statement at a time.
            for statement in con.extract_statements(sections[section]):
                con.execute(statement, {"first": first, "last": last})


def _week_ranges(days: Iterable[date]) -> list[tuple[str, str]]:
    """The runs of consecutive weeks holding `days`, each as (its first Monday, last Sunday):
    a backfill's weeks are summed in one pass."""
    ranges: list[list[date]] = []
    for monday in sorted({day - timedelta(days=day.weekday()) for day in days}):
        if ranges and ranges[-1][1] + timedelta(days=1) == monday:
            ranges[-1][1] = monday + timedelta(days=6)
        else:
            ranges.append([monday, monday + timedelta(days=6)])
    return [(first.isoformat(), last.isoformat()) for first, last in ranges]


def _upsert_days(con: duckdb.DuckDBPyConnection, run_id: str | None, days: Sequence[str]) -> None:
    if not days:
        return
    con.execute(sql_sections("catalog.sql")["upsert_days"], {"run_id": run_id, "days": list(days)})


def _insert_run(con: duckdb.DuckDBPyConnection, run: Mapping[str, Any]) -> None:
    with _registered(con, "run_rows", pa.Table.from_pylist([dict(run)], schema=RUNS_SCHEMA)):
        con.execute(sql_sections("catalog.sql")["upsert_runs"])


def register_run(
    settings: Settings,
    lake: Lake,
    run: RunRecord,
    days: Sequence[str],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Record a run and refresh the catalog's views and days (one short transaction)."""
    row = run.as_row()
    lake.write_run(run.run_id, pa.Table.from_pylist([row], schema=RUNS_SCHEMA))

    def action(con: duckdb.DuckDBPyConnection) -> None:
        create_schema(con)
        refresh_views(con, lake)
        refresh_term_weeks(con, days)
        sync_search(con, lake)
        _upsert_days(con, run.run_id, days)
        _insert_run(con, row)

    _with_retries(action, settings, sleep=sleep)


def record_runs(settings: Settings, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert run rows already written to the lake (runs found dead by a later run)."""

    def action(con: duckdb.DuckDBPyConnection) -> None:
        create_schema(con)
        for row in rows:
            _insert_run(con, row)

    _with_retries(action, settings)


def refresh_catalog(settings: Settings, lake: Lake) -> None:
    """Make sure the schema and every view exist (after data arrived outside a flow run)."""

    def action(con: duckdb.DuckDBPyConnection) -> None:
        create_schema(con)
        refresh_views(con, lake)
        refresh_term_weeks(con)
        sync_search(con, lake)

    _with_retries(action, settings)


def rebuild_catalog(settings: Settings, lake: Lake) -> dict[str, int]:
    """Recreate the catalog from the lake alone; returns row counts per view/table.

    A damaged catalog file is moved aside (`<name>.corrupt`) and made anew. An empty or
    missing lake is refused: rebuilding from it would empty `runs` and `days`.
    """
    if not any(lake.has_data(table) for table in (*LAKE_TABLES, "runs")):
        raise CatalogError(
            f"the lake at {lake.url} holds no data: nothing to rebuild from (check "
            f"DIGEST_LAKE_URL); the catalog {settings.duckdb_path} was left as it was"
        )
    try:
        check_catalog_path(settings)
    except CorruptCatalogError:
        _set_aside(Path(settings.duckdb_path))

    sections = sql_sections("catalog.sql")

    def action(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS days")
        con.execute("DROP TABLE IF EXISTS runs")
        con.execute("DROP SCHEMA IF EXISTS search CASCADE")
        con.execute("DROP SCHEMA IF EXISTS mirror CASCADE")
        create_schema(con)
        refresh_views(con, lake)
        refresh_term_weeks(con)
        sync_search(con, lake)
        if lake.has_data("runs"):
            con.execute(sections["rebuild_runs"], {"glob": lake.runs_glob()})
        con.execute(sections["rebuild_days"])

    try:
        _with_retries(action, settings)
    except CorruptCatalogError:  # DuckDB's header was intact, the rest was not
        _set_aside(Path(settings.duckdb_path))
        _with_retries(action, settings)
    with open_catalog(settings, read_only=True) as con:
        # fetchone() is typed as maybe None; count(*) always returns one row.
        return {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
            for name in (*LAKE_TABLES, "runs", "days")
        }


@contextmanager
def open_analyst_connection(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The catalog read-only, able to read the lake and nothing else, with its settings locked.

    httpfs and the S3 secret come first (open_catalog), since loading and configuring are
    impossible afterwards. DuckDB applies these settings to its whole in-process instance of the
    catalog file; catalog connections are short-lived, so no other connection shares it.
    """
    with open_catalog(settings, read_only=True) as con:
        restrict_connection(con, settings)
        yield con


def restrict_connection(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Load what analyst SQL may call (fts's stemmer, for the search index), then let the
    connection read the lake and nothing else, and lock its configuration."""
    allowed = _sql_literal(lake_prefix(settings))
    try:
        load_extension(con, "fts")
        for statement in (
            f"SET allowed_directories = [{allowed}]",
            "SET enable_external_access = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET python_enable_replacements = false",
            "SET lock_configuration = true",
        ):
            con.execute(statement)
    except duckdb.Error as exc:
        raise CatalogError(f"cannot restrict the query connection: {_first_line(exc)}") from None


def run_query(
    settings: Settings, sql: str, params: Mapping[str, Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run analyst SQL: read statements over the lake only; returns column names and rows.
    Parameters the SQL declares a default for (`-- default: $name = value`) may be left out."""
    prefix = lake_prefix(settings)
    params = query_defaults(sql) | dict(params or {})
    with open_analyst_connection(settings) as con:
        try:
            admit(con, sql, prefix)
            cursor = con.execute(sql, params or None)
        except duckdb.PermissionException as exc:
            raise CatalogError(
                f"query reads only the lake ({prefix}): {_first_line(exc)}"
            ) from None
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {_first_line(exc)}") from None
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()
