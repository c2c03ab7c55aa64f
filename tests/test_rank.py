"""Tests of ranking: the offline heuristic, the ordering rule and the LLM batch fallback."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from tasks.llm import LLMCache, LLMClient
from tasks.models import Paper
from tasks.rank import build_rank_request, calibrate, heuristic_score, rank, rank_papers
from tests.conftest import completion_response, make_paper

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

TOPIC, INTEREST, CATEGORIES = "computer vision", "", ("cs.CV",)


@pytest.mark.parametrize(
    ("categories", "title", "abstract", "expected"),
    [
        (("cs.CV",), "A paper", "We study things.", 5.0),  # primary category
        (("cs.CV", "cs.LG"), "A paper", "We study things.", 5.0),
        (("cs.LG", "cs.CV"), "A paper", "We study things.", 3.0),  # cross-listed
        (("math.AG",), "A paper", "We study things.", 0.0),  # neither
        (("math.AG",), "Vision at night", "We study things.", 2.0),  # title word: double
        (("math.AG",), "A paper", "We study vision.", 1.0),  # abstract word
        (("math.AG",), "Vision at night", "Vision is hard.", 3.0),  # both
        (("cs.CV",), "Computer vision", "Computer vision.", 5.0 + 5.0),  # overlap 6, capped
        (("cs.LG", "cs.CV"), "Computer vision", "Computer vision.", 3.0 + 5.0),
        (("math.AG",), "COMPUTER VISION", "", 4.0),  # case-insensitive
    ],
)
def test_heuristic_score_follows_documented_rule_when_paper_varies(
    categories: tuple[str, ...], title: str, abstract: str, expected: float
) -> None:
    paper = make_paper(categories=categories, title=title, abstract=abstract)
    assert heuristic_score(paper, TOPIC, INTEREST, CATEGORIES) == expected


def test_heuristic_score_caps_overlap_at_five_when_many_words_match() -> None:
    words = "segmentation tracking detection depth video"
    paper = make_paper(categories=("math.AG",), title=words, abstract=words)
    assert heuristic_score(paper, words, "", CATEGORIES) == 5.0


def test_heuristic_score_uses_interest_when_topic_lacks_word() -> None:
    paper = make_paper(categories=("math.AG",), title="Robotics grasping")
    assert heuristic_score(paper, TOPIC, "I like robotics.", CATEGORIES) == 2.0


def test_heuristic_score_ignores_stop_and_short_words_when_topic_has_them() -> None:
    paper = make_paper(
        categories=("math.AG",),
        title="The AI for 3D with and from",
        abstract="the and for with from that this into are our",
    )
    assert heuristic_score(paper, "the and for with AI 3D", "from that this", CATEGORIES) == 0.0


def test_heuristic_score_is_deterministic_when_called_again() -> None:
    papers = [
        make_paper(
            f"2606.0000{i}",
            categories=("cs.LG", "cs.CV"),
            title=f"Vision {i}",
            abstract="Computer models of vision.",
        )
        for i in range(5)
    ]
    first = [heuristic_score(p, TOPIC, "depth", CATEGORIES) for p in papers]
    again = [heuristic_score(p, TOPIC, "depth", list(CATEGORIES)) for p in reversed(papers)]
    assert first == list(reversed(again))
    assert all(0.0 <= s <= 10.0 for s in first)


def _papers(*ids: str) -> list[Paper]:
    return [make_paper(i) for i in ids]


def test_rank_orders_by_llm_score_when_present_else_calibrated_heuristic() -> None:
    papers = _papers("2606.00004", "2606.00003", "2606.00002", "2606.00001")
    heuristic = {"2606.00001": 5.0, "2606.00002": 7.0, "2606.00003": 7.5, "2606.00004": 1.0}
    result = rank(papers, {"2606.00001": 9.0, "2606.00003": 2.0}, heuristic, top_n=0)
    assert [r.arxiv_id for r in result] == ["2606.00001", "2606.00002", "2606.00003", "2606.00004"]
    # 2606.00002's heuristic 7.0 is 2/3 up the day's heuristic scores: 2/3 of the way from the
    # lowest LLM score (2) to the highest (9). 2606.00004 is the lowest: the lowest LLM score,
    # below 2606.00003 by the heuristic tie-break.
    assert [r.score for r in result] == [9.0, 6.667, 2.0, 2.0]
    assert [r.source for r in result] == ["llm", "heuristic", "llm", "heuristic"]
    assert [r.rank for r in result] == [1, 2, 3, 4]


def test_rank_breaks_ties_by_heuristic_then_id_when_scores_equal() -> None:
    papers = _papers("2606.00009", "2606.00005", "2606.00001", "2606.00007")
    heuristic = {"2606.00009": 4.0, "2606.00005": 4.0, "2606.00001": 2.0, "2606.00007": 6.0}
    llm = dict.fromkeys(heuristic, 8.0)
    result = rank(papers, llm, heuristic, top_n=0)
    assert [r.arxiv_id for r in result] == ["2606.00007", "2606.00005", "2606.00009", "2606.00001"]


@pytest.mark.parametrize(("top_n", "selected"), [(0, 4), (1, 1), (3, 3), (4, 4), (10, 4)])
def test_rank_selects_top_n_when_limit_given(top_n: int, selected: int) -> None:
    papers = _papers("2606.00001", "2606.00002", "2606.00003", "2606.00004")
    heuristic = {p.arxiv_id: float(i) for i, p in enumerate(papers)}
    result = rank(papers, {}, heuristic, top_n=top_n)
    assert [r.selected for r in result] == [True] * selected + [False] * (4 - selected)


def test_build_rank_request_bounds_index_when_batch_has_size() -> None:
    request = build_rank_request(
        _papers("2606.00001", "2606.00002", "2606.00003"),
        topic=TOPIC,
        interest=INTEREST,
        language="en",
    )
    schema = request.schema_for_model()
    assert schema["$defs"]["RankScore"]["properties"]["index"]["maximum"] == 2
    assert schema["$defs"]["RankScore"]["properties"]["index"]["minimum"] == 0
    assert schema["properties"]["scores"]["minItems"] == 3
    assert schema["properties"]["scores"]["maxItems"] == 3


def test_build_rank_request_keeps_own_bound_when_batches_differ() -> None:
    big = build_rank_request(
        _papers(*(f"2606.{i:05d}" for i in range(1, 8))),
        topic=TOPIC,
        interest=INTEREST,
        language="en",
    )
    small = build_rank_request(
        _papers("2606.00001", "2606.00002"), topic=TOPIC, interest=INTEREST, language="en"
    )
    index = "$defs", "RankScore", "properties", "index", "maximum"
    assert _dig(big.schema_for_model(), index) == 6
    assert _dig(small.schema_for_model(), index) == 1


def _dig(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


class ByBatch:
    """A fake completion answering each rank batch from the index bound in its schema.

    An answer given as a list is consumed in order: the first call, then the repair, ...
    """

    def __init__(self, answers: dict[int, dict[str, Any] | list[dict[str, Any]]]) -> None:
        self.answers = answers  # batch size -> answer(s)
        self.sizes: list[int] = []

    async def __call__(self, **kwargs: Any) -> SimpleNamespace:
        schema = kwargs["response_format"]["schema"]
        size = schema["$defs"]["RankScore"]["properties"]["index"]["maximum"] + 1
        self.sizes.append(size)
        answer = self.answers[size]
        content = json.dumps(answer.pop(0) if isinstance(answer, list) else answer)
        return completion_response(content)


async def _no_sleep(seconds: float) -> None:
    raise AssertionError("no retry expected")


def _client(completion: ByBatch) -> LLMClient:
    return LLMClient(
        model="openai/fake-model",
        api_base="http://127.0.0.1:9/v1",
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run",
        sleep=_no_sleep,
        completion=completion,
    )


def _scores(*pairs: tuple[int, int]) -> dict[str, Any]:
    return {"scores": [{"index": i, "score": s} for i, s in pairs]}


def _run_rank(
    papers: list[Paper], completion: ByBatch, top_n: int = 0, client: LLMClient | None = None
) -> list[Any]:
    return asyncio.run(
        rank_papers(
            client or _client(completion),
            papers,
            topic=TOPIC,
            interest=INTEREST,
            categories=CATEGORIES,
            language="en",
            top_n=top_n,
        )
    )


def test_rank_papers_uses_llm_scores_when_answer_valid() -> None:
    papers = _papers("2606.00001", "2606.00002", "2606.00003")
    completion = ByBatch({3: _scores((0, 1), (1, 9), (2, 5))})
    result = _run_rank(papers, completion, top_n=2)
    assert [(r.arxiv_id, r.score, r.source, r.selected) for r in result] == [
        ("2606.00002", 9.0, "llm", True),
        ("2606.00003", 5.0, "llm", True),
        ("2606.00001", 1.0, "llm", False),
    ]


def test_rank_papers_falls_back_to_heuristic_when_indices_out_of_range() -> None:
    papers = [
        make_paper("2606.00001", categories=("math.AG",)),
        make_paper("2606.00002", categories=("cs.CV",)),
        make_paper("2606.00003", categories=("cs.LG", "cs.CV")),
    ]
    completion = ByBatch({3: _scores((0, 3), (7, 10), (2, 4))})
    result = _run_rank(papers, completion)
    assert completion.sizes == [3, 3]  # the answer and one repair, both out of range
    assert [(r.arxiv_id, r.score, r.source) for r in result] == [
        ("2606.00002", 5.0, "heuristic"),
        ("2606.00003", 3.0, "heuristic"),
        ("2606.00001", 0.0, "heuristic"),
    ]


def test_rank_papers_falls_back_per_batch_when_one_batch_invalid() -> None:
    papers = _papers(*(f"2606.{i:05d}" for i in range(1, 28)))  # batches of 25 and 2
    completion = ByBatch({25: _scores(*((i, 1) for i in range(25))), 2: _scores((2, 10), (0, 10))})
    result = _run_rank(papers, completion)
    assert sorted(completion.sizes) == [2, 2, 25]
    sources = {r.arxiv_id: r.source for r in result}
    assert {sources[p.arxiv_id] for p in papers[:25]} == {"llm"}
    assert {sources[p.arxiv_id] for p in papers[25:]} == {"heuristic"}


def test_rank_papers_uses_only_heuristic_when_llm_ranking_off() -> None:
    import asyncio

    from tasks.llm import LLMCache, LLMClient
    from tasks.rank import rank_papers

    async def no_call(**_: object) -> None:
        raise AssertionError("ranking with the heuristic must not call the LLM")

    client = LLMClient(
        model="openai/fake-model",
        api_base="http://127.0.0.1:9/v1",
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run",
        completion=no_call,
    )
    papers = [
        make_paper("2606.00001", title="Vision transformers"),
        make_paper("2606.00002", categories=("cs.LG",), title="Graphs"),
    ]
    rankings = asyncio.run(
        rank_papers(
            client,
            papers,
            topic="Computer Vision",
            interest="",
            categories=["cs.CV"],
            language="en",
            top_n=1,
            use_llm=False,
        )
    )
    assert [(r.arxiv_id, r.source, r.selected) for r in rankings] == [
        ("2606.00001", "heuristic", True),
        ("2606.00002", "heuristic", False),
    ]
    assert client.calls == []


def _three_categories() -> list[Paper]:
    return [
        make_paper("2606.00001", categories=("math.AG",)),
        make_paper("2606.00002", categories=("cs.CV",)),
        make_paper("2606.00003", categories=("cs.LG", "cs.CV")),
    ]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (_scores((0, 3), (0, 10), (2, 4)), "indices given more than once: [0]"),  # 1 repeated
        (_scores((0, 3), (2, 4)), "indices missing: [1]"),  # 1 left out
        (_scores((0, 3), (1, 5), (2, 4), (1, 9)), "indices given more than once: [1]"),
    ],
)
def test_rank_papers_repairs_then_falls_back_when_indices_repeat_or_miss(
    answer: dict[str, Any], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    completion = ByBatch({3: answer})
    client = _client(completion)
    result = _run_rank(_three_categories(), completion, client=client)
    assert completion.sizes == [3, 3]  # the answer, then one repair request
    assert [(r.arxiv_id, r.score, r.source) for r in result] == [
        ("2606.00002", 5.0, "heuristic"),
        ("2606.00003", 3.0, "heuristic"),
        ("2606.00001", 0.0, "heuristic"),
    ]
    # An invalid answer is never cached as if valid: only its negative verdict is remembered.
    assert [k.split("-", 1)[0] for k in client.cache.entries] == ["invalid"]
    assert "scored by the heuristic" in caplog.text and problem in caplog.text


def test_rank_papers_uses_repaired_answer_when_repair_gives_each_index_once() -> None:
    completion = ByBatch({3: [_scores((0, 3), (0, 10), (2, 4)), _scores((0, 3), (1, 10), (2, 4))]})
    result = _run_rank(_three_categories(), completion)
    assert completion.sizes == [3, 3]
    assert [(r.arxiv_id, r.score, r.source) for r in result] == [
        ("2606.00002", 10.0, "llm"),
        ("2606.00003", 4.0, "llm"),
        ("2606.00001", 3.0, "llm"),
    ]


def test_build_rank_request_pins_each_index_once_when_model_follows_schema() -> None:
    from tests.servers.fake_llm import build_content

    batch = _papers(*(f"2606.{i:05d}" for i in range(1, 26)))
    request = build_rank_request(batch, topic=TOPIC, interest=INTEREST, language="en")
    schema = request.schema_for_model()
    pinned = [
        item["properties"]["index"]["const"]
        for item in schema["properties"]["scores"]["prefixItems"]
    ]
    assert pinned == list(range(25))
    # A schema-following model (the fake LLM) then names every paper exactly once.
    for seed in range(5):
        content = build_content(
            {
                "messages": request.messages,
                "response_format": {"type": "json_object", "schema": schema},
            },
            seed,
        )
        answer = request.schema.model_validate_json(content)
        assert request.validate is not None
        request.validate(answer)
        assert sorted(s.index for s in answer.scores) == list(range(25))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, 2.0),  # the day's lowest heuristic score -> the lowest LLM score
        (9.0, 8.0),  # the highest -> the highest
        (5.0, 4.0),  # 1/3 of the way up -> 1/3 of the way from 2 to 8
        (7.0, 6.0),
    ],
)
def test_calibrate_maps_heuristic_quantile_onto_llm_scores(value: float, expected: float) -> None:
    assert calibrate(value, [1.0, 5.0, 7.0, 9.0], [2.0, 8.0]) == expected


def test_calibrate_averages_tied_heuristic_scores_and_handles_one_llm_score() -> None:
    assert calibrate(5.0, [5.0, 5.0, 5.0], [0.0, 10.0]) == 5.0  # all tied: the middle
    assert calibrate(1.0, [1.0, 5.0, 9.0], [7.0]) == 7.0


def test_rank_puts_fallback_batch_among_llm_scores_when_heuristic_runs_higher() -> None:
    # The LLM is stingy (scores 1-4); the heuristic gives every cs.CV paper 5 or more. Compared
    # raw, the fallback papers would outrank every LLM-scored paper.
    llm_papers = [make_paper(f"2606.0000{i}", title=f"Paper {i}") for i in range(1, 5)]
    fallback = [
        make_paper("2606.00005", title="Computer vision"),  # heuristic 9
        make_paper("2606.00006", categories=("cs.LG", "cs.CV")),
    ]  # heuristic 3
    papers = llm_papers + fallback
    heuristic = {p.arxiv_id: heuristic_score(p, TOPIC, INTEREST, CATEGORIES) for p in papers}
    assert heuristic["2606.00005"] == 9.0 and heuristic["2606.00006"] == 3.0
    llm = {"2606.00001": 1.0, "2606.00002": 2.0, "2606.00003": 3.0, "2606.00004": 4.0}
    result = rank(papers, llm, heuristic, top_n=0)
    order = [r.arxiv_id for r in result]
    assert order[0] == "2606.00005"  # the heuristic's best is the LLM's best (4.0), tie won
    assert order[-1] == "2606.00006"  # the heuristic's worst is the LLM's worst (1.0)
    assert all(1.0 <= r.score <= 4.0 for r in result)
