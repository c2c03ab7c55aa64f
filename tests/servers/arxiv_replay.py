"""Loopback stand-in for the arXiv export API (`/api/query`) replaying recorded real data.

What it serves, in order of precedence:

1. Recorded responses (``recorded_dir`` / ``--recorded DIR``, the format of the shared
   ``arxiv-api`` fixtures). ``*.json`` files (``{"url", "status_code", "body"}``) answer requests
   whose ``search_query``, ``id_list``, ``start`` and ``max_results`` equal the recorded URL's
   (missing: ``""``, ``""``, 0, 10) with the recorded status and ``body.encode("latin-1")``
   verbatim (the fixtures store the UTF-8 bytes decoded as latin-1). ``*.xml`` files are named by
   their query string (``search_query=au:del_maestro+AND+ti:checkerboard.xml``) and answer any
   request with that ``search_query``/``id_list``, status 200, file bytes verbatim.

2. Listing days (``days`` / ``--day FILE|DIR``; default: the bundled
   ``data/listing-2026-06-30.jsonl``). A listing is a scrape of arXiv's ``/list/<cat>/new`` pages:
   rows ``{"id", "categories", "pdf", "abs", "authors", "title", "comment", "summary"}``. The
   announcement date A is the last ``YYYY-MM-DD`` in the file name. ONE FEED ENTRY PER ROW, in
   file order: a cross-listed paper was scraped once per listing it appears in, so it is served
   once per row (up to 3 times in the bundled day). The real API would return it once; the repeats
   are kept on purpose so that the pipeline's dedup is exercised. The listing has no versions or
   timestamps, so each entry gets, deterministically: version ``v1``; ``published`` = ``updated``
   = ``A-1 00:00:00Z + floor(rank * 86400 / n_distinct)`` seconds, where rank is the id's index
   among the file's distinct ids sorted ascending (all times fall in [00:00, 24:00) of A-1, and
   repeats of one id share a time); primary category = first of ``categories``. Authors, title,
   abstract and comment are served verbatim (XML-escaped; characters XML 1.0 forbids become
   U+FFFD, none occur in the bundled day).

   ``search_query`` language (recursive descent): terms ``cat:X`` (``cat:cs.*`` prefix),
   ``submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]`` / ``lastUpdatedDate:[...]`` (inclusive, minute
   granularity; 8-digit dates mean the whole day), ``id:X`` (with or without version),
   ``all:``/``ti:``/``abs:``/``au:``/``co:`` word or ``"phrase"`` (case-insensitive substring,
   ``_`` in ``au:`` means a space), ``jr:``/``rn:`` (never match: the listing has no such data), a
   bare word means ``all:``. Operators ``AND``, ``ANDNOT``, ``OR`` and parentheses; AND/ANDNOT bind
   tighter than OR; two adjacent operands are ANDed. ``+`` and spaces both separate tokens. An
   unparsable query, a malformed ``id_list`` id, a bad ``start``/``max_results``/``sortBy``/
   ``sortOrder`` get HTTP 400 with an arXiv-style error feed. ``id_list`` keeps only the listed ids
   (intersected with ``search_query`` when both are given; repeats of a row are kept here too).
   A plain ``id_list`` lookup (no ``search_query``, as for papers of a reader's library) answers
   like the real API: each listed id once, in the list's order, whatever ``sortBy``/``sortOrder``.
   Sorting: ``submittedDate`` / ``lastUpdatedDate`` by published / updated, ties in file order;
   ``relevance`` is file order; ``descending`` reverses the whole list (so the client default,
   relevance/descending, is REVERSED file order). Then ``[start:start+max_results]``. An empty
   ``search_query`` with an empty ``id_list`` matches nothing.

3. Anything else under ``/api/query``: an empty feed, totalResults 0. Other paths: 404.

Faults (``Fault(kind, count)``; ``count=0`` means always): faults are tried in list order and the
first one that is eligible and has count left fires, consuming one count, so ``[429:1, 503:1]``
gives a 429, then a 503, then normal answers. ``429``/``503`` (with ``Retry-After: 1``),
``reset`` (RST, no response) and ``error-feed`` (400 error feed) are eligible on every
``/api/query`` request; ``truncated`` (the normal 200 body cut at half, Content-Length of the cut
body, malformed XML) on requests whose normal answer is 200; ``empty-page`` (200, right
totalResults, zero entries) on those that also have ``start > 0``.

``late-paper`` does not replace a response: it models a paper that reaches the API after the
first fetch of the day. While active for a query, the highest id among the listing ids the query
matches is left out of results and totalResults. Exact rule: a query is keyed by
(``search_query``, ``id_list``). A request with ``start == 0``, or for a key not seen yet, starts a
new run of that query: if the late-paper fault has count left, the run consumes one and omits the
paper, otherwise the run shows it. Requests with ``start > 0`` for a seen key continue its current
run, so all pages of one paginated fetch agree. Only requests answered normally commit a run, so a
faulted first page that is retried does not use up the count. With ``count=1``: the first fetch
of the day misses exactly one paper; re-issuing it from ``start=0`` shows it.

``ReplayServer.requests`` records every request (``path``, ``params``, ``status`` with 0 for a
reset, ``fault`` = fired fault kind or None) before the response is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from tasks.models import Paper
from tests.servers.loopback import (
    LoopbackHandler,
    LoopbackServer,
    argument_type,
    cli_parser,
    serve_until_signalled,
)

BUNDLED_DAY = Path(__file__).resolve().parent / "data" / "listing-2026-06-30.jsonl"
API_PATH = "/api/query"
ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"
FAULT_KINDS = ("429", "503", "empty-page", "truncated", "reset", "error-feed", "late-paper")

_FEED_OPEN = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
    'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">\n'
)
_SORT_BY = ("relevance", "lastUpdatedDate", "submittedDate")
_SORT_ORDER = ("ascending", "descending")
_DATE_IN_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
# Characters XML 1.0 cannot carry at all; a scraped abstract with one would break the whole page.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# New-style (2104.12255, v optional) and old-style (astro-ph/0601001, math.AG/0601001) ids.
_ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?")


# ---------------------------------------------------------------------------------------------
# Listing days -> feed entries
# ---------------------------------------------------------------------------------------------


def announcement_date(path: Path) -> date:
    """The announcement date of a listing file: the last YYYY-MM-DD in its name."""
    found = _DATE_IN_NAME.findall(Path(path).name)
    if not found:
        raise ValueError(f"no YYYY-MM-DD in listing file name: {path}")
    return date.fromisoformat(found[-1])


def paper_of(entry: dict[str, Any]) -> Paper:
    """One served entry (load_listing_day) as the pipeline's Paper, for benches and tests that
    build lakes from the bundled day without going through the arXiv client."""
    return Paper(
        arxiv_id=entry["id"],
        version=entry["version"],
        title=entry["title"],
        authors=tuple(entry["authors"]),
        abstract=entry["summary"],
        categories=tuple(entry["categories"]),
        primary_category=entry["primary_category"],
        published=entry["published"],
        updated=entry["updated"],
        comment=entry["comment"],
        abs_url=entry["abs_url"],
        pdf_url=entry["pdf_url"],
    )


def load_listing_day(path: Path | str) -> list[dict[str, Any]]:
    """Feed entries served for one listing file: one per row, in file order.

    Each entry: ``id`` (no version), ``version`` (1), ``entry_id``, ``title``, ``summary``,
    ``authors`` (names), ``categories``, ``primary_category``, ``comment`` (None if absent),
    ``published`` and ``updated`` (tz-aware UTC datetimes), ``abs_url``, ``pdf_url``,
    ``announced`` (date A), ``source`` (file name) and ``row`` (0-based row in the file).
    """
    path = Path(path)
    announced = announcement_date(path)
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    distinct = sorted({row["id"] for row in rows})
    rank = {paper_id: i for i, paper_id in enumerate(distinct)}
    day_start = datetime(announced.year, announced.month, announced.day, tzinfo=UTC)
    day_start -= timedelta(days=1)
    entries: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        paper_id = row["id"]
        # Integer arithmetic keeps the spread exact and reproducible across platforms.
        when = day_start + timedelta(seconds=rank[paper_id] * 86400 // len(distinct))
        vid = f"{paper_id}v1"
        entries.append(
            {
                "id": paper_id,
                "version": 1,
                "entry_id": f"http://arxiv.org/abs/{vid}",
                "title": row["title"],
                "summary": row["summary"],
                "authors": list(row["authors"]),
                "categories": list(row["categories"]),
                "primary_category": row["categories"][0],
                "comment": row.get("comment"),
                "published": when,
                "updated": when,
                "abs_url": f"https://arxiv.org/abs/{vid}",
                "pdf_url": f"https://arxiv.org/pdf/{vid}",
                "announced": announced,
                "source": path.name,
                "row": i,
            }
        )
    return entries


def _expand_day_paths(days: Iterable[Path | str]) -> list[Path]:
    paths: list[Path] = []
    for day in days:
        day = Path(day)
        paths.extend(sorted(day.glob("*.jsonl")) if day.is_dir() else [day])
    return paths


# ---------------------------------------------------------------------------------------------
# Atom rendering
# ---------------------------------------------------------------------------------------------


def _text(value: str) -> str:
    # \r would be normalised to \n by any XML parser; a character reference keeps it verbatim.
    return escape(_XML_ILLEGAL.sub("\ufffd", value)).replace("\r", "&#13;")


def _attr(value: str) -> str:
    return escape(_XML_ILLEGAL.sub("\ufffd", value), {'"': "&quot;"})


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _render_entry(entry: dict[str, Any]) -> str:
    vid = f"{entry['id']}v{entry.get('version', 1)}"
    parts = [
        "  <entry>\n",
        f"    <id>http://arxiv.org/abs/{_text(vid)}</id>\n",
        f"    <title>{_text(entry['title'])}</title>\n",
        f"    <updated>{_stamp(entry['updated'])}</updated>\n",
        f'    <link href="https://arxiv.org/abs/{_attr(vid)}" rel="alternate" type="text/html"/>\n',
        f'    <link href="https://arxiv.org/pdf/{_attr(vid)}" rel="related" '
        'type="application/pdf" title="pdf"/>\n',
        f"    <summary>{_text(entry['summary'])}</summary>\n",
    ]
    parts += [
        f'    <category term="{_attr(c)}" scheme="http://arxiv.org/schemas/atom"/>\n'
        for c in entry["categories"]
    ]
    parts.append(f"    <published>{_stamp(entry['published'])}</published>\n")
    if entry.get("comment") is not None:
        parts.append(f"    <arxiv:comment>{_text(entry['comment'])}</arxiv:comment>\n")
    parts.append(f'    <arxiv:primary_category term="{_attr(entry["primary_category"])}"/>\n')
    parts += [
        f"    <author>\n      <name>{_text(name)}</name>\n    </author>\n"
        for name in entry["authors"]
    ]
    parts.append("  </entry>\n")
    return "".join(parts)


def build_feed(
    entries: Sequence[dict[str, Any]],
    *,
    query: str,
    start: int,
    max_results: int,
    total: int,
    id_list: str = "",
    updated: datetime | None = None,
) -> bytes:
    """One page of results in today's arXiv Atom format (UTF-8 bytes).

    ``entries`` are the page's entries (as from `load_listing_day`), ``query`` the
    ``search_query``, ``total`` the opensearch totalResults; ``updated`` defaults to now, as on
    arXiv.
    """
    body = "".join(_render_entry(e) for e in entries)
    return _feed_document(body, query, start, max_results, total, id_list, updated)


def _feed_document(
    body: str,
    query: str,
    start: int,
    max_results: int,
    total: int,
    id_list: str,
    updated: datetime | None,
) -> bytes:
    described = f"search_query={query}&id_list={id_list}&start={start}&max_results={max_results}"
    # arXiv's feed id is an opaque hash of the query; any stable digest serves the same purpose.
    digest = base64.b64encode(hashlib.sha1(described.encode()).digest()).decode().rstrip("=")
    link = (
        f"https://arxiv.org/api/query?search_query={query}&start={start}"
        f"&max_results={max_results}&id_list={id_list}"
    )
    head = (
        f"{_FEED_OPEN}"
        f"  <id>https://arxiv.org/api/{digest}</id>\n"
        f"  <title>arXiv Query: {_text(described)}</title>\n"
        f"  <updated>{_stamp(updated or datetime.now(UTC))}</updated>\n"
        f'  <link href="{_attr(link)}" type="application/atom+xml"/>\n'
        f"  <opensearch:itemsPerPage>{max_results}</opensearch:itemsPerPage>\n"
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>\n"
    )
    return (head + body + "</feed>\n").encode()


def build_error_feed(message: str, *, updated: datetime | None = None) -> bytes:
    """An arXiv API error feed (as sent with HTTP 400): one entry titled ``Error``."""
    anchor = re.sub(r"[^A-Za-z0-9._-]+", "_", message).strip("_")
    stamp = _stamp(updated or datetime.now(UTC))
    err_url = f"https://arxiv.org/api/errors#{anchor}"
    return (
        f"{_FEED_OPEN}"
        "  <id>https://arxiv.org/</id>\n"
        "  <title>arXiv Search Results</title>\n"
        f"  <updated>{stamp}</updated>\n"
        "  <opensearch:itemsPerPage>1</opensearch:itemsPerPage>\n"
        "  <opensearch:totalResults>1</opensearch:totalResults>\n"
        "  <opensearch:startIndex>0</opensearch:startIndex>\n"
        "  <entry>\n"
        f"    <id>{_text(err_url)}</id>\n"
        "    <title>Error</title>\n"
        f"    <updated>{stamp}</updated>\n"
        f'    <link href="{_attr(err_url)}" rel="alternate" type="text/html"/>\n'
        f"    <summary>{_text(message)}</summary>\n"
        "    <author>\n"
        "      <name>arXiv api core</name>\n"
        "    </author>\n"
        "  </entry>\n"
        "</feed>\n"
    ).encode()


# ---------------------------------------------------------------------------------------------
# search_query language
# ---------------------------------------------------------------------------------------------


class QuerySyntaxError(ValueError):
    """A search_query the replay cannot parse (answered with HTTP 400)."""


@dataclass(frozen=True)
class _Doc:
    """An entry pre-digested for matching (lower-cased haystacks, minute timestamps)."""

    entry: dict[str, Any]
    ids: frozenset[str]
    cats: tuple[str, ...]
    ti: str
    abs: str
    au: str
    co: str
    published_min: datetime
    updated_min: datetime

    @cached_property
    def xml(self) -> str:
        # Entries never change once loaded; rendering dominates a page's cost, so do it once.
        return _render_entry(self.entry)

    @classmethod
    def of(cls, entry: dict[str, Any]) -> _Doc:
        return cls(
            entry=entry,
            ids=frozenset({entry["id"], f"{entry['id']}v{entry.get('version', 1)}"}),
            cats=tuple(entry["categories"]),
            ti=entry["title"].lower(),
            abs=entry["summary"].lower(),
            au="\n".join(entry["authors"]).lower(),
            co=(entry.get("comment") or "").lower(),
            published_min=entry["published"].replace(second=0, microsecond=0),
            updated_min=entry["updated"].replace(second=0, microsecond=0),
        )


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=32)
def _day_docs(path: Path, mtime_ns: int, size: int) -> tuple[_Doc, ...]:
    # Tests start many servers on the same day; parsing and rendering it once keeps them fast.
    # The stat values are part of the key so that an edited file is read again.
    return tuple(_Doc.of(e) for e in load_listing_day(path))


Predicate = Callable[[_Doc], bool]

_TOKEN = re.compile(
    r"""
      (?P<ws>[\s+]+)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<range>(?P<rfield>\w+):\[(?P<rbody>[^\]]*)\])
    | (?P<phrase>(?:(?P<pfield>\w+):)?"(?P<pbody>[^"]*)")
    | (?P<word>[^\s+()"]+)
    """,
    re.VERBOSE,
)
_OPERATORS = ("AND", "OR", "ANDNOT")
_TEXT_FIELDS = ("all", "ti", "abs", "au", "co")
_EMPTY_FIELDS = ("jr", "rn")  # valid arXiv fields the listing has no data for
_DATE_FIELDS = ("submittedDate", "lastUpdatedDate")


def _text_predicate(fld: str, value: str) -> Predicate:
    needle = value.lower()
    if fld == "au":
        # arXiv author queries spell spaces as underscores (au:del_maestro).
        needle = needle.replace("_", " ")
    if fld == "all":
        return lambda d: needle in d.ti or needle in d.abs or needle in d.au or needle in d.co
    return lambda d: needle in getattr(d, fld)


def _parse_bound(text: str, upper: bool) -> datetime:
    if not re.fullmatch(r"\d{8}(?:\d{4})?", text):
        raise QuerySyntaxError(f"malformed date {text!r}: expected YYYYMMDDHHMM")
    if len(text) == 8:
        text += "2359" if upper else "0000"
    try:
        return datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError as exc:
        raise QuerySyntaxError(f"malformed date {text!r}") from exc


def _range_predicate(fld: str, body: str) -> Predicate:
    if fld not in _DATE_FIELDS:
        raise QuerySyntaxError(f"range not supported for field {fld!r}")
    parts = [p for p in re.split(r"[\s+]+", body) if p]
    if len(parts) != 3 or parts[1] != "TO":
        raise QuerySyntaxError(f"malformed range [{body}]: expected [FROM TO UNTIL]")
    lo, hi = _parse_bound(parts[0], upper=False), _parse_bound(parts[2], upper=True)
    attr = "published_min" if fld == "submittedDate" else "updated_min"
    return lambda d: lo <= getattr(d, attr) <= hi


def _term_predicate(fld: str, value: str) -> Predicate:
    if not value:
        raise QuerySyntaxError(f"empty value for field {fld!r}")
    if fld == "cat":
        if value.endswith("*"):
            prefix = value[:-1]
            return lambda d: any(c.startswith(prefix) for c in d.cats)
        return lambda d: value in d.cats
    if fld == "id":
        return lambda d: value in d.ids
    if fld in _TEXT_FIELDS:
        return _text_predicate(fld, value)
    if fld in _EMPTY_FIELDS:
        return lambda d: False
    if fld in _DATE_FIELDS:
        raise QuerySyntaxError(f"field {fld!r} needs a range [FROM TO UNTIL]")
    raise QuerySyntaxError(f"unknown field {fld!r}")


def _tokenize(query: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None:
            raise QuerySyntaxError(f"unexpected character {query[pos]!r} at {pos}")
        pos = m.end()
        if m["ws"]:
            continue
        if m["lparen"] or m["rparen"]:
            tokens.append((m.group(), None))
        elif m["range"]:
            tokens.append(("term", _range_predicate(m["rfield"], m["rbody"])))
        elif m["phrase"]:
            fld = m["pfield"] or "all"
            if fld not in _TEXT_FIELDS + _EMPTY_FIELDS:
                raise QuerySyntaxError(f"phrase not supported for field {fld!r}")
            tokens.append(("term", _term_predicate(fld, m["pbody"])))
        elif m["word"] in _OPERATORS:
            tokens.append((m["word"], None))
        else:
            fm = re.fullmatch(r"(\w+):(.*)", m["word"])
            fld, value = (fm[1], fm[2]) if fm else ("all", m["word"])
            tokens.append(("term", _term_predicate(fld, value)))
    return tokens


class _Parser:
    """Recursive descent: or := and (OR and)*; and := unary ((AND|ANDNOT)? unary)*."""

    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        pred = self.parse_or()
        if self.peek() is not None:
            raise QuerySyntaxError(f"unexpected {self.peek()!r}")
        return pred

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.peek() == "OR":
            self.take()
            left = _or(left, self.parse_and())
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_unary()
        while True:
            kind = self.peek()
            if kind in ("AND", "ANDNOT"):
                self.take()
                right = self.parse_unary()
                left = _and(left, right) if kind == "AND" else _and_not(left, right)
            elif kind in ("term", "("):
                left = _and(left, self.parse_unary())
            else:
                return left

    def parse_unary(self) -> Predicate:
        kind = self.peek()
        if kind == "(":
            self.take()
            inner = self.parse_or()
            if self.peek() != ")":
                raise QuerySyntaxError("unbalanced parenthesis")
            self.take()
            return inner
        if kind == "term":
            return self.take()[1]
        raise QuerySyntaxError(f"expected a term, got {kind or 'end of query'!r}")


def _or(a: Predicate, b: Predicate) -> Predicate:
    return lambda d: a(d) or b(d)


def _and(a: Predicate, b: Predicate) -> Predicate:
    return lambda d: a(d) and b(d)


def _and_not(a: Predicate, b: Predicate) -> Predicate:
    return lambda d: a(d) and not b(d)


def parse_query(query: str) -> Predicate:
    """Compile a search_query into a predicate; raises QuerySyntaxError."""
    return _Parser(_tokenize(query)).parse()


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A misbehaviour fired on the first ``count`` eligible requests (0: on every one)."""

    kind: str
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if self.count < 0:
            raise ValueError(f"fault count must be >= 0, got {self.count}")

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``KIND`` or ``KIND:COUNT`` as given to ``--fault``."""
        kind, sep, count = spec.rpartition(":")
        if not sep:
            return cls(spec)
        if not count.isdigit():
            raise ValueError(f"bad fault spec {spec!r}: expected KIND[:COUNT]")
        return cls(kind, int(count))


@dataclass
class _FaultState:
    fault: Fault
    remaining: int | None  # None: unlimited

    def available(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def consume(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    fault: str | None = None
    total: int | None = None  # totalResults of a listing feed, for the empty-page fault


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name, "")
    if raw == "":
        return default
    if not re.fullmatch(r"\d+", raw.strip()):
        raise QuerySyntaxError(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def _norm_query(query: str) -> str:
    # arXiv treats '+' and spaces alike, so '+'-joined and space-joined queries are one query.
    return " ".join(query.replace("+", " ").split())


class _Handler(LoopbackHandler["ReplayServer"]):
    # Keep-alive, like export.arxiv.org, so requests.Session reuses connections.
    server_version = "arxiv-replay"

    def do_GET(self) -> None:
        reply = self.owner.handle(self.path)
        if reply.reset:
            self._reset()
            return
        headers = {"Content-Type": ATOM_CONTENT_TYPE, **reply.headers}
        self.send_body(reply.status, reply.body, headers)

    def _reset(self) -> None:
        # Linger 0 makes close() send RST instead of FIN: the client sees "connection reset".
        # The fd really closes once socketserver closes rfile/wfile after this handler returns.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class ReplayServer(LoopbackServer):
    """The replay API on a loopback port, served from a daemon thread."""

    name = "arxiv-replay"
    handler = _Handler
    root_path = API_PATH

    def __init__(
        self,
        days: Sequence[Path | str] | None = None,
        recorded_dir: Path | str | None = None,
        faults: Sequence[Fault] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        day_paths = _expand_day_paths([BUNDLED_DAY] if days is None else days)
        self._docs = [d for p in day_paths for d in _day_docs(p.resolve(), *_stat_key(p))]
        # Shared with other servers on the same day file (see _day_docs): read-only.
        self.entries: list[dict[str, Any]] = [d.entry for d in self._docs]
        self._recorded_json: dict[tuple[str, str, int, int], tuple[int, bytes]] = {}
        self._recorded_xml: dict[tuple[str, str], bytes] = {}
        if recorded_dir is not None:
            self._load_recorded(Path(recorded_dir))
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._faults: list[_FaultState] = []
        self._late_runs: dict[tuple[str, str], bool] = {}
        self.set_faults(faults)
        super().__init__(host, port)

    # -- recorded fixtures ------------------------------------------------------------------

    def _load_recorded(self, directory: Path) -> None:
        if not directory.is_dir():
            # A typo would otherwise silently serve nothing recorded.
            raise FileNotFoundError(f"recorded responses directory not found: {directory}")
        for path in sorted(directory.glob("*.json")):
            rec = json.loads(path.read_text(encoding="utf-8"))
            qs = {k: v[-1] for k, v in parse_qs(urlsplit(rec["url"]).query, True).items()}
            key = (
                _norm_query(qs.get("search_query", "")),
                qs.get("id_list", ""),
                int(qs.get("start") or 0),
                int(qs.get("max_results") or 10),
            )
            # The fixtures hold the response bytes decoded as latin-1; this restores them.
            self._recorded_json[key] = (int(rec["status_code"]), rec["body"].encode("latin-1"))
        for path in sorted(directory.glob("*.xml")):
            qs = {k: v[-1] for k, v in parse_qs(path.name[: -len(".xml")], True).items()}
            key = (_norm_query(qs.get("search_query", "")), qs.get("id_list", ""))
            self._recorded_xml[key] = path.read_bytes()

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the active faults (fresh counts, late-paper runs forgotten)."""
        with self._lock:
            self._faults = [_FaultState(f, f.count or None) for f in faults]
            self._late_runs = {}

    # -- request handling -----------------------------------------------------------------------

    def handle(self, raw_path: str) -> _Reply:
        """Answer one GET (path with query string) and log it; used by the HTTP handler."""
        split = urlsplit(raw_path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        with self._lock:
            # One lock around decide-and-log keeps fault counts and late-paper runs consistent
            # under concurrent clients; building a page takes about a millisecond.
            if split.path != API_PATH:
                reply = _Reply(404, b"not found\n", {"Content-Type": "text/plain"})
            else:
                reply = self._answer(params)
            self.requests.append(
                {
                    "path": split.path,
                    "params": params,
                    "status": 0 if reply.reset else reply.status,
                    "fault": reply.fault,
                }
            )
        return reply

    def _answer(self, params: dict[str, str]) -> _Reply:
        try:
            start = _int_param(params, "start", 0)
            normal, commit_late = self._normal_reply(params, start)
        except QuerySyntaxError as exc:
            start = 0
            normal, commit_late = _Reply(400, build_error_feed(str(exc))), None
        for state in self._faults:
            if state.fault.kind != "late-paper" and state.available():
                reply = self._fault_reply(state.fault.kind, normal, params, start)
                if reply is not None:
                    state.consume()
                    reply.fault = state.fault.kind
                    return reply
        if commit_late is not None:
            commit_late()
        return normal

    def _fault_reply(
        self, kind: str, normal: _Reply, params: dict[str, str], start: int
    ) -> _Reply | None:
        """The faulted reply, or None when this request is not eligible for ``kind``."""
        if kind in ("429", "503"):
            text = b"Rate exceeded.\n" if kind == "429" else b"Service temporarily unavailable.\n"
            headers = {"Content-Type": "text/plain", "Retry-After": "1"}
            return _Reply(int(kind), text, headers)
        if kind == "reset":
            return _Reply(0, reset=True)
        if kind == "error-feed":
            return _Reply(400, build_error_feed("malformed query"))
        if normal.status != 200:
            return None
        if kind == "truncated":
            return _Reply(200, normal.body[: len(normal.body) // 2])
        if kind == "empty-page" and start > 0:
            total = normal.total
            if total is None:  # a recorded body: read its totalResults
                m = re.search(rb"totalResults[^>]*>\s*(\d+)", normal.body)
                total = int(m[1]) if m else 0
            empty = build_feed(
                [],
                query=params.get("search_query", ""),
                id_list=params.get("id_list", ""),
                start=start,
                max_results=_int_param(params, "max_results", 10),
                total=total,
            )
            return _Reply(200, empty)
        return None

    def _normal_reply(
        self, params: dict[str, str], start: int
    ) -> tuple[_Reply, Callable[[], None] | None]:
        """The unfaulted answer, plus the late-paper commit to run if it is sent as is."""
        query = params.get("search_query", "")
        id_list = params.get("id_list", "")
        max_results = _int_param(params, "max_results", 10)
        recorded = self._recorded_json.get((_norm_query(query), id_list, start, max_results))
        if recorded is not None:
            return _Reply(recorded[0], recorded[1]), None
        recorded_xml = self._recorded_xml.get((_norm_query(query), id_list))
        if recorded_xml is not None:
            return _Reply(200, recorded_xml), None

        sort_by = params.get("sortBy", "relevance") or "relevance"
        sort_order = params.get("sortOrder", "descending") or "descending"
        if sort_by not in _SORT_BY:
            raise QuerySyntaxError(f"sortBy must be one of {', '.join(_SORT_BY)}")
        if sort_order not in _SORT_ORDER:
            raise QuerySyntaxError(f"sortOrder must be one of {', '.join(_SORT_ORDER)}")
        wanted = [i for i in id_list.split(",") if i.strip()]
        for paper_id in wanted:
            if not _ARXIV_ID.fullmatch(paper_id.strip()):
                # The real API's wording (see the recorded id_list=abc response).
                raise QuerySyntaxError(f"incorrect id format for {paper_id.strip()}")
        docs = self._docs
        if query.strip():
            pred = parse_query(query)
            docs = [d for d in docs if pred(d)]
        elif not wanted:
            docs = []
        if wanted:
            wanted_set = {w.strip() for w in wanted}
            docs = [d for d in docs if d.ids & wanted_set]
            if not query.strip():
                docs = _one_per_listed_id(docs, wanted)

        key = (_norm_query(query), id_list)
        omit, commit = self._late_decision(key, start)
        if omit and docs:
            late_id = max(d.entry["id"] for d in docs)
            docs = [d for d in docs if d.entry["id"] != late_id]

        ordered = docs
        if wanted and not query.strip():
            pass  # a plain id_list lookup answers in the list's order, whatever the sort
        elif sort_by != "relevance":
            attr = "published" if sort_by == "submittedDate" else "updated"
            # Python's sort is stable, so ties stay in file order.
            ordered = sorted(docs, key=lambda d: d.entry[attr])
        if sort_order == "descending" and not (wanted and not query.strip()):
            ordered = ordered[::-1]
        page = "".join(d.xml for d in ordered[start : start + max_results])
        body = _feed_document(page, query, start, max_results, len(ordered), id_list, None)
        return _Reply(200, body, total=len(ordered)), commit

    def _late_decision(
        self, key: tuple[str, str], start: int
    ) -> tuple[bool, Callable[[], None] | None]:
        """Whether this request omits the late paper, and how to record that if it is sent."""
        state = next((s for s in self._faults if s.fault.kind == "late-paper"), None)
        if state is None:
            return False, None
        if start > 0 and key in self._late_runs:
            return self._late_runs[key], None
        omit = state.available()

        def commit() -> None:
            if omit:
                state.consume()
            self._late_runs[key] = omit

        return omit, commit


def _one_per_listed_id(docs: Sequence[_Doc], wanted: Sequence[str]) -> list[_Doc]:
    """A plain id_list lookup as arXiv answers it: each listed id once, in the list's order
    (the listing's repeats of a cross-listed paper are one paper to the real API)."""
    found: list[_Doc] = []
    seen: set[str] = set()
    for paper_id in (w.strip() for w in wanted):
        doc = next((d for d in docs if paper_id in d.ids), None)
        if doc is not None and doc.entry["id"] not in seen:
            seen.add(doc.entry["id"])
            found.append(doc)
    return found


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the replay server until SIGTERM/SIGINT; returns the exit status."""
    parser = cli_parser(
        "tests.servers.arxiv_replay",
        "Serve the arXiv export API on loopback from recorded real data.",
    )
    parser.add_argument(
        "--day",
        action="append",
        dest="days",
        type=Path,
        metavar="FILE",
        help="listing-day .jsonl file or directory of them (repeatable; default: bundled day)",
    )
    parser.add_argument(
        "--recorded", dest="recorded_dir", type=Path, metavar="DIR", help="recorded responses dir"
    )
    parser.add_argument(
        "--fault",
        action="append",
        dest="faults",
        type=argument_type(Fault.parse),
        default=[],
        metavar="KIND[:COUNT]",
        help=f"inject a fault ({', '.join(FAULT_KINDS)}); COUNT 0 means always",
    )
    options = vars(parser.parse_args(argv))  # each dest names a ReplayServer parameter
    return serve_until_signalled(lambda: ReplayServer(**options))


if __name__ == "__main__":
    sys.exit(main())
