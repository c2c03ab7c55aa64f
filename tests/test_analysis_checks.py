"""Tests of the analyses' content checks: junk is refused by a named rule, prose passes."""

from __future__ import annotations

import asyncio
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
        ({"contribution": "Good."}, "too_short"),
        ({"impact": ["Segmentation."]}, "too_short"),
        ({"relevance": "论文将可提示的分割模型迁移到CT和MRI影像上。"}, "wrong_language"),
        ({"impact": [GOOD_EN["impact"][0], GOOD_EN["impact"][0].upper()]}, "repeated_items"),
        ({"relevance": GOOD_EN["contribution"]}, "repeated_items"),  # across fields
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
