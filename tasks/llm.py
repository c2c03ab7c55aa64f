"""The one LLM adapter: litellm calls bounded, rate-limited, retried, validated, cached, counted."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import litellm
from pydantic import BaseModel, ValidationError

from arxiv_digest.backoff import backoff_seconds
from arxiv_digest.errors import ConfigError
from tasks.prompts import Prompt

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

_LOOP_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None
# litellm builds every request in the loop's default executor (run_in_executor): cache writes
# get their own threads so a request never queues behind a Parquet write (an S3 PUT on S3).
_CACHE_WRITER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llm-cache-write")


def run_on_llm_loop(coro: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine on the process's one LLM event loop (a daemon thread), and wait.

    litellm keeps process-wide async state (its logging worker, HTTP clients) bound to the
    first loop it sees; one long-lived loop shared by every stage and parallel day keeps
    that state valid, and lets parallel days share the loop's concurrency.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="llm-loop", daemon=True).start()
        loop = _LOOP
    return asyncio.run_coroutine_threadsafe(coro, loop).result()

TEMPERATURE = 0.0
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_RETRYABLE: tuple[type[BaseException], ...] = (
    litellm.RateLimitError,
    litellm.Timeout,
    litellm.APIConnectionError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
)
_FATAL_CONFIG: tuple[type[BaseException], ...] = (
    litellm.AuthenticationError,
    litellm.NotFoundError,
    litellm.exceptions.PermissionDeniedError,
)


class LLMConfigError(ConfigError):
    """The provider refused the model or the credentials: no paper can succeed, stop the run."""


@dataclass(frozen=True)
class LLMRequest(Generic[T]):
    """One structured call: which stage, about what, with which prompt, expecting which schema."""

    stage: str
    subject: str  # paper id with version, or the digest date for day-level stages
    prompt: Prompt
    messages: list[dict[str, str]]
    schema: type[T]
    language: str
    max_tokens: int = 1500
    validate: Callable[[T], None] | None = None
    # A tighter JSON schema for the model than the pydantic type (e.g. ids as an enum).
    json_schema: dict[str, Any] | None = None

    def schema_for_model(self) -> dict[str, Any]:
        return self.json_schema or _schema_of(self.schema)

    def cache_key(self, model: str, messages: list[dict[str, str]] | None = None) -> str:
        """Hash of everything that decides the answer (DESIGN.md: one cache, one key)."""
        material = {
            "stage": self.stage, "subject": self.subject, "prompt": self.prompt.sha256,
            "model": model, "language": self.language,
            "params": {"temperature": TEMPERATURE, "max_tokens": self.max_tokens},
            "schema": self.schema_for_model(),
            "messages": messages if messages is not None else self.messages,
        }
        blob = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass
class LLMCallRecord:
    """One row of `llm_calls`: every request, answered from the cache or by the model."""

    call_id: str
    stage: str
    subject: str
    model: str
    prompt_hash: str
    cache_key: str
    cache_hit: bool
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    attempts: int = 0
    status: str = "ok"  # ok | error
    error: str | None = None


@dataclass
class Outcome(Generic[T]):
    """A validated answer, or why there is none (`failed`: transport; `invalid`: content)."""

    value: T | None
    status: str  # ok | repaired | invalid | failed
    error: str | None = None


@dataclass
class LLMCache:
    """Raw answers by cache key; `persist` stores each new answer the moment it is known valid,
    so a run killed mid-stage repeats no finished call."""

    entries: dict[str, dict[str, str]] = field(default_factory=dict)
    persist: Callable[[str, dict[str, str]], None] | None = None
    new_keys: list[str] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return entry["content"] if entry else None

    def put(self, key: str, stage: str, subject: str, content: str) -> None:
        if key in self.entries:
            return
        entry = {"stage": stage, "subject": subject, "content": content}
        if self.persist is not None:
            self.persist(key, entry)
        self.new_keys.append(key)
        self.entries[key] = entry


class RateLimiter:
    """At most `rpm` call starts per minute (0 = unlimited), spaced evenly."""

    def __init__(self, rpm: int, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await self._sleep(start - now)


@functools.cache
def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def extract_json(content: str) -> str:
    """The JSON text of an answer, without a Markdown code fence some models add."""
    match = _FENCE.match(content)
    return match.group(1) if match else content.strip()


def parse_answer(request: LLMRequest[T], content: str) -> T:
    """Validate an answer against the schema and the stage's own checks (ValueError if not)."""
    if not content.strip():
        raise ValueError("empty answer")
    try:
        value = request.schema.model_validate_json(extract_json(content))
    except ValidationError as exc:
        raise ValueError(_first_errors(exc)) from None
    if request.validate is not None:
        request.validate(value)
    return value


def _first_errors(exc: ValidationError) -> str:
    errors = exc.errors()[:3]
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                     for e in errors)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "litellm_response_headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _cost(model: str, response: Any) -> float:
    # litellm's packaged price map knows hosted models; local/unknown models cost nothing.
    name = model.split("/", 1)[-1]
    if model not in litellm.model_cost and name not in litellm.model_cost:
        return 0.0
    return float(litellm.completion_cost(completion_response=response) or 0.0)


class LLMClient:
    """Structured LLM calls through one cache, with bounded concurrency, RPM limit and retries."""

    def __init__(
        self,
        *,
        model: str,
        api_base: str | None,
        api_key: str | None,
        cache: LLMCache,
        run_id: str,
        concurrency: int = 4,
        rpm: int = 0,
        timeout_s: float = 120.0,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        completion: Callable[..., Awaitable[Any]] | None = None,
        on_record: Callable[[LLMCallRecord], None] | None = None,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.cache = cache
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.calls: list[LLMCallRecord] = []
        # Given each record once it is final (cache hit, answer or failure): it is stored
        # while the stage runs, so a killed run's calls are not lost.
        self.on_record = on_record
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._completion = completion or litellm.acompletion
        self._concurrency = concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self._limiter_rpm = rpm
        self._limiter = RateLimiter(rpm, clock, sleep)

    def response_format(self, request: LLMRequest[Any]) -> dict[str, Any]:
        """JSON constrained by the schema, in the dialect the endpoint understands.

        OpenAI-compatible local servers (llama.cpp) take `json_object` plus a `schema` and
        reject `json_schema`; hosted providers take `json_schema`, which litellm translates.
        """
        schema = request.schema_for_model()
        if self.api_base:
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema",
                "json_schema": {"name": request.schema.__name__, "schema": schema}}

    async def structured(self, request: LLMRequest[T]) -> Outcome[T]:
        """The validated answer; one repair attempt on invalid content, then `invalid`.

        Only answers that end in a valid outcome are cached (the repaired pair included), so
        an invalid or failed paper is asked again on the next run, and a finished one never is.
        """
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        key, content, error = await self._answer(request, request.messages)
        if content is None:
            return Outcome(None, "failed", error)
        try:
            value = parse_answer(request, content)
        except ValueError as exc:
            problem = str(exc)
        else:
            # Persisting writes a file: off the event loop, so other calls keep flowing.
            await self._persist(key, request, content)
            return Outcome(value, "ok")
        repair = [*request.messages,
                  {"role": "assistant", "content": content[:4000]},
                  {"role": "user", "content": (
                      f"That answer is not valid: {problem}. Reply with only the corrected JSON "
                      "matching the schema, nothing else.")}]
        repair_key, repaired, error = await self._answer(request, repair)
        if repaired is None:
            return Outcome(None, "failed", error)
        try:
            value = parse_answer(request, repaired)
        except ValueError as exc:
            return Outcome(None, "invalid", f"invalid answer after one repair: {exc}")
        await self._persist(key, request, content)
        await self._persist(repair_key, request, repaired)
        return Outcome(value, "repaired")

    async def _persist(self, key: str, request: LLMRequest[Any], content: str) -> None:
        await asyncio.get_running_loop().run_in_executor(
            _CACHE_WRITER, self.cache.put, key, request.stage, request.subject, content)

    async def structured_many(self, requests: Iterable[LLMRequest[T]]) -> list[Outcome[T]]:
        return list(await asyncio.gather(*(self.structured(r) for r in requests)))

    async def _answer(self, request: LLMRequest[T], messages: list[dict[str, str]]
                      ) -> tuple[str, str | None, str | None]:
        key = request.cache_key(self.model, messages)
        record = LLMCallRecord(
            call_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{self.run_id}/{key}").hex,
            stage=request.stage, subject=request.subject, model=self.model,
            prompt_hash=request.prompt.sha256, cache_key=key, cache_hit=False)
        self.calls.append(record)
        cached = self.cache.get(key)
        if cached is not None:
            record.cache_hit = True
            if self.on_record is not None:
                self.on_record(record)
            return key, cached, None
        assert self._semaphore is not None
        async with self._semaphore:
            content, error = await self._call_with_retries(request, messages, record)
        if self.on_record is not None:
            self.on_record(record)
        return key, content, error

    async def _back_off(self, attempt: int, exc: BaseException) -> None:
        """Wait before the next attempt (none after the last one)."""
        if attempt < self.max_attempts - 1:
            await self._sleep(backoff_seconds(self.backoff_s, attempt, self._jitter(),
                                              _retry_after(exc)))

    async def _call_with_retries(self, request: LLMRequest[T], messages: list[dict[str, str]],
                                 record: LLMCallRecord) -> tuple[str | None, str | None]:
        started = self._clock()
        problem = "no attempt"
        for attempt in range(self.max_attempts):
            record.attempts = attempt + 1
            await self._limiter.wait()
            try:
                response = await self._completion(
                    model=self.model, api_base=self.api_base, api_key=self.api_key,
                    messages=messages, temperature=TEMPERATURE, max_tokens=request.max_tokens,
                    response_format=self.response_format(request),
                    timeout=self.timeout_s, max_retries=0, num_retries=0)
            except _FATAL_CONFIG as exc:
                raise LLMConfigError(
                    f"the LLM provider refused model {self.model!r}: {type(exc).__name__} "
                    "(check DIGEST_LLM_MODEL, DIGEST_LLM_API_BASE and the provider's API key "
                    "variable)") from None
            except _RETRYABLE as exc:
                problem = f"{type(exc).__name__}"
                await self._back_off(attempt, exc)
                continue
            except litellm.BadRequestError as exc:
                problem = f"BadRequestError: {str(exc)[:200]}"
                break
            except litellm.APIError as exc:
                # Statuses litellm maps to no specific type (403, 409, 520, 529, ...).
                status = int(getattr(exc, "status_code", 0) or 0)
                if status in (401, 403, 404):
                    raise LLMConfigError(
                        f"the LLM provider refused model {self.model!r}: HTTP {status} (check "
                        "DIGEST_LLM_MODEL, DIGEST_LLM_API_BASE and the provider's API key "
                        "variable)") from None
                problem = f"APIError HTTP {status}"
                if status not in (408, 409, 429) and status < 500:
                    break
                await self._back_off(attempt, exc)
                continue
            usage = getattr(response, "usage", None)
            record.tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
            record.tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
            record.cost_usd = _cost(self.model, response)
            record.latency_ms = round((self._clock() - started) * 1000, 1)
            return str(response.choices[0].message.content or ""), None
        record.status = "error"
        record.error = problem
        record.latency_ms = round((self._clock() - started) * 1000, 1)
        return None, f"LLM call failed after {record.attempts} attempt(s): {problem}"
