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
    text = (llm_env / "output" / "2026-06-30.md").read_text(encoding="utf-8")
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
    assert (llm_env / "output" / "2026-06-30.md").read_bytes() == plain
    assert stored("SELECT count(*) FROM rankings WHERE why IS NOT NULL") == [(0,)]
