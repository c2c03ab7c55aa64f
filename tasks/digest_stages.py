"""Prefect tasks of the digest stages (rank, analyse, findings, summary, render), one per day."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from arxiv_digest.settings import Settings, digest_config_hash
from tasks.day_llm import DayLLM
from tasks.executive_summary import summarize_day
from tasks.fulltext import fetch_fulltexts
from tasks.key_findings import Finding, extract_key_findings
from tasks.lake import Lake
from tasks.models import Paper
from tasks.outputs import build_digest, render_index, write_if_changed
from tasks.prompts import prompts_fingerprint
from tasks.rank import Ranking, rank_papers
from tasks.render import render_digest
from tasks.summarize import Analysis, analyse_papers


@task(name="rank_day", cache_policy=NO_CACHE)
def rank_day(settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper]) -> list[Ranking]:
    rankings = llm.run(rank_papers(
        llm.client, papers, topic=settings.topic, interest=settings.interest,
        categories=settings.categories, language=settings.language, top_n=settings.top_n,
        abstract_chars=settings.rank_abstract_chars, use_llm=settings.rank_with == "llm"))
    lake.write_day("rankings", llm.day, lake.rows("rankings", [asdict(r) for r in rankings]))
    return rankings


@task(name="fetch_fulltext_day", cache_policy=NO_CACHE)
def fetch_fulltext_day(settings: Settings, papers: list[Paper]) -> dict[str, str | None]:
    if not settings.fulltext:
        return {p.arxiv_id: None for p in papers}
    return fetch_fulltexts(papers, delay_s=settings.arxiv_delay_s)


@task(name="analyse_day", cache_policy=NO_CACHE)
def analyse_day(settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper],
                fulltexts: dict[str, str | None]) -> list[Analysis]:
    analyses = llm.run(analyse_papers(llm.client, papers, fulltexts, topic=settings.topic,
                                      language=settings.language))
    lake.write_day("analyses", llm.day, lake.rows("analyses", [asdict(a) for a in analyses]))
    return analyses


@task(name="extract_key_findings_day", cache_policy=NO_CACHE)
def extract_key_findings_day(settings: Settings, lake: Lake, llm: DayLLM,
                             papers: list[Paper]) -> dict[str, list[Finding]]:
    findings = llm.run(extract_key_findings(llm.client, papers, settings.language))
    rows = [{"arxiv_id": f.arxiv_id, "ordinal": f.ordinal, "sentence": f.sentence,
             "start_offset": f.start, "end_offset": f.end, "source": f.source}
            for p in papers for f in findings[p.arxiv_id]]
    lake.write_day("key_findings", llm.day, lake.rows("key_findings", rows))
    return findings


@task(name="summarize_day", cache_policy=NO_CACHE)
def summarize_day_task(settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper],
                       analyses: list[Analysis]) -> tuple[str, str]:
    gists = {a.arxiv_id: a.fields_json for a in analyses if a.fields_json}
    summary, outcome = llm.run(summarize_day(llm.client, papers, gists,  # type: ignore[arg-type]
                                             day=llm.day, topic=settings.topic,
                                             language=settings.language))
    return summary, outcome.status


@task(name="render_day", cache_policy=NO_CACHE)
def render_day(settings: Settings, lake: Lake, day: date, summary_md: str, summary_status: str,
               papers: list[Paper], analyses: list[Analysis],
               findings: dict[str, list[Finding]], counts: dict[str, Any]) -> str:
    """Render the digest; store it in the lake and DIGEST_OUTPUT_DIR; attach Prefect artifacts."""
    digest = build_digest(day, settings.topic, settings.language, summary_md, papers, analyses,
                          findings)
    markdown = render_digest(digest)
    content_hash = hashlib.sha256(markdown.encode()).hexdigest()
    lake.write_day("digests", day, lake.rows("digests", [{
        "topic": settings.topic, "language": settings.language, "markdown": markdown,
        "executive_summary": summary_md, "summary_status": summary_status,
        "paper_count": len(papers), "content_hash": content_hash,
        "config_hash": digest_config_hash(settings, prompts_fingerprint()),
        "llm_failed": counts.get("llm_failed", 0), "llm_invalid": counts.get("llm_invalid", 0)}]))
    output = Path(settings.output_dir)
    write_if_changed(output / f"{day.isoformat()}.md", markdown)
    write_if_changed(output / "README.md", render_index(lake))
    create_markdown_artifact(markdown=markdown, key=f"digest-{day.isoformat()}",
                             description=f"arXiv {settings.topic} digest {day.isoformat()}")
    create_table_artifact(table=[{"metric": k, "value": v} for k, v in counts.items()],
                          key=f"digest-counts-{day.isoformat()}",
                          description=f"counts for digest {day.isoformat()}")
    return content_hash
