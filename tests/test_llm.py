"""Tests of the LLM adapter: cache keys, cache hits, retries, repair, limits, response format."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import litellm
import pytest
from pydantic import BaseModel, Field

import tasks.llm as llm_module
import tasks.prompts as prompts_module
from arxiv_digest.errors import DayCancelledError, LLMUnavailableError
from tasks.analysis import build_analysis_request
from tasks.answers import Rejected
from tasks.llm import (
    LLMCache,
    LLMClient,
    LLMConfigError,
    LLMRequest,
    RateLimiter,
    invalid_key,
    parse_answer,
)
from tasks.prompts import Prompt, load_prompt
from tests.conftest import free_port, make_paper
from tests.servers.fake_llm import FakeLLMServer, LLMFault
from tests.servers.loopback import LoopbackHandler, LoopbackServer

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
litellm.suppress_debug_info = True

MODEL = "openai/fake-model"
VALID = '{"label": "ok", "n": 3}'


class Answer(BaseModel):
    label: str
    n: int = Field(ge=0, le=5)


class OtherAnswer(BaseModel):
    label: str


PROMPT = Prompt(name="test.en", system="You answer in JSON.", user="Say $x.", sha256="a" * 64)


def make_request(
    subject: str = "2606.00001v1", text: str = "hello", **changes: Any
) -> LLMRequest[Answer]:
    request = LLMRequest(
        stage="test",
        subject=subject,
        prompt=PROMPT,
        messages=PROMPT.messages(x=text),
        schema=Answer,
        language="en",
    )
    return replace(request, **changes)


# -- fakes ----------------------------------------------------------------------------------------


class Recorder:
    """An async `sleep` that records every wait and moves a fake clock forward by it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def reply(content: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> SimpleNamespace:
    return SimpleNamespace(
        choices=[SimpleNamespace(message=SimpleNamespace(content=content))],
        usage=SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
    )


class Scripted:
    """A fake `litellm.acompletion`: each call takes the next step (content or exception)."""

    def __init__(self, *steps: str | BaseException) -> None:
        self.steps = list(steps)
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(kwargs)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, BaseException):
            raise step
        return reply(step)


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://x/v1/chat/completions")


def rate_limited(retry_after: str | None = None) -> litellm.RateLimitError:
    headers = {"retry-after": retry_after} if retry_after else {}
    return litellm.RateLimitError(
        message="slow down",
        llm_provider="openai",
        model="fake-model",
        response=httpx.Response(429, headers=headers, request=_request()),
    )


TRANSIENT = {
    "429": lambda: rate_limited(),
    "500": lambda: litellm.InternalServerError(
        message="boom",
        llm_provider="openai",
        model="fake-model",
        response=httpx.Response(500, request=_request()),
    ),
    "502": lambda: litellm.BadGatewayError(
        message="bad gateway",
        llm_provider="openai",
        model="fake-model",
        response=httpx.Response(502, request=_request()),
    ),
    "503": lambda: litellm.ServiceUnavailableError(
        message="unavailable",
        llm_provider="openai",
        model="fake-model",
        response=httpx.Response(503, request=_request()),
    ),
    "timeout": lambda: litellm.Timeout(
        message="timed out", model="fake-model", llm_provider="openai"
    ),
    "connection": lambda: litellm.APIConnectionError(
        message="refused", llm_provider="openai", model="fake-model", request=_request()
    ),
}


def make_client(
    completion: Any = None,
    *,
    cache: LLMCache | None = None,
    recorder: Recorder | None = None,
    jitter: float = 0.5,
    **kwargs: Any,
) -> LLMClient:
    recorder = recorder or Recorder()
    options: dict[str, Any] = {
        "api_base": "http://127.0.0.1:9/v1",
        "api_key": "sk-test",
        "max_attempts": 4,
        "backoff_s": 1.0,
        **kwargs,
    }
    return LLMClient(
        model=MODEL,
        cache=cache if cache is not None else LLMCache(),
        run_id="run-1",
        sleep=recorder.sleep,
        clock=recorder.clock,
        jitter=lambda: jitter,
        completion=completion,
        **options,
    )


# -- cache key ------------------------------------------------------------------------------------


@pytest.fixture
def prompts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of prompts/ that load_prompt reads from (its memo cleared around)."""
    copy = tmp_path / "prompts"
    shutil.copytree(prompts_module.PROMPTS_DIR, copy)
    monkeypatch.setattr(prompts_module, "PROMPTS_DIR", copy)
    load_prompt.cache_clear()
    yield copy
    load_prompt.cache_clear()


def _analysis_key(abstract: str = "We study things.", language: str = "en") -> str:
    request = build_analysis_request(
        make_paper(abstract=abstract), None, topic="vision", language=language
    )
    return request.cache_key(MODEL)


def test_cache_key_changes_when_prompt_file_changes(prompts_dir: Path) -> None:
    before = _analysis_key()
    path = prompts_dir / "analysis_abstract.en.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("version: 1", "version: 2"), encoding="utf-8"
    )
    load_prompt.cache_clear()
    assert _analysis_key() != before


def test_cache_key_stable_when_another_prompt_file_changes(prompts_dir: Path) -> None:
    before = _analysis_key()
    path = prompts_dir / "rank.en.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nBe brief.\n", encoding="utf-8")
    load_prompt.cache_clear()
    assert _analysis_key() == before


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": replace(PROMPT, sha256="b" * 64)},
        {"language": "zh"},
        {"messages": PROMPT.messages(x="hello!")},
        {"max_tokens": 1501},
        {"schema": OtherAnswer},
    ],
    ids=["prompt-hash", "language", "input-text", "max-tokens", "schema"],
)
def test_cache_key_changes_when_an_input_changes(change: dict[str, Any]) -> None:
    assert make_request(**change).cache_key(MODEL) != make_request().cache_key(MODEL)


def test_cache_key_changes_when_model_changes() -> None:
    request = make_request()
    assert request.cache_key(MODEL) != request.cache_key("openai/other-model")


def test_cache_key_changes_when_temperature_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    before = make_request().cache_key(MODEL)
    monkeypatch.setattr(llm_module, "TEMPERATURE", 0.7)
    assert make_request().cache_key(MODEL) != before


def test_cache_key_stable_when_nothing_that_decides_the_answer_changes() -> None:
    first = make_request()
    again = make_request(validate=lambda answer: None)
    assert first.cache_key(MODEL) == again.cache_key(MODEL)
    assert _analysis_key("Same text.") == _analysis_key("Same text.")


def test_cache_key_stable_when_run_id_changes() -> None:
    keys = []
    for run_id in ("run-a", "run-b"):
        client = make_client(Scripted(VALID))
        client.run_id = run_id
        asyncio.run(client.structured(make_request()))
        keys.append(client.calls[0].cache_key)
    assert keys[0] == keys[1]


# -- cache use ------------------------------------------------------------------------------------


def test_structured_makes_no_call_when_answer_cached() -> None:
    request = make_request()
    cache = LLMCache()
    cache.put(request.cache_key(MODEL), "test", request.subject, VALID)
    completion = Scripted(AssertionError("the model must not be called"))
    client = make_client(completion, cache=cache)
    outcome = asyncio.run(client.structured(request))
    assert outcome.status == "ok"
    assert outcome.value == Answer(label="ok", n=3)
    assert completion.calls == []
    assert [c.cache_hit for c in client.calls] == [True]
    assert client.calls[0].attempts == 0


def test_structured_caches_answer_when_valid() -> None:
    cache = LLMCache()
    request = make_request()
    asyncio.run(make_client(Scripted(VALID), cache=cache).structured(request))
    assert cache.get(request.cache_key(MODEL)) == VALID
    assert cache.new_keys == [request.cache_key(MODEL)]
    again = Scripted(AssertionError("cached"))
    assert asyncio.run(make_client(again, cache=cache).structured(request)).status == "ok"
    assert again.calls == []


def test_structured_caches_pair_when_repaired() -> None:
    cache = LLMCache()
    outcome = asyncio.run(
        make_client(Scripted("not json", VALID), cache=cache).structured(make_request())
    )
    assert outcome.status == "repaired"
    assert len(cache.entries) == 2
    again = Scripted(AssertionError("cached"))
    client = make_client(again, cache=cache)
    assert asyncio.run(client.structured(make_request())).status == "repaired"
    assert again.calls == []
    assert [c.cache_hit for c in client.calls] == [True, True]


def test_structured_remembers_invalid_and_asks_nothing_when_run_again() -> None:
    cache = LLMCache()
    request = make_request()
    outcome = asyncio.run(make_client(Scripted("not json"), cache=cache).structured(request))
    assert outcome.status == "invalid"
    # Only the verdict is stored (a negative entry), never the invalid answer as an answer.
    assert cache.get(request.cache_key(MODEL)) is None
    assert list(cache.entries) == [invalid_key(request.cache_key(MODEL))]
    again = Scripted(AssertionError("a remembered invalid answer must not be asked again"))
    client = make_client(again, cache=cache)
    outcome = asyncio.run(client.structured(request))
    assert (outcome.status, outcome.error) == (
        "invalid",
        cache.get(invalid_key(request.cache_key(MODEL))),
    )
    assert again.calls == []
    assert [(c.cache_hit, c.status) for c in client.calls] == [(True, "invalid")]
    assert client.outcomes == {"invalid": 1}
    # The verdict holds for that model, prompt and input only: a new model or prompt asks.
    other_model = Scripted(VALID)
    client = make_client(other_model, cache=cache)
    client.model = "openai/other-model"
    assert asyncio.run(client.structured(request)).status == "ok"
    new_prompt = Scripted(VALID)
    changed = make_request(prompt=replace(PROMPT, sha256="b" * 64))
    assert asyncio.run(make_client(new_prompt, cache=cache).structured(changed)).status == "ok"
    assert (len(other_model.calls), len(new_prompt.calls)) == (1, 1)


def test_structured_asks_again_when_invalid_and_retry_invalid() -> None:
    cache = LLMCache()
    asyncio.run(make_client(Scripted("not json"), cache=cache).structured(make_request()))
    again = Scripted(VALID)
    client = make_client(again, cache=cache, retry_invalid=True)
    assert asyncio.run(client.structured(make_request())).status == "ok"
    assert len(again.calls) == 1
    # The valid answer now wins over the old verdict, also without retry_invalid.
    later = Scripted(AssertionError("cached"))
    assert asyncio.run(make_client(later, cache=cache).structured(make_request())).status == "ok"


def test_structured_caches_nothing_when_failed() -> None:
    cache = LLMCache()
    outcome = asyncio.run(
        make_client(Scripted(TRANSIENT["500"]()), cache=cache, max_attempts=2).structured(
            make_request()
        )
    )
    assert outcome.status == "failed"
    assert cache.entries == {}


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_structured_retries_with_backoff_when_transient_error(kind: str) -> None:
    recorder = Recorder()
    completion = Scripted(TRANSIENT[kind](), TRANSIENT[kind](), TRANSIENT[kind](), VALID)
    client = make_client(completion, recorder=recorder, jitter=0.5)
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "ok"
    # backoff_s * 2**attempt, times (0.5 + jitter/2) = 0.75
    assert recorder.waits == [0.75, 1.5, 3.0]
    assert len(completion.calls) == 4
    assert client.calls[0].attempts == 4
    assert client.calls[0].status == "ok"


@pytest.mark.parametrize(("jitter", "expected"), [(0.0, [0.5, 1.0]), (1.0, [1.0, 2.0])])
def test_structured_scales_backoff_when_jitter_varies(jitter: float, expected: list[float]) -> None:
    recorder = Recorder()
    completion = Scripted(TRANSIENT["500"](), TRANSIENT["500"](), VALID)
    asyncio.run(
        make_client(completion, recorder=recorder, jitter=jitter).structured(make_request())
    )
    assert recorder.waits == expected


def test_structured_caps_backoff_when_attempts_grow() -> None:
    recorder = Recorder()
    completion = Scripted(TRANSIENT["500"]())
    asyncio.run(
        make_client(
            completion, recorder=recorder, jitter=1.0, backoff_s=40.0, max_attempts=3
        ).structured(make_request())
    )
    assert recorder.waits == [40.0, 60.0]


def test_structured_honours_retry_after_when_rate_limited() -> None:
    recorder = Recorder()
    completion = Scripted(rate_limited("7"), rate_limited("7"), VALID)
    outcome = asyncio.run(
        make_client(completion, recorder=recorder, jitter=0.5).structured(make_request())
    )
    assert outcome.status == "ok"
    assert recorder.waits == [7.0, 7.0]


def test_structured_uses_backoff_when_retry_after_is_shorter() -> None:
    recorder = Recorder()
    completion = Scripted(rate_limited("0.1"), VALID)
    asyncio.run(
        make_client(completion, recorder=recorder, jitter=0.5, backoff_s=2.0).structured(
            make_request()
        )
    )
    assert recorder.waits == [1.5]


def test_structured_gives_up_when_max_attempts_reached() -> None:
    recorder = Recorder()
    completion = Scripted(TRANSIENT["timeout"]())
    client = make_client(completion, recorder=recorder, max_attempts=3)
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "failed"
    assert outcome.value is None
    assert "3 attempt" in (outcome.error or "")
    assert len(completion.calls) == 3
    assert recorder.waits == [0.75, 1.5]  # no wait after the last attempt
    record = client.calls[0]
    assert (record.status, record.attempts, record.error) == ("error", 3, "Timeout")


def test_structured_fails_at_once_when_bad_request() -> None:
    recorder = Recorder()
    error = litellm.BadRequestError(message="bad schema", model="fake-model", llm_provider="openai")
    completion = Scripted(error)
    outcome = asyncio.run(make_client(completion, recorder=recorder).structured(make_request()))
    assert outcome.status == "failed"
    assert "BadRequestError" in (outcome.error or "")
    assert len(completion.calls) == 1
    assert recorder.waits == []


@pytest.mark.parametrize(
    "error",
    [
        litellm.AuthenticationError(
            message="bad key",
            llm_provider="openai",
            model="fake-model",
            response=httpx.Response(401, request=_request()),
        ),
        litellm.NotFoundError(
            message="no model",
            llm_provider="openai",
            model="fake-model",
            response=httpx.Response(404, request=_request()),
        ),
    ],
    ids=["401", "404"],
)
def test_structured_raises_config_error_when_provider_refuses(error: Exception) -> None:
    recorder = Recorder()
    completion = Scripted(error, VALID)
    with pytest.raises(LLMConfigError, match="DIGEST_LLM_MODEL"):
        asyncio.run(make_client(completion, recorder=recorder).structured(make_request()))
    assert len(completion.calls) == 1
    assert recorder.waits == []


def test_structured_fails_fast_when_provider_refused_an_earlier_call() -> None:
    refused = litellm.AuthenticationError(
        message="bad key",
        llm_provider="openai",
        model="fake-model",
        response=httpx.Response(401, request=_request()),
    )
    completion = Scripted(refused, VALID)
    client = make_client(completion)
    with pytest.raises(LLMConfigError):
        asyncio.run(client.structured(make_request()))
    with pytest.raises(LLMConfigError, match="refused"):
        asyncio.run(client.structured(make_request(subject="2606.00002v1")))
    assert len(completion.calls) == 1  # the open circuit answered the second one
    assert [c.status for c in client.calls] == ["error"]


def test_structured_opens_circuit_when_connections_refused_not_when_reset(
    fake_llm: FakeLLMServer,
) -> None:
    # A reset mid-request is transient: three in a row are retried, the circuit stays closed.
    fake_llm.set_faults(LLMFault("reset", count=3))
    client = server_client(fake_llm, Recorder(), max_attempts=4)
    assert asyncio.run(client.structured(make_request())).status == "ok"
    assert [c["fault"] for c in fake_llm.calls] == ["reset", "reset", "reset", None]

    recorder = Recorder()
    base = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = LLMClient(
        model=MODEL,
        api_base=base,
        api_key="sk-secret-test",
        cache=LLMCache(),
        run_id="run-1",
        max_attempts=4,
        sleep=recorder.sleep,
        jitter=lambda: 0.5,
    )
    with pytest.raises(LLMUnavailableError) as caught:
        asyncio.run(client.structured(make_request()))
    message = str(caught.value)
    assert base in message and "DIGEST_LLM_API_BASE" in message
    assert "sk-secret-test" not in message
    assert recorder.waits == [0.75, 1.5]  # tripped at the third attempt, not after the fourth
    assert (client.calls[0].attempts, client.calls[0].status) == (3, "error")
    # Every later call fails at once, without going out.
    with pytest.raises(LLMUnavailableError, match="cannot reach the LLM"):
        asyncio.run(client.structured(make_request(subject="2606.00002v1")))
    assert len(client.calls) == 1 and recorder.waits == [0.75, 1.5]


def test_client_refuses_model_without_provider_before_any_call() -> None:
    with pytest.raises(LLMConfigError, match=r"no provider for model 'fake-model'.*DIGEST_LLM"):
        LLMClient(
            model="fake-model",
            api_base="http://127.0.0.1:9/v1",
            api_key="sk-test",
            cache=LLMCache(),
            run_id="run-1",
        )


class Hanging:
    """A completion that refuses the request saying "boom" and holds the others until cancelled."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0

    async def __call__(self, **kwargs: Any) -> SimpleNamespace:
        self.started += 1
        if "boom" in kwargs["messages"][-1]["content"]:
            raise litellm.AuthenticationError(
                message="bad key",
                llm_provider="openai",
                model="fake-model",
                response=httpx.Response(401, request=_request()),
            )
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")


def test_structured_many_cancels_the_others_when_one_raises() -> None:
    completion = Hanging()
    client = make_client(completion, concurrency=4)
    texts = ["a", "b", "c", "boom", "d", "e", "f"]
    requests = [make_request(subject=f"2606.0000{i}v1", text=t) for i, t in enumerate(texts)]

    async def run() -> tuple[int, int]:
        with pytest.raises(LLMConfigError):
            await client.structured_many(requests)
        return completion.started, completion.cancelled  # as the error reaches the caller

    assert asyncio.run(run()) == (4, 3)
    assert sorted(c.status for c in client.calls) == ["cancelled"] * 3 + ["error"]


def test_client_sends_nothing_more_when_a_request_of_another_stage_raises() -> None:
    # Any error escaping a request fails its stage and so the day: the client stops on the
    # spot, before another stage's queued request takes the free slot.
    completion = Scripted(RuntimeError("unexpected"), VALID)
    client = make_client(completion, concurrency=1)
    ranking = [make_request(subject="2606.00001v1")]
    findings = [make_request(subject=f"2606.0001{i}v1", text=f"p{i}") for i in range(3)]

    async def two_stages() -> list[Any]:
        return await asyncio.gather(
            client.structured_many(ranking),
            client.structured_many(findings),
            return_exceptions=True,
        )

    first, second = asyncio.run(two_stages())
    assert isinstance(first, RuntimeError)
    assert isinstance(second, DayCancelledError) and "unexpected" in str(second)
    assert len(completion.calls) == 1


# -- repair ---------------------------------------------------------------------------------------


def test_structured_sends_one_repair_when_answer_invalid() -> None:
    completion = Scripted('{"label": "ok"', VALID)
    request = make_request()
    outcome = asyncio.run(make_client(completion).structured(request))
    assert outcome.status == "repaired"
    assert outcome.value == Answer(label="ok", n=3)
    assert len(completion.calls) == 2
    repair = completion.calls[1]["messages"]
    assert repair[: len(request.messages)] == request.messages
    assert repair[len(request.messages)] == {"role": "assistant", "content": '{"label": "ok"'}
    assert repair[-1]["role"] == "user"
    assert "not valid" in repair[-1]["content"]


def test_structured_sends_repair_in_request_language_when_language_zh() -> None:
    completion = Scripted('{"label": "ok"', VALID)
    outcome = asyncio.run(make_client(completion).structured(make_request(language="zh")))
    assert outcome.status == "repaired"
    repair = completion.calls[1]["messages"][-1]
    assert repair["role"] == "user"
    assert "无效" in repair["content"]
    assert "not valid" not in repair["content"]


def test_structured_returns_invalid_when_repair_also_invalid() -> None:
    completion = Scripted('{"label": "ok", "n": 99}')
    client = make_client(completion)
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "invalid"
    assert outcome.value is None
    assert "n" in (outcome.error or "")
    assert len(completion.calls) == 2  # exactly one repair, never a third call
    assert len(client.calls) == 2


def test_structured_repairs_when_stage_check_rejects() -> None:
    def validate(answer: Answer) -> None:
        if answer.label != "good":
            raise ValueError("label must be good")

    completion = Scripted(VALID, '{"label": "good", "n": 1}')
    outcome = asyncio.run(make_client(completion).structured(make_request(validate=validate)))
    assert outcome.status == "repaired"
    assert "label must be good" in completion.calls[1]["messages"][-1]["content"]


def test_structured_repairs_when_answer_empty() -> None:
    completion = Scripted("", VALID)
    outcome = asyncio.run(make_client(completion).structured(make_request()))
    assert outcome.status == "repaired"
    assert "empty_answer" in completion.calls[1]["messages"][-1]["content"]


# -- JSON extraction (the lenient rules themselves: tests/test_answers.py) -------------------------


def test_parse_answer_accepts_answer_when_fenced() -> None:
    assert parse_answer(make_request(), f"```json\n{VALID}\n```") == Answer(label="ok", n=3)


def test_parse_answer_accepts_raw_newline_inside_a_string() -> None:
    answer = parse_answer(make_request(), '{"label": "two\nlines", "n": 3}')
    assert answer == Answer(label="two\nlines", n=3)


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("", "empty_answer"),
        ('{"label": "ok"', "invalid_json"),
        ('{"label": "ok", "n": 99}', "schema"),
    ],
)
def test_parse_answer_names_the_rule_when_answer_refused(content: str, rule: str) -> None:
    with pytest.raises(Rejected) as refused:
        parse_answer(make_request(), content)
    assert refused.value.rule == rule
    assert str(refused.value).startswith(f"{rule}: ")


def test_structured_accepts_control_characters_without_a_repair() -> None:
    completion = Scripted('{"label": "line one\n\tline two", "n": 2}')
    outcome = asyncio.run(make_client(completion).structured(make_request()))
    assert (outcome.status, len(completion.calls)) == ("ok", 1)


def test_structured_records_the_rule_of_a_rejected_answer_in_its_call() -> None:
    completion = Scripted('{"label": "ok", "n": 99}', VALID)
    seen: list[tuple[str, str | None]] = []
    client = make_client(completion, on_record=lambda r: seen.append((r.status, r.error)))
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "repaired"
    assert (outcome.error or "").startswith("schema: n: ")  # the rule the first answer broke
    assert [c.status for c in client.calls] == ["rejected", "ok"]
    assert (client.calls[0].error or "").startswith("schema: n: ")
    assert seen == [(c.status, c.error) for c in client.calls]  # handed on once final


def test_structured_records_the_final_rule_when_invalid() -> None:
    completion = Scripted('{"label": "ok"', '{"label": "ok", "n": 99}')
    client = make_client(completion)
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "invalid"
    assert (outcome.error or "").startswith("schema: n: ")
    assert [(c.status, (c.error or "").split(":")[0]) for c in client.calls] == [
        ("rejected", "invalid_json"),
        ("rejected", "schema"),
    ]


# -- response format ------------------------------------------------------------------------------


def test_response_format_is_json_object_when_api_base_set() -> None:
    request = make_request()
    assert make_client(api_base="http://127.0.0.1:8080/v1").response_format(request) == {
        "type": "json_object",
        "schema": Answer.model_json_schema(),
    }


def test_response_format_is_json_schema_when_no_api_base() -> None:
    request = make_request()
    assert make_client(api_base=None).response_format(request) == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": Answer.model_json_schema()},
    }


def test_response_format_sends_tighter_schema_when_given() -> None:
    tight = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 1}}}
    completion = Scripted(VALID)
    asyncio.run(make_client(completion).structured(make_request(json_schema=tight)))
    assert completion.calls[0]["response_format"] == {"type": "json_object", "schema": tight}
    assert completion.calls[0]["temperature"] == 0.0


# -- limits ---------------------------------------------------------------------------------------


def test_rate_limiter_spaces_starts_when_rpm_set() -> None:
    recorder = Recorder()
    limiter = RateLimiter(30, recorder.clock, recorder.sleep)

    async def three() -> None:
        for _ in range(3):
            await limiter.wait()

    asyncio.run(three())
    assert recorder.waits == [2.0, 2.0]


def test_rate_limiter_waits_only_the_rest_when_time_passed() -> None:
    recorder = Recorder()
    limiter = RateLimiter(60, recorder.clock, recorder.sleep)

    async def run() -> None:
        await limiter.wait()
        recorder.now += 0.25
        await limiter.wait()
        recorder.now += 5.0
        await limiter.wait()

    asyncio.run(run())
    assert recorder.waits == [0.75]


def test_rate_limiter_never_waits_when_rpm_zero() -> None:
    recorder = Recorder()
    limiter = RateLimiter(0, recorder.clock, recorder.sleep)

    async def run() -> None:
        for _ in range(5):
            await limiter.wait()

    asyncio.run(run())
    assert recorder.waits == []


def test_structured_many_spaces_calls_when_rpm_set() -> None:
    recorder = Recorder()
    client = make_client(Scripted(VALID), recorder=recorder, rpm=120)
    requests = [make_request(subject=f"2606.0000{i}v1") for i in range(4)]
    outcomes = asyncio.run(client.structured_many(requests))
    assert [o.status for o in outcomes] == ["ok"] * 4
    assert recorder.waits == [0.5, 0.5, 0.5]  # 120 rpm: one start every 0.5 s


# -- through litellm and the fake LLM server ------------------------------------------------------


def server_client(
    server: FakeLLMServer, recorder: Recorder | None = None, **kwargs: Any
) -> LLMClient:
    recorder = recorder or Recorder()
    return LLMClient(
        model=MODEL,
        api_base=server.base_url,
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run-1",
        sleep=recorder.sleep,
        jitter=lambda: 0.5,
        **kwargs,
    )


def test_structured_records_tokens_and_zero_cost_when_fake_model(fake_llm: FakeLLMServer) -> None:
    client = server_client(fake_llm)
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "ok"
    assert isinstance(outcome.value, Answer)
    (served,) = fake_llm.calls
    assert served["response_format"] == {
        "type": "json_object",
        "schema": Answer.model_json_schema(),
    }
    record = client.calls[0]
    assert record.tokens_in == served["prompt_tokens"] > 0
    assert record.tokens_out == served["completion_tokens"] > 0
    assert record.cost_usd == 0.0
    assert (record.status, record.attempts, record.cache_hit) == ("ok", 1, False)


def test_structured_records_tokens_when_completion_injected() -> None:
    client = make_client(Scripted(VALID))
    asyncio.run(client.structured(make_request()))
    assert (client.calls[0].tokens_in, client.calls[0].tokens_out) == (11, 7)
    assert client.calls[0].cost_usd == 0.0


@pytest.mark.parametrize("concurrency", [1, 3])
def test_structured_many_bounds_in_flight_when_concurrency_set(concurrency: int) -> None:
    with FakeLLMServer(latency_ms=120) as server:
        client = server_client(server, concurrency=concurrency)
        requests = [make_request(subject=f"2606.0000{i}v1", text=f"paper {i}") for i in range(6)]
        outcomes = asyncio.run(client.structured_many(requests))
        assert [o.status for o in outcomes] == ["ok"] * 6
        assert len(server.calls) == 6
        assert server.max_in_flight <= concurrency
        assert server.max_in_flight == concurrency  # the bound, not a serial client


def test_structured_honours_retry_after_when_server_rate_limits(fake_llm: FakeLLMServer) -> None:
    from tests.servers.fake_llm import LLMFault

    fake_llm.set_faults(LLMFault("429", count=2))
    recorder = Recorder()
    client = server_client(fake_llm, recorder, backoff_s=0.01)
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "ok"
    assert recorder.waits == [1.0, 1.0]  # the fake sends Retry-After: 1
    assert [c["status"] for c in fake_llm.calls] == [429, 429, 200]


def test_structured_repairs_when_server_sends_malformed_json(fake_llm: FakeLLMServer) -> None:
    from tests.servers.fake_llm import LLMFault

    fake_llm.set_faults(LLMFault("malformed-json", count=1))
    client = server_client(fake_llm)
    outcome = asyncio.run(client.structured(make_request()))
    assert outcome.status == "repaired"
    first, repair = fake_llm.calls
    assert repair["messages"][-2]["role"] == "assistant"
    assert first["fault"] == "malformed-json"
    with pytest.raises(ValueError):
        json.loads(repair["messages"][-2]["content"])
    assert len(client.cache.entries) == 2


# A loopback endpoint that answers every chat request with one HTTP status (for litellm's own
# mapping of status codes to exception types).


class _StatusHandler(LoopbackHandler["_StatusServer"]):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.owner.hits += 1
        body = json.dumps({"error": {"message": "scripted", "type": "server_error"}}).encode()
        self.send_body(
            self.owner.status, body, {"Content-Type": "application/json", "Retry-After": "3"}
        )


class _StatusServer(LoopbackServer):
    name = "status-server"
    handler = _StatusHandler
    root_path = "/v1"
    status = 500
    hits = 0


@pytest.fixture(scope="module")
def status_endpoint() -> Iterator[_StatusServer]:
    with _StatusServer() as server:
        yield server


@pytest.fixture
def status_server(status_endpoint: _StatusServer) -> _StatusServer:
    status_endpoint.hits = 0
    return status_endpoint


def _status_client(server: _StatusServer, recorder: Recorder) -> LLMClient:
    return LLMClient(
        model=MODEL,
        api_base=server.url,
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run-1",
        max_attempts=3,
        backoff_s=0.01,
        sleep=recorder.sleep,
        jitter=lambda: 0.5,
    )


@pytest.mark.parametrize(
    "status",
    [
        500,
        502,
        503,
        504,
        520,
        529,
    ],
)
def test_structured_retries_then_fails_when_server_errors(
    status_server: _StatusServer, status: int
) -> None:
    status_server.status = status
    recorder = Recorder()
    outcome = asyncio.run(_status_client(status_server, recorder).structured(make_request()))
    assert outcome.status == "failed"
    assert status_server.hits == 3
    assert len(recorder.waits) == 2


@pytest.mark.parametrize(
    "status",
    [
        401,
        403,
        404,
    ],
)
def test_structured_raises_config_error_when_server_refuses(
    status_server: _StatusServer, status: int
) -> None:
    status_server.status = status
    recorder = Recorder()
    with pytest.raises(LLMConfigError):
        asyncio.run(_status_client(status_server, recorder).structured(make_request()))
    assert status_server.hits == 1
    assert recorder.waits == []


def test_stop_day_reports_the_cause_when_a_cancellation_reaches_the_day_first() -> None:
    # The cache write failed on the LLM loop (the client keeps the error) and another stage's
    # cancellation got out of its thread before the failing stage's own thread saw the cause.
    from arxiv_digest.errors import DayCancelledError, LakeError
    from tasks.call_recorder import CallRecorder
    from tasks.day_llm import DayLLM, stop_day

    client = LLMClient(
        model="openai/fake-model",
        api_base="http://127.0.0.1:9/v1",
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run",
    )
    llm = DayLLM(date(2026, 6, 30), client, CallRecorder(lambda seq, batch: None))
    cause = LakeError("cannot write the cache")
    client.failure = cause
    assert stop_day(llm, DayCancelledError("digest 2026-06-30 stopped")) is cause
