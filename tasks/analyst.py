"""What an analyst query may do: read statements over the lake, nothing else.

DuckDB's own controls (external access off, the lake as the one allowed directory, a locked
configuration) are set on the analyst connection in tasks/catalog.py. They leave three gaps,
measured on DuckDB 1.5.5, which this module closes before a statement runs:

- the allowed directory is writable too: `COPY ... TO '<lake>/x'` and
  `EXPLAIN ANALYZE COPY ...` write into the lake, so only SELECT-type statements are admitted;
- some table functions act instead of reading, and parse as SELECT (`enable_logging` writes log
  files into the lake, `query()` runs SQL text no check sees), so table functions are allow-listed;
- on S3 the allowed-directory test compares the URL text, so `s3://bucket/lake/../../other/x`
  passes it and reads another bucket with the pipeline's credentials; file paths must therefore be
  plain string literals inside the lake with no `..` segment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import duckdb

from arxiv_digest.errors import CatalogError
from arxiv_digest.settings import Settings

# Table functions whose positional arguments are file paths or globs.
FILE_TABLE_FUNCTIONS = frozenset(
    {
        "read_parquet",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "parquet_full_metadata",
        "read_csv",
        "read_csv_auto",
        "sniff_csv",
        "read_json",
        "read_json_auto",
        "read_ndjson",
        "read_ndjson_auto",
        "read_json_objects",
        "read_json_objects_auto",
        "read_ndjson_objects",
        "read_text",
        "read_blob",
        "glob",
    }
)

# Table functions that only compute or describe the catalog. Everything not listed here or above
# is refused: logging/profiling switches, checkpoints, query()/query_table(), secrets, logs.
PURE_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "summary",
        "duckdb_tables",
        "duckdb_views",
        "duckdb_columns",
        "duckdb_schemas",
        "duckdb_types",
        "duckdb_functions",
        "duckdb_constraints",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_databases",
        "duckdb_dependencies",
        "duckdb_sequences",
        "duckdb_settings",
        "pragma_table_info",
        "pragma_show",
        "pragma_version",
        "pragma_database_size",
        "pragma_storage_info",
        "pragma_collations",
        "pragma_platform",
        "icu_calendar_names",
        "pg_timezone_names",
    }
)

_PARENT_SEGMENT = re.compile(r"(^|[/\\])\.\.($|[/\\])")


def lake_prefix(settings: Settings) -> str:
    """The one directory an analyst query may read, as DuckDB sees it (ends with `/`).

    Matches the root the views were registered with (tasks.lake.Lake): an absolute local path, or
    `s3://bucket/prefix`.
    """
    if settings.lake_on_s3:
        return settings.lake_url.rstrip("/") + "/"
    return os.path.abspath(settings.lake_url).rstrip("/") + "/"


def path_in_lake(path: str, prefix: str) -> bool:
    """True when `path` names something under `prefix` and cannot climb out of it.

    >>> path_in_lake("s3://b/lake/papers/*/*.parquet", "s3://b/lake/")
    True
    >>> path_in_lake("s3://b/lake/../../other/x.csv", "s3://b/lake/")
    False
    """
    return path.startswith(prefix) and not _PARENT_SEGMENT.search(unquote(path))


def statement_refusal(statement_type: str) -> str | None:
    """Why a statement of this type is refused (None: it only reads)."""
    if statement_type == "SELECT":
        return None
    return f"query admits only read statements: got {statement_type}"


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object in a json_serialize_sql tree, wherever it sits (subqueries, CTEs, DESCRIBE)."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _is_named_parameter(arg: dict[str, Any]) -> bool:
    left = arg.get("left") or {}
    return arg.get("type") == "COMPARE_EQUAL" and left.get("class") == "COLUMN_REF"


def _literal_paths(arg: dict[str, Any]) -> list[str] | None:
    """The strings of `'path'` or `['a', 'b']`; None when the argument is computed."""
    if arg.get("type") == "VALUE_CONSTANT" and isinstance(arg["value"].get("value"), str):
        return [arg["value"]["value"]]
    if arg.get("class") == "FUNCTION" and arg.get("function_name") == "list_value":
        items = [_literal_paths(child) for child in arg.get("children", [])]
        if all(item is not None for item in items):
            return [path for item in items for path in item or []]
    return None


def _looks_like_path(table_name: str) -> bool:
    """`FROM 'dir/file.parquet'` is a file scan in DuckDB, not a table."""
    return any(mark in table_name for mark in ("/", "\\", ".", ":"))


def tree_refusal(tree: dict[str, Any], prefix: str) -> str | None:
    """Why a parsed SELECT is refused: a table function that acts, or a path outside the lake."""
    outside = f"query reads only the lake ({prefix})"
    for node in _nodes(tree):
        if node.get("type") == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if _looks_like_path(name) and not path_in_lake(name, prefix):
                return f"{outside}: {name!r} is outside it"
        if node.get("type") != "TABLE_FUNCTION":
            continue
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name not in FILE_TABLE_FUNCTIONS | PURE_TABLE_FUNCTIONS:
            what = f"{name}()" if name else "this table expression"
            return f"query admits only reading the lake: {what} is refused"
        if name not in FILE_TABLE_FUNCTIONS:
            continue
        for arg in function.get("children", []):
            if _is_named_parameter(arg):
                continue
            paths = _literal_paths(arg)
            if paths is None:
                return f"{outside}: {name}() takes the path as a plain string, not an expression"
            for path in paths:
                if not path_in_lake(path, prefix):
                    return f"{outside}: {path!r} is outside it"
    return None


def admit(con: duckdb.DuckDBPyConnection, sql: str, prefix: str) -> None:
    """Raise CatalogError unless every statement of `sql` only reads the lake.

    DuckDB parses the text (its statement types, and each statement's syntax tree through
    json_serialize_sql), so what is checked is what DuckDB will run. DuckDB's own errors (a
    syntax error) propagate as duckdb.Error.
    """
    statements = con.extract_statements(sql)
    if not statements:
        raise CatalogError("query is empty: give one or more SELECT statements")
    for statement in statements:
        refusal = statement_refusal(statement.type.name)
        if refusal:
            raise CatalogError(refusal)
    for statement in statements:
        row = con.execute("SELECT json_serialize_sql($sql)", {"sql": statement.query}).fetchone()
        tree = json.loads(row[0]) if row else {"error": True, "error_message": "no syntax tree"}
        if tree.get("error"):
            raise CatalogError(f"query failed: {tree.get('error_message', 'cannot parse')}")
        refusal = tree_refusal(tree, prefix)
        if refusal:
            raise CatalogError(refusal)
