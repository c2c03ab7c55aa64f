"""Ingestion: one arXiv API query per digest day through the `arxiv` client, checked and retried."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import arxiv
import requests
from arxiv import _feed
from lxml import etree

from arxiv_digest.backoff import backoff_seconds
from arxiv_digest.errors import ArxivError, EmptyWindowError, IncompleteFeedError
from tasks.models import Paper, day_window, split_entry_id

logger = logging.getLogger(__name__)

_HEADERS = {"User-Agent": "arxiv-digest/0.1 (arxiv.py client)"}
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_ATOM = "{http://www.w3.org/2005/Atom}"


def build_query(categories: Iterable[str], digest_day: date) -> str:
    """The search query for one digest day: the categories OR'd, within the published day.

    >>> build_query(["cs.CV", "cs.LG"], date(2026, 6, 30))
    '(cat:cs.CV OR cat:cs.LG) AND submittedDate:[202606290000 TO 202606300000]'

    The day's window is half-open, [midnight, next midnight) UTC (`day_window`), but the API's
    range is inclusive at minute granularity, so the query ends at the next midnight: it may
    also return papers of the next day's first minute, which dedup drops as out-of-window (each
    paper is kept by exactly one day). Ending at 23:59 instead could miss 23:59:xx papers.
    """
    start, end = day_window(digest_day)
    cats = " OR ".join(f"cat:{c}" for c in categories)
    return f"({cats}) AND submittedDate:[{start:%Y%m%d%H%M} TO {end:%Y%m%d%H%M}]"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), if any.

    >>> parse_retry_after("3")
    3.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def describe_url(url: str) -> str:
    """The part of a request URL a person needs to recognise it: the query and the page."""
    params = parse_qs(urlsplit(url).query)
    query = (params.get("search_query") or params.get("id_list") or [""])[0]
    start = (params.get("start") or ["0"])[0]
    return f"query {query!r} (start={start})"


def error_feed_message(content: bytes) -> str | None:
    """The message of an arXiv error feed (one entry titled `Error`), or None.

    Example input: `<feed ...><entry><id>https://arxiv.org/api/errors#...</id><title>Error</title>
    <summary>incorrect id format for abc</summary></entry></feed>`.
    """
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        return None
    for entry in root.iter(f"{_ATOM}entry"):
        entry_id = entry.findtext(f"{_ATOM}id") or ""
        if entry.findtext(f"{_ATOM}title") == "Error" or "/api/errors" in entry_id:
            return (entry.findtext(f"{_ATOM}summary") or "unknown error").strip()
    return None


def check_well_formed(content: bytes) -> str | None:
    """None when `content` is well-formed XML, else the parser's complaint.

    The `arxiv` client parses in recover mode, which would silently accept a truncated page.
    """
    try:
        etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        return str(exc)
    return None


class ArxivFeedClient(arxiv.Client):  # type: ignore[misc]  # arxiv ships no types: Any
    """The `arxiv` client with our endpoint, etiquette delay, backoff and strict page checks.

    The client keeps doing what it is good at (URL building, pagination, entry parsing); this
    adapter replaces only its page fetch, so that 429/503/connection errors/empty or malformed
    pages are retried with backoff (honouring Retry-After) and errors name the query.
    """

    def __init__(
        self,
        api_url: str,
        *,
        page_size: int = 200,
        delay_s: float = 3.0,
        backoff_s: float = 2.0,
        retries: int = 4,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        throttle: Callable[[], None] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(page_size=page_size, delay_seconds=delay_s, num_retries=retries)
        self.query_url_format = api_url + "?{}"
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._clock = clock
        self._throttle = throttle
        self._jitter = jitter
        self._last_request_at: float | None = None
        self.requests_made = 0
        self.total_results: int | None = None

    def _wait_for_turn(self) -> None:
        # arXiv asks for one request every few seconds; a shared limiter may replace ours.
        if self._throttle is not None:
            self._throttle()
            return
        if self._last_request_at is not None and self.delay_seconds > 0:
            remaining = self.delay_seconds - (self._clock() - self._last_request_at)
            if remaining > 0:
                self._sleep(remaining)

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        return backoff_seconds(self.backoff_s, attempt, self._jitter(), retry_after)

    def _parse_feed(
        self, url: str, first_page: bool = True, _try_index: int = 0
    ) -> _feed.ParsedFeed:
        last_problem = "no attempt made"
        for attempt in range(self.num_retries + 1):
            if attempt:
                logger.info("retrying %s after: %s", describe_url(url), last_problem)
            self._wait_for_turn()
            self.requests_made += 1
            try:
                resp = self._session.get(url, timeout=self.timeout_s, headers=_HEADERS)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_problem = f"connection failed ({type(exc).__name__})"
                self._last_request_at = self._clock()
                self._sleep(self._backoff_s(attempt, None))
                continue
            self._last_request_at = self._clock()
            if resp.status_code in RETRYABLE_STATUS:
                last_problem = f"HTTP {resp.status_code}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                self._sleep(self._backoff_s(attempt, retry_after))
                continue
            message = error_feed_message(resp.content) if resp.status_code != 200 else None
            if resp.status_code != 200:
                detail = f": {message}" if message else ""
                raise ArxivError(
                    f"arXiv rejected {describe_url(url)} with HTTP {resp.status_code}{detail}"
                )
            malformed = check_well_formed(resp.content)
            if malformed:
                last_problem = f"malformed XML ({malformed})"
                self._sleep(self._backoff_s(attempt, None))
                continue
            message = error_feed_message(resp.content)
            if message:
                raise ArxivError(f"arXiv answered {describe_url(url)} with an error: {message}")
            feed = _feed.parse(resp.content)
            if not feed.results and not first_page:
                last_problem = "empty page in the middle of the results"
                self._sleep(self._backoff_s(attempt, None))
                continue
            if first_page:
                self.total_results = feed.header.total_results
            return feed
        raise ArxivError(
            f"arXiv could not serve {describe_url(url)} after {self.num_retries + 1} "
            f"attempts; last problem: {last_problem}"
        )


def paper_from_result(result: arxiv.Result) -> Paper:
    """Our record of one feed entry (the `arxiv` client has already parsed the Atom)."""
    arxiv_id, version = split_entry_id(result.entry_id)
    abs_url = next(
        (link.href for link in result.links if link.rel == "alternate"),
        f"https://arxiv.org/abs/{arxiv_id}v{version}",
    )
    return Paper(
        arxiv_id=arxiv_id,
        version=version,
        title=result.title.strip(),
        authors=tuple(author.name for author in result.authors),
        abstract=result.summary.strip(),
        categories=tuple(result.categories),
        primary_category=result.primary_category
        or (result.categories[0] if result.categories else ""),
        published=result.published.astimezone(UTC),
        updated=result.updated.astimezone(UTC),
        comment=result.comment,
        journal_ref=result.journal_ref,
        doi=result.doi,
        abs_url=abs_url.replace("http://", "https://", 1),
        pdf_url=result.pdf_url or f"https://arxiv.org/pdf/{arxiv_id}v{version}",
    )


@dataclass(frozen=True)
class FetchedWindow:
    """Everything one day's query returned, in feed order, with what the feed promised."""

    digest_date: date
    query: str
    candidates: tuple[Paper, ...]
    total_results: int
    requests_made: int


def fetch_window(
    client: ArxivFeedClient, categories: Iterable[str], digest_day: date
) -> FetchedWindow:
    """Fetch every candidate of one digest day; fail loudly if the feed came up short."""
    query = build_query(categories, digest_day)
    search = arxiv.Search(
        query=query,
        max_results=None,  # the default of 100 silently truncates every big day
        sort_by=arxiv.SortCriterion.SubmittedDate,
        sort_order=arxiv.SortOrder.Ascending,
    )
    before = client.requests_made
    client.total_results = None
    papers = tuple(paper_from_result(result) for result in client.results(search))
    total = client.total_results or 0
    if len(papers) != total:
        raise IncompleteFeedError(
            f"arXiv promised {total} entries for query {query!r} but served {len(papers)}"
        )
    return FetchedWindow(
        digest_date=digest_day,
        query=query,
        candidates=papers,
        total_results=total,
        requests_made=client.requests_made - before,
    )


def require_papers(window: FetchedWindow, allow_empty: bool) -> None:
    """Never a silent empty digest: zero candidates is an error unless explicitly allowed."""
    if not window.candidates and not allow_empty:
        raise EmptyWindowError(
            f"arXiv returned no papers for digest {window.digest_date.isoformat()} "
            f"(query {window.query!r}); pass --allow-empty if that is expected"
        )
