"""The day pipeline: one digest day, stage by stage, as the daily and backfill flows run it."""

from __future__ import annotations

from datetime import date

from tasks.coordination import day_lease
from tasks.day_runs import DayRun
from tasks.digest_stages import (
    analyse_day,
    extract_key_findings_day,
    fetch_fulltext_day,
    rank_day,
    render_day,
    summarize_day,
)
from tasks.lake import load_day_papers
from tasks.outputs import RenderedDigest
from tasks.rank import in_rank_order, selected_papers
from tasks.stages import dedupe_day, fetch_day, store_day


def digest_day(day: date, run: DayRun) -> RenderedDigest | None:
    """fetch → dedupe → store → rank → key findings / full text → analyse → summarise → render.

    The day is written through its lease's lake, which refuses writes once the lease is lost
    (S3: another run has taken the day over). A lookback re-scan that finds nothing writes
    nothing; one that adds late papers renders that day's digest again. Returns the digest
    rendered, if any. Run bookkeeping (counts, timings, the day's LLM) is in tasks/day_runs.py.
    """
    settings = run.settings
    with day_lease(settings, run.lake, day) as lake:
        window = fetch_day(settings, day)
        if not run.plan.wants(day, window):
            return None
        found = dedupe_day(lake, window, run.known)
        run.plan.check(day, window, found)
        store_day(lake, window, found, settings.ingest_config_hash())
        if not run.ingested(day, window, found):
            return None
        with run.digesting(lake, day) as llm:
            papers = load_day_papers(lake, day)
            ranking = llm.submit(rank_day, settings, lake, llm, papers)
            # With TOP_N = 0 every paper goes on: the ranking only orders the digest, and the
            # analyses need not wait for it (its calls share the LLM's concurrency with theirs).
            chosen = papers if settings.top_n == 0 else selected_papers(papers, ranking.result())
            # Key findings need no PDF: their calls share the LLM's concurrency with the analyses.
            findings = llm.submit(extract_key_findings_day, settings, lake, llm, chosen)
            fulltexts = fetch_fulltext_day(settings, chosen)
            analyses = analyse_day(settings, lake, llm, chosen, fulltexts)
            selected, analyses = in_rank_order(chosen, analyses, ranking.result())
            summary_md, summary_status = summarize_day(settings, lake, llm, selected)
            return render_day(
                settings,
                lake,
                day,
                summary_md,
                summary_status,
                selected,
                analyses,
                findings.result(),
                llm.finish(),
            )
