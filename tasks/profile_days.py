"""A digest day across profiles: each profile's papers and picks, the shared work they need.

One fetch serves every profile (the union of their categories); each profile ranks the papers
in its own categories and picks its own; the LLM work that does not depend on the profile
(analyses, key findings) is done once per paper and language for the union of the picks, so a
paper two profiles pick costs one call; each profile then gets its summary and its digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tasks.analysis import Analysis
from tasks.key_findings import Finding
from tasks.models import Paper
from tasks.profiles import Profile, in_scope
from tasks.rank import Ranking, selected_papers
from tasks.relevance import split_excluded


def candidates(
    papers: Sequence[Paper], profile: Profile, profiles: Sequence[Profile]
) -> list[Paper]:
    """The day's papers a profile ranks, in the day's order: all of them when the profile's
    categories are the whole fetch (as before profiles: the day is what its fetch kept), else
    those in its categories."""
    fetched = {c for p in profiles for c in p.categories}
    if set(profile.categories) == fetched:
        return list(papers)
    return [p for p in papers if in_scope(p, profile)]


def profile_picks(
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    rankings: Mapping[str, Sequence[Ranking]] | None,
) -> dict[str, list[Paper]]:
    """Each profile's papers to analyse: with TOP_N = 0 all its candidates that `exclude` lets
    through, in the day's order (no need to wait for the ranking, which only orders the
    digest); else the ones its ranking selected, best first."""
    picks: dict[str, list[Paper]] = {}
    for profile in profiles:
        scope = candidates(papers, profile, profiles)
        if profile.top_n == 0:
            picks[profile.name] = split_excluded(scope, profile.exclude)[0]
        else:
            assert rankings is not None, "profiles with TOP_N > 0 need the ranking"
            picks[profile.name] = selected_papers(scope, list(rankings[profile.name]))
    return picks


def union(groups: Iterable[Sequence[Paper]]) -> list[Paper]:
    """The papers of several groups, each once, in order of first appearance."""
    seen: dict[str, Paper] = {}
    for group in groups:
        for paper in group:
            seen.setdefault(paper.arxiv_id, paper)
    return list(seen.values())


def by_language(
    picks: Mapping[str, Sequence[Paper]], profiles: Sequence[Profile]
) -> dict[str, list[Paper]]:
    """The papers to analyse in each language the profiles read: each paper once per language
    however many profiles picked it (one LLM call per paper, template, language and model)."""
    languages = dict.fromkeys(p.language for p in profiles)
    return {
        language: union(picks[p.name] for p in profiles if p.language == language)
        for language in languages
    }


@dataclass(frozen=True)
class ProfileDigest:
    """What one profile's digest of a day is made of, its papers in rank order."""

    profile: Profile
    summary_md: str
    summary_status: str
    papers: list[Paper]
    analyses: list[Analysis]
    findings: dict[str, list[Finding]] = field(default_factory=dict)


def distinct_analyses(digests: Sequence[ProfileDigest]) -> list[Analysis]:
    """The analyses behind a day's digests, each (paper, language) once."""
    seen: dict[tuple[str, str], Analysis] = {}
    for digest in digests:
        for analysis in digest.analyses:
            seen.setdefault((analysis.arxiv_id, analysis.language), analysis)
    return list(seen.values())
