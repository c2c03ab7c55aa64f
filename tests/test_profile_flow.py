"""One profile end to end: the daily flow on the replayed day and the fake LLM, ranked by a
Zotero library, keywords, a followed author and an exclude filter."""

from __future__ import annotations

import re
import shutil
from datetime import date

import pytest

from arxiv_digest.settings import load_settings
from flows.daily import daily_digest
from tasks.catalog import open_catalog
from tasks.digest_format import parse_digest, validate_digest
from tests.conftest import TEST_DATA

DAY = date(2026, 6, 30)
MEDICAL = re.compile(r"medical|clinical|patholog|radiolog|surgical|lesion|tumou?r|patient", re.I)
# Signs "CoGS: Compositional Dynamic Human-Object Scenes Gaussian Splatting from Monocular
# Video", a paper no medical library or keyword would pick.
FOLLOWED = "Jerrin Bright"

pytestmark = pytest.mark.usefixtures("prefect_server")


def stored(sql: str) -> list[tuple]:
    with open_catalog(load_settings(), read_only=True) as con:
        return con.execute(sql).fetchall()


def write_profile(work, monkeypatch, body: str) -> None:
    shutil.copy(TEST_DATA / "libraries" / "medical.bib", work / "zotero.bib")
    (work / "profiles.toml").write_text(body, encoding="utf-8")
    monkeypatch.setenv("DIGEST_PROFILES", str(work / "profiles.toml"))


def test_one_profile_ranks_the_day_by_its_library_and_says_why(llm_env, replay, monkeypatch):
    write_profile(
        llm_env,
        monkeypatch,
        f"""
[[profile]]
name = "medical"
title = "Medical Imaging"
categories = ["cs.CV"]
include = ["segmentation"]
exclude = ["survey", "benchmark"]
authors = ["{FOLLOWED}"]
interest = "medical image analysis"
library = "zotero.bib"
top_n = 10
language = "en"
""",
    )
    daily_digest(date=DAY)
    text = (llm_env / "output" / "medical" / "2026-06-30.md").read_text(encoding="utf-8")
    assert validate_digest(text) == []
    assert text.startswith("time: 20260630\n\n# Arxiv Medical Imaging Papers - 2026-06-30")
    digest = parse_digest(text)
    assert len(digest.papers) == 10
    assert all(p.why for p in digest.papers)

    selected = stored(
        "SELECT p.title, p.abstract, p.authors, r.why, r.source FROM rankings r "
        "JOIN papers p USING (arxiv_id, digest_date) WHERE r.selected ORDER BY r.rank"
    )
    assert len(selected) == 10
    assert all(source == "llm+library" for *_, source in selected)
    assert all("in your library" in why for *_, why, _ in selected)
    # The library is about medicine, and so are half the picks (of the day's 267 papers, 18
    # are: the generic ranking would pick about one), though the fake LLM's scores are random.
    assert sum(bool(MEDICAL.search(f"{t} {a}")) for t, a, *_ in selected) >= 4
    # The followed author's paper is picked, and the digest says why.
    [followed] = [why for _, _, authors, why, _ in selected if FOLLOWED in authors]
    assert followed.startswith(f"by {FOLLOWED};")
    assert f"**Why:** by {FOLLOWED};" in text
    # Excluded papers are ranked last, never selected.
    excluded = stored("SELECT selected, why FROM rankings WHERE source = 'excluded'")
    assert excluded and all(not sel and why.startswith("excluded: ") for sel, why in excluded)
    assert not any(re.search(r"\b(survey|benchmark)\b", t + a, re.I) for t, a, *_ in selected)

    # The library's papers the cs.CV lake lacks came in one id_list request, kept in the lake.
    lookups = [r for r in replay.requests if r["params"].get("id_list")]
    assert len(lookups) == 1
    assert stored("SELECT count(*) FROM library_papers") == [(4,)]


def test_a_profile_without_features_digests_exactly_as_the_settings_do(llm_env, monkeypatch):
    daily_digest(date=DAY)
    plain = (llm_env / "output" / "2026-06-30.md").read_bytes()
    shutil.rmtree(llm_env / "output")
    write_profile(llm_env, monkeypatch, '[[profile]]\nname = "cv"\n')
    daily_digest(date=DAY)
    assert (llm_env / "output" / "cv" / "2026-06-30.md").read_bytes() == plain
    assert not (llm_env / "output" / "2026-06-30.md").exists()
    assert stored("SELECT count(*) FROM rankings WHERE why IS NOT NULL") == [(0,)]


def calls_by_stage(run_id: str) -> dict[str, int]:
    rows = stored(
        "SELECT stage, count(*) FROM llm_calls WHERE NOT cache_hit AND run_id = "
        f"'{run_id}' GROUP BY stage"
    )
    return dict(rows)


def test_two_profiles_share_one_fetch_and_analyse_a_paper_both_pick_once(
    llm_env, replay, monkeypatch
):
    write_profile(
        llm_env,
        monkeypatch,
        f"""
[[profile]]
name = "cv"
authors = ["{FOLLOWED}"]

[[profile]]
name = "cv_medical"
title = "Medical AI"
categories = ["cs.CV", "cs.AI"]
authors = ["{FOLLOWED}"]
interest = "medical imaging"
library = "zotero.bib"
""",
    )
    summary = daily_digest(date=DAY)

    # One query for the union of the categories (its pages), not one per profile.
    asked = [r["params"].get("search_query", "") for r in replay.requests]
    queries = {q for q in asked if q.endswith("TO 202606300000]")}
    assert queries == {"(cat:cs.CV OR cat:cs.AI) AND submittedDate:[202606290000 TO 202606300000]"}
    # Each profile's digest in its folder, each of its own papers and title.
    texts = {
        name: (llm_env / "output" / name / "2026-06-30.md").read_text(encoding="utf-8")
        for name in ("cv", "cv_medical")
    }
    assert texts["cv"].startswith("time: 20260630\n\n# Arxiv Computer Vision Papers")
    assert texts["cv_medical"].startswith("time: 20260630\n\n# Arxiv Medical AI Papers")
    picked = {name: {p.arxiv_id for p in parse_digest(text).papers} for name, text in texts.items()}
    assert all(len(ids) == 10 and validate_digest(texts[n]) == [] for n, ids in picked.items())
    both = picked["cv"] & picked["cv_medical"]
    assert both  # at least the followed author's paper
    every = picked["cv"] | picked["cv_medical"]
    # The cs.CV profile never picks a paper outside cs.CV (the fetch also brought cs.AI's).
    cv_only = stored(
        "SELECT count(*) FROM rankings r JOIN papers p USING (arxiv_id, digest_date) "
        "WHERE r.profile = 'cv' AND NOT list_contains(p.categories, 'cs.CV')"
    )
    assert cv_only == [(0,)]

    # A paper both profiles picked was analysed and its findings asked once (both read zh);
    # ranking and the summary are the profiles' own calls.
    calls = calls_by_stage(summary.run_id)
    assert calls["analysis_abstract"] == len(every) < 20
    assert calls["key_findings"] == len(every)
    assert calls["summary"] == 2
    papers = {
        name: stored(
            "SELECT count(*) FROM rankings WHERE profile = '" + name + "' AND source != 'excluded'"
        )[0][0]
        for name in picked
    }
    assert calls["rank"] == sum(-(-n // 25) for n in papers.values())
    # Every dataset says whose rows are whose; the analyses' rows are each profile's picks.
    for table in ("rankings", "analyses", "key_findings", "digests"):
        assert {r[0] for r in stored(f"SELECT DISTINCT profile FROM {table}")} == set(picked)
    for name, ids in picked.items():
        rows = stored(f"SELECT arxiv_id || 'v' || version FROM analyses WHERE profile = '{name}'")
        assert {r[0] for r in rows} == ids
    # Each profile's index lists its own digest.
    for name in picked:
        index = (llm_env / "output" / name / "README.md").read_text(encoding="utf-8")
        assert "[2026-06-30](2026-06-30.md) | 10 |" in index

    rerun = daily_digest(date=DAY)
    assert rerun.llm_calls == 0
    assert {
        n: (llm_env / "output" / n / "2026-06-30.md").read_text(encoding="utf-8") for n in picked
    } == texts
