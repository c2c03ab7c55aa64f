"""Query results as text for stdout: an aligned table (capped, never cut silently), CSV, JSON or
Markdown (every row). Pure functions of column names and rows; the caller prints them."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from tasks.markdown_text import escape_markdown_inline

FORMATS = ("table", "csv", "json", "markdown")
# The table is for a terminal: past this many rows it stops and says how many it left out.
TABLE_ROWS = 100
TABLE_CELL_CHARS = 60


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON: numbers stay numbers, lists arrays, structs and maps objects;
    dates and times ISO 8601 text; NaN and infinities null (JSON has none); bytes base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def cell_text(value: Any) -> str:
    """One value as text (CSV, table, Markdown): NULL empty, lists and structs as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(json_value(value), ensure_ascii=False)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def unique_names(columns: Sequence[str]) -> list[str]:
    """Column names made unique for JSON keys, in order: `a, a` -> `a, a_2`."""
    seen: set[str] = set()
    out = []
    for name in columns:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV with a header row, every row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell_text(v) for v in row] for row in rows)
    return out.getvalue()


def format_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A JSON array of objects, one per row, keys in column order (duplicates suffixed)."""
    keys = unique_names(columns)
    lines = [
        json.dumps(
            {k: json_value(v) for k, v in zip(keys, row, strict=True)},
            ensure_ascii=False,
            allow_nan=False,
        )
        for row in rows
    ]
    return "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"


def _markdown_cell(value: Any) -> str:
    # Untrusted text (titles, abstracts) shows literally: no links, HTML or emphasis, and a `|`
    # cannot end the cell.
    return escape_markdown_inline(cell_text(value)).replace("|", "\\|")


def format_markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub pipe table, every row."""
    lines = [
        "| " + " | ".join(_markdown_cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _table_cell(value: Any) -> str:
    text = " ".join(cell_text(value).split())  # one line per row
    if len(text) > TABLE_CELL_CHARS:
        return text[: TABLE_CELL_CHARS - 1] + "…"
    return text


def format_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_rows: int = TABLE_ROWS
) -> str:
    """Aligned columns for a terminal: at most `max_rows` rows, then a line saying how many
    more there are and how to get them all. Long cells are cut with `…`."""
    shown = rows[:max_rows]
    cells = [list(columns)] + [[_table_cell(v) for v in row] for row in shown]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    total = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    if len(rows) > len(shown):
        more = len(rows) - len(shown)
        lines.append(
            f"… {more} more row{'s' if more != 1 else ''} not shown ({total}); "
            "use --format csv, json or markdown for all of them"
        )
    else:
        lines.append(f"({total})")
    return "\n".join(lines) + "\n"


FORMATTERS: dict[str, Callable[[Sequence[str], Sequence[Sequence[Any]]], str]] = {
    "table": format_table,
    "csv": format_csv,
    "json": format_json,
    "markdown": format_markdown,
}
