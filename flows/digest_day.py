"""The digest of one day: rank, analyse, key findings, executive summary, render."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect.utilities.annotations import quote

from arxiv_digest.settings import Settings
from tasks.digest_stages import (
    analyse_day,
    extract_key_findings_day,
    fetch_fulltext_day,
    load_day_papers,
    open_day_llm,
    rank_day,
    record_llm_calls,
    render_day,
    summarize_day_task,
)
from tasks.lake import Lake


def produce_digest(settings: Settings, lake: Lake, day: date, run_id: str,
                   counts: dict[str, Any]) -> dict[str, Any]:
    """Every LLM stage of one day through one cache; returns the day's counts.

    Paper lists are passed quote()d: Prefect then does not walk each paper looking for futures
    (about a second per 300-paper day otherwise; BENCHMARKS.md).
    """
    papers = load_day_papers(lake, day)
    llm = open_day_llm(settings, lake, day, run_id)
    try:
        rankings = rank_day(settings, lake, llm, quote(papers))
        chosen = {r.arxiv_id: r.rank for r in rankings if r.selected}
        selected = sorted((p for p in papers if p.arxiv_id in chosen),
                          key=lambda p: chosen[p.arxiv_id])
        # Key findings need no PDF: their calls share the LLM's concurrency with the analyses.
        findings_future = extract_key_findings_day.submit(settings, lake, llm, quote(selected))
        fulltexts = fetch_fulltext_day(settings, quote(selected))
        analyses = analyse_day(settings, lake, llm, quote(selected), quote(fulltexts))
        findings = findings_future.result()
        summary_md, summary_status = summarize_day_task(settings, lake, llm, quote(selected),
                                                         quote(analyses))
    finally:
        usage = record_llm_calls(lake, llm, run_id)
    counts = {**counts, "papers": len(papers), "selected": len(selected),
              "analysed": sum(a.markdown is not None for a in analyses),
              "failed": sum(a.markdown is None for a in analyses), **usage}
    content_hash = render_day(settings, lake, day, summary_md, summary_status, quote(selected),
                              quote(analyses), quote(findings), counts)
    return {**counts, "content_hash": content_hash}
