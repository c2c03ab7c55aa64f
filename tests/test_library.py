"""Readers' libraries: Zotero BibTeX / CSL JSON / id files read; texts from the lake or arXiv."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tasks.ingest import ArxivFeedClient
from tasks.lake import Lake, papers_table
from tasks.library import (
    LIBRARY_DATASET,
    LibraryEntry,
    LibraryError,
    arxiv_id_in,
    library_docs,
    load_library_docs,
    read_library,
)
from tests.conftest import TEST_DATA, make_paper

LIBRARIES = TEST_DATA / "libraries"
DAY = date(2026, 6, 30)
# The medical library's arXiv papers: four of the bundled day's (cs.AI / cs.CL, so a cs.CV lake
# lacks them) and one from 2016 that the replay does not serve.
LISTED = ["2606.28556", "2606.28900", "2606.29746", "2606.29876"]
OLD = "1605.08386"


@pytest.mark.parametrize("name", ["medical.bib", "medical.json"])
def test_zotero_exports_give_ids_titles_abstracts_and_authors(name):
    entries = read_library(LIBRARIES / name)
    assert [e.arxiv_id for e in entries] == [*LISTED, None, OLD]
    first = entries[0]
    assert first.title == (
        "IMCBench: A benchmark for multimodal LLMs in Image-grounded Medical Conversations"
    )
    assert first.authors[:2] == ("Maria Xenochristou", "Ashutosh Joshi")
    # LaTeX escapes decoded (BibTeX writes \$ and \%), the text as arXiv has it.
    assert "($Δ$ = -0.27 each)" in first.abstract
    verbose = entries[4]
    assert verbose.title == "The Verbose Context Problem in Medical Records"
    assert verbose.abstract.startswith("The verbose context problem occurs when")
    assert entries[5].authors == ("Caprice Stanley", "Tobias Windisch")


def test_id_file_takes_ids_and_urls_and_skips_comments():
    entries = read_library(LIBRARIES / "medical-ids.txt")
    assert entries == [LibraryEntry(key=i, arxiv_id=i) for i in [*LISTED, OLD]]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["http://arxiv.org/abs/2104.12255v2"], "2104.12255"),
        (["https://arxiv.org/pdf/2606.29876v1"], "2606.29876"),
        (["10.48550/arXiv.1706.03762"], "1706.03762"),
        (["arXiv preprint arXiv:1605.08386"], "1605.08386"),
        (["arXiv:2606.28556 [cs]"], "2606.28556"),
        (["https://arxiv.org/abs/hep-th/9901001v3"], "hep-th/9901001"),
        (["https://doi.org/10.1109/CVPR.2016.90", "Proc. CVPR"], None),
        (["", "arXiv"], None),
    ],
)
def test_arxiv_ids_are_found_in_urls_dois_and_mentions(values, expected):
    assert arxiv_id_in(values) == expected


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        (
            "lib.json",
            '[\n  {"title": "A"},\n  {"title": "B",}\n]',
            "lib.json: line 3: not valid JSON",
        ),
        ("lib.json", '{"title": "A"}', "expected a list of items"),
        (
            "lib.txt",
            "2606.28556\n\nsee my notes\n",
            "lib.txt: line 3: 'see my notes' is not an arXiv",
        ),
        ("lib.bib", "@comment{nothing here}\n", "no entry with an arXiv id or a title"),
        (
            "lib.bib",
            "@misc{a,\n title = {A},\n}\n@misc{b,\n title = {B\n",
            "line 4: not valid BibTeX",
        ),
        ("lib.txt", "", "no entry"),
    ],
)
def test_bad_library_is_one_line_naming_file_and_line(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LibraryError) as caught:
        read_library(path)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_missing_library_file_is_named(tmp_path):
    with pytest.raises(LibraryError, match=r"nowhere\.bib: no such file"):
        read_library(tmp_path / "nowhere.bib")


def test_entries_take_the_known_papers_text_else_their_own_else_are_left_out():
    known = make_paper("2606.00001", title="Known title", abstract="Known abstract.")
    entries = [
        LibraryEntry("a", "2606.00001", title="Zotero's title", abstract="Zotero's abstract."),
        LibraryEntry("b", "2606.00001"),  # the same paper twice: once
        LibraryEntry("c", "2606.00002", title="Only in Zotero", abstract="Own abstract."),
        LibraryEntry("d", "2606.00003"),  # unknown id, no text: nothing to learn from
        LibraryEntry("e", None, title="A journal paper", authors=("Ada Lovelace",)),
    ]
    docs = library_docs(entries, {"2606.00001": known})
    assert [(d.key, d.arxiv_id, d.title) for d in docs] == [
        ("a", "2606.00001", "Known title"),
        ("c", "2606.00002", "Only in Zotero"),
        ("e", None, "A journal paper"),
    ]
    assert "Known abstract." in docs[0].text and "Zotero" not in docs[0].text
    assert docs[1].text == "Only in Zotero Own abstract. "
    assert docs[2].text.endswith("Ada Lovelace")


def local_lake(root: Path) -> Lake:
    import pyarrow.fs as pafs

    return Lake(url=str(root), fs=pafs.LocalFileSystem(), root=str(root))


def id_list_requests(replay) -> list[str]:
    return [r["params"].get("id_list", "") for r in replay.requests if r["params"].get("id_list")]


def test_ids_the_lake_lacks_are_looked_up_once_in_one_request_and_kept(tmp_path, replay):
    lake = local_lake(tmp_path / "lake")
    in_lake = make_paper("2606.28556", title="IMCBench as the lake has it", abstract="Lake text.")
    lake.write_day("papers", DAY, papers_table([in_lake]))
    client = ArxivFeedClient(replay.url, delay_s=0, backoff_s=0)
    library = LIBRARIES / "medical.bib"

    docs = load_library_docs(lake, library, DAY, client)
    # One request for the ids the lake lacks (the replay serves the three of the bundled day).
    assert id_list_requests(replay) == ["1605.08386,2606.28900,2606.29746,2606.29876"]
    by_key = {d.key: d for d in docs}
    assert by_key["xenochristou_imcbench_2026"].text.startswith("IMCBench as the lake has it")
    assert by_key["zhang_medevoeval_2026"].title.startswith("MedEvoEval")  # arXiv's text
    assert "Hui Zhang" in by_key["zhang_medevoeval_2026"].text
    # arXiv did not serve the 2016 paper: its own BibTeX abstract stands in.
    assert "heat-bath random walks" in by_key["stanley2016heat"].text
    assert by_key["kaul_verbose_2026"].arxiv_id is None
    kept = lake.read_table(LIBRARY_DATASET)
    assert sorted(kept.column("arxiv_id").to_pylist()) == LISTED[1:]

    again = load_library_docs(lake, library, DAY, client)
    assert again == docs
    # Only the id arXiv does not have is asked for again.
    assert id_list_requests(replay)[1:] == ["1605.08386"]


def test_without_a_client_ids_the_lake_lacks_use_their_own_text(tmp_path):
    lake = local_lake(tmp_path / "lake")
    docs = load_library_docs(lake, LIBRARIES / "medical-ids.txt", DAY, None)
    assert docs == []  # an id file carries no text of its own
    docs = load_library_docs(lake, LIBRARIES / "medical.json", DAY, None)
    assert [d.arxiv_id for d in docs] == [*LISTED, None, OLD]
