"""Enrichment at ingest: code links, venue and status, pages and figures from real comments."""

from __future__ import annotations

import json
from functools import cache

import pytest

from tasks.enrich import SAFE_URL, STATUSES, Enrichment, code_urls, enrich, link_kind, read_venue
from tests.conftest import TEST_DATA
from tests.servers.arxiv_replay import BUNDLED_DAY

SAMPLE = TEST_DATA / "enrichment_sample.json"
FIELDS = ("code_urls", "venue", "venue_year", "venue_status", "pages", "figures")


@cache
def bundled_papers() -> dict[str, dict[str, str]]:
    """The bundled day's papers by id (a cross-listed paper's rows are identical)."""
    rows = [json.loads(line) for line in BUNDLED_DAY.read_text(encoding="utf-8").splitlines()]
    papers: dict[str, dict[str, str]] = {}
    for row in rows:
        papers.setdefault(row["id"], row)
    return papers


def enriched(arxiv_id: str) -> Enrichment:
    row = bundled_papers()[arxiv_id]
    return enrich(row["summary"], row["comment"])


VENUES = [
    ("Accepted to CVPR 2026", ("CVPR", 2026, "accepted")),
    ("NeurIPS 2025 spotlight", ("NeurIPS", 2025, "spotlight")),
    ("Accepted by ECCV2026", ("ECCV", 2026, "accepted")),
    ("Accepted by ICML'26", ("ICML", 2026, "accepted")),
    ("Accepted to UAI2026 as oral presentation", ("UAI", 2026, "oral")),
    ("To be published in ICDAR 2026", ("ICDAR", 2026, "to appear")),
    ("7 pages, 5 figures, to appear in IEEE Network", ("IEEE Network", None, "to appear")),
    ("Under Review for EMNLP 2026", ("EMNLP", 2026, "under review")),
    ("Preprint, Under Review", (None, None, "under review")),
    ("ECCV 2026", ("ECCV", 2026, None)),
    ("AI for Math Workshop @ ICML 2026", ("ICML Workshop", 2026, None)),
    ("Accepted to Findings of ACL 2026", ("ACL Findings", 2026, "accepted")),
    ("Accepted by European Conference on Computer Vision (ECCV) 2026", ("ECCV", 2026, "accepted")),
    (
        "Accepted to the 2026 IEEE International Conference on Systems, Man, and Cybernetics "
        "(SMC 2026)",
        ("SMC", 2026, "accepted"),
    ),
    (
        "Accepted for publication in IEEE Journal of Biomedical and Health Informatics (JBHI), "
        "2026",
        ("JBHI", 2026, "accepted"),
    ),
    (
        "Accepted to MICCAI 2026. This is the pre-review submitted version",
        ("MICCAI", 2026, "accepted"),
    ),
    ("Submitted to IEEE Journal", (None, None, "submitted")),  # no particular venue
    ("Written in 2024; submitted to arXiv 2026", (None, None, None)),  # arXiv is no venue
    ("22 pages, 13 figures", (None, None, None)),
]


@pytest.mark.parametrize(("comment", "expected"), VENUES)
def test_read_venue_finds_name_year_and_status(comment, expected):
    assert read_venue(comment)[:3] == expected


def test_read_venue_keeps_the_clause_it_read_as_evidence():
    venue = enrich("", "19 pages, 7 figures. Accepted at ECCV 2026. Code: https://github.com/a/b")
    assert venue.venue_evidence == "Accepted at ECCV 2026."
    assert enrich("", "24 pages").venue_evidence is None


@pytest.mark.parametrize(
    ("comment", "pages", "figures"),
    [
        ("22 pages, 13 figures, 1 table", 22, 13),
        ("12pages, 5 figures", 12, 5),
        ("20 pges, github link included, 6 figures", 20, 6),
        ("13 figures, 4 tables, 25 pages (20 excluding references)", 25, 13),
        ("8 pages, 1 figures. Poster", 8, 1),
        ("12 pages. Published in Proceedings of RAIL 2026, pages 128-139", 12, None),
        ("14 pages, figures and tables", 14, None),
        ("see Figure 3 on page 2", None, None),
    ],
)
def test_pages_and_figures_are_the_first_counts_stated(comment, pages, figures):
    result = enrich("", comment)
    assert (result.pages, result.figures) == (pages, figures)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Code: https://github.com/a/b.", ("https://github.com/a/b",)),
        ("Code is available at github.com/vpc-ccg/AF3AD.", ("https://github.com/vpc-ccg/AF3AD",)),
        (
            r"Code is available \href{https://github.com/x/y}{here}.",
            ("https://github.com/x/y",),
        ),
        (
            r"Code: \href{https://x.github.io/p/}{https://x.github.io/p/}",
            ("https://x.github.io/p/",),
        ),
        ("Project page: https://argus-paper.realsee.ai.", ("https://argus-paper.realsee.ai",)),
        ("Results at https://www.datacomp.ai/dcvlm/.", ()),  # not named as code or project
        ("Video demo: https://www.youtube.com/watch?v=M_K ; code https://youtu.be/x", ()),
        ("Code and data DOI: https://doi.org/10.5281/zenodo.1", ()),
        (
            "Models: https://huggingface.co/org/m and https://GitHub.com/Org/Repo.git",
            ("https://huggingface.co/org/m", "https://github.com/Org/Repo.git"),
        ),
        (
            "Code https://github.com/a/b and again https://github.com/a/b/",
            ("https://github.com/a/b",),
        ),
        ("Code: https://github.com/a/b)](javascript:alert(1)", ("https://github.com/a/b",)),
        ("Code: https://github.com", ()),  # a host is no repository
    ],
)
def test_code_urls_keeps_code_and_named_project_links(text, expected):
    assert code_urls(text) == expected


def test_code_urls_are_safe_markdown_link_targets():
    hostile = "Code: https://github.com/a/b<script> https://github.com/c/d&amp;x https://x.io/`y`"
    urls = code_urls("project page: " + hostile)
    assert urls and all(SAFE_URL.fullmatch(u) for u in urls)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://github.com/a/b", "Code"),
        ("https://gitlab.com/a/b", "Code"),
        ("https://huggingface.co/datasets/a/b", "Hugging Face"),
        ("https://x.hf.space", "Hugging Face"),
        ("https://www.modelscope.cn/models/a", "ModelScope"),
        ("https://a.github.io/p", "Project page"),
    ],
)
def test_link_kind_names_the_host(url, kind):
    assert link_kind(url) == kind


def test_venue_line_says_venue_year_and_status():
    assert enrich("", "Accepted to CVPR 2026").venue_line() == "CVPR 2026, accepted"
    assert enrich("", "under review").venue_line() == "under review"
    assert enrich("", "ECCV 2026").venue_line() == "ECCV 2026"
    assert enrich("", "12 pages").venue_line() == ""


def test_enrich_is_deterministic_over_the_bundled_day():
    first = [enriched(i) for i in sorted(bundled_papers())]
    assert first == [enriched(i) for i in sorted(bundled_papers())]


def test_bundled_day_yields_each_field():
    """How many of the bundled day's 532 papers yield each field (measured; a rule change that
    moves these numbers must be checked against the hand-labelled sample and noted here)."""
    papers = [enriched(i) for i in bundled_papers()]
    counts = {field: sum(bool(getattr(p, field)) for p in papers) for field in FIELDS}
    assert len(papers) == 532
    assert counts == {
        "code_urls": 118,
        "venue": 139,
        "venue_year": 128,
        "venue_status": 129,
        "pages": 147,
        "figures": 113,
    }
    assert all(p.venue_status in (None, *STATUSES) for p in papers)


def _key(url: str) -> str:
    return url.rstrip("/").removesuffix(".git").lower()


def precision(part: str) -> dict[str, float]:
    """Per field: of the values extracted from the sample's papers, the share its hand label
    agrees with (per link for code_urls; venue names compared without case)."""
    labels = json.loads(SAMPLE.read_text(encoding="utf-8"))[part]
    extracted = dict.fromkeys(FIELDS, 0)
    correct = dict.fromkeys(FIELDS, 0)
    for arxiv_id, label in labels.items():
        got = enriched(arxiv_id)
        links = {_key(u) for u in got.code_urls}
        extracted["code_urls"] += len(links)
        correct["code_urls"] += len(links & {_key(u) for u in label["code_urls"]})
        for field in FIELDS[1:]:
            value = getattr(got, field)
            if value is not None:
                extracted[field] += 1
                correct[field] += str(value).lower() == str(label[field]).lower()
    return {field: correct[field] / extracted[field] for field in FIELDS}


@pytest.mark.parametrize("part", ["development", "held_out"])
def test_precision_on_hand_labelled_sample(part):
    """47 + 47 real papers labelled by hand (tests/data/enrichment_sample.json). Measured:
    development 1.0 everywhere but venue 0.95 (an ICML workshop named only by its acronym);
    held-out 1.0 everywhere but status 0.94 ("corpus run to appear in a later revision")."""
    labels = json.loads(SAMPLE.read_text(encoding="utf-8"))[part]
    assert len(labels) >= 30
    assert set(labels) <= set(bundled_papers())
    measured = precision(part)
    assert all(value >= 0.9 for value in measured.values()), measured


def test_recorded_api_comments_reach_the_papers_enrichment():
    """Real Atom entries (tests/data/arxiv-api) through the arXiv adapter: the comment
    arrives as arXiv served it and is read into venue, status and pages."""
    import arxiv

    from tasks.ingest import ArxivFeedClient, paper_from_result
    from tests.conftest import RECORDED_API
    from tests.servers.arxiv_replay import ReplayServer

    with ReplayServer(recorded_dir=RECORDED_API) as server:
        client = ArxivFeedClient(server.url, page_size=100, delay_s=0, sleep=lambda s: None)
        search = arxiv.Search(query="testing", max_results=100)
        papers = [paper_from_result(r) for r in client.results(search)]
    enriched = {p.arxiv_id: p.enrichment for p in papers}
    assert len(enriched) == 100
    # 97 of them have a comment (measured: 56 venues, 45 statuses, 30 page counts).
    assert sum(e.venue is not None for e in enriched.values()) == 56
    assert sum(e.pages is not None for e in enriched.values()) == 30
    issta = [e for e in enriched.values() if e.venue == "ISSTA" and e.venue_status]
    assert issta and all(e.venue_year and e.venue_evidence for e in issta)
