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
from tasks.profile_days import ProfileDigest, profile_picks, union
from tasks.profiles import fetch_settings, load_profiles, profile_settings
from tasks.rank import in_rank_order
from tasks.stages import dedupe_day, fetch_day, store_day


def digest_day(day: date, run: DayRun) -> RenderedDigest | None:
    """fetch → dedupe → store → rank → key findings / full text → analyse → summarise → render.

    One fetch for every profile (the union of their categories; tasks/profiles.py); each
    profile ranks and picks its own papers; analyses and key findings are made once per paper
    and language for all profiles; each profile gets its summary and digest. The day is
    written through its lease's lake, which refuses writes once the lease is lost (S3: another
    run has taken the day over). A lookback re-scan that finds nothing writes nothing; one that
    adds late papers renders that day's digests again. Returns what was rendered, if anything.
    Run bookkeeping (counts, timings, the day's LLM) is in tasks/day_runs.py.
    """
    settings = run.settings
    profiles = list(load_profiles(settings))
    scope = fetch_settings(settings, profiles)
    with day_lease(settings, run.lake, day) as lake:
        window = fetch_day(scope, day)
        if not run.plan.wants(day, window):
            return None
        found = dedupe_day(lake, window, run.known)
        run.plan.check(day, window, found)
        store_day(lake, window, found, scope.ingest_config_hash())
        if not run.ingested(day, window, found):
            return None
        with run.digesting(lake, day) as llm:
            papers = load_day_papers(lake, day)
            ranking = llm.submit(rank_day, settings, lake, llm, papers, profiles)
            # A profile with TOP_N = 0 analyses all its papers: the ranking only orders its
            # digest, and the analyses need not wait for it (its calls share the LLM's
            # concurrency with theirs).
            waits = any(p.top_n > 0 for p in profiles)
            picks = profile_picks(papers, profiles, ranking.result() if waits else None)
            chosen = union(picks.values())
            # Key findings need no PDF: their calls share the LLM's concurrency with the analyses.
            findings = llm.submit(extract_key_findings_day, settings, lake, llm, picks, profiles)
            fulltexts = fetch_fulltext_day(settings, chosen)
            analyses = analyse_day(settings, lake, llm, picks, fulltexts, profiles)
            ordered = {
                p.name: in_rank_order(picks[p.name], analyses[p.name], ranking.result()[p.name])
                for p in profiles
            }
            summaries = {
                p.name: llm.submit(
                    summarize_day,
                    profile_settings(settings, p),
                    lake,
                    llm,
                    ordered[p.name][0],
                    run.plan.history_before,
                )
                for p in profiles
            }
            digests = [
                ProfileDigest(
                    p,
                    *summaries[p.name].result(),
                    *ordered[p.name],
                    findings.result()[p.name],
                )
                for p in profiles
            ]
            return render_day(settings, lake, day, digests, llm.finish())
