"""Ingestion through the real `arxiv` client against the loopback replay server."""

from __future__ import annotations

import math
from datetime import date

import arxiv
import pytest

from arxiv_digest.errors import ArxivError
from tasks.ingest import (
    ArxivFeedClient,
    build_query,
    fetch_window,
    paper_from_result,
    parse_retry_after,
)
from tests.conftest import RECORDED_API, free_port
from tests.servers.arxiv_replay import Fault, ReplayServer

DAY = date(2026, 6, 30)
CV_ROWS = 353
CV_DISTINCT = 267


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def make_client(url: str, fake: FakeTime, **kwargs: object) -> ArxivFeedClient:
    options: dict[str, object] = {
        "page_size": 100,
        "delay_s": 0.0,
        "retries": 3,
        "backoff_s": 1.0,
        "jitter": lambda: 0.0,
    }
    options.update(kwargs)
    return ArxivFeedClient(url, sleep=fake.sleep, clock=fake.clock, **options)  # type: ignore[arg-type]


@pytest.fixture
def recorded():
    """The replay server with the recorded real API responses from tests/data/arxiv-api."""
    with ReplayServer(recorded_dir=RECORDED_API) as server:
        yield server


def test_build_query_ors_categories_within_published_day():
    assert build_query(["cs.CV", "cs.LG"], DAY) == (
        "(cat:cs.CV OR cat:cs.LG) AND submittedDate:[202606290000 TO 202606300000]"
    )


def test_fetch_window_returns_every_row_of_replayed_day_across_pages(replay):
    fake = FakeTime()
    window = fetch_window(make_client(replay.url, fake), ["cs.CV"], DAY)
    assert window.total_results == CV_ROWS
    assert len(window.candidates) == CV_ROWS
    assert len({p.arxiv_id for p in window.candidates}) == CV_DISTINCT
    assert window.requests_made == math.ceil(CV_ROWS / 100)
    assert all(p.published.date() == date(2026, 6, 29) for p in window.candidates)


def test_fetch_window_waits_etiquette_delay_between_requests(replay):
    fake = FakeTime()
    fetch_window(make_client(replay.url, fake, delay_s=3.0), ["cs.CV"], DAY)
    # 4 pages: no wait before the first request, a full delay before each later one.
    assert fake.sleeps == [3.0, 3.0, 3.0]


def test_fetch_window_empty_for_day_without_papers(replay):
    window = fetch_window(make_client(replay.url, FakeTime()), ["cs.CV"], date(2026, 6, 1))
    assert window.candidates == ()
    assert window.total_results == 0


@pytest.mark.parametrize("kind", ["429", "503", "empty-page", "truncated", "reset"])
def test_fetch_window_recovers_from_transient_fault(replay, kind):
    replay.set_faults([Fault(kind, count=2)])
    fake = FakeTime()
    window = fetch_window(make_client(replay.url, fake), ["cs.CV"], DAY)
    assert len(window.candidates) == CV_ROWS
    assert [r["fault"] for r in replay.requests].count(kind) == 2
    assert len(fake.sleeps) == 2  # one backoff per failed attempt, no real sleeping


def test_fetch_window_honours_retry_after(replay):
    replay.set_faults([Fault("429", count=1)])
    fake = FakeTime()
    fetch_window(make_client(replay.url, fake), ["cs.CV"], DAY)
    assert fake.sleeps and fake.sleeps[0] >= 1.0


def test_fetch_window_backs_off_exponentially(replay):
    replay.set_faults([Fault("503", count=3)])
    fake = FakeTime()
    fetch_window(make_client(replay.url, fake, backoff_s=1.0, jitter=lambda: 1.0), ["cs.CV"], DAY)
    assert fake.sleeps[:3] == [1.0, 2.0, 4.0]


def test_fetch_window_gives_up_after_retries_naming_query(replay):
    replay.set_faults([Fault("503", count=0)])
    with pytest.raises(ArxivError, match=r"cat:cs\.CV.*after 4 attempts.*HTTP 503"):
        fetch_window(make_client(replay.url, FakeTime()), ["cs.CV"], DAY)


def test_fetch_window_error_feed_is_clear_error_without_retry(replay):
    replay.set_faults([Fault("error-feed", count=0)])
    with pytest.raises(ArxivError, match=r"HTTP 400: .*") as info:
        fetch_window(make_client(replay.url, FakeTime()), ["cs.CV"], DAY)
    assert "cat:cs.CV" in str(info.value)
    assert len(replay.requests) == 1


def test_fetch_window_persistently_truncated_xml_is_clear_error(replay):
    replay.set_faults([Fault("truncated", count=0)])
    with pytest.raises(ArxivError, match="malformed XML"):
        fetch_window(make_client(replay.url, FakeTime()), ["cs.CV"], DAY)


def test_fetch_window_unreachable_arxiv_is_clear_error():
    url = f"http://127.0.0.1:{free_port()}/api/query"
    with pytest.raises(ArxivError, match="connection failed"):
        fetch_window(make_client(url, FakeTime(), retries=1), ["cs.CV"], DAY)


def test_recorded_400_error_feed_message_reaches_user(recorded):
    client = make_client(recorded.url, FakeTime(), page_size=100)
    with pytest.raises(ArxivError, match="incorrect id format for abc"):
        list(client.results(arxiv.Search(id_list=["abc"])))


def test_recorded_page_parses_into_papers(recorded):
    client = make_client(recorded.url, FakeTime(), page_size=10)
    results = list(client.results(arxiv.Search(query="testing", max_results=10)))
    papers = [paper_from_result(r) for r in results]
    assert len(papers) == 10
    first = papers[0]
    assert (first.arxiv_id, first.version) == ("2202.12139", 1)
    assert first.doi == "10.1109/ICSTW55395.2022.00035"
    assert first.primary_category == "cs.SE"
    assert first.pdf_url == "https://arxiv.org/pdf/2202.12139v1"
    # UTF-8 names survive (the fixture stores bytes as latin-1; the server restores them).
    assert not any("Ã" in a for p in papers for a in p.authors)


def test_recorded_2016_format_parses_old_feed(recorded):
    client = make_client(recorded.url, FakeTime(), page_size=10)
    search = arxiv.Search(query="au:del_maestro AND ti:checkerboard", max_results=1)
    paper = paper_from_result(next(iter(client.results(search))))
    assert paper.version >= 1 and paper.arxiv_id
    assert "\n" not in paper.title


def test_late_paper_appears_only_on_later_fetch(replay):
    replay.set_faults([Fault("late-paper", count=1)])
    first = fetch_window(make_client(replay.url, FakeTime()), ["cs.CV"], DAY)
    second = fetch_window(make_client(replay.url, FakeTime()), ["cs.CV"], DAY)
    missing = {p.arxiv_id for p in second.candidates} - {p.arxiv_id for p in first.candidates}
    assert len(missing) == 1
    assert len(first.candidates) == first.total_results


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), (None, None), ("soon", None)])
def test_parse_retry_after_reads_delta_seconds(header, expected):
    assert parse_retry_after(header) == expected
