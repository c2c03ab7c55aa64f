"""The `arxiv-digest` command: arguments become flow runs, our errors become one-line messages."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from datetime import date
from typing import Any

from arxiv_digest.errors import ConfigError, DigestError
from arxiv_digest.lifeline import guard_prefect_temporary_server
from arxiv_digest.progress import RichProgressBar, SilentProgress, watching

# Offline-friendly defaults for the libraries we drive; explicit user settings still win.
_QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}


class _HideOwnTracebacks(logging.Filter):
    """Our errors already say what to do; a traceback would only bury that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_ours(exc):
            record.exc_info = None
            record.exc_text = None
        return True


def _is_ours(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, DigestError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _install_log_filter() -> None:
    hide = _HideOwnTracebacks()
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
        for handler in logging.getLogger(name).handlers:
            if hide not in handler.filters:
                handler.addFilter(hide)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arxiv-digest",
        description="Turn each day's new arXiv papers into a digest and a Parquet/DuckDB lake.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="build one digest day (plus lookback re-scans)")
    run.add_argument("--date", help="digest date YYYY-MM-DD (default: today, UTC)")
    run.add_argument(
        "--allow-empty", action="store_true", help="accept a day with no papers instead of failing"
    )
    run.add_argument(
        "--ingest-only",
        action="store_true",
        help="fetch, dedupe and store papers; skip the LLM stages and rendering",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="ask the LLM again where its answers stayed invalid in earlier runs",
    )

    backfill = sub.add_parser("backfill", help="build every digest day of a date range")
    backfill.add_argument("--start", required=True, help="first digest date YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last digest date YYYY-MM-DD (inclusive)")
    backfill.add_argument("--allow-empty", action="store_true")
    backfill.add_argument("--yes", action="store_true", help="confirm a very long range")
    backfill.add_argument(
        "--ingest-only", action="store_true", help="skip the LLM stages and rendering"
    )
    backfill.add_argument(
        "--parallel", type=int, default=2, metavar="N", help="days processed at once (default 2)"
    )
    backfill.add_argument("--force", action="store_true", help="redo days already finished")
    backfill.add_argument(
        "--retry-failed",
        action="store_true",
        help="also redo days whose LLM answers stayed invalid, asking those requests again",
    )
    backfill.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (logs and the Prefect artifact still report)",
    )
    backfill.add_argument(
        "--distributed",
        action="store_true",
        help="fan days out to the work pool of the `backfill` deployment",
    )
    backfill.add_argument(
        "--deployment",
        default="backfill/backfill",
        help="deployment used by --distributed (default backfill/backfill)",
    )

    catalog = sub.add_parser("catalog", help="manage the DuckDB catalog")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    catalog_sub.add_parser("rebuild", help="recreate the catalog from the lake alone")

    imp = sub.add_parser("import-digest", help="load old digest Markdown files into the lake")
    imp.add_argument("paths", nargs="+", help="digest files in the arxiv-digest format")
    imp.add_argument("--force", action="store_true", help="replace a day's existing digest")

    publish = sub.add_parser(
        "publish", help="write the digests, the site and the feed from the lake (changed days)"
    )
    publish.add_argument("--start", help="first digest date YYYY-MM-DD whose notifications are due")
    publish.add_argument("--end", help="last digest date YYYY-MM-DD (inclusive)")
    publish.add_argument(
        "--resend",
        action="store_true",
        help="force re-sending notifications (also those already sent)",
    )

    query = sub.add_parser("query", help="run SQL against the catalog (read-only)")
    query.add_argument("sql", nargs="?", help="SQL text, or omit and use --name")
    query.add_argument("--name", help="an example query from sql/queries/ (file stem)")
    query.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a $KEY parameter of the query (repeatable)",
    )
    _add_format(query)

    search = sub.add_parser(
        "search", help="papers ranked by BM25 relevance of title and abstract (read-only)"
    )
    search.add_argument("text", help='words to look for, e.g. "gaussian splatting"')
    search.add_argument("--start", help="first digest date YYYY-MM-DD (default: the first)")
    search.add_argument("--end", help="last digest date YYYY-MM-DD (default: the last)")
    search.add_argument(
        "--limit", type=int, default=20, metavar="N", help="the best N papers (default 20)"
    )
    _add_format(search)

    schema = sub.add_parser(
        "schema", help="the data dictionary: every dataset, view and table, columns and meanings"
    )
    _add_format(schema)
    return parser


def _add_format(command: argparse.ArgumentParser) -> None:
    from tasks.result_formats import FORMATS, TABLE_ROWS

    command.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help=f"output on stdout: table (first {TABLE_ROWS} rows, says how many more), "
        "or every row as csv, json (an array of objects) or markdown (default table)",
    )


def _print_result(columns: list[str], rows: list[tuple[Any, ...]], output: str) -> None:
    from tasks.result_formats import FORMATTERS

    sys.stdout.write(FORMATTERS[output](columns, rows))


def _params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r} is not KEY=VALUE")
        params[key] = value
    return params


def _cmd_run(args: argparse.Namespace) -> int:
    from arxiv_digest.dates import check_digest_date, parse_date, today_utc
    from arxiv_digest.settings import load_settings
    from tasks.preflight import preflight

    # `--date ''` is a mistake, not a request for today.
    day = parse_date(args.date) if args.date is not None else today_utc()
    target = check_digest_date(day, today_utc())
    # Bad settings, paths, credentials or lake fail here, before Prefect and before any write.
    preflight(load_settings(), digest=not args.ingest_only)
    from flows.daily import daily_digest

    _install_log_filter()
    guard_prefect_temporary_server()  # a killed run must not leave Prefect's server behind
    summary = daily_digest(
        date=target,
        allow_empty=args.allow_empty,
        digest=not args.ingest_only,
        retry_failed=args.retry_failed,
    )
    print(
        f"digest {target}: {summary.candidates} candidates, {summary.papers_added} new "
        f"papers, {summary.dropped} dropped, {summary.llm_calls} LLM calls; "
        "catalog updated"
    )
    return 0


def _progress_bar(args: argparse.Namespace, unit: str) -> RichProgressBar | SilentProgress:
    return SilentProgress() if args.no_progress else RichProgressBar(f"backfill ({unit})")


def _cmd_backfill(args: argparse.Namespace) -> int:
    from arxiv_digest.dates import date_range, parse_date, today_utc
    from arxiv_digest.settings import load_settings
    from tasks.preflight import preflight

    start = parse_date(args.start, what="start date")
    end = parse_date(args.end, what="end date")
    days = date_range(start, end, today_utc(), confirmed=args.yes)
    preflight(load_settings(), digest=not args.ingest_only)
    from flows.backfill import backfill

    _install_log_filter()
    guard_prefect_temporary_server()
    if args.parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, not {args.parallel}")
    if args.distributed:
        from flows.backfill import distributed_backfill

        with _progress_bar(args, "day runs") as bar, watching(bar):
            result = distributed_backfill(
                start=start,
                end=end,
                deployment=args.deployment,
                allow_empty=args.allow_empty,
                confirmed=args.yes,
                digest=not args.ingest_only,
                force=args.force,
                retry_failed=args.retry_failed,
            )
        print(
            f"distributed backfill {start}..{end}: {result.fanned_out} day runs, "
            f"{len(result.skipped)} skipped as finished; catalog rebuilt from the lake"
        )
        return 0
    with _progress_bar(args, "days") as bar, watching(bar):
        summary = backfill(
            start=start,
            end=end,
            max_parallel_days=args.parallel,
            allow_empty=args.allow_empty,
            confirmed=args.yes,
            digest=not args.ingest_only,
            force=args.force,
            retry_failed=args.retry_failed,
        )
    print(
        f"backfill {start}..{end}: {len(days)} day{'s' * (len(days) != 1)} "
        f"({len(summary.per_day)} done, "
        f"{len(summary.skipped)} skipped as finished), {summary.papers_added} new "
        f"papers, {summary.llm_calls} LLM calls, ${summary.cost_usd:.4f}"
    )
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from arxiv_digest.settings import load_settings
    from tasks.catalog import rebuild_catalog
    from tasks.lake import Lake

    settings = load_settings()
    counts = rebuild_catalog(settings, Lake.from_settings(settings))
    print("catalog rebuilt from the lake: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def _cmd_import_digest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from arxiv_digest.settings import load_settings
    from tasks.import_digest import import_digests

    for item in import_digests(load_settings(), [Path(p) for p in args.paths], force=args.force):
        if item.imported:
            print(f"{item.path}: imported digest {item.day} ({item.papers} papers)")
        else:
            print(
                f"{item.path}: a digest for {item.day} is already in the lake "
                "(use --force to replace)"
            )
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from arxiv_digest.dates import date_range, parse_date, today_utc
    from arxiv_digest.settings import load_settings
    from tasks.catalog import refresh_catalog
    from tasks.preflight import preflight
    from tasks.publish import publish, read_listings

    if (args.start is None) != (args.end is None):
        raise ConfigError("give both --start and --end, or neither (the latest digest)")
    days = None
    if args.start is not None:
        start = parse_date(args.start, what="start date")
        end = parse_date(args.end, what="end date")
        days = date_range(start, end, today_utc(), confirmed=True)
    settings = load_settings()
    lake = preflight(settings)
    refresh_catalog(settings, lake)  # the index (README.md) reads the catalog's views
    held = [item.day for item in read_listings(lake)]
    notify = [d for d in held if d in set(days)] if days is not None else held[-1:]
    summary = publish(settings, lake, notify=notify, resend=args.resend)
    print(
        f"published {summary.digests} digest{'s' * (summary.digests != 1)} to "
        f"{summary.output_dir} ({len(summary.rebuilt)} rebuilt from the lake)"
    )
    print(f"site: {summary.site_index.resolve().as_uri()}")
    print(f"feed: {summary.feed}")
    if summary.uploaded is not None:
        print(f"uploaded {summary.uploaded} changed site file(s) to {settings.site_url}")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from arxiv_digest.resources import analyst_queries, query_params
    from arxiv_digest.settings import load_settings
    from tasks.catalog import run_query

    if bool(args.sql) == bool(args.name):
        raise ConfigError("give either SQL text or --name NAME (one of them)")
    if args.name:
        queries = analyst_queries()
        if args.name not in queries:
            raise ConfigError(f"no query named {args.name!r}; known: {', '.join(queries)}")
        sql = queries[args.name]
    else:
        sql = args.sql
    params = _params(args.param)
    missing = [p for p in query_params(sql) if p not in params]
    if missing:
        raise ConfigError("the query needs " + ", ".join(f"--param {m}=..." for m in missing))
    columns, rows = run_query(load_settings(), sql, params or None)
    _print_result(columns, rows, args.format)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from arxiv_digest.dates import parse_date
    from arxiv_digest.resources import analyst_queries
    from arxiv_digest.settings import load_settings
    from tasks.catalog import run_query

    start = parse_date(args.start, what="start date") if args.start is not None else date.min
    end = parse_date(args.end, what="end date") if args.end is not None else date.max
    if start > end:
        raise ConfigError(f"--start {start} is after --end {end}")
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}")
    params = {"text": args.text, "start": start, "end": end, "limit": args.limit}
    columns, rows = run_query(load_settings(), analyst_queries()["search_papers"], params)
    _print_result(columns, rows, args.format)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from tasks.dictionary import data_dictionary, schema_rows, schema_text

    relations = data_dictionary()
    if args.format == "table":
        sys.stdout.write(schema_text(relations))
    else:
        _print_result(*schema_rows(relations), args.format)
    return 0


COMMANDS = {
    "run": _cmd_run,
    "backfill": _cmd_backfill,
    "catalog": _cmd_catalog,
    "import-digest": _cmd_import_digest,
    "query": _cmd_query,
    "search": _cmd_search,
    "schema": _cmd_schema,
    "publish": _cmd_publish,
}


def main(argv: Sequence[str] | None = None) -> int:
    for key, value in _QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # litellm 1.80 trips pydantic's serializer check on every response and leaves a cleanup
    # coroutine un-awaited at exit: noise for users, nothing they can act on.
    warnings.filterwarnings("ignore", message="Pydantic serializer warnings")
    warnings.filterwarnings("ignore", message="coroutine 'close_litellm_async_clients'")
    # A call cancelled while litellm prepares it (a failed day stopping its LLM work) leaves
    # litellm's inner coroutine un-awaited: nothing was sent, nothing to report.
    warnings.filterwarnings("ignore", message=r"coroutine '\S*acompletion' was never awaited")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DigestError as exc:
        print(f"arxiv-digest: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arxiv-digest: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
