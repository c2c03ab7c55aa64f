"""Analysts' access: query output formats, notebook connections, search, the data dictionary."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tasks.result_formats import (
    TABLE_ROWS,
    format_csv,
    format_json,
    format_markdown,
    format_table,
)
from tests.test_catalog import small_lake
from tests.test_cli import run_cli

COLUMNS = ["digest_date", "title", "authors", "score", "note"]
ROWS = [
    (date(2026, 6, 30), 'Pipes | "quotes", commas\nand lines', ["Ada", "Alan"], 1.5, None),
    (date(2026, 7, 1), "<b>Bold</b> [link](x)", [], Decimal("0.25"), "ok"),
]


def test_csv_parses_back_to_every_row_in_column_order():
    parsed = list(csv.reader(io.StringIO(format_csv(COLUMNS, ROWS))))
    assert parsed[0] == COLUMNS
    assert parsed[1] == ["2026-06-30", ROWS[0][1], '["Ada", "Alan"]', "1.5", ""]
    assert parsed[2] == ["2026-07-01", ROWS[1][1], "[]", "0.25", "ok"]


def test_json_parses_back_to_objects_with_native_values():
    parsed = json.loads(format_json(COLUMNS, ROWS))
    assert [list(record) for record in parsed] == [COLUMNS, COLUMNS]
    assert parsed[0] == {
        "digest_date": "2026-06-30",
        "title": ROWS[0][1],
        "authors": ["Ada", "Alan"],
        "score": 1.5,
        "note": None,
    }
    assert parsed[1]["score"] == 0.25 and parsed[1]["authors"] == []


def test_json_keeps_duplicate_column_names_apart_and_has_no_nan():
    parsed = json.loads(format_json(["a", "a", "b"], [(1, 2, float("nan"))]))
    assert parsed == [{"a": 1, "a_2": 2, "b": None}]
    assert json.loads(format_json(["a"], [])) == []


def test_markdown_table_has_one_line_per_row_and_shows_untrusted_text_literally():
    lines = format_markdown(COLUMNS, ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert lines[0] == "| digest\\_date | title | authors | score | note |"
    assert lines[1] == "|---|---|---|---|---|"
    # Each row has exactly the header's cell separators: an escaped `|` is no separator.
    for line in lines[2:]:
        assert line.replace("\\|", "").count("|") == len(COLUMNS) + 1
    assert "Pipes \\| " in lines[2] and "and lines" in lines[2]
    assert "\\<b>Bold" in lines[3] and "\\[link\\]" in lines[3]


def test_table_stops_at_its_row_cap_and_says_how_many_rows_it_left_out():
    rows = [(i, f"paper {i}") for i in range(TABLE_ROWS + 34)]
    lines = format_table(["n", "title"], rows).splitlines()
    assert len(lines) == 2 + TABLE_ROWS + 1
    assert lines[-1].startswith("… 34 more rows not shown (134 rows); use --format csv")
    small = format_table(["n", "title"], rows[:3]).splitlines()
    assert small[-1] == "(3 rows)" and len(small) == 2 + 3 + 1


def test_table_cuts_long_cells_visibly_and_keeps_rows_on_one_line():
    lines = format_table(["title"], [("x" * 80 + "\nsecond line",)]).splitlines()
    assert lines[2].endswith("…") and len(lines[2]) == 60 and len(lines) == 4


@pytest.mark.parametrize("output", ["csv", "json", "markdown"])
def test_cli_query_formats_print_every_row_and_write_no_file(settings, capsys, output):
    small_lake(settings)
    sql = "SELECT * FROM range(250) t(n) ORDER BY n"
    before = sorted(p.name for p in settings_dir(settings).iterdir())
    code, out, err = run_cli(capsys, "query", sql, "--format", output)
    assert code == 0 and err == ""
    if output == "csv":
        assert [r[0] for r in csv.reader(io.StringIO(out))] == ["n"] + [str(n) for n in range(250)]
    elif output == "json":
        assert [r["n"] for r in json.loads(out)] == list(range(250))
    else:
        assert len(out.splitlines()) == 252
    assert sorted(p.name for p in settings_dir(settings).iterdir()) == before


def test_cli_query_table_says_how_many_rows_it_left_out(settings, capsys):
    small_lake(settings)
    code, out, _ = run_cli(capsys, "query", "SELECT * FROM range(250) t(n)")
    assert code == 0 and out.splitlines()[-1].startswith("… 150 more rows not shown (250 rows)")


def settings_dir(settings):
    return Path(settings.duckdb_path).parent


# -- the AWS credential chain ----------------------------------------------------------------

PROFILE_KEY_ID = "PROFILEKEYID0000"
PROFILE_SECRET = "profile-secret-do-not-leak"


@pytest.fixture
def profile_lake(settings_env, s3_bucket, monkeypatch, tmp_path):
    """A registered S3 lake on moto, then no AWS key variables: only a profile in a temporary
    shared credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, AWS_PROFILE)."""
    from arxiv_digest.settings import load_settings
    from tests.test_query_readonly import lake_with_papers

    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    lake_with_papers(load_settings())  # the pipeline writes with its keys
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    credentials, config = tmp_path / "aws-credentials", tmp_path / "aws-config"
    credentials.write_text(
        f"[analyst]\naws_access_key_id = {PROFILE_KEY_ID}\n"
        f"aws_secret_access_key = {PROFILE_SECRET}\n",
        encoding="utf-8",
    )
    config.write_text("[profile analyst]\nregion = us-east-1\n", encoding="utf-8")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "analyst")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role probe here
    settings = load_settings()
    assert settings.aws_access_key_id is None and settings.aws_endpoint_url
    return settings


def test_s3_catalog_reads_with_credentials_from_a_profile_file(profile_lake):
    from tasks.catalog import open_analyst_connection, run_query

    assert run_query(profile_lake, "SELECT count(*) FROM papers")[1] == [(2,)]
    with open_analyst_connection(profile_lake) as con:
        provider, secret = con.execute(
            "SELECT provider, secret_string FROM duckdb_secrets() WHERE name = 'lake_s3'"
        ).fetchone()
        shown = repr(con.execute("SELECT name, value FROM duckdb_settings()").fetchall())
    # The chain found the profile's key (its secret stays redacted), at the settings' endpoint.
    assert provider == "credential_chain" and f"key_id={PROFILE_KEY_ID}" in secret
    endpoint = profile_lake.aws_endpoint_url.removeprefix("http://")
    assert f"endpoint={endpoint}" in secret
    assert PROFILE_SECRET not in secret and PROFILE_SECRET not in shown


def test_s3_catalog_without_any_credentials_is_one_line_error(profile_lake, monkeypatch, capsys):
    from tests.test_cli import assert_one_line_error

    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    code, out, err = run_cli(capsys, "query", "SELECT count(*) FROM papers")
    assert_one_line_error(code, err, "AWS credential chain found no credentials", "AWS_PROFILE")
    assert out == ""


# -- full-text search ------------------------------------------------------------------------

DAY = date(2026, 6, 30)


def bundled_day_papers() -> list:
    """The bundled real day (tests/servers/data, 2026-06-30) as the pipeline stores it: its cs.CV
    listing, deduplicated (267 papers)."""
    return list(bundled_day_result().papers)


def bundled_day_result():
    """The bundled day's deduplication: its papers and its dedup_log."""
    from tasks.dedup import dedupe_papers
    from tests.servers.arxiv_replay import BUNDLED_DAY, load_listing_day, paper_of

    candidates = [paper_of(e) for e in load_listing_day(BUNDLED_DAY) if "cs.CV" in e["categories"]]
    return dedupe_papers(DAY, candidates)


@pytest.fixture
def bundled_day(settings):
    """The bundled day in a local lake, registered."""
    from tasks.catalog import refresh_catalog
    from tasks.lake import dedup_log_table, open_lake, papers_table

    lake = open_lake(settings)
    result = bundled_day_result()
    lake.write_day("papers", DAY, papers_table(result.papers))
    lake.write_day("dedup_log", DAY, dedup_log_table(result))
    refresh_catalog(settings, lake)
    return settings


def fts_reference_scores(settings, text: str) -> list[tuple[str, float]]:
    """match_bm25 of the fts extension's own index (create_fts_index) over the same papers,
    best first: what the search index must reproduce."""
    import duckdb

    from tasks.catalog import load_extension
    from tasks.lake import Lake

    lake = Lake.from_settings(settings)
    con = duckdb.connect()
    try:
        load_extension(con, "fts")
        con.execute(
            "CREATE TABLE p AS SELECT arxiv_id, title, abstract FROM read_parquet(?)",
            [lake.glob("papers")],
        )
        con.execute("PRAGMA create_fts_index('p', 'arxiv_id', 'title', 'abstract')")
        return con.execute(
            "SELECT arxiv_id, score FROM (SELECT arxiv_id, "
            "fts_main_p.match_bm25(arxiv_id, ?) AS score FROM p) WHERE score IS NOT NULL "
            "ORDER BY score DESC, arxiv_id",
            [text],
        ).fetchall()
    finally:
        con.close()


def search(settings, text: str, limit: int = 1000) -> list[tuple]:
    from arxiv_digest.resources import analyst_queries
    from tasks.catalog import run_query

    params = {"text": text, "start": "2000-01-01", "end": "2100-01-01", "limit": limit}
    return run_query(settings, analyst_queries()["search_papers"], params)[1]


@pytest.mark.parametrize(
    "text",
    ["gaussian splatting", "Diffusion models for video", "3D-GS", "the", "naïve café résumé"],
)
def test_search_scores_are_the_fts_extensions_bm25(bundled_day, text):
    expected = fts_reference_scores(bundled_day, text)
    got = search(bundled_day, text)
    assert [(r[3], r[1]) for r in got] == [(i, round(s, 4)) for i, s in expected]
    assert [r[0] for r in got] == list(range(1, len(got) + 1))


def test_search_command_ranks_the_bundled_days_papers_on_a_topic(bundled_day, capsys):
    code, out, err = run_cli(capsys, "search", "gaussian splatting", "--format", "json")
    assert code == 0 and err == ""
    found = json.loads(out)
    assert len(found) == 20 and [r["rank"] for r in found] == list(range(1, 21))
    scores = [r["score"] for r in found]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert all(r["digest_date"] == "2026-06-30" for r in found)
    # On topic: every one of the best ten is about splatting, most of them Gaussian splatting.
    titles = [r["title"].lower() for r in found[:10]]
    assert all("splat" in t for t in titles)
    assert sum("gaussian splatting" in t for t in titles) >= 8


def test_search_command_keeps_to_its_date_range_and_limit(bundled_day, capsys):
    code, out, _ = run_cli(capsys, "search", "diffusion", "--limit", "3", "--format", "csv")
    assert code == 0 and len(list(csv.reader(io.StringIO(out)))) == 1 + 3
    code, out, _ = run_cli(
        capsys, "search", "diffusion", "--start", "2026-07-01", "--format", "json"
    )
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--start", "2026-7-1"], "start date '2026-7-1' is not a valid date"),
        (["--start", "2026-07-02", "--end", "2026-07-01"], "is after --end"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_search_command_rejects_bad_arguments(bundled_day, capsys, argv, needle):
    from tests.test_cli import assert_one_line_error

    code, out, err = run_cli(capsys, "search", "diffusion", *argv)
    assert_one_line_error(code, err, needle)
    assert out == ""


# -- named queries over the search index answer as over the lake's views ---------------------

# The named queries as they read the papers views before the catalog's copy and word index
# (git history of sql/queries/): each must still give exactly these answers.
PLAIN_QUERIES = {
    "keyword_trend_by_week": """
        SELECT date_trunc('week', digest_date) AS week,
               count(*) AS papers,
               count(*) FILTER (WHERE title ILIKE '%' || $keyword || '%'
                                   OR abstract ILIKE '%' || $keyword || '%') AS mentioning,
               round(mentioning / count(*), 4) AS share
        FROM papers GROUP BY week ORDER BY week""",
    "top_authors": """
        SELECT author, count(*) AS papers, min(digest_date) AS first_seen,
               max(digest_date) AS last_seen
        FROM (SELECT digest_date, unnest(authors) AS author FROM papers
              WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE))
        GROUP BY author ORDER BY papers DESC, author LIMIT CAST($limit AS INTEGER)""",
    "cross_list_share": """
        SELECT digest_date, count(*) AS papers,
               count(*) FILTER (WHERE primary_category <> $category) AS cross_listed,
               round(cross_listed / count(*), 4) AS cross_list_share
        FROM papers WHERE list_contains(categories, $category)
        GROUP BY digest_date ORDER BY digest_date""",
    "dedup_report": """
        SELECT reason, count(*) AS dropped, count(DISTINCT arxiv_id) AS papers,
               list(DISTINCT arxiv_id ORDER BY arxiv_id)[1:5] AS examples,
               any_value(detail) AS sample_detail
        FROM dedup_log WHERE digest_date = CAST($day AS DATE)
        GROUP BY reason ORDER BY dropped DESC, reason""",
    "papers_per_category_per_day": """
        SELECT digest_date, category, count(*) AS papers FROM paper_categories
        WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
        GROUP BY ALL ORDER BY digest_date, papers DESC, category""",
}

EDGE_DAY = date(2026, 7, 6)
# Titles and abstracts where case folding, whitespace and LIKE wildcards matter.
EDGE_TEXTS = [
    ("İstanbul Straße: ß and ẞ", "Tabs\tand\nnew lines\r\nand\x0bvertical and\u00a0no-break"),
    ("NAÏVE Café", "100% of 3D-GS_models; a\\b and C:\\\\path; (brackets) [x] {y} 'q' \"dq\""),
    ("Σίσυφος ΣΊΣΥΦΟΣ", "Gaussian  splatting   with   spaces; gaussian-splatting; splat_ing"),
    ("Empty abstract", ""),
]
KEYWORDS = [
    "diffusion",
    "DIFFUSION",
    "gaussian splatting",
    "Gaussian  Splatting",
    "e",
    "",
    " ",
    "%",
    "_",
    "3d",
    "3D-GS",
    "gs_models",
    "splat_ing",
    "splat%ing",
    "a\\b",
    "c:\\\\",
    "naïve",
    "NAIVE",
    "café",
    "i̇stanbul",
    "İSTANBUL",
    "straße",
    "STRASSE",
    "ẞ",
    "σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "tabs\tand",
    "lines\r",
    "and\x0bvertical",
    "and\u00a0no",
    "(brackets)",
    "'q'",
    '"dq"',
    "no such word xyz",
]


@pytest.fixture
def two_days(bundled_day):
    """The bundled day plus a day of papers with awkward text, registered."""
    from tasks.catalog import refresh_catalog
    from tasks.lake import open_lake, papers_table
    from tests.conftest import make_paper

    lake = open_lake(bundled_day)
    papers = [
        make_paper(
            f"2607.0000{n}",
            published="2026-07-05T10:00:00",
            title=title,
            abstract=abstract,
            categories=("cs.CV", "cs.LG") if n % 2 else ("cs.LG", "cs.CV"),
            authors=("Ada Lovelace", "Ada Lovelace", "Émile Zola"),
        )
        for n, (title, abstract) in enumerate(EDGE_TEXTS)
    ]
    lake.write_day("papers", EDGE_DAY, papers_table(papers))
    refresh_catalog(bundled_day, lake)
    return bundled_day


def both_answers(con, name, params):
    """The named query's rows and its plain form's, on one analyst connection."""
    from arxiv_digest.resources import analyst_queries

    return tuple(
        con.execute(sql, params).fetchall()
        for sql in (analyst_queries()[name], PLAIN_QUERIES[name])
    )


def test_keyword_trend_by_week_answers_as_ilike_over_papers(two_days):
    from tasks.catalog import open_analyst_connection

    with open_analyst_connection(two_days) as con:
        answers = [both_answers(con, "keyword_trend_by_week", {"keyword": k}) for k in KEYWORDS]
    for keyword, (indexed, plain) in zip(KEYWORDS, answers, strict=True):
        assert indexed == plain, keyword
    # The keywords do tell papers apart (a query answering "none" everywhere would pass above).
    counts = {k: sum(r[2] for r in a[0]) for k, a in zip(KEYWORDS, answers, strict=True)}
    assert counts["diffusion"] > 10 and counts["no such word xyz"] == 0 and counts[""] == 271
    assert counts["İSTANBUL"] == 1 and counts["naïve"] >= 1
    assert counts["straße"] == 1 and counts["splat%ing"] >= counts["splat_ing"] > 0


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("top_authors", {"start": "2026-06-01", "end": "2026-07-31", "limit": "25"}),
        ("top_authors", {"start": "2026-07-01", "end": "2026-07-31", "limit": "5"}),
        ("cross_list_share", {"category": "cs.CV"}),
        ("cross_list_share", {"category": "cs.LG"}),
        ("papers_per_category_per_day", {"start": "2026-06-01", "end": "2026-07-31"}),
        ("papers_per_category_per_day", {"start": "2026-07-01", "end": "2026-07-06"}),
        ("dedup_report", {"day": "2026-06-30"}),
    ],
)
def test_named_query_over_the_catalog_copy_answers_as_over_the_views(two_days, name, params):
    from tasks.catalog import open_analyst_connection

    with open_analyst_connection(two_days) as con:
        indexed, plain = both_answers(con, name, params)
    if name == "dedup_report":  # its sample_detail is any_value(): any of the group's details
        indexed, plain = [r[:-1] for r in indexed], [r[:-1] for r in plain]
    assert indexed == plain and plain


def index_state(settings):
    """What the search index holds, by arxiv id (docids differ between a sync and a rebuild)."""
    from tasks.catalog import open_catalog

    with open_catalog(settings, read_only=True) as con:
        return {
            "docs": con.execute(
                "SELECT digest_date, arxiv_id, title, len FROM search.docs ORDER BY arxiv_id"
            ).fetchall(),
            "postings": con.execute(
                "SELECT d.arxiv_id, t.term, p.tf, p.len FROM search.postings p "
                "JOIN search.docs d USING (docid) JOIN search.vocabulary t USING (termid) "
                "ORDER BY ALL"
            ).fetchall(),
            "words": con.execute(
                "SELECT d.arxiv_id, w.word FROM search.word_docs wd "
                "JOIN search.docs d USING (docid) JOIN search.words w USING (wordid) ORDER BY ALL"
            ).fetchall(),
            "papers": con.execute("SELECT count(*) FROM papers").fetchone()[0],
            "dedup_log": con.execute("SELECT * FROM mirror.dedup_log ORDER BY ALL").fetchall(),
            "dedup_log_view": con.execute("SELECT * FROM dedup_log ORDER BY ALL").fetchall(),
        }


def test_search_index_follows_changed_and_removed_days_as_a_rebuild_makes_it(two_days, monkeypatch):
    import tasks.search
    from tasks.catalog import rebuild_catalog, refresh_catalog
    from tasks.lake import dedup_log_table, open_lake, papers_table
    from tests.conftest import make_paper

    monkeypatch.setattr(tasks.search, "UNSORTED_ROWS", 10**9)  # no sort: appended postings
    lake = open_lake(two_days)
    replaced = [make_paper("2607.10001", published="2026-07-05T11:00:00", title="Replaced day")]
    lake.write_day("papers", EDGE_DAY, papers_table(replaced))
    lake.write_day("papers", date(2026, 7, 7), papers_table([make_paper("2607.20001")]))
    drops = bundled_day_result()
    lake.write_day("dedup_log", EDGE_DAY, dedup_log_table(drops))  # a copied dataset changes too
    refresh_catalog(two_days, lake)
    lake.fs.delete_file(lake.day_path("papers", date(2026, 7, 7)))
    lake.fs.delete_file(lake.day_path("dedup_log", DAY))
    refresh_catalog(two_days, lake)
    synced = index_state(two_days)
    assert synced["dedup_log"] == synced["dedup_log_view"] and len(synced["dedup_log"]) == 86
    assert synced["papers"] == 268 and len(synced["docs"]) == 268
    assert ("2607.10001", "replac") in {(a, t) for a, t, _, _ in synced["postings"]}
    assert not any(arxiv_id.startswith("2607.0") for _, arxiv_id, *_ in synced["docs"])
    rebuild_catalog(two_days, lake)
    assert index_state(two_days) == synced


# -- connect(): the catalog in a notebook ------------------------------------------------------


def test_notebook_reads_views_and_named_queries_into_pandas(two_days):
    import pandas as pd

    from arxiv_digest import connect

    with connect() as con:  # settings from the environment, as in a notebook
        papers = con.sql(
            "SELECT digest_date, arxiv_id, title, categories FROM papers ORDER BY arxiv_id"
        ).df()
        per_category = (
            papers.explode("categories").groupby("categories")["arxiv_id"].count().sort_values()
        )
        authors = con.named("top_authors", start="2026-06-01", end="2026-07-31", limit=3).df()
        trend = con.sql("SELECT * FROM paper_categories WHERE category = $c", {"c": "cs.LG"}).df()
        found = con.named(
            "search_papers",
            text="gaussian splatting",
            start="2026-01-01",
            end="2026-12-31",
            limit=5,
        ).arrow()
    assert isinstance(papers, pd.DataFrame) and len(papers) == 271
    assert list(papers.columns) == ["digest_date", "arxiv_id", "title", "categories"]
    assert per_category["cs.CV"] == 271
    assert list(authors.columns) == ["author", "papers", "first_seen", "last_seen"]
    assert authors.iloc[0]["author"] == "Ada Lovelace" and authors.iloc[0]["papers"] == 8
    assert (
        len(trend) > 4
        and found.num_rows == 5
        and found.column("rank").to_pylist() == [1, 2, 3, 4, 5]
    )


@pytest.fixture
def notebook(local, settings):
    from arxiv_digest import connect

    con = connect(settings)
    yield con
    con.close()


@pytest.fixture
def local(settings, tmp_path):
    """The lake and outside paths of tests/test_query_readonly.py's refusal cases."""
    from tests.test_query_readonly import local_paths

    return local_paths(settings, tmp_path)


def refused_statements():
    from tests.test_query_readonly import REFUSED_LOCAL

    return REFUSED_LOCAL


@pytest.mark.parametrize(
    ("sql", "needle"), list(refused_statements().values()), ids=list(refused_statements())
)
def test_notebook_connection_refuses_what_query_refuses_and_writes_nothing(
    notebook, local, tmp_path, sql, needle
):
    from arxiv_digest.errors import CatalogError
    from tests.test_query_readonly import files_under

    before = files_under(tmp_path)
    with pytest.raises(CatalogError) as refused:
        notebook.sql(sql.format(**local))
    assert needle in str(refused.value)
    assert files_under(tmp_path) == before
    assert notebook.sql("SELECT count(*) FROM papers").fetchall() == [(2,)]


@pytest.mark.parametrize(
    "method",
    [
        "write_csv",
        "write_parquet",
        "to_csv",
        "to_parquet",
        "create",
        "create_view",
        "insert",
        "insert_into",
        "update",
        "query",
        "to_table",
        "to_view",
        "execute",
        "sql_query",
    ],
)
def test_notebook_results_only_fetch(notebook, method):
    result = notebook.sql("SELECT * FROM papers")
    assert not hasattr(result, method)
    assert result.shape == (2, len(result.columns)) and result.fetchone() is not None


@pytest.mark.parametrize(
    "sql",
    [
        "SET lock_configuration = false",
        "SELECT * FROM read_text('/etc/passwd')",
        "COPY (SELECT 1) TO '{out}/copy.csv'",
        "CREATE TABLE t AS SELECT 1",
        "INSTALL fts",
    ],
)
def test_notebook_duckdb_refuses_even_past_the_statement_check(notebook, local, tmp_path, sql):
    """The private DuckDB connection itself: read-only copy, locked settings, no outside files."""
    import duckdb

    from tests.test_query_readonly import files_under

    before = files_under(tmp_path)
    with pytest.raises(duckdb.Error):
        notebook._con.execute(sql.format(**local)).fetchall()
    assert files_under(tmp_path) == before


def test_notebook_holds_no_lock_on_the_catalog_and_cleans_up(notebook, settings):
    """A run registers while a notebook is open (the notebook works on its own copy)."""
    from tasks.catalog import open_catalog, refresh_catalog
    from tasks.lake import open_lake

    assert notebook.snapshot != Path(settings.duckdb_path) and notebook.snapshot.exists()
    refresh_catalog(settings, open_lake(settings))  # a writer, in this very process
    with open_catalog(settings) as writer:
        writer.execute("INSERT INTO days (digest_date, status) VALUES (DATE '2020-01-01', 'x')")
    assert notebook.sql("SELECT count(*) FROM days").fetchall() == [(0,)]  # its snapshot
    notebook.close()
    assert not notebook.snapshot.parent.exists() and notebook.closed
    from arxiv_digest.errors import CatalogError

    with pytest.raises(CatalogError, match="closed"):
        notebook.sql("SELECT 1")


def test_notebook_on_s3_with_a_profile_shows_no_credentials(profile_lake):
    from arxiv_digest import connect
    from arxiv_digest.errors import CatalogError

    with connect(profile_lake) as con:
        assert con.sql("SELECT count(*) FROM papers").fetchall() == [(2,)]
        shown = repr(con.sql("SELECT name, value FROM duckdb_settings()").fetchall())
        with pytest.raises(CatalogError, match="duckdb_secrets"):
            con.sql("SELECT * FROM duckdb_secrets()")
    assert PROFILE_SECRET not in shown and PROFILE_KEY_ID not in shown


# -- the data dictionary -----------------------------------------------------------------------


def test_schema_command_lists_every_dataset_view_and_table_with_every_column(clean_env, capsys):
    from tasks.catalog import RUNS_SCHEMA
    from tasks.lake import SCHEMAS

    code, out, _ = run_cli(capsys, "schema")
    assert code == 0
    heads = {line.split(" (")[0]: line for line in out.splitlines() if line and line[0] != " "}
    expected = [*SCHEMAS, "paper_categories", "day_states", "digest_index", "runs", "days"]
    assert all(name in heads for name in expected)
    assert all("(dataset; key " in heads[name] for name in SCHEMAS)
    code, out, _ = run_cli(capsys, "schema", "--format", "json")
    listed = {(r["relation"], r["column"]): r for r in json.loads(out)}
    for name, schema in SCHEMAS.items():
        for column in [*schema.names, "digest_date"]:
            assert listed[(name, column)]["meaning"], (name, column)
    assert {c for r, c in listed if r == "runs"} == set(RUNS_SCHEMA.names)
    assert listed[("papers", "published")]["type"] == "TIMESTAMP WITH TIME ZONE"


def test_every_column_of_every_relation_has_a_meaning_and_no_meaning_is_stale():
    from tasks.dictionary import data_dictionary, load_meanings, problems

    assert problems(data_dictionary(), load_meanings()) == []


def test_a_new_column_or_dataset_without_a_meaning_is_named(monkeypatch):
    import pyarrow as pa

    from tasks.dictionary import data_dictionary, load_meanings, problems
    from tasks.lake import SCHEMAS

    monkeypatch.setitem(
        SCHEMAS, "papers", SCHEMAS["papers"].append(pa.field("new_column", pa.string()))
    )
    monkeypatch.setitem(SCHEMAS, "new_dataset", pa.schema([("term", pa.string())]))
    monkeypatch.setattr("tasks.catalog.LAKE_TABLES", tuple(SCHEMAS))
    meanings = load_meanings()
    meanings["rankings"]["columns"]["not_a_column"] = "a column that does not exist"
    found = problems(data_dictionary(), meanings)
    assert (
        "papers.new_column: no meaning" in found and "search.docs.new_column: no meaning" in found
    )
    assert "new_dataset: no `about` line" in found and "new_dataset.term: no meaning" in found
    assert "rankings.not_a_column: described but not a column" in found


def test_readme_data_dictionary_is_the_generated_one():
    from tasks.dictionary import README, data_dictionary, readme_table

    text = README.read_text(encoding="utf-8")
    assert readme_table(data_dictionary()) in text, "run `python -m tasks.dictionary`"


def test_changed_days_are_those_whose_files_differ():
    from tasks.lake import DayFile
    from tasks.search import changed_days

    a, b, c = date(2026, 6, 29), date(2026, 6, 30), date(2026, 7, 1)
    stored = [DayFile("x/a.parquet", a, 10, 1), DayFile("x/b.parquet", b, 10, 1)]
    current = [
        DayFile("x/a.parquet", a, 10, 1),  # unchanged
        DayFile("x/b.parquet", b, 10, 2),  # rewritten
        DayFile("x/c.parquet", c, 5, 1),  # new
    ]
    assert changed_days(stored, current) == {b, c}
    assert changed_days(current, current[:1]) == {b, c}  # gone from the lake
    assert changed_days(current, current) == set()


def test_search_index_sorts_its_postings_when_enough_were_appended(two_days, monkeypatch):
    import tasks.search
    from tasks.catalog import open_catalog, refresh_catalog
    from tasks.lake import open_lake, papers_table

    lake = open_lake(two_days)
    before = search(two_days, "gaussian splatting")
    monkeypatch.setattr(tasks.search, "UNSORTED_ROWS", 0)
    papers = lake.read_day("papers", EDGE_DAY)
    lake.write_day("papers", EDGE_DAY, papers_table([]))
    refresh_catalog(two_days, lake)
    lake.write_day("papers", EDGE_DAY, papers)  # the day again: its papers get new docids
    refresh_catalog(two_days, lake)
    with open_catalog(two_days, read_only=True) as con:
        sorted_through = con.execute("SELECT sorted_through FROM search.state").fetchall()
        last = con.execute("SELECT max(docid) FROM search.docs").fetchone()[0]
        order = con.execute("SELECT termid, docid FROM search.postings").fetchall()
    assert sorted_through == [(last,)] and order == sorted(order)
    assert search(two_days, "gaussian splatting") == before


def test_notebook_without_a_catalog_says_what_to_do_and_leaves_no_copy(
    settings, monkeypatch, tmp_path
):
    import tempfile

    from arxiv_digest import connect
    from arxiv_digest.errors import CatalogError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    with pytest.raises(CatalogError, match="catalog rebuild"):
        connect(settings)
    assert list((tmp_path / "temp").iterdir()) == []
