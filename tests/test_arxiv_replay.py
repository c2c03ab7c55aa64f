"""Tests of the loopback arXiv API replay server, driven by the real `arxiv` client and requests."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import arxiv
import pytest
import requests
from lxml import etree

from tests.conftest import RECORDED_API as RECORDED
from tests.servers.arxiv_replay import (
    BUNDLED_DAY,
    Fault,
    ReplayServer,
    build_error_feed,
    build_feed,
    load_listing_day,
)
from tests.servers.loopback import launched

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
}
WINDOW = "submittedDate:[202606290000 TO 202606292359]"
CV_DAY = f"cat:cs.CV AND {WINDOW}"
ASCENDING = {"sortBy": "submittedDate", "sortOrder": "ascending"}


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return load_listing_day(BUNDLED_DAY)


@pytest.fixture(scope="module")
def server() -> Iterator[ReplayServer]:
    with ReplayServer().start() as s:
        yield s


def client_for(server: ReplayServer, retries: int = 0) -> arxiv.Client:
    client = arxiv.Client(page_size=100, delay_seconds=0, num_retries=retries)
    client.query_url_format = server.url + "?{}"
    return client


def day_search(query: str = CV_DAY) -> arxiv.Search:
    return arxiv.Search(
        query=query,
        max_results=None,
        sort_by=arxiv.SortCriterion.SubmittedDate,
        sort_order=arxiv.SortOrder.Ascending,
    )


def fetch(server: ReplayServer, **params: object) -> requests.Response:
    return requests.get(server.url, params=params, timeout=10)


def feed_of(resp: requests.Response) -> etree._Element:
    # Strict parse (no recover) so malformed XML fails the test instead of being patched up.
    return etree.fromstring(resp.content)


def header(root: etree._Element) -> tuple[int, int, int]:
    return tuple(
        int(root.findtext(f"opensearch:{name}", namespaces=NS))
        for name in ("totalResults", "startIndex", "itemsPerPage")
    )


def entry_ids(root: etree._Element) -> list[str]:
    return [e.findtext("atom:id", namespaces=NS) for e in root.iterfind("atom:entry", NS)]


def abs_id(entry: dict) -> str:
    return f"http://arxiv.org/abs/{entry['id']}v1"


# --- listing day -> entries ---------------------------------------------------------------------


def test_load_listing_day_builds_one_v1_entry_per_row_in_file_order(entries):
    rows = [json.loads(line) for line in BUNDLED_DAY.read_text(encoding="utf-8").splitlines()]
    assert len(entries) == len(rows) == 674
    assert [e["id"] for e in entries] == [r["id"] for r in rows]
    assert len({e["id"] for e in entries}) == 532
    day_before = datetime(2026, 6, 29, tzinfo=UTC)
    for entry, row in zip(entries, rows, strict=True):
        assert entry["version"] == 1
        assert entry["entry_id"] == abs_id(entry)
        assert entry["primary_category"] == row["categories"][0]
        assert entry["published"] == entry["updated"]
        assert day_before <= entry["published"] < day_before + timedelta(days=1)
        for key in ("title", "summary", "authors", "categories", "comment"):
            assert entry[key] == row[key]
    # Repeats of one id share a time; distinct ids get strictly increasing times in id order.
    times = {e["id"]: e["published"] for e in entries}
    assert all(e["published"] == times[e["id"]] for e in entries)
    ordered = [times[i] for i in sorted(times)]
    assert ordered == sorted(set(ordered))
    assert ordered[0] == day_before
    assert load_listing_day(BUNDLED_DAY) == entries  # deterministic


def test_bundled_day_is_the_verbatim_copy_its_provenance_names():
    provenance = (BUNDLED_DAY.parent / "PROVENANCE.md").read_text(encoding="utf-8")
    (recorded_sha,) = re.findall(r"sha256 `([0-9a-f]{64})`", provenance)
    assert hashlib.sha256(BUNDLED_DAY.read_bytes()).hexdigest() == recorded_sha


# --- the bundled day through the real client ------------------------------------------------------


def test_client_yields_every_cs_cv_row_when_querying_the_day_window(server, entries):
    results = list(client_for(server).results(day_search()))
    assert len(results) == 353
    assert len({r.entry_id for r in results}) == 267
    expected = sorted(
        (e for e in entries if "cs.CV" in e["categories"]), key=lambda e: e["published"]
    )
    assert [r.entry_id for r in results] == [abs_id(e) for e in expected]
    assert [r.published for r in results] == sorted(r.published for r in results)


def test_client_gets_listing_fields_verbatim_when_parsing_the_feed(server, entries):
    results = list(client_for(server).results(day_search(WINDOW)))
    expected = sorted(entries, key=lambda e: e["published"])  # stable: ties in file order
    assert len(results) == len(expected) == 674
    for result, entry in zip(results, expected, strict=True):
        assert result.entry_id == abs_id(entry)
        assert result.get_short_id() == f"{entry['id']}v1"
        assert result.title == re.sub(r"\s+", " ", entry["title"])
        assert result.summary == entry["summary"]
        assert [a.name for a in result.authors] == entry["authors"]
        assert result.categories == entry["categories"]
        assert result.primary_category == entry["categories"][0]
        assert result.published == result.updated == entry["published"]
        assert result.comment == entry["comment"]
        assert result.pdf_url == f"https://arxiv.org/pdf/{entry['id']}v1"


def test_or_query_returns_union_of_rows_when_categories_overlap(server, entries):
    query = f"(cat:cs.CV OR cat:cs.AI) AND {WINDOW}"
    results = list(client_for(server).results(day_search(query)))
    wanted = [e for e in entries if {"cs.CV", "cs.AI"} & set(e["categories"])]
    assert len(results) == len(wanted) == 552
    assert len({r.entry_id for r in results}) == len({e["id"] for e in wanted}) == 414


def test_category_or_query_returns_row_union_when_no_window_given(server, entries):
    results = list(client_for(server).results(day_search("cat:cs.CV OR cat:cs.AI")))
    assert len(results) == sum(1 for e in entries if {"cs.CV", "cs.AI"} & set(e["categories"]))


def test_window_query_returns_nothing_when_window_is_another_day(server):
    before = len(server.requests)
    query = "cat:cs.CV AND submittedDate:[202606300000 TO 202606302359]"
    assert list(client_for(server).results(day_search(query))) == []
    assert len(server.requests) == before + 1
    assert header(feed_of(fetch(server, search_query=query))) == (0, 0, 10)


def test_window_bounds_are_inclusive_when_matching_at_minute_granularity(server, entries):
    last = max(entries, key=lambda e: e["published"])
    minute = last["published"].strftime("%Y%m%d%H%M")
    assert last["published"].second != 0  # the bound must truncate seconds to match
    before = (last["published"] - timedelta(minutes=1)).strftime("%Y%m%d%H%M")
    inside = feed_of(fetch(server, search_query=f"submittedDate:[{minute} TO {minute}]"))
    assert abs_id(last) in entry_ids(inside)
    outside = feed_of(fetch(server, search_query=f"submittedDate:[202606290000 TO {before}]"))
    assert abs_id(last) not in entry_ids(outside)


# --- pagination and sorting -----------------------------------------------------------------------


def test_pages_report_total_and_start_index_when_paging(server):
    whole = feed_of(fetch(server, search_query=CV_DAY, max_results=1000, **ASCENDING))
    assert header(whole) == (353, 0, 1000)
    paged: list[str] = []
    for start in range(0, 400, 50):
        page = feed_of(fetch(server, search_query=CV_DAY, start=start, max_results=50, **ASCENDING))
        assert header(page) == (353, start, 50)
        paged += entry_ids(page)
    assert paged == entry_ids(whole)
    past_end = feed_of(fetch(server, search_query=CV_DAY, start=400, max_results=50))
    assert header(past_end) == (353, 400, 50)
    assert entry_ids(past_end) == []


def test_defaults_apply_when_start_and_max_results_are_missing(server):
    root = feed_of(fetch(server, search_query=CV_DAY))
    assert header(root) == (353, 0, 10)
    assert len(entry_ids(root)) == 10


def test_sort_orders_follow_timestamps_then_file_order_when_requested(server, entries):
    def ids(sort_by: str, order: str) -> list[str]:
        params = {"sortBy": sort_by, "sortOrder": order, "max_results": 1000}
        return entry_ids(feed_of(fetch(server, search_query=WINDOW, **params)))

    file_order = [abs_id(e) for e in entries]
    by_time = [abs_id(e) for e in sorted(entries, key=lambda e: e["published"])]
    assert ids("relevance", "ascending") == file_order
    assert ids("relevance", "descending") == file_order[::-1]
    assert ids("submittedDate", "ascending") == by_time
    assert ids("submittedDate", "descending") == by_time[::-1]
    assert ids("lastUpdatedDate", "ascending") == by_time


# --- query language -------------------------------------------------------------------------------

QUERIES: dict[str, Callable[[dict], bool]] = {
    "cat:cs.CV AND cat:cs.AI": lambda e: {"cs.CV", "cs.AI"} <= set(e["categories"]),
    "cat:cs.CV ANDNOT cat:cs.AI": lambda e: (
        "cs.CV" in e["categories"] and "cs.AI" not in e["categories"]
    ),
    # AND binds tighter than OR.
    "cat:cs.GR OR cat:cs.CE AND cat:cs.AI": lambda e: (
        "cs.GR" in e["categories"] or {"cs.CE", "cs.AI"} <= set(e["categories"])
    ),
    "(cat:cs.GR OR cat:cs.CE) AND cat:cs.AI": lambda e: (
        bool({"cs.GR", "cs.CE"} & set(e["categories"])) and "cs.AI" in e["categories"]
    ),
    # A literal '+' (sent as %2B) separates tokens like a space, as on arXiv.
    "cat:cs.GR+OR+cat:cs.IT": lambda e: bool({"cs.GR", "cs.IT"} & set(e["categories"])),
    "cat:cs.*": lambda e: True,
    "ti:DIFFUSION": lambda e: "diffusion" in e["title"].lower(),
    'abs:"large language model"': lambda e: "large language model" in e["summary"].lower(),
    "au:yang ANDNOT ti:diffusion": lambda e: (
        any("yang" in a.lower() for a in e["authors"]) and "diffusion" not in e["title"].lower()
    ),
    "co:cvpr": lambda e: "cvpr" in (e["comment"] or "").lower(),
    "all:benchmark": lambda e: any(
        "benchmark" in s.lower()
        for s in (e["title"], e["summary"], e["comment"] or "", *e["authors"])
    ),
    "benchmark cat:cs.CL": lambda e: (
        "cs.CL" in e["categories"]
        and any("benchmark" in s.lower() for s in (e["title"], e["summary"], e["comment"] or ""))
    ),
    "id:2606.28729 OR id:2606.28778v1": lambda e: e["id"] in {"2606.28729", "2606.28778"},
    "jr:nature": lambda e: False,
}


@pytest.mark.parametrize("query", list(QUERIES))
def test_query_selects_matching_rows_in_file_order_when_using_operators(server, entries, query):
    params = {"sortBy": "relevance", "sortOrder": "ascending", "max_results": 1000}
    root = feed_of(fetch(server, search_query=query, **params))
    expected = [abs_id(e) for e in entries if QUERIES[query](e)]
    assert expected or query == "jr:nature"
    assert entry_ids(root) == expected
    assert header(root)[0] == len(expected)


def test_id_list_lookup_answers_each_listed_id_once_in_list_order(server, entries):
    # 2606.29876 is listed under two categories: two rows, one paper to the real API.
    assert sum(e["id"] == "2606.29876" for e in entries) == 2
    root = feed_of(fetch(server, id_list="2606.29876,2606.28729,2606.28778v1", max_results=100))
    assert [i.rsplit("/", 1)[1] for i in entry_ids(root)] == [
        "2606.29876v1",
        "2606.28729v1",
        "2606.28778v1",
    ]
    assert header(feed_of(fetch(server, id_list="2606.29876,2606.28556", max_results=2)))[0] == 2
    assert entry_ids(feed_of(fetch(server, id_list="2606.28729v2"))) == []
    both = feed_of(fetch(server, search_query="cat:cs.IT", id_list="2606.28729,2606.30639"))
    assert entry_ids(both) == ["http://arxiv.org/abs/2606.28729v1"]


def test_empty_feed_returned_when_no_source_matches(server):
    for params in ({}, {"search_query": "ti:zzzzqqqq"}, {"id_list": "0000.0000"}):
        resp = fetch(server, **params)
        assert resp.status_code == 200
        assert header(feed_of(resp))[0] == 0


@pytest.mark.parametrize(
    "query",
    [
        "cat:cs.CV AND",
        "(cat:cs.CV OR cat:cs.AI",
        "cat:cs.CV)",
        "OR cat:cs.CV",
        "cat:",
        "foo:bar",
        'ti:"unclosed',
        "submittedDate:[2026 TO 202606292359]",
        "submittedDate:[202606290000 202606292359]",
        "submittedDate:[202613290000 TO 202606292359]",
        "submittedDate:202606290000",
    ],
)
def test_unparsable_query_returns_400_error_feed_when_sent(server, query):
    resp = fetch(server, search_query=query)
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    root = feed_of(resp)
    assert header(root) == (1, 0, 1)
    (entry,) = root.iterfind("atom:entry", NS)
    assert entry.findtext("atom:title", namespaces=NS) == "Error"
    assert entry.findtext("atom:id", namespaces=NS).startswith("https://arxiv.org/api/errors#")
    assert entry.findtext("atom:summary", namespaces=NS)
    with pytest.raises(arxiv.HTTPError) as err:
        list(client_for(server).results(day_search(query)))
    assert err.value.status == 400


@pytest.mark.parametrize(
    "params",
    [
        {"search_query": "cat:cs.CV", "start": "-1"},
        {"search_query": "cat:cs.CV", "max_results": "ten"},
        {"search_query": "cat:cs.CV", "sortBy": "date"},
        {"search_query": "cat:cs.CV", "sortOrder": "up"},
        {"id_list": "abc"},
    ],
)
def test_bad_parameters_return_400_error_feed_when_sent(server, params):
    resp = fetch(server, **params)
    assert resp.status_code == 400
    assert feed_of(resp).find("atom:entry/atom:title", NS).text == "Error"


def test_unknown_path_returns_404_when_requested(server):
    resp = requests.get(server.url.replace("/api/query", "/api/other"), timeout=10)
    assert resp.status_code == 404
    assert server.requests[-1]["status"] == 404
    assert server.requests[-1]["path"] == "/api/other"


def test_requests_log_records_params_and_status_when_serving(server):
    before = len(server.requests)
    fetch(server, search_query="cat:cs.GR", start=0, max_results=5)
    fetch(server, search_query="cat:", start=0)
    assert server.requests[before:] == [
        {
            "path": "/api/query",
            "params": {"search_query": "cat:cs.GR", "start": "0", "max_results": "5"},
            "status": 200,
            "fault": None,
        },
        {
            "path": "/api/query",
            "params": {"search_query": "cat:", "start": "0"},
            "status": 400,
            "fault": None,
        },
    ]


# --- fidelity to the recorded arXiv format -------------------------------------------------------


def recorded(name: str) -> dict:
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


def entry_shape(entry: etree._Element) -> list[tuple]:
    """Child elements as (tag, attribute names, rel, title), consecutive repeats collapsed."""
    shape: list[tuple] = []
    for child in entry:
        if child.tag.endswith(("journal_ref", "doi")) or child.get("title") == "doi":
            continue  # the listing has no journal refs or DOIs
        sig = (child.tag, tuple(sorted(child.attrib)), child.get("rel"), child.get("title"))
        if not shape or shape[-1] != sig:
            shape.append(sig)
    return shape


def test_feed_layout_matches_recorded_arxiv_format_when_built(entries):
    real = etree.fromstring(
        recorded("q_testing_s0_m100_cfe7536492ca.json")["body"].encode("latin-1")
    )
    ours = etree.fromstring(
        build_feed(entries[:100], query="cat:cs.CV", start=0, max_results=100, total=674)
    )
    assert ours.nsmap == real.nsmap
    assert [c.tag for c in ours if c.tag != f"{{{NS['atom']}}}entry"] == [
        c.tag for c in real if c.tag != f"{{{NS['atom']}}}entry"
    ]
    real_shapes = {tuple(entry_shape(e)) for e in real.iterfind("atom:entry", NS)}
    our_shapes = {tuple(entry_shape(e)) for e in ours.iterfind("atom:entry", NS)}
    assert len(our_shapes) == 2  # with and without arxiv:comment
    assert our_shapes <= real_shapes


def test_error_feed_is_byte_identical_to_recorded_when_built():
    rec = recorded("id_abc_s0_m100_b79c8dcf6bc3.json")
    built = build_error_feed(
        "incorrect id format for abc", updated=datetime(2026, 4, 12, 22, 59, 6, tzinfo=UTC)
    )
    assert built == rec["body"].encode("latin-1")


def test_feed_escapes_markup_when_text_holds_xml_specials(entries):
    tricky = dict(entries[0], title="a < b & c > d", summary=' x"<\r\n  $\\delta$ ', comment="&")
    root = etree.fromstring(build_feed([tricky], query="x&y", start=0, max_results=1, total=1))
    entry = root.find("atom:entry", NS)
    assert entry.findtext("atom:title", namespaces=NS) == "a < b & c > d"
    assert entry.findtext("atom:summary", namespaces=NS) == ' x"<\r\n  $\\delta$ '
    assert entry.findtext("arxiv:comment", namespaces=NS) == "&"


# --- recorded responses ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_server() -> Iterator[ReplayServer]:
    with ReplayServer(recorded_dir=RECORDED).start() as s:
        yield s


RECORDED_JSON = sorted(p.name for p in RECORDED.glob("*.json"))
RECORDED_XML = sorted(p.name for p in RECORDED.glob("*.xml"))


@pytest.mark.parametrize("name", RECORDED_JSON)
def test_recorded_json_is_replayed_byte_for_byte_when_query_matches(recorded_server, name):
    rec = recorded(name)
    resp = requests.get(f"{recorded_server.url}?{urlsplit(rec['url']).query}", timeout=10)
    assert resp.status_code == rec["status_code"]
    assert resp.content == rec["body"].encode("latin-1")
    assert resp.headers["Content-Type"] == "application/atom+xml; charset=utf-8"


@pytest.mark.parametrize("name", RECORDED_XML)
def test_recorded_xml_is_replayed_when_query_matches(recorded_server, name):
    params = {k: v[0] for k, v in parse_qs(name.removesuffix(".xml")).items()}
    resp = fetch(recorded_server, **params, start=0, max_results=100)
    assert resp.status_code == 200
    assert resp.content == (RECORDED / name).read_bytes()


def test_recorded_responses_reach_the_client_when_served(recorded_server):
    client = client_for(recorded_server)
    (paper,) = client.results(arxiv.Search(query="au:del_maestro AND ti:checkerboard"))
    assert paper.entry_id == "http://arxiv.org/abs/cond-mat/0603029v1"
    assert paper.title.startswith("From stripe to checkerboard order")
    with pytest.raises(arxiv.HTTPError) as err:
        list(client.results(arxiv.Search(id_list=["abc"])))
    assert err.value.status == 400
    (lone,) = client.results(arxiv.Search(id_list=["0808.05394", "1707.08567"]))
    assert lone.authors[-2].name == "Dirk Wübben"  # UTF-8 restored from the latin-1 storage


def test_listing_answers_when_recorded_paging_differs(recorded_server, entries):
    rec = recorded("q_testing_s0_m10_bc5a6c384fe9.json")
    assert fetch(recorded_server, search_query="testing", max_results=10).content == rec[
        "body"
    ].encode("latin-1")
    # Same query, unrecorded page size: answered from the listing day (bare word = all:).
    root = feed_of(fetch(recorded_server, search_query="testing", max_results=7))
    fields = ("title", "summary", "comment")
    n_testing = sum(any("testing" in (e[f] or "").lower() for f in fields) for e in entries)
    assert n_testing > 0
    assert header(root) == (n_testing, 0, 7)
    assert all(i.startswith("http://arxiv.org/abs/26") for i in entry_ids(root))


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "503"])
def test_status_fault_fires_count_times_then_stops_when_set(kind):
    with ReplayServer(faults=[Fault(kind, count=2)]).start() as s:
        statuses = []
        for _ in range(3):
            resp = fetch(s, search_query=CV_DAY)
            statuses.append(resp.status_code)
            if resp.status_code != 200:
                assert resp.headers["Retry-After"] == "1"
        assert statuses == [int(kind), int(kind), 200]
        assert [r["fault"] for r in s.requests] == [kind, kind, None]


def test_reset_fault_aborts_connection_count_times_when_set():
    with ReplayServer(faults=[Fault("reset", count=2)]).start() as s:
        session = requests.Session()  # keep-alive, as the arxiv client uses
        for _ in range(2):
            with pytest.raises(requests.exceptions.ConnectionError):
                session.get(s.url, params={"search_query": CV_DAY}, timeout=10)
        assert session.get(s.url, params={"search_query": CV_DAY}, timeout=10).status_code == 200
        assert [r["status"] for r in s.requests] == [0, 0, 200]


def test_error_feed_fault_returns_400_error_feed_once_when_set():
    with ReplayServer(faults=[Fault("error-feed")]).start() as s:
        resp = fetch(s, search_query=CV_DAY)
        assert resp.status_code == 400
        entry = feed_of(resp).find("atom:entry", NS)
        assert entry.findtext("atom:title", namespaces=NS) == "Error"
        assert entry.findtext("atom:summary", namespaces=NS) == "malformed query"
        assert fetch(s, search_query=CV_DAY).status_code == 200


def without_feed_updated(body: bytes) -> bytes:
    return re.sub(rb"<updated>[^<]*</updated>", b"", body, count=1)


def test_truncated_fault_cuts_body_into_malformed_xml_once_when_set():
    params = {"search_query": CV_DAY, "max_results": 100, **ASCENDING}
    with ReplayServer(faults=[Fault("truncated")]).start() as s:
        cut = fetch(s, **params)
        whole = fetch(s, **params)
    assert cut.status_code == whole.status_code == 200
    assert len(cut.content) == len(whole.content) // 2
    assert without_feed_updated(whole.content).startswith(without_feed_updated(cut.content))
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(cut.content)
    assert len(entry_ids(feed_of(whole))) == 100


def test_arxiv_client_accepts_truncated_page_silently_when_it_recovers():
    # Characterises arxiv==4.0.2: its lxml parser runs with recover=True, so a truncated page is
    # not an error; it yields the complete entries and pages on from there. The pipeline cannot
    # rely on the client to notice truncation.
    with ReplayServer(faults=[Fault("truncated")]).start() as s:
        results = list(client_for(s).results(day_search()))
        assert len(results) == 353
        starts = [int(r["params"]["start"]) for r in s.requests]
    assert starts[0] == 0 and 0 < starts[1] < 100  # resumed after the partial first page


def test_empty_page_fault_only_empties_later_pages_when_set():
    params = {"search_query": CV_DAY, "max_results": 100, **ASCENDING}
    with ReplayServer(faults=[Fault("empty-page")]).start() as s:
        first = feed_of(fetch(s, **params, start=0))
        assert len(entry_ids(first)) == 100  # start=0 is not eligible and uses no count
        empty = feed_of(fetch(s, **params, start=100))
        assert header(empty) == (353, 100, 100)
        assert entry_ids(empty) == []
        assert len(entry_ids(feed_of(fetch(s, **params, start=100)))) == 100
        with pytest.raises(arxiv.UnexpectedEmptyPageError):
            s.set_faults([Fault("empty-page")])
            list(client_for(s).results(day_search()))


def test_fault_with_count_zero_fires_on_every_request_when_set():
    with ReplayServer(faults=[Fault("503", count=0)]).start() as s:
        assert {fetch(s, search_query=CV_DAY).status_code for _ in range(5)} == {503}


def test_faults_fire_in_list_order_when_several_are_set():
    faults = [Fault("429"), Fault("503"), Fault("error-feed")]
    with ReplayServer(faults=faults).start() as s:
        statuses = [fetch(s, search_query=CV_DAY).status_code for _ in range(4)]
    assert statuses == [429, 503, 400, 200]


def test_set_faults_replaces_faults_when_called_at_runtime():
    with ReplayServer().start() as s:
        assert fetch(s, search_query=CV_DAY).status_code == 200
        s.set_faults([Fault("429")])
        assert fetch(s, search_query=CV_DAY).status_code == 429
        s.set_faults([])
        assert fetch(s, search_query=CV_DAY).status_code == 200


def test_client_recovers_when_retrying_through_transient_faults():
    faults = [Fault("429"), Fault("503"), Fault("reset"), Fault("empty-page")]
    with ReplayServer(faults=faults).start() as s:
        results = list(client_for(s, retries=4).results(day_search()))
        assert len(results) == 353
        assert [r["fault"] for r in s.requests if r["fault"]] == [f.kind for f in faults]


def test_late_paper_fault_hides_one_paper_from_first_fetch_only_when_set(entries):
    cv = [e for e in entries if "cs.CV" in e["categories"]]
    late_id = max(e["id"] for e in cv)
    n_late_rows = sum(e["id"] == late_id for e in cv)
    with ReplayServer(faults=[Fault("late-paper")]).start() as s:
        client = client_for(s)
        first = list(client.results(day_search()))
        totals = {
            header(feed_of(fetch(s, search_query=CV_DAY, start=st, max_results=100, **ASCENDING)))[
                0
            ]
            for st in (100, 200)
        }
        second = list(client.results(day_search()))
    assert len(first) == 353 - n_late_rows
    assert {r.entry_id for r in second} - {r.entry_id for r in first} == {
        f"http://arxiv.org/abs/{late_id}v1"
    }
    assert totals == {353 - n_late_rows}  # later pages of the first run stay consistent
    assert len(second) == 353
    assert len({r.entry_id for r in second}) == 267


def test_late_paper_fault_keeps_run_consistent_when_other_queries_interleave(entries):
    query = {"search_query": CV_DAY, "max_results": 100, **ASCENDING}
    other = {"search_query": "cat:cs.GR", "max_results": 100}
    with ReplayServer(faults=[Fault("late-paper")]).start() as s:
        first_page = feed_of(fetch(s, **query))
        other_page = feed_of(fetch(s, **other))  # count used up: a new query sees everything
        later_page = feed_of(fetch(s, **query, start=100))  # still the first run
        rerun = feed_of(fetch(s, **query))  # from start=0 again: a new run
    n_gr = sum("cs.GR" in e["categories"] for e in entries)
    assert header(other_page)[0] == n_gr
    assert header(first_page)[0] == header(later_page)[0] < 353
    assert header(rerun)[0] == 353


def test_late_paper_fault_is_not_used_up_when_first_page_was_faulted():
    with ReplayServer(faults=[Fault("503"), Fault("late-paper")]).start() as s:
        client = client_for(s, retries=1)
        first = list(client.results(day_search()))
        second = list(client.results(day_search()))
    assert len({r.entry_id for r in first}) == 266
    assert len({r.entry_id for r in second}) == 267


def test_fault_parse_reads_kind_and_count_when_given_cli_specs():
    assert Fault.parse("429") == Fault("429", 1)
    assert Fault.parse("late-paper:3") == Fault("late-paper", 3)
    assert Fault.parse("truncated:0") == Fault("truncated", 0)
    for bad in ("slowish", "429:x", "429:-1", ""):
        with pytest.raises(ValueError):
            Fault.parse(bad)


# --- days, CLI ------------------------------------------------------------------------------------


def test_day_directories_and_extra_days_are_served_when_given(tmp_path, entries):
    lines = BUNDLED_DAY.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "2026-07-01.jsonl").write_text("".join(lines[:5]), encoding="utf-8")
    with ReplayServer(days=[tmp_path, BUNDLED_DAY]).start() as s:
        assert len(s.entries) == 5 + 674
        july = feed_of(fetch(s, search_query="submittedDate:[202606300000 TO 202606302359]"))
        june = feed_of(fetch(s, search_query=WINDOW))
    assert header(july)[0] == 5
    assert header(june)[0] == 674


def test_cli_serves_until_terminated_when_started_with_port_zero():
    with launched("tests.servers.arxiv_replay", "--port", "0", "--fault", "429:1") as line:
        m = re.fullmatch(r"arxiv-replay listening on (http://127\.0\.0\.1:(\d+)/api/query)\n", line)
        assert m and int(m[2]) > 0, line
        assert requests.get(m[1], params={"search_query": CV_DAY}, timeout=10).status_code == 429
        resp = requests.get(m[1], params={"search_query": CV_DAY}, timeout=10)
        assert header(feed_of(resp)) == (353, 0, 10)
