"""DIGEST_OUTPUT_DIR: the index (output/README.md) comes from the catalog, as digests show it."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from tasks.catalog import refresh_catalog
from tasks.import_digest import import_digests
from tasks.lake import open_lake, papers_table
from tasks.outputs import write_index
from tasks.render import Digest, DigestPaper, render_digest
from tests.conftest import REFERENCE_DIGEST, make_paper

DAY = date(2026, 6, 30)
TITLES = {
    "2606.00001": "Plain title",
    "2606.00002": "Pipes | and [brackets] in *it*",
    "2606.00003": "  A title\n  over two lines",
    "2606.00004": "Ranked last, not selected",
}
RANKS = {"2606.00003": 1, "2606.00002": 2, "2606.00004": 4, "2606.00001": 3}


def rendered_digest(selected: list[str]) -> str:
    """The day's digest, whose executive summary lists papers as numbered links too."""
    summary = "Read these first:\n\n1. [Not a title](#2606.00001v1)\n2. [Nor this](#2606.00002v1)"
    return render_digest(
        Digest(
            DAY,
            "Computer Vision",
            summary,
            tuple(
                DigestPaper(
                    f"{i}v1",
                    TITLES[i],
                    ("Ada Lovelace",),
                    DAY,
                    ("cs.CV",),
                    "Abstract.",
                    "Analysis.",
                    (),
                )
                for i in selected
            ),
        )
    )


def test_index_shows_each_digests_first_three_titles_as_its_table_of_contents_does(settings):
    lake = open_lake(settings)
    papers = [make_paper(i, title=t) for i, t in TITLES.items()]
    lake.write_day("papers", DAY, papers_table(papers))
    lake.write_day(
        "rankings",
        DAY,
        lake.rows(
            "rankings",
            [
                {"arxiv_id": i, "score": 1.0 / r, "source": "llm", "rank": r, "selected": r <= 3}
                for i, r in RANKS.items()
            ],
        ),
    )
    selected = sorted((i for i, r in RANKS.items() if r <= 3), key=RANKS.__getitem__)
    markdown = rendered_digest(selected)
    lake.write_day(
        "digests",
        DAY,
        lake.rows(
            "digests", [{"markdown": markdown, "paper_count": len(selected), "config_hash": "h"}]
        ),
    )
    refresh_catalog(settings, lake)

    assert write_index(settings)
    index = (Path(settings.output_dir) / "README.md").read_text(encoding="utf-8")
    toc = markdown.split("## Table of Contents\n\n", 1)[1].split("\n\n", 1)[0]
    titles = re.findall(r"^\d+\. \[(.*)\]\(#", toc, re.MULTILINE)
    assert titles == [
        "A title over two lines",
        "Pipes | and \\[brackets\\] in \\*it\\*",
        "Plain title",
    ]
    assert index.splitlines()[-1] == (
        "| [2026-06-30](2026-06-30.md) | 3 | " + "<br>".join(titles).replace("|", "&#124;") + " |"
    )
    assert not write_index(settings)  # the same index: the file is left alone


def test_index_lists_an_imported_digest_with_its_paper_count_and_no_titles(settings):
    # An imported digest has no rankings in the lake: the index has nothing to rank its titles by.
    [imported] = import_digests(settings, [REFERENCE_DIGEST])
    assert imported.imported and imported.papers == 10
    write_index(settings)
    index = (Path(settings.output_dir) / "README.md").read_text(encoding="utf-8")
    assert index == (
        "# arXiv digests\n\n| date | papers | top titles |\n|---|---|---|\n"
        "| [2025-12-05](2025-12-05.md) | 10 | — |\n"
    )


def test_digest_shows_each_papers_enrichment_as_venue_line_and_code_links():
    from dataclasses import replace

    from tasks.outputs import build_digest

    enriched = replace(
        make_paper("2606.00001", abstract="Code: https://github.com/a/b."),
        comment="Accepted to CVPR 2026",
    )
    digest = build_digest(DAY, "CV", "en", "Summary.", [enriched, make_paper("2606.00002")], [], {})
    assert [(p.venue, p.code_urls) for p in digest.papers] == [
        ("CVPR 2026, accepted", ("https://github.com/a/b",)),
        ("", ()),
    ]
    markdown = render_digest(digest)
    assert "**Venue:** CVPR 2026, accepted" in markdown
    assert "- [Code](https://github.com/a/b)\n" in markdown
