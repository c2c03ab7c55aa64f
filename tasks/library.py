"""A reader's library: BibTeX, CSL-JSON or arXiv-id files read, and each entry given its text.

Entries with an arXiv id take the paper's text from the lake (`papers`, or `library_papers`
where earlier lookups were kept), else from one batched `id_list` request to arXiv whose
answers are kept in the lake's `library_papers`; entries without one use their own title and
abstract.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import arxiv
from bibtexparser.entrypoint import parse_string
from bibtexparser.middlewares import LatexDecodingMiddleware
from bibtexparser.model import ParsingFailedBlock

from arxiv_digest.errors import ConfigError
from tasks.ingest import ArxivFeedClient, paper_from_result
from tasks.lake import Lake, papers_from_table, papers_table
from tasks.models import Paper

logger = logging.getLogger(__name__)

LIBRARY_DATASET = "library_papers"
_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7}"
_ID = rf"(?P<id>{_NEW_ID}|{_OLD_ID})(?:v\d+)?"
# Where exports put an arXiv id: abs/pdf URLs, arXiv's DOIs (10.48550/arXiv.ID), and
# "arXiv:ID" in notes, report numbers or Google Scholar's journal field.
_ID_IN_TEXT = (
    re.compile(rf"arxiv\.org/(?:abs|pdf)/{_ID}", re.IGNORECASE),
    re.compile(rf"10\.48550/arxiv\.(?P<id>{_NEW_ID})", re.IGNORECASE),
    re.compile(rf"\barxiv:\s*{_ID}", re.IGNORECASE),
)
_BARE_ID = re.compile(rf"{_ID}")
_ID_FIELDS = ("eprint", "url", "doi", "number", "note", "journal", "howpublished", "annote")
_CSL_ID_FIELDS = ("URL", "DOI", "number", "note", "archive_location", "container-title")


class LibraryError(ConfigError):
    """A library file cannot be read: missing, malformed, or holding no usable entry."""


@dataclass(frozen=True)
class LibraryEntry:
    """One item of a library file: its arXiv id if it has one, and its own text."""

    key: str  # citation key, CSL id, or the id itself
    arxiv_id: str | None  # without version
    title: str = ""
    abstract: str = ""
    authors: tuple[str, ...] = ()


@dataclass(frozen=True)
class LibraryDoc:
    """A library paper as relevance scoring sees it."""

    key: str
    arxiv_id: str | None
    title: str
    text: str


def arxiv_id_in(values: Iterable[str]) -> str | None:
    """The first arXiv id (no version) that `values` mention as a URL, DOI or `arXiv:` id.

    >>> arxiv_id_in(["https://doi.org/10.48550/arXiv.1706.03762"])
    '1706.03762'
    """
    for value in values:
        for pattern in _ID_IN_TEXT:
            match = pattern.search(value)
            if match:
                return match["id"]
    return None


def document_text(title: str, abstract: str, authors: Iterable[str]) -> str:
    """What the tf-idf sees of a paper: title, abstract and author names (as arxiv-sanity-lite)."""
    return " ".join([title, abstract, " ".join(authors)])


def paper_doc(paper: Paper, key: str | None = None) -> LibraryDoc:
    return LibraryDoc(
        key=key or paper.arxiv_id,
        arxiv_id=paper.arxiv_id,
        title=paper.title,
        text=document_text(paper.title, paper.abstract, paper.authors),
    )


# ---------------------------------------------------------------------------------------------
# Parsing library files (no I/O but reading the file)
# ---------------------------------------------------------------------------------------------


def read_library(path: Path) -> list[LibraryEntry]:
    """The entries of a library file, by its suffix: `.bib`/`.bibtex` (BibTeX), `.json` (CSL
    JSON), anything else a text file of arXiv ids or URLs. Raises LibraryError naming the file
    (and the line where it can) when it cannot be read or holds no usable entry."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LibraryError(f"library {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LibraryError(f"library {path}: cannot be read ({exc})") from None
    suffix = path.suffix.lower()
    if suffix in (".bib", ".bibtex"):
        entries = parse_bibtex(text, path)
    elif suffix == ".json":
        entries = parse_csl_json(text, path)
    else:
        entries = parse_id_list(text, path)
    if not entries:
        raise LibraryError(
            f"library {path}: no entry with an arXiv id or a title (is it the right export?)"
        )
    return entries


def parse_bibtex(text: str, path: Path) -> list[LibraryEntry]:
    """Entries of a BibTeX export (Zotero, Better BibTeX, Google Scholar, arXiv's own).

    Example input::

        @misc{vaswani_attention_2017,
            title = {Attention {Is} {All} {You} {Need}},
            url = {http://arxiv.org/abs/1706.03762},
            author = {Vaswani, Ashish and Shazeer, Noam},
            abstract = {The dominant sequence transduction models ...},
        }

    The arXiv id comes from `eprint` (Better BibTeX, with `archiveprefix`/`eprinttype` arXiv),
    an arXiv URL or DOI, or an `arXiv:` mention (note, number, journal). LaTeX is decoded.
    An entry with neither id nor title is skipped.
    """
    library = parse_string(text, append_middleware=[LatexDecodingMiddleware()])
    failed = [b for b in library.failed_blocks if isinstance(b, ParsingFailedBlock)]
    if failed:
        block = failed[0]
        line = (block.start_line or 0) + 1
        raise LibraryError(
            f"library {path}: line {line}: not valid BibTeX ({_first_line(block.error)})"
        )
    entries = []
    for entry in library.entries:
        fields = {name.lower(): str(value) for name, value in _bib_fields(entry).items()}
        prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "").lower()
        eprint = fields.get("eprint", "").strip()
        bare = _BARE_ID.fullmatch(eprint)
        arxiv_id = (
            bare["id"]
            if bare and (prefix == "arxiv" or not prefix)
            else arxiv_id_in(fields.get(f, "") for f in _ID_FIELDS)
        )
        authors = tuple(
            _person(name) for name in re.split(r"\s+and\s+", fields.get("author", "")) if name
        )
        item = LibraryEntry(
            key=entry.key,
            arxiv_id=arxiv_id,
            title=_clean(fields.get("title", "")),
            abstract=_clean(fields.get("abstract", "")),
            authors=authors,
        )
        if item.arxiv_id or item.title:
            entries.append(item)
    return entries


def _bib_fields(entry: Any) -> dict[str, object]:
    return {field.key: field.value for field in entry.fields}


def parse_csl_json(text: str, path: Path) -> list[LibraryEntry]:
    """Entries of a CSL-JSON export (Zotero: File > Export Library > CSL JSON).

    Example input: `[{"id": "http://zotero.org/users/1/items/AB", "type": "article",
    "title": "...", "abstract": "...", "URL": "http://arxiv.org/abs/2104.12255v1",
    "author": [{"family": "He", "given": "Kaiming"}]}]`.
    """
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LibraryError(
            f"library {path}: line {exc.lineno}: not valid JSON ({exc.msg})"
        ) from None
    if isinstance(items, dict) and isinstance(items.get("items"), list):
        items = items["items"]
    if not isinstance(items, list):
        raise LibraryError(f"library {path}: not CSL JSON (expected a list of items)")
    entries = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise LibraryError(f"library {path}: item {number} is not an object")
        values = [str(item.get(f, "")) for f in _CSL_ID_FIELDS]
        arxiv_id = arxiv_id_in(values)
        if arxiv_id is None and str(item.get("archive", "")).lower() == "arxiv":
            bare = _BARE_ID.search(str(item.get("number", "")))
            arxiv_id = bare["id"] if bare else None
        authors = tuple(
            name for name in (_csl_name(person) for person in item.get("author") or []) if name
        )
        entry = LibraryEntry(
            key=str(item.get("id", number)),
            arxiv_id=arxiv_id,
            title=_clean(str(item.get("title", ""))),
            abstract=_clean(str(item.get("abstract", ""))),
            authors=authors,
        )
        if entry.arxiv_id or entry.title:
            entries.append(entry)
    return entries


def parse_id_list(text: str, path: Path) -> list[LibraryEntry]:
    """Entries of a text file: one arXiv id or arXiv URL a line; blank lines and `#` comments
    are skipped. Example input: `2104.12255v1`, `https://arxiv.org/abs/1706.03762`."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        bare = _BARE_ID.fullmatch(line)
        arxiv_id = bare["id"] if bare else arxiv_id_in([line])
        if arxiv_id is None:
            raise LibraryError(
                f"library {path}: line {number}: {line[:80]!r} is not an arXiv id or arXiv URL"
            )
        entries.append(LibraryEntry(key=arxiv_id, arxiv_id=arxiv_id))
    return entries


def _person(name: str) -> str:
    """'Vaswani, Ashish' -> 'Ashish Vaswani'; braces and extra spaces dropped."""
    name = _clean(name)
    if "," in name:
        family, _, given = name.partition(",")
        name = f"{given.strip()} {family.strip()}"
    return name.strip()


def _csl_name(person: Any) -> str:
    if not isinstance(person, dict):
        return ""
    if person.get("literal"):
        return _clean(str(person["literal"]))
    return _clean(f"{person.get('given', '')} {person.get('family', '')}")


def _clean(value: str) -> str:
    return " ".join(value.replace("{", "").replace("}", "").split())


def _first_line(value: object) -> str:
    text = str(value or "syntax error").strip()
    return text.splitlines()[-1].strip() if text else "syntax error"


# ---------------------------------------------------------------------------------------------
# Giving entries their text: the lake, then arXiv
# ---------------------------------------------------------------------------------------------


def library_docs(entries: Sequence[LibraryEntry], known: Mapping[str, Paper]) -> list[LibraryDoc]:
    """The library as scoring sees it: an entry with an arXiv id known to the lake or arXiv
    takes that paper's text; any other entry its own title and abstract; an entry with
    neither (an id arXiv does not have, no title) is left out. One doc per arXiv id."""
    docs: list[LibraryDoc] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.arxiv_id is not None:
            if entry.arxiv_id in seen:
                continue
            seen.add(entry.arxiv_id)
            paper = known.get(entry.arxiv_id)
            if paper is not None:
                docs.append(paper_doc(paper, entry.key))
                continue
        if entry.title:
            text = document_text(entry.title, entry.abstract, entry.authors)
            docs.append(LibraryDoc(entry.key, entry.arxiv_id, entry.title, text))
    return docs


def lake_papers(lake: Lake, ids: Iterable[str], paper_days: Mapping[str, date]) -> dict[str, Paper]:
    """The papers of `ids` the lake holds: in `papers` (read from the days `paper_days` puts
    them in) or in `library_papers` (earlier lookups)."""
    wanted = set(ids)
    found: dict[str, Paper] = {}
    cached = lake.read_table(LIBRARY_DATASET)
    if cached.num_rows:
        for paper in papers_from_table(cached):
            if paper.arxiv_id in wanted:
                found[paper.arxiv_id] = paper
    for day in sorted({paper_days[i] for i in wanted if i in paper_days}):
        table = lake.read_day("papers", day)
        for paper in papers_from_table(table) if table is not None else []:
            if paper.arxiv_id in wanted:
                found[paper.arxiv_id] = paper
    return found


def lookup_papers(client: ArxivFeedClient, ids: Sequence[str]) -> list[Paper]:
    """The papers of `ids` as arXiv serves them: one `id_list` search (the client pages it at
    its page size, politely spaced). Ids arXiv does not have are left out by the API."""
    if not ids:
        return []
    search = arxiv.Search(id_list=list(ids), max_results=len(ids))
    papers: dict[str, Paper] = {}
    for result in client.results(search):
        paper = paper_from_result(result)
        papers.setdefault(paper.arxiv_id, paper)  # the replay repeats cross-listed entries
    return list(papers.values())


def load_library_docs(
    lake: Lake, library: Path, day: date, client: ArxivFeedClient | None
) -> list[LibraryDoc]:
    """A profile's library with its text: lake first, then one arXiv lookup for the ids the
    lake lacks, whose answers go to `library_papers` (partition `day`) for the next runs.
    With no client, ids the lake lacks use their entries' own text."""
    entries = read_library(library)
    ids = sorted({e.arxiv_id for e in entries if e.arxiv_id})
    known = lake_papers(lake, ids, lake.paper_days()) if ids else {}
    missing = [i for i in ids if i not in known]
    if missing and client is not None:
        fetched = lookup_papers(client, missing)
        if fetched:
            name = "lookup-" + hashlib.sha256(",".join(missing).encode()).hexdigest()[:16]
            lake.write_day_file(LIBRARY_DATASET, day, f"{name}.parquet", papers_table(fetched))
        known |= {p.arxiv_id: p for p in fetched}
        absent = [i for i in missing if i not in known]
        if absent:
            logger.warning(
                "library %s: arXiv has no paper %s%s",
                library,
                ", ".join(absent[:5]),
                " ..." if len(absent) > 5 else "",
            )
    docs = library_docs(entries, known)
    logger.info(
        "library %s: %d entries, %d usable (%d from the lake or arXiv)",
        library,
        len(entries),
        len(docs),
        sum(d.arxiv_id in known for d in docs),
    )
    return docs


def recent_papers(lake: Lake, day: date, days: int) -> list[Paper]:
    """The lake's papers of the `days` digest days up to and including `day`."""
    papers: list[Paper] = []
    for back in range(days):
        table = lake.read_day("papers", day - timedelta(days=back))
        if table is not None:
            papers.extend(papers_from_table(table))
    return papers
