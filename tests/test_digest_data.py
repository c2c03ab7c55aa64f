"""A day's digest read back from the lake as structured data (tasks/digest_data.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest

from tasks.digest_data import (
    GIST_CHARS,
    analysis_gist,
    first_sentence,
    load_day_digest,
    shorten,
)
from tasks.digest_format import parse_digest
from tasks.import_digest import digest_row_from_markdown
from tasks.lake import Lake
from tasks.render import failed_analysis_placeholder, render_digest
from tests.conftest import REFERENCE_DIGEST
from tests.digest_days import DayPaper, day_papers, write_digest_day

DAY = date(2026, 6, 30)


@pytest.fixture
def lake(settings) -> Lake:
    return Lake.from_settings(settings)


def test_digest_is_the_published_markdown_with_notes_from_the_datasets(lake):
    papers = day_papers(DAY, 4)
    # Rank order is not the order written: the second paper is ranked first.
    markdown = write_digest_day(lake, DAY, [papers[1], papers[0], papers[3], papers[2]])
    loaded = load_day_digest(lake, DAY)
    assert loaded is not None
    assert loaded.digest == parse_digest(markdown) and render_digest(loaded.digest) == markdown
    assert [p.arxiv_id for p in loaded.digest.papers] == [
        f"{papers[i].paper.arxiv_id}v1" for i in (1, 0, 3, 2)
    ]
    assert loaded.language == "zh" and loaded.title == f"Arxiv Computer Vision Papers - {DAY}"
    assert loaded.content_hash == hashlib.sha256(markdown.encode()).hexdigest()
    first = loaded.notes[f"{papers[1].paper.arxiv_id}v1"]
    assert first.gist == papers[1].contribution
    assert first.primary_category == papers[1].paper.primary_category


def test_failed_analysis_shows_the_placeholder_as_the_markdown_does(lake):
    papers = day_papers(DAY, 2)
    failed = DayPaper(papers[1].paper, None, papers[1].findings)
    markdown = write_digest_day(lake, DAY, [papers[0], failed], language="en")
    loaded = load_day_digest(lake, DAY)
    assert loaded is not None
    assert loaded.digest.papers[1].analysis_md == failed_analysis_placeholder("en")
    assert render_digest(loaded.digest) == markdown
    # No analysis, no gist from it: the abstract's first sentence stands in.
    assert loaded.notes[loaded.digest.papers[1].arxiv_id].gist == first_sentence(
        failed.paper.abstract
    )


def test_imported_digest_is_read_from_its_markdown_alone(lake):
    text = REFERENCE_DIGEST.read_text(encoding="utf-8")
    day, row = digest_row_from_markdown(text)
    lake.write_day("digests", day, lake.rows("digests", [row]))
    loaded = load_day_digest(lake, day)
    assert loaded is not None
    assert loaded.digest == parse_digest(text) and loaded.language == "zh"
    paper = loaded.digest.papers[0]
    assert loaded.notes[paper.arxiv_id].gist == first_sentence(paper.abstract)
    assert loaded.notes[paper.arxiv_id].primary_category is None


def test_datasets_changed_after_the_digest_leave_the_published_content(lake):
    papers = day_papers(DAY, 3)
    markdown = write_digest_day(lake, DAY, papers)
    # A later run rewrote the analyses, then failed before rendering: the page must still show
    # what the Markdown digest says.
    analyses = lake.read_day("analyses", DAY).to_pylist()
    lake.write_day(
        "analyses", DAY, lake.rows("analyses", [{**a, "markdown": "Rewritten."} for a in analyses])
    )
    loaded = load_day_digest(lake, DAY)
    assert loaded is not None and render_digest(loaded.digest) == markdown


def test_day_without_digest_loads_as_none(lake):
    write_digest_day(lake, DAY, day_papers(DAY, 1))
    assert load_day_digest(lake, date(2026, 6, 29)) is None


@pytest.mark.parametrize(
    ("fields", "gist"),
    [
        ({"contribution": "  It  does X.\nWell. "}, "It does X. Well."),
        ({"research_question": "Why Y?"}, "Why Y?"),
        ({"contribution": "", "research_question": "Fallback."}, "Fallback."),
        ({"other": "x"}, None),
        (["not", "an", "object"], None),
    ],
)
def test_analysis_gist_takes_the_contribution_or_research_question(fields, gist):
    assert analysis_gist(json.dumps(fields)) == gist


def test_analysis_gist_of_no_or_broken_fields_is_none():
    assert analysis_gist(None) is None and analysis_gist("{not json") is None


def test_shorten_cuts_long_text_at_a_space_within_the_limit():
    text = "word " * 200
    short = shorten(text)
    assert len(short) <= GIST_CHARS and short.endswith("word…")
    assert shorten("x" * 500).endswith("…") and len(shorten("x" * 500)) == GIST_CHARS
