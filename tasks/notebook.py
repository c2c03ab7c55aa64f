"""`arxiv_digest.connect()`: the catalog for notebooks, read-only by the `query` command's rules.

The connection works on a private copy of the catalog file, taken when it is made (while
DuckDB's shared lock keeps writers out for the moment of the copy). So a notebook left open
never holds the catalog's lock (runs keep registering), and the restrictions it sets (locked
configuration, the lake as the one readable directory) apply to that private DuckDB instance
only, never to the pipeline's connections in the same process. The views still read the lake
as it is when a query runs; the catalog's own tables (runs, days, the search index) are as
they were at connect(); connect again to see later registrations.

What keeps it read-only, each on its own:
- every statement passes tasks.analyst.admit (SELECT-type statements over the lake only);
- results expose only fetching (df, fetchall, arrow, ...), not DuckDB's relation API, whose
  methods write files (write_csv, to_parquet), tables (create, insert, update) or run SQL no
  check sees (query);
- DuckDB itself: the copy is opened read-only, external access is limited to the lake,
  extensions cannot be loaded, the configuration is locked.
The DuckDB connection underneath is private to this object; reaching for it is outside the
contract.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb

from arxiv_digest.errors import CatalogError, ConfigError
from arxiv_digest.resources import analyst_queries, query_defaults, query_params
from arxiv_digest.settings import Settings, load_settings
from tasks.analyst import admit, lake_prefix
from tasks.catalog import configure_s3, open_catalog, restrict_connection


class AnalystResult:
    """A query's result: fetch it as pandas, Arrow, Polars or Python rows (each call runs it)."""

    def __init__(self, relation: duckdb.DuckDBPyRelation) -> None:
        self._relation = relation

    @property
    def columns(self) -> list[str]:
        return list(self._relation.columns)

    @property
    def types(self) -> list[str]:
        return [str(t) for t in self._relation.types]

    @property
    def shape(self) -> tuple[int, int]:
        rows, columns = self._relation.shape
        return rows, columns

    def df(self) -> Any:
        """A pandas DataFrame."""
        return self._relation.df()

    def arrow(self) -> Any:
        """A pyarrow Table."""
        return self._relation.to_arrow_table()

    def pl(self) -> Any:
        """A Polars DataFrame (needs polars installed)."""
        return self._relation.pl()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._relation.fetchall()

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._relation.fetchone()

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        return self._relation.fetchmany(size)

    def show(self) -> None:
        """Print the result as DuckDB's box table."""
        self._relation.show()

    def __repr__(self) -> str:
        return repr(self._relation)


def _discard(con: duckdb.DuckDBPyConnection, directory: Path) -> None:
    con.close()
    shutil.rmtree(directory, ignore_errors=True)


class AnalystConnection:
    """A read-only connection to the catalog's views and tables and the lake (see the module)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, prefix: str, snapshot: Path) -> None:
        self._con = con
        self._prefix = prefix
        self.snapshot = snapshot  # the private copy of the catalog (removed on close)
        self._finalizer = weakref.finalize(self, _discard, con, snapshot.parent)

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> AnalystResult:
        """Run read-only SQL (`$name` parameters from `params`); refused statements raise
        CatalogError, DuckDB's own errors (syntax, unknown column) raise duckdb.Error."""
        if not self._finalizer.alive:
            raise CatalogError("this connection is closed: call arxiv_digest.connect() again")
        admit(self._con, query, self._prefix)
        relation = self._con.sql(query, params=dict(params) if params else None)
        if relation is None:  # admit lets no statement without a result through
            raise CatalogError("query gave no result")
        return AnalystResult(relation)

    execute = sql
    query = sql

    def named(self, name: str, **params: Any) -> AnalystResult:
        """One of the named queries of sql/queries/ (as `arxiv-digest query --name`)."""
        queries = analyst_queries()
        if name not in queries:
            raise ConfigError(f"no query named {name!r}; known: {', '.join(queries)}")
        sql = queries[name]
        missing = [p for p in query_params(sql) if p not in params]
        if missing:
            raise ConfigError(f"query {name} needs " + ", ".join(f"{m}=..." for m in missing))
        defaults = query_defaults(sql)  # optional parameters, e.g. emerging_terms' windows
        given = {p: params[p] for p in [*query_params(sql), *defaults] if p in params}
        return self.sql(sql, defaults | given)

    def close(self) -> None:
        """Close the connection and delete its copy of the catalog."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"lake {self._prefix}"
        return f"<arxiv_digest read-only connection ({state})>"


def snapshot_catalog(settings: Settings, directory: Path) -> Path:
    """Copy the catalog file (and a write-ahead log, if one is left) into `directory`, while a
    read-only connection holds DuckDB's shared lock (a writer finishes first)."""
    source = Path(settings.duckdb_path)
    target = directory / source.name
    with open_catalog(settings, read_only=True):
        try:
            shutil.copyfile(source, target)
            wal = source.with_name(f"{source.name}.wal")
            if wal.exists():
                shutil.copyfile(wal, target.with_name(f"{target.name}.wal"))
        except OSError as exc:
            raise CatalogError(f"cannot copy the catalog {source}: {exc.strerror or exc}") from None
    return target


def connect(settings: Settings | None = None) -> AnalystConnection:
    """A read-only connection for notebooks: every view of the catalog, the lake (local or S3,
    configured from the settings), the same rules as `arxiv-digest query`.

    >>> from arxiv_digest import connect
    >>> con = connect()
    >>> con.sql("SELECT primary_category, count(*) AS papers FROM papers GROUP BY 1").df()
    """
    settings = settings or load_settings()
    directory = Path(tempfile.mkdtemp(prefix="arxiv-digest-catalog-"))
    try:
        snapshot = snapshot_catalog(settings, directory)
        con = duckdb.connect(str(snapshot), read_only=True)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        if settings.lake_on_s3:
            configure_s3(con, settings)
        restrict_connection(con, settings)
    except BaseException:
        _discard(con, directory)
        raise
    return AnalystConnection(con, lake_prefix(settings), snapshot)
