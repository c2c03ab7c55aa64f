"""The rules the executive summary's prose must pass (tasks/summary_checks.py), on the kinds of
bad output the local model really wrote in the demo (issue 15: an invented "10% more data", a
leaked "{{#text}}" and "<|im_end|>", bare ids listed as themes), and the grounding measure."""

from __future__ import annotations

import pytest

from tasks.summary_checks import (
    ID_ONLY,
    MARKUP,
    REPEATED,
    RULES,
    TEMPLATE_TOKEN,
    THEME_UNCITED,
    TOO_LONG,
    UNKNOWN_ID,
    UNSUPPORTED_NUMBER,
    Claim,
    Rejection,
    content_words,
    find_rejection,
    grounding,
    numbers_in,
    rule_of,
    sentences,
    unsupported_numbers,
)

DAY_IDS = ("2606.00001v1", "2606.00002v2")
SOURCES = {
    "2606.00001v1": "Depth from focus\nWe estimate depth from a focal stack and improve "
    "accuracy by 10% on 3 benchmarks, with 0.5 dB more PSNR on 1,000 images.",
    "2606.00002v2": "Seeing in the dark\nA low-light detector that runs 2x faster.",
}
ABSTRACTS = {pid: text.split("\n", 1)[1] for pid, text in SOURCES.items()}


def check(text: str, kind: str = "highlight", cites: tuple[str, ...] = ("2606.00001v1",)):
    claim = Claim(kind, cites[0] if cites and kind != "theme" else "T1", text, cites)
    return find_rejection([claim], day_ids=DAY_IDS, sources=SOURCES, allowed_numbers={"2"})


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        # The demo's local model: a handlebars token, a chat end token, leaked into prose.
        ("{{#text}} The themall method uses depth.", TEMPLATE_TOKEN),
        ("Depth from a focal stack.<|im_end|>", TEMPLATE_TOKEN),
        ("It estimates {{ depth }} well.", TEMPLATE_TOKEN),
        ("See {title} for the method.", TEMPLATE_TOKEN),
        ("[INST] Summarise the paper [/INST] Depth from focus stacks.", TEMPLATE_TOKEN),
        ("It handles the $topic of depth.", TEMPLATE_TOKEN),
        ("Depth maps from <b>focal stacks</b>.", MARKUP),
        ("Depth maps from focal stacks.<br>", MARKUP),
        ("A **strong** depth estimator.", MARKUP),
        ("See [the code](https://example.org) for depth.", MARKUP),
        ("Depth via `focus_stack()`.", MARKUP),
        ("- Depth from focal stacks.", MARKUP),
        ("1. Depth from focal stacks.", MARKUP),
        ('{"note": "Depth from focal stacks."}', MARKUP),
        ("Depth from focal stacks (with fewer views.", MARKUP),
        ("Depth from focal stacks] and more.", MARKUP),
        ("深度估计（基于焦点堆栈。", MARKUP),
        ("Depth. " * 80, TOO_LONG),
        ("It builds on 2501.00001v1 for depth.", UNKNOWN_ID),
        ("It improves on 2606.00002v1 (a wrong version).", UNKNOWN_ID),
        # The demo's local model: bare ids (or a bare title) where a sentence belongs.
        ("2606.00001v1", ID_ONLY),
        ("arXiv:2606.00001v1.", ID_ONLY),
        ("(2606.00001)", ID_ONLY),
        ("Depth from focus", ID_ONLY),
        # The demo's local model: a result no abstract gives.
        ("It uses 10% more data and gains 12%.", UNSUPPORTED_NUMBER),
        ("It is 3x faster.", UNSUPPORTED_NUMBER),
        ("It reaches 0.7 dB.", UNSUPPORTED_NUMBER),
        ("精度提升了12%。", UNSUPPORTED_NUMBER),
    ],
)
def test_claim_is_rejected_by_the_named_rule_when_bad(text: str, rule: str) -> None:
    rejection = check(text)
    assert rejection is not None and rejection.rule == rule, rejection


@pytest.mark.parametrize(
    "text",
    [
        "It estimates depth from a focal stack.",
        "It improves accuracy by 10 % on 3 benchmarks.",  # 10 % is the abstract's 10%
        "It adds 0.50 dB of PSNR on 1000 images.",  # 0.50 = 0.5, 1000 = 1,000
        "A 3D depth method that beats GPT-4 and YOLOv8 features.",  # names, not numbers
        "It compares with 2606.00002v2 and 2606.00002, both of today.",
        "精度提升了10%，深度估计更准确。",
        "It is one of 2 papers on depth.",  # an allowed context number (the day's count)
        "Depth estimation with $\\mathbf{x}^{2}$ focal terms.",  # LaTeX braces are not tokens
    ],
)
def test_claim_passes_when_plain_and_supported(text: str) -> None:
    assert check(text) is None


def test_number_is_checked_against_the_cited_paper_only() -> None:
    # 2x is in the other paper's abstract: a claim about the first paper may not borrow it.
    assert check("It runs 2x faster.", cites=("2606.00002v2",)) is None
    rejection = check("It runs 3x faster.", cites=("2606.00002v2",))
    assert rejection is not None and rejection.rule == UNSUPPORTED_NUMBER
    rejection = find_rejection(
        [Claim("highlight", "2606.00001v1", "It runs 4x faster.", ("2606.00001v1",))],
        day_ids=DAY_IDS,
        sources=SOURCES,
    )
    assert rejection is not None and "'4x'" in rejection.detail


def test_theme_that_cites_no_paper_is_rejected() -> None:
    rejection = check("Depth from focal stacks is a theme.", kind="theme", cites=())
    assert rejection == Rejection(
        THEME_UNCITED, "theme T1", "no paper of today's data belongs to this theme"
    )
    assert check("Depth from focal stacks is a theme.", kind="theme") is None


@pytest.mark.parametrize(
    "texts",
    [
        ("Depth from focal stacks is solved.", "Depth from focal stacks is solved!"),
        ("It is fast. It is fast.",),
        ("A good read. Depth from focus.", "Low light. A GOOD read"),
    ],
)
def test_repeated_sentence_is_rejected_when_said_twice(texts: tuple[str, ...]) -> None:
    claims = [Claim("highlight", f"k{i}", t, ("2606.00001v1",)) for i, t in enumerate(texts)]
    rejection = find_rejection(claims, day_ids=DAY_IDS, sources=SOURCES)
    assert rejection is not None and rejection.rule == REPEATED


def test_first_broken_rule_is_reported_in_claim_order() -> None:
    claims = [
        Claim("overview", "", "A day of depth.", DAY_IDS),
        Claim("theme", "T1", "2606.00002v2", ("2606.00002v2",)),
        Claim("highlight", "2606.00001v1", "{{#text}}", ("2606.00001v1",)),
    ]
    rejection = find_rejection(claims, day_ids=DAY_IDS, sources=SOURCES)
    assert rejection is not None
    assert (rejection.rule, rejection.where) == (ID_ONLY, "theme T1")
    assert str(rejection).startswith("[id-only-bullet] theme T1: '2606.00002v2'")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("10 %", [("10", "%")]),
        ("10%", [("10", "%")]),
        ("10\\%", [("10", "%")]),
        ("10.0 percent", [("10", "%")]),
        ("0.50", [("0.5", "")]),
        ("1,000 images", [("1000", "")]),
        ("12.5x and 3 ×, 4 times, 5-fold", [("12.5", "x"), ("3", "x"), ("4", "x"), ("5", "x")]),
        ("提升10％", [("10", "%")]),
        ("3D, GPT-4, YOLOv8, v2, top-1, 2606.00001v1, hep-th/9901001", []),
    ],
)
def test_numbers_are_normalised_when_written_differently(
    text: str, found: list[tuple[str, str]]
) -> None:
    assert [(n.value, n.unit) for n in numbers_in(text)] == found


def test_percentage_needs_a_percentage_but_a_plain_number_any_form() -> None:
    assert unsupported_numbers("10%", ["10 images"]) == ["10%"]
    assert unsupported_numbers("10 images", ["10% of images"]) == []
    assert unsupported_numbers("2x", ["2 times faster"]) == []
    assert unsupported_numbers("2-fold", ["2 datasets"]) == ["2-fold"]
    assert unsupported_numbers("2025", [], allowed={"2025"}) == []


def test_rule_of_reads_the_rule_from_a_rejection_message() -> None:
    problem = "invalid answer after one repair: [unsupported-number] theme T1: '10%' ..."
    assert rule_of(problem) == UNSUPPORTED_NUMBER
    assert rule_of("themes: Input should be a valid dictionary [type=dict_type]") is None
    assert rule_of(None) is None
    assert set(RULES) >= {TEMPLATE_TOKEN, MARKUP, ID_ONLY, THEME_UNCITED, REPEATED}


def test_sentences_split_after_latin_and_cjk_ends() -> None:
    assert sentences("One. Two! 三。四？ ...") == ["One.", "Two!", "三。", "四？"]


# -- grounding ----------------------------------------------------------------------------------


def test_grounding_counts_sentences_sharing_a_content_word_with_their_cited_abstract() -> None:
    claims = [
        Claim("overview", "", "Nothing in common here at all.", DAY_IDS),  # not counted
        Claim("theme", "T1", "Focal stacks give depth. Birds sing.", ("2606.00001v1",)),
        Claim("highlight", "2606.00002v2", "A detector for the night.", ("2606.00002v2",)),
        Claim("recommended", "2606.00002v2", "Depth from focal stacks.", ("2606.00002v2",)),
    ]
    measured = grounding(claims, ABSTRACTS)
    assert (measured.sentences, measured.grounded) == (4, 2)
    assert measured.share == 0.5


def test_grounding_is_zero_when_there_is_no_cited_sentence() -> None:
    assert grounding([], ABSTRACTS).share == 0.0


def test_content_words_drop_stopwords_and_pair_cjk_characters() -> None:
    assert content_words("The proposed detectors and a depth map") == {"detector", "depth", "map"}
    assert content_words("深度估计") == {"深度", "度估", "估计"}
