"""The digest of one day: rank, analyse, key findings, executive summary, render."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect.futures import PrefectFuture
from prefect.utilities.annotations import quote

from arxiv_digest.settings import Settings
from tasks.day_llm import StopSignal, llm_outcomes, open_day_llm, record_llm_calls, stop_day
from tasks.digest_stages import (
    analyse_day,
    extract_key_findings_day,
    fetch_fulltext_day,
    rank_day,
    render_day,
    summarize_day_task,
)
from tasks.lake import Lake, load_day_papers
from tasks.models import Paper
from tasks.rank import Ranking
from tasks.summarize import Analysis


def produce_digest(settings: Settings, lake: Lake, day: date, run_id: str,
                   counts: dict[str, Any], *, stop: StopSignal | None = None,
                   retry_invalid: bool = False) -> dict[str, Any]:
    """Every LLM stage of one day through one cache; returns the day's counts.

    When a stage fails (or `stop` is set), the day's other LLM work is cancelled and the first
    error is raised; the day then has no new digest. Paper lists are passed quote()d: Prefect
    then does not walk each paper looking for futures (about a second per 300-paper day
    otherwise; BENCHMARKS.md).
    """
    papers = load_day_papers(lake, day)
    llm = open_day_llm(settings, lake, day, run_id, retry_invalid)
    in_flight: list[PrefectFuture[Any]] = []
    stop = stop or StopSignal()
    stop.watch(llm)  # a stop of the whole run (Ctrl-C) cancels this day's LLM work
    try:
        rankings = rank_day.submit(settings, lake, llm, quote(papers))
        in_flight.append(rankings)
        # With TOP_N = 0 every paper goes on, so the ranking only orders the digest and the
        # analyses need not wait for it: its calls share the LLM's concurrency with theirs.
        chosen = papers if settings.top_n == 0 else selected_papers(papers, rankings.result())
        # Key findings need no PDF: their calls share the LLM's concurrency with the analyses.
        findings_future = extract_key_findings_day.submit(settings, lake, llm, quote(chosen))
        in_flight.append(findings_future)
        fulltexts = fetch_fulltext_day(settings, quote(chosen))
        analyses = analyse_day(settings, lake, llm, quote(chosen), quote(fulltexts))
        findings = findings_future.result()
        selected, analyses = in_rank_order(chosen, analyses, rankings.result())
        summary_md, summary_status = summarize_day_task(settings, lake, llm, quote(selected),
                                                         quote(analyses))
    except BaseException as exc:
        # The day cannot be finished: its other stages stop spending now (stop_day).
        first = stop_day(llm, exc)
        if first is exc:
            raise
        raise first from None
    finally:
        stop.unwatch(llm)
        for future in in_flight:
            future.wait()  # a stage that failed must not leave calls unrecorded in flight
        usage = record_llm_calls(lake, llm, run_id)
    counts = {**counts, "papers": len(papers), "selected": len(selected),
              "analysed": sum(a.markdown is not None for a in analyses),
              "failed": sum(a.markdown is None for a in analyses), **usage,
              **llm_outcomes(llm)}
    content_hash = render_day(settings, lake, day, summary_md, summary_status, quote(selected),
                              quote(analyses), quote(findings), counts)
    return {**counts, "content_hash": content_hash}


def selected_papers(papers: list[Paper], rankings: list[Ranking]) -> list[Paper]:
    """The papers the ranking selected, best first."""
    rank = {r.arxiv_id: r.rank for r in rankings if r.selected}
    return sorted((p for p in papers if p.arxiv_id in rank), key=lambda p: rank[p.arxiv_id])


def in_rank_order(papers: list[Paper], analyses: list[Analysis],
                  rankings: list[Ranking]) -> tuple[list[Paper], list[Analysis]]:
    """The selected papers and their analyses (aligned with `papers`), best first."""
    by_id = {a.arxiv_id: a for a in analyses}
    ordered = selected_papers(papers, rankings)
    return ordered, [by_id[p.arxiv_id] for p in ordered]
