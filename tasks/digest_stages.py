"""Prefect tasks of the digest stages (rank, analyse, findings, summary, render), one per day."""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import threading
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from arxiv_digest.errors import DayCancelledError, DigestError, LakeError
from arxiv_digest.settings import Settings, digest_config_hash
from tasks.analysis import Analysis, analyse_papers
from tasks.call_recorder import CallRecorder, lake_batch_writer
from tasks.executive_summary import write_executive_summary
from tasks.fulltext import fetch_fulltexts
from tasks.key_findings import Finding, extract_key_findings
from tasks.lake import Lake, papers_from_table
from tasks.llm import LLMCache, LLMClient, submit_on_llm_loop
from tasks.models import Paper
from tasks.prompts import prompts_fingerprint
from tasks.rank import Ranking, rank_papers
from tasks.render import (
    Digest,
    DigestPaper,
    failed_analysis_placeholder,
    render_digest,
)

R = TypeVar("R")


class DayLLM:
    """The LLM client of one digest day, with that day's cache from the lake.

    Every stage's LLM work runs through `run`. When one stage fails (the LLM unavailable, the
    lake unwritable, Ctrl-C) or `cancel` is called, the day cannot be finished: the other
    stages' coroutines are cancelled at once and later ones refused, so nothing keeps spending.
    (A plain class: Prefect walks a dataclass parameter's fields, and would iterate the set of
    running stages while other threads change it.)
    """

    def __init__(self, day: date, client: LLMClient, recorder: CallRecorder) -> None:
        self.day = day
        self.client = client
        self.recorder = recorder
        self.failure: BaseException | None = None  # the first stage error, which stopped the day
        self._stopped: str | None = None
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        with self._lock:
            if self._stopped is not None:
                coro.close()
                raise DayCancelledError(self._stopped)
            future = submit_on_llm_loop(coro)
            self._running.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise DayCancelledError(self._stopped or f"digest {self.day}: cancelled") from None
        except BaseException as exc:
            with self._lock:
                self.failure = self.failure or exc
            self.cancel(f"digest {self.day} stopped: {_first_line(exc)}")
            raise
        finally:
            with self._lock:
                self._running.discard(future)

    def cancel(self, reason: str) -> None:
        """Stop the day's LLM work now: in-flight stages are cancelled, new ones refused."""
        self.client.stop(reason)  # requests still queued on the loop never go out
        with self._lock:
            self._stopped = self._stopped or reason
            running = list(self._running)
        for future in running:
            future.cancel()  # cancels the coroutine on the LLM loop (its gather, its calls)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StopSignal:
    """A run's request to stop (Ctrl-C, an error that ends the run): the LLM work of every day
    watching it is cancelled at once, and a day that starts watching later is cancelled at once.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._watched: dict[int, DayLLM] = {}
        self._lock = threading.Lock()

    def stop(self, reason: str) -> None:
        with self._lock:
            self.reason = self.reason or reason
            watched = list(self._watched.values())
        for llm in watched:
            llm.cancel(self.reason)

    def watch(self, llm: DayLLM) -> None:
        with self._lock:
            self._watched[id(llm)] = llm
            reason = self.reason
        if reason is not None:
            llm.cancel(reason)

    def unwatch(self, llm: DayLLM) -> None:
        with self._lock:
            self._watched.pop(id(llm), None)


def stop_day(llm: DayLLM, exc: BaseException) -> BaseException:
    """After a stage of the day raised: cancel the day's other LLM work and return the error to
    report, the first stage error (not the cancellations it caused)."""
    llm.cancel(f"digest {llm.day} stopped: {_first_line(exc)}")
    if isinstance(exc, DayCancelledError) and llm.failure is not None:
        return llm.failure
    return exc


@contextmanager
def failed_on_error(lake: Lake, day: date) -> Iterator[None]:
    """A digest that fails with our error (not a cancellation, not Ctrl-C) leaves the day
    marked `failed` until a later run digests it."""
    try:
        yield
    except DigestError as exc:
        if not isinstance(exc, DayCancelledError):
            with suppress(LakeError):  # the lake may be the failure: the error still gets out
                mark_digest_failed(lake, day)
        raise


def open_day_llm(settings: Settings, lake: Lake, day: date, run_id: str,
                 retry_invalid: bool = False) -> DayLLM:
    def set_aside(path: str, moved_to: str) -> None:
        # The cache is derived data: its answers are simply asked again.
        _logger().warning("corrupt LLM cache file %s moved to %s; its answers will be asked "
                          "again", path, moved_to)

    table = lake.read_partition("llm_cache", day, set_aside=set_aside)
    entries = {row["cache_key"]: {"stage": row["stage"], "subject": row["subject"],
                                  "content": row["content"]} for row in table.to_pylist()}

    def persist(key: str, entry: dict[str, str]) -> None:
        # One immutable, content-addressed file per answer: crash-safe and never rewritten.
        lake.write_day_file("llm_cache", day, f"{key}.parquet",
                            lake.rows("llm_cache", [{"cache_key": key, **entry}]))

    api_key = None
    if settings.llm_api_base:
        api_key = (settings.openai_api_key.get_secret_value() if settings.openai_api_key
                   else "sk-no-key-needed")
    # Call records reach the lake in small batches while the stages run (tasks/call_recorder).
    recorder = CallRecorder(lake_batch_writer(lake, day, run_id)).start()
    client = LLMClient(model=settings.llm_model, api_base=settings.llm_api_base,
                       api_key=api_key, cache=LLMCache(entries, persist),
                       run_id=run_id,
                       concurrency=settings.llm_concurrency, rpm=settings.llm_rpm,
                       timeout_s=settings.llm_timeout_s, backoff_s=settings.llm_backoff_s,
                       on_record=recorder.add, retry_invalid=retry_invalid)
    return DayLLM(day, client, recorder)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger (its lines reach the Prefect UI), or the module's outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def record_llm_calls(lake: Lake, llm: DayLLM, run_id: str) -> dict[str, float]:
    """Write the day's call records not written yet; the day's usage from all of them."""
    calls = llm.client.calls
    llm.recorder.close(calls)
    made = [c for c in calls if not c.cache_hit]
    return {"llm_calls": len(made), "cache_hits": len(calls) - len(made),
            "cost_usd": round(sum(c.cost_usd for c in made), 6),
            "tokens_in": sum(c.tokens_in for c in made),
            "tokens_out": sum(c.tokens_out for c in made)}


def llm_outcomes(llm: DayLLM) -> dict[str, int]:
    """The day's requests that ended `failed` (transient: the day is not finished, the next
    run asks them again) and `invalid` (remembered; asked again only with --retry-failed)."""
    return {"llm_failed": llm.client.outcomes["failed"],
            "llm_invalid": llm.client.outcomes["invalid"]}


def load_day_papers(lake: Lake, day: date) -> list[Paper]:
    table = lake.read_day("papers", day)
    return [] if table is None else papers_from_table(table)


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
def summarize_day(settings: Settings, lake: Lake, llm: DayLLM, papers: list[Paper],
                  analyses: list[Analysis]) -> tuple[str, str]:
    gists = {a.arxiv_id: a.fields_json for a in analyses if a.fields_json}
    summary, outcome = llm.run(write_executive_summary(
        llm.client, papers, gists,  # type: ignore[arg-type]
        day=llm.day, topic=settings.topic, language=settings.language))
    return summary, outcome.status


def build_digest(day: date, topic: str, language: str, summary_md: str, papers: list[Paper],
                 analyses: list[Analysis], findings: dict[str, list[Finding]]) -> Digest:
    """The renderer's input: selected papers in rank order, failed analyses as placeholders."""
    by_id = {a.arxiv_id: a for a in analyses}
    return Digest(
        digest_date=day, topic=topic, executive_summary_md=summary_md,
        papers=tuple(
            DigestPaper(
                arxiv_id=p.versioned_id, title=p.title, authors=p.authors,
                published=p.published.date(), categories=p.categories, abstract=p.abstract,
                analysis_md=(by_id[p.arxiv_id].markdown if p.arxiv_id in by_id
                             and by_id[p.arxiv_id].markdown
                             else failed_analysis_placeholder(language)),
                key_findings=tuple(f.sentence for f in findings.get(p.arxiv_id, [])))
            for p in papers))


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: parallel days render the shared index at the same time.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


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


def render_index(lake: Lake) -> str:
    """output/README.md: every digest with its date, paper count and top titles, newest first."""
    table = lake.read_table("digests", columns=["digest_date", "paper_count", "markdown"])
    rows = sorted(table.to_pylist(), key=lambda r: r["digest_date"], reverse=True)
    lines = ["# arXiv digests", "", "| date | papers | top titles |", "|---|---|---|"]
    for row in rows:
        titles = [line.split("](#", 1)[0].split(". [", 1)[-1]
                  for line in row["markdown"].splitlines()
                  if line[:1].isdigit() and "](#" in line][:3]
        cell = "<br>".join(titles) if titles else "—"
        lines.append(f"| [{row['digest_date']}]({row['digest_date']}.md) | "
                     f"{row['paper_count']} | {cell.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def day_complete(settings: Settings, lake: Lake, day: date, digest: bool,
                 retry_invalid: bool = False) -> bool:
    """Finished under the current configuration and prompts (a backfill skips such days).

    A digest with transient LLM failures is not finished (the next run asks just those again);
    with `retry_invalid`, neither is one with answers that stayed invalid.
    """
    if digest:
        table = lake.read_day("digests", day)
        wanted = digest_config_hash(settings, prompts_fingerprint())
    else:
        table = lake.read_day("day_manifests", day)
        wanted = settings.ingest_config_hash()
    done = table is not None and table.num_rows == 1 and (
        table.column("config_hash")[0].as_py() == wanted)
    if not done or not digest:
        return done
    assert table is not None
    return _count(table, "llm_failed") == 0 and not (
        retry_invalid and _count(table, "llm_invalid") > 0)


def _count(table: pa.Table, column: str) -> int:
    # Digests written before these counts existed lack the column: nothing known failed.
    if column not in table.column_names:
        return 0
    return int(table.column(column)[0].as_py() or 0)


def mark_digest_failed(lake: Lake, day: date) -> None:
    """The day's manifest says `failed` (`days.status`) until a later run digests the day."""
    table = lake.read_day("day_manifests", day)
    if table is None or table.num_rows == 0:
        return
    status = pa.array(["failed"] * table.num_rows, pa.string())
    lake.write_day("day_manifests", day,
                   table.set_column(table.schema.get_field_index("status"), "status", status))


def write_outputs_from_lake(settings: Settings, lake: Lake, days: list[date]) -> None:
    """DIGEST_OUTPUT_DIR made from the lake: the digests other machines rendered, and the index."""
    output = Path(settings.output_dir)
    for day in days:
        table = lake.read_day("digests", day)
        if table is not None and table.num_rows:
            write_if_changed(output / f"{day.isoformat()}.md", table.column("markdown")[0].as_py())
    write_if_changed(output / "README.md", render_index(lake))
