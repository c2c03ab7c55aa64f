"""Prefect tasks of the digest stages (rank, analyse, findings, summary, render), one per day."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any, TypeVar

from prefect.artifacts import create_markdown_artifact

from arxiv_digest.settings import Settings
from tasks.analysis import Analysis, analyse_papers
from tasks.day_llm import DayLLM, DayUsage
from tasks.executive_summary import write_executive_summary
from tasks.fulltext import fetch_fulltexts
from tasks.key_findings import Finding, extract_key_findings
from tasks.lake import Lake, load_day_papers
from tasks.llm import LLMClient
from tasks.models import Paper
from tasks.outputs import RenderedDigest, build_digest, write_if_changed
from tasks.profile_days import (
    ProfileDigest,
    by_language,
    candidates,
    distinct_analyses,
    union,
)
from tasks.profiles import (
    Profile,
    artifact_key,
    output_dir,
    profile_config_hash,
    profile_settings,
)
from tasks.prompts import prompts_fingerprint
from tasks.rank import Ranking, rank_papers
from tasks.relevance import (
    profile_library_matches,
    rank_for_profile,
    ranking_whys,
    split_excluded,
)
from tasks.render import render_digest
from tasks.stage_task import stage_task
from tasks.summary_plan import RisingTermLike, paper_terms_of, plan_summary, term_counts
from tasks.terms import rising_terms

R = TypeVar("R")


@stage_task(name="rank_day")
def rank_day(
    settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper], profiles: list[Profile]
) -> dict[str, list[Ranking]]:
    """Each profile's ranking of the papers in its categories (profile name -> rankings)."""
    scopes = {p.name: split_excluded(candidates(papers, p, profiles), p.exclude) for p in profiles}
    generic = llm.run(
        rank_each(
            llm.client,
            [(profile_settings(settings, p), scopes[p.name][0]) for p in profiles],
        )
    )
    rankings: dict[str, list[Ranking]] = {}
    for profile, ranked in zip(profiles, generic, strict=True):
        kept, excluded = scopes[profile.name]
        if profile.uses_features:
            ranked = rank_for_profile(
                candidates(papers, profile, profiles),
                ranked,
                excluded,
                include=profile.include,
                authors=profile.authors,
                matches=profile_library_matches(settings, lake, profile, llm.day, kept),
                weight=settings.library_weight,
                top_n=profile.top_n,
            )
        rankings[profile.name] = ranked
    rows = [asdict(r) | {"profile": name} for name, ranked in rankings.items() for r in ranked]
    lake.write_day("rankings", llm.day, lake.rows("rankings", rows))
    return rankings


async def rank_each(
    client: LLMClient, jobs: Sequence[tuple[Settings, Sequence[Paper]]]
) -> list[list[Ranking]]:
    """The generic ranking of each (profile settings, papers), concurrently; profiles that
    would ask the very same questions share one ranking (so no call is made twice)."""

    def key(job: tuple[Settings, Sequence[Paper]]) -> tuple[object, ...]:
        s, papers = job
        fields = (s.topic, s.interest, tuple(s.categories), s.language, s.top_n)
        return (*fields, tuple(p.versioned_id for p in papers))

    distinct = {key(job): job for job in jobs}
    ranked = await asyncio.gather(
        *(
            rank_papers(
                client,
                papers,
                topic=s.topic,
                interest=s.interest,
                categories=s.categories,
                language=s.language,
                top_n=s.top_n,
                abstract_chars=s.rank_abstract_chars,
                use_llm=s.rank_with == "llm",
            )
            for s, papers in distinct.values()
        )
    )
    by_key = dict(zip(distinct, ranked, strict=True))
    return [by_key[key(job)] for job in jobs]


@stage_task(name="fetch_fulltext_day")
def fetch_fulltext_day(settings: Settings, papers: list[Paper]) -> dict[str, str | None]:
    # The compact template reads abstracts only: no PDF to download for it.
    if not settings.fulltext or settings.analysis_style == "compact":
        return {p.arxiv_id: None for p in papers}
    return fetch_fulltexts(papers, delay_s=settings.arxiv_delay_s)


@stage_task(name="analyse_day")
def analyse_day(
    settings: Settings,
    lake: Lake,
    llm: DayLLM,
    picks: dict[str, list[Paper]],
    fulltexts: dict[str, str | None],
    profiles: list[Profile],
) -> dict[str, list[Analysis]]:
    """Each profile's analyses (aligned with its picks), made once per paper and language for
    all profiles, for DIGEST_TOPIC: an analysis does not depend on who picked the paper."""
    work = by_language(picks, profiles)
    done = llm.run(
        gather_all(
            analyse_papers(
                llm.client,
                papers,
                fulltexts,
                topic=settings.topic,
                language=language,
                style=settings.analysis_style,
            )
            for language, papers in work.items()
        )
    )
    made = {
        language: {a.arxiv_id: a for a in analyses}
        for language, analyses in zip(work, done, strict=True)
    }
    analyses = {
        p.name: [made[p.language][paper.arxiv_id] for paper in picks[p.name]] for p in profiles
    }
    rows = [asdict(a) | {"profile": name} for name, some in analyses.items() for a in some]
    lake.write_day("analyses", llm.day, lake.rows("analyses", rows))
    return analyses


@stage_task(name="extract_key_findings_day")
def extract_key_findings_day(
    settings: Settings,
    lake: Lake,
    llm: DayLLM,
    picks: dict[str, list[Paper]],
    profiles: list[Profile],
) -> dict[str, dict[str, list[Finding]]]:
    """Each profile's key findings per paper, asked once per paper and language."""
    work = by_language(picks, profiles)
    done = llm.run(
        gather_all(
            extract_key_findings(llm.client, papers, language) for language, papers in work.items()
        )
    )
    made = dict(zip(work, done, strict=True))
    findings = {
        p.name: {paper.arxiv_id: made[p.language][paper.arxiv_id] for paper in picks[p.name]}
        for p in profiles
    }
    rows = [
        {
            "arxiv_id": f.arxiv_id,
            "ordinal": f.ordinal,
            "sentence": f.sentence,
            "start_offset": f.start,
            "end_offset": f.end,
            "source": f.source,
            "profile": p.name,
        }
        for p in profiles
        for paper in picks[p.name]
        for f in findings[p.name][paper.arxiv_id]
    ]
    lake.write_day("key_findings", llm.day, lake.rows("key_findings", rows))
    return findings


def summary_inputs(
    lake: Lake, day: date, papers: list[Paper], history_before: date | None = None
) -> tuple[dict[str, list[str]], list[RisingTermLike], dict[str, int], int]:
    """What the executive summary is built from besides the selected papers: key phrases of
    each selected paper (by arXiv id), the day's rising terms, and how many of the day's papers
    (all of them, the background of the themes) have each key phrase.

    The key phrases are the trends' (tasks/terms.py); the rising terms are measured over the
    lake's `terms` dataset, which the store stage has written for this day already.
    """
    day_papers = load_day_papers(lake, day) or papers
    day_terms = paper_terms_of(day_papers)
    rising: list[RisingTermLike] = list(rising_terms(lake, day, history_before=history_before))
    return (
        {p.arxiv_id: day_terms.get(p.arxiv_id, []) for p in papers},
        rising,
        dict(term_counts(day_terms)),
        len(day_papers),
    )


async def gather_all(coros: Iterable[Coroutine[Any, Any, R]]) -> list[R]:
    return list(await asyncio.gather(*coros))


@stage_task(name="summarize_day")
def summarize_day(
    settings: Settings,
    lake: Lake,
    llm: DayLLM,
    papers: list[Paper],
    history_before: date | None = None,
) -> tuple[str, str]:
    """The executive summary (Markdown) and how it came about (its status)."""
    terms, rising, counts, day_papers = summary_inputs(lake, llm.day, papers, history_before)
    plan = plan_summary(
        papers, terms, rising, topic=settings.topic, day_term_counts=counts, day_papers=day_papers
    )
    result = llm.run(
        write_executive_summary(
            llm.client, plan, day=llm.day, topic=settings.topic, language=settings.language
        )
    )
    return result.markdown, result.status


@stage_task(name="render_day")
def render_day(
    settings: Settings, lake: Lake, day: date, digests: list[ProfileDigest], usage: DayUsage
) -> RenderedDigest:
    """Render each profile's digest; store them in the lake (one `digests` row each); attach
    each as an artifact. The run's publish step writes the default layout's files from the
    lake; a profiles file's folders are written here (publish covers the default profile)."""
    rows = []
    hashes = []
    for digest in digests:
        profile = digest.profile
        own = profile_settings(settings, profile)
        markdown = render_digest(
            build_digest(
                day,
                own.topic,
                own.language,
                digest.summary_md,
                digest.papers,
                digest.analyses,
                digest.findings,
                whys=ranking_whys(lake, day, profile.name),
            )
        )
        content_hash = hashlib.sha256(markdown.encode()).hexdigest()
        hashes.append(content_hash)
        rows.append(
            {
                "topic": own.topic,
                "language": own.language,
                "markdown": markdown,
                "executive_summary": digest.summary_md,
                "summary_status": digest.summary_status,
                "paper_count": len(digest.papers),
                "content_hash": content_hash,
                "config_hash": profile_config_hash(settings, profile, prompts_fingerprint()),
                "llm_failed": usage.llm_failed,
                "llm_invalid": usage.llm_invalid,
                "profile": profile.name,
            }
        )
        if settings.profiles:
            folder = output_dir(settings, profile.name)
            write_if_changed(folder / f"{day.isoformat()}.md", markdown)
        create_markdown_artifact(
            markdown=markdown,
            key=artifact_key(profile.name, day.isoformat()),
            description=f"arXiv {own.topic} digest {day.isoformat()}",
        )
    lake.write_day("digests", day, lake.rows("digests", rows))
    papers = union(d.papers for d in digests)
    return RenderedDigest.of(papers, distinct_analyses(digests), hashes[0] if hashes else "")
