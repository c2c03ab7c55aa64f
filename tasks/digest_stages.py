"""Prefect tasks of the digest stages (rank, analyse, findings, summary, render), one per day."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import date

from prefect.artifacts import create_markdown_artifact

from arxiv_digest.settings import Settings, digest_config_hash
from tasks.analysis import Analysis, analyse_papers
from tasks.day_llm import DayLLM, DayUsage
from tasks.executive_summary import write_executive_summary
from tasks.fulltext import fetch_fulltexts
from tasks.key_findings import Finding, extract_key_findings
from tasks.lake import Lake
from tasks.models import Paper
from tasks.outputs import RenderedDigest, build_digest
from tasks.prompts import prompts_fingerprint
from tasks.rank import Ranking, rank_papers
from tasks.render import render_digest
from tasks.stage_task import stage_task


@stage_task(name="rank_day")
def rank_day(settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper]) -> list[Ranking]:
    rankings = llm.run(
        rank_papers(
            llm.client,
            papers,
            topic=settings.topic,
            interest=settings.interest,
            categories=settings.categories,
            language=settings.language,
            top_n=settings.top_n,
            abstract_chars=settings.rank_abstract_chars,
            use_llm=settings.rank_with == "llm",
        )
    )
    lake.write_day("rankings", llm.day, lake.rows("rankings", [asdict(r) for r in rankings]))
    return rankings


@stage_task(name="fetch_fulltext_day")
def fetch_fulltext_day(settings: Settings, papers: list[Paper]) -> dict[str, str | None]:
    if not settings.fulltext:
        return {p.arxiv_id: None for p in papers}
    return fetch_fulltexts(papers, delay_s=settings.arxiv_delay_s)


@stage_task(name="analyse_day")
def analyse_day(
    settings: Settings,
    lake: Lake,
    llm: DayLLM,
    papers: list[Paper],
    fulltexts: dict[str, str | None],
) -> list[Analysis]:
    analyses = llm.run(
        analyse_papers(
            llm.client, papers, fulltexts, topic=settings.topic, language=settings.language
        )
    )
    lake.write_day("analyses", llm.day, lake.rows("analyses", [asdict(a) for a in analyses]))
    return analyses


@stage_task(name="extract_key_findings_day")
def extract_key_findings_day(
    settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper]
) -> dict[str, list[Finding]]:
    findings = llm.run(extract_key_findings(llm.client, papers, settings.language))
    rows = [
        {
            "arxiv_id": f.arxiv_id,
            "ordinal": f.ordinal,
            "sentence": f.sentence,
            "start_offset": f.start,
            "end_offset": f.end,
            "source": f.source,
        }
        for p in papers
        for f in findings[p.arxiv_id]
    ]
    lake.write_day("key_findings", llm.day, lake.rows("key_findings", rows))
    return findings


@stage_task(name="summarize_day")
def summarize_day(
    settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper], analyses: list[Analysis]
) -> tuple[str, str]:
    """The executive summary (Markdown) and how it came about (its status)."""
    gists = {a.arxiv_id: a.fields_json for a in analyses if a.fields_json}
    summary, outcome = llm.run(
        write_executive_summary(
            llm.client, papers, gists, day=llm.day, topic=settings.topic, language=settings.language
        )
    )
    return summary, outcome.status


@stage_task(name="render_day")
def render_day(
    settings: Settings,
    lake: Lake,
    day: date,
    summary_md: str,
    summary_status: str,
    papers: list[Paper],
    analyses: list[Analysis],
    findings: dict[str, list[Finding]],
    usage: DayUsage,
) -> RenderedDigest:
    """Render the digest; store it in the lake (the run's publish step writes it to
    DIGEST_OUTPUT_DIR); attach it as an artifact."""
    digest = build_digest(
        day, settings.topic, settings.language, summary_md, papers, analyses, findings
    )
    markdown = render_digest(digest)
    content_hash = hashlib.sha256(markdown.encode()).hexdigest()
    lake.write_day(
        "digests",
        day,
        lake.rows(
            "digests",
            [
                {
                    "topic": settings.topic,
                    "language": settings.language,
                    "markdown": markdown,
                    "executive_summary": summary_md,
                    "summary_status": summary_status,
                    "paper_count": len(papers),
                    "content_hash": content_hash,
                    "config_hash": digest_config_hash(settings, prompts_fingerprint()),
                    "llm_failed": usage.llm_failed,
                    "llm_invalid": usage.llm_invalid,
                }
            ],
        ),
    )
    create_markdown_artifact(
        markdown=markdown,
        key=f"digest-{day.isoformat()}",
        description=f"arXiv {settings.topic} digest {day.isoformat()}",
    )
    return RenderedDigest.of(papers, analyses, content_hash)
