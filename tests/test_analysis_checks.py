"""Tests of the analyses' content checks: junk is refused by a named rule, prose passes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tasks.analysis import (
    FIELD_NAMES,
    AbstractAnalysis,
    CompactAnalysis,
    analyse_papers,
    build_analysis_request,
)
from tasks.analysis_checks import check_analysis
from tasks.answers import Rejected
from tasks.llm import LLMCache, LLMClient, parse_answer
from tests.conftest import make_paper
from tests.servers.fake_llm import build_content

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

TITLE = "Segment Anything in Medical Images"
GOOD_EN = {
    "contribution": "The paper adapts a promptable segmentation model to CT and MRI scans.",
    "innovations": ["Prompts are learned from a few labelled scans.", "A 3D adapter is added."],
    "impact": ["Radiologists could segment new organs without retraining a model."],
    "applications": ["Tumour delineation in radiotherapy planning."],
    "limitations": ["Only two public datasets are used for evaluation."],
    "relevance": "It shows how foundation models transfer to medical computer vision tasks.",
}
LONG = (
    "The paper adapts a promptable segmentation model to CT and MRI scans, learning prompts "
    "from a few labelled scans and adding a light 3D adapter."
)
GOOD_ZH = {
    "contribution": "论文将可提示的分割模型迁移到CT和MRI影像上，并显著提升了精度。",
    "innovations": ["从少量标注扫描中学习提示。", "加入了三维适配器。"],
    "impact": ["放射科医生无需重新训练即可分割新器官。"],
    "applications": ["放疗计划中的肿瘤勾画。"],
    "limitations": ["只在两个公开数据集上评估。"],
    "relevance": "这项工作展示了基础模型如何迁移到医学计算机视觉任务。",
}


def check(fields: dict[str, Any], language: str = "en", base: dict[str, Any] | None = None) -> None:
    value = AbstractAnalysis(**{**(base or GOOD_EN), **fields})
    check_analysis(value, title=TITLE, language=language, field_names=FIELD_NAMES)


def rule_of(fields: dict[str, Any], language: str = "en") -> str:
    base = GOOD_ZH if language == "zh" else GOOD_EN
    with pytest.raises(Rejected) as refused:
        check(fields, language, base)
    return refused.value.rule


@pytest.mark.parametrize("language", ["en", "zh"])
def test_check_analysis_accepts_prose_in_the_requested_language(language: str) -> None:
    check({}, language, GOOD_ZH if language == "zh" else GOOD_EN)


def test_check_analysis_refuses_the_issues_junk_answer() -> None:
    """SmolLM2-135M's accepted answer on the bundled day before the checks existed (issue 17)."""
    junk = {
        "contribution": "CATEGORIES",
        "impact": ["86.72%", "86.73%", "86.74%"],
        "relevance": "CATEGORIES",
    }
    assert rule_of(junk) == "field_name"
    assert rule_of({"impact": junk["impact"]}) == "number_list"


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"contribution": "CATEGORIES"}, "field_name"),
        ({"contribution": "contribution"}, "field_name"),
        ({"relevance": "Key_Findings:"}, "field_name"),
        ({"impact": ["limitations"]}, "field_name"),  # another field's name
        ({"impact": ["method"]}, "field_name"),  # a field name of the compact template
        ({"relevance": "N/A"}, "field_name"),
        ({"contribution": TITLE}, "copies_title"),
        ({"contribution": TITLE.lower() + "."}, "copies_title"),
        ({"contribution": "PWNED"}, "all_caps_token"),
        ({"impact": ["GAN CNN"]}, "all_caps_token"),
        ({"impact": ["86.72%", "86.73%"]}, "number_list"),
        ({"relevance": "[0.5, 0.7, 0.9]"}, "number_list"),
        ({"impact": ["--- *** --- *** ---"]}, "not_prose"),
        ({"impact": ["https://github.com/ManOfStory/SFDNet"]}, "not_prose"),
        ({"applications": ["./Introduction.md#hires-a-hierarchical-pipeline"]}, "not_prose"),
        ({"contribution": "Good."}, "too_short"),
        ({"impact": ["Segmentation."]}, "too_short"),
        ({"relevance": "论文将可提示的分割模型迁移到CT和MRI影像上。"}, "wrong_language"),
        ({"impact": [GOOD_EN["impact"][0], GOOD_EN["impact"][0].upper()]}, "repeated_items"),
        ({"relevance": GOOD_EN["contribution"]}, "repeated_items"),  # across fields
        ({"contribution": LONG, "relevance": "So t" + LONG[1:]}, "repeated_items"),  # reopened
    ],
)
def test_check_analysis_names_the_rule_when_a_field_is_junk(
    fields: dict[str, Any], rule: str
) -> None:
    assert rule_of(fields) == rule


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"contribution": "The paper adapts a segmentation model to CT scans."}, "wrong_language"),
        ({"impact": ["分割。"]}, "too_short"),
        ({"relevance": "CATEGORIES"}, "field_name"),
        ({"relevance": "摘要"}, "field_name"),
    ],
)
def test_check_analysis_names_the_rule_when_a_zh_field_is_junk(
    fields: dict[str, Any], rule: str
) -> None:
    assert rule_of(fields, "zh") == rule


INSTRUCTIONS = (
    "You are an expert in Computer Vision and machine learning writing a concise, critical "
    "analysis of an arXiv paper from its abstract, in English."
)


def test_check_analysis_refuses_a_copy_of_the_instructions() -> None:
    copied = "It is a concise, critical analysis of an arXiv paper from its abstract."
    with pytest.raises(Rejected, match=r"^copies_prompt: contribution "):
        check_analysis(
            AbstractAnalysis(**{**GOOD_EN, "contribution": copied}),
            title=TITLE,
            language="en",
            instructions=INSTRUCTIONS,
        )


def test_check_analysis_accepts_a_common_phrase_shared_with_the_instructions() -> None:
    shared = "It advances research in computer vision and machine learning for hospitals."
    check_analysis(
        AbstractAnalysis(**{**GOOD_EN, "contribution": LONG, "relevance": shared}),
        title=TITLE,
        language="en",
        instructions=INSTRUCTIONS,
    )


def test_check_analysis_accepts_short_items_that_differ_in_one_word() -> None:
    items = ["The model improves segmentation accuracy.", "The model improves tracking accuracy."]
    check({"impact": items})


def test_check_analysis_reports_the_first_field_broken_with_its_place() -> None:
    with pytest.raises(Rejected) as refused:
        check({"impact": ["Radiologists could segment organs quickly.", "86%"], "relevance": "x"})
    assert str(refused.value).startswith("number_list: impact[1] ")


def test_check_analysis_accepts_english_terms_inside_chinese_prose() -> None:
    check(
        {"contribution": "SIMA 2 基于 Gemini 基础模型，能够在三维虚拟世界中理解并执行任务。"},
        "zh",
        GOOD_ZH,
    )


def test_check_analysis_covers_the_compact_template() -> None:
    value = CompactAnalysis(
        contribution="The paper adapts a promptable segmentation model to CT and MRI scans.",
        method="A small adapter is trained on a few labelled scans per organ.",
        impact="Hospitals could segment new organs without collecting large datasets.",
        limitation="CATEGORIES",
    )
    with pytest.raises(Rejected, match=r"^field_name: limitation "):
        check_analysis(value, title=TITLE, language="en", field_names=FIELD_NAMES)


# -- the fake LLM's answers pass (they stand for a good model in every other test) ---------------


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("fulltext", [None, "Full text of the paper."])
@pytest.mark.parametrize("style", ["full", "compact"])
def test_fake_llm_default_answers_pass_the_checks(
    language: str, fulltext: str | None, style: Any
) -> None:
    for n in range(150):
        paper = make_paper(f"2606.{n:05d}", title=f"Paper number {n} on depth", abstract=f"A{n}.")
        request = build_analysis_request(
            paper, fulltext, topic="Computer Vision", language=language, style=style
        )
        body = {
            "messages": request.messages,
            "response_format": {"type": "json_object", "schema": request.schema_for_model()},
        }
        parse_answer(request, build_content(body, seed=0))  # raises Rejected if refused


def test_analyse_papers_gives_the_placeholder_status_when_answers_stay_junk() -> None:
    """A junk answer, then a junk repair: the paper is `invalid` with the rule, and no text."""
    junk = '{"contribution": "CATEGORIES", "method": "x", "impact": "y", "limitation": "z"}'
    seen: list[list[dict[str, str]]] = []

    async def completion(**kwargs: Any) -> Any:
        from types import SimpleNamespace

        seen.append(kwargs["messages"])
        message = SimpleNamespace(content=junk)
        return SimpleNamespace(
            choices=[SimpleNamespace(message=message, finish_reason="stop")], usage=None
        )

    client = LLMClient(
        model="openai/local-model",
        api_base="http://127.0.0.1:9/v1",
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run",
        completion=completion,
    )
    (row,) = asyncio.run(
        analyse_papers(
            client, [make_paper(title=TITLE)], {}, topic="CV", language="en", style="compact"
        )
    )
    assert (row.template, row.status, row.markdown, row.fields_json) == (
        "compact",
        "invalid",
        None,
        None,
    )
    assert (row.error or "").startswith("field_name: contribution ")
    assert len(seen) == 2 and "field_name: contribution" in seen[1][-1]["content"]
    assert [c.status for c in client.calls] == ["rejected", "rejected"]


# -- the bundled local model's real answers (tests/data/local_model_answers, PROVENANCE.md) ------

ANSWERS = Path(__file__).parent / "data" / "local_model_answers"


def real_answers(name: str) -> list[dict[str, str]]:
    lines = (ANSWERS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def verdict(answer: dict[str, str], style: Any, instructions: str | None = None) -> str:
    """The rule that refuses a real answer, or "accepted"."""
    paper = make_paper(answer["arxiv_id"], title=answer["title"])
    request = build_analysis_request(paper, None, topic=TOPIC, language="en", style=style)
    if instructions is not None:
        request = replace(
            request,
            validate=partial(
                check_analysis,
                title=paper.title,
                language="en",
                field_names=FIELD_NAMES,
                instructions=instructions,
            ),
        )
    try:
        parse_answer(request, answer["content"])
    except Rejected as exc:
        return exc.rule
    return "accepted"


TOPIC = "Computer Vision"


def test_real_full_template_answers_are_all_refused_by_their_rule() -> None:
    """Before the checks, 7 of these 10 papers printed such answers as analyses."""
    first = {a["arxiv_id"]: verdict(a, "full") for a in real_answers(FULL) if a["turn"] == "first"}
    assert first == {
        "2606.28416": "invalid_json",  # cut at max_tokens
        "2606.28516": "field_name",  # "contribution": "CATEGORIES", "impact": ["86.72%", ...]
        "2606.29579": "repeated_items",  # read despite raw newlines; one text looped
        "2606.30201": "invalid_json",  # cut at max_tokens
        "2606.30319": "too_short",  # "contribution": "2-3 sentences"
        "2606.28570": "too_short",  # "innovations": ["coaching intelligence"]
        "2606.29029": "too_short",  # "contribution": "SFDNet", items ""
        "2606.29417": "too_short",  # "contribution": "Bit-ViP"
        "2606.29861": "copies_title",
        "2606.30179": "too_short",  # "contribution": "HiRes", numbers, a path
    }


def test_real_compact_answers_get_the_verdicts_measured_in_benchmarks() -> None:
    final: dict[str, str] = {}
    for answer in real_answers(COMPACT):  # a repair's verdict replaces its first answer's
        final[answer["arxiv_id"]] = verdict(answer, "compact")
    assert final == {
        "2606.28416": "copies_title",
        "2606.28516": "accepted",
        "2606.29579": "accepted",
        "2606.30201": "repeated_items",  # impact is contribution again
        "2606.30319": "too_short",  # "method": "It works by ..." (the example's opening)
        "2606.28570": "repeated_items",  # method is contribution with a new opening
        "2606.29029": "repeated_items",
        "2606.29417": "accepted",
        "2606.29861": "copies_title",
        "2606.30179": "accepted",
    }


def test_real_answers_that_copy_a_worked_example_are_refused() -> None:
    """A complete example answer in the prompt was copied into 2 of 3 answers (then dropped)."""
    answers = real_answers(WORKED_EXAMPLE)
    verdicts = {a["arxiv_id"]: verdict(a, "compact", instructions=OLD_EXAMPLE) for a in answers}
    assert verdicts == {
        "2606.28416": "accepted",
        "2606.28516": "copies_prompt",
        "2606.29579": "copies_prompt",
    }


FULL = "full-template-2026-06-30.jsonl"
COMPACT = "compact-template-2026-06-30.jsonl"
WORKED_EXAMPLE = "compact-worked-example-2026-06-30.jsonl"
# The worked example that compact-worked-example-2026-06-30.jsonl was answered with.
OLD_EXAMPLE = (
    '{"contribution": "The paper trains a small network that predicts a depth map from one '
    'photo.", "method": "The network learns from stereo image pairs, so no depth labels are '
    'needed.", "impact": "Real-time depth on a phone helps robots and apps understand 3D '
    'scenes.", "limitation": "It is tested on indoor benchmarks only, so outdoor accuracy is '
    'unknown."}'
)
