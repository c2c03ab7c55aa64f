"""The one LLM adapter: litellm calls bounded, rate-limited, retried, validated, cached, counted."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
import litellm
from pydantic import BaseModel, ValidationError

from arxiv_digest.backoff import backoff_seconds
from arxiv_digest.errors import ConfigError, DayCancelledError, LLMUnavailableError
from tasks.answers import Rejected, read_json
from tasks.prompts import Prompt, repair_message

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

_LOOP_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None
# litellm builds every request in the loop's default executor (run_in_executor): cache writes
# get their own threads so a request never queues behind a Parquet write (an S3 PUT on S3).
_CACHE_WRITER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llm-cache-write")


def submit_on_llm_loop(coro: Coroutine[Any, Any, R]) -> concurrent.futures.Future[R]:
    """Start a coroutine on the process's one LLM event loop (a daemon thread).

    litellm keeps process-wide async state (its logging worker, HTTP clients) bound to the
    first loop it sees; one long-lived loop shared by every stage and parallel day keeps
    that state valid, and lets parallel days share the loop's concurrency. Cancelling the
    returned future cancels the coroutine on the loop.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="llm-loop", daemon=True).start()
        loop = _LOOP
    return asyncio.run_coroutine_threadsafe(coro, loop)


def run_on_llm_loop(coro: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine on the LLM event loop and wait for its result."""
    return submit_on_llm_loop(coro).result()


def quiet_litellm() -> None:
    """No "Give Feedback / Get Help" banners or provider lists on stdout, no debug lines on
    stderr: every failure is already counted in `llm_calls` and reported in our own words."""
    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


TEMPERATURE = 0.0
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


# Consecutive attempts that could not even connect before the client stops trying (a circuit
# breaker): a dead endpoint fails the day in seconds instead of failing every paper slowly.
UNREACHABLE_LIMIT = 3


class LLMConfigError(ConfigError, LLMUnavailableError):
    """The provider refused the model or the credentials: no paper can succeed, stop the run."""


def check_model(model: str) -> None:
    """Refuse a model string litellm cannot route (no known provider prefix) before any call."""
    try:
        litellm.get_llm_provider(model=model)
    except litellm.BadRequestError:
        raise LLMConfigError(
            f"litellm knows no provider for model {model!r}: DIGEST_LLM_MODEL must name one, "
            "e.g. openai/<model> (with DIGEST_LLM_API_BASE for a local server), "
            "deepseek/deepseek-chat, ollama/<model>"
        ) from None


def endpoint_name(model: str, api_base: str | None) -> str:
    """The endpoint for messages: scheme, host and path only (no credentials, no query)."""
    if not api_base:
        return f"the provider's endpoint for {model!r}"
    parts = urlsplit(api_base)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path} ({model!r})"


def cannot_connect(exc: BaseException) -> bool:
    """True when the request never reached a server (refused, unresolvable, connect timeout).

    litellm wraps these as InternalServerError or APIConnectionError, like a reset mid-answer;
    the httpx error in the chain tells a dead endpoint (trip the breaker) from a transient one.
    """
    seen: BaseException | None = exc
    for _ in range(20):  # the chain is short; the bound only guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout | ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def invalid_key(key: str) -> str:
    """Where the cache remembers that an answer stayed invalid after its repair request."""
    return f"invalid-{key}"


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
            "stage": self.stage,
            "subject": self.subject,
            "prompt": self.prompt.sha256,
            "model": model,
            "language": self.language,
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
    # ok | error | cancelled | invalid (a remembered invalid answer) | rejected (an answer that
    # failed parsing or a check; `error` names the rule, e.g. "too_short: ...")
    status: str = "ok"
    error: str | None = None


@dataclass
class Outcome(Generic[T]):
    """A validated answer, or why there is none.

    `failed` is transient (timeouts, 5xx, exhausted 429s, resets): never cached, asked again by
    the next run. `invalid` is deterministic for (model, prompt, input): the answer stayed
    invalid after its repair request; it is remembered and not asked again unless retried.
    """

    value: T | None
    status: str  # ok | repaired | invalid | failed
    error: str | None = None


@dataclass
class LLMCache:
    """Raw answers by cache key; `persist` stores each new answer the moment it is known valid,
    so a run killed mid-stage repeats no finished call. Under `invalid_key(key)` it keeps the
    error of a request whose answer stayed invalid after the repair (a negative entry)."""

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

    def __init__(
        self, rpm: int, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
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


def parse_answer(request: LLMRequest[T], content: str) -> T:
    """Validate an answer against the schema and the stage's own checks (ValueError if not).

    The JSON is read leniently (tasks/answers.py: control characters in strings, a fence,
    prose around it, trailing commas); what is refused raises Rejected, a ValueError named
    by its rule (empty_answer, invalid_json, schema, or a stage check's own rule).
    """
    read = read_json(content)
    try:
        # Validated as JSON (not as Python objects): the schema's JSON-mode rules apply.
        value = request.schema.model_validate_json(json.dumps(read.value))
    except ValidationError as exc:
        raise Rejected("schema", _first_errors(exc)) from None
    if request.validate is not None:
        request.validate(value)
    return value


def _first_errors(exc: ValidationError) -> str:
    errors = exc.errors()[:3]
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in errors
    )


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
        retry_invalid: bool = False,
        unreachable_limit: int = UNREACHABLE_LIMIT,
    ) -> None:
        check_model(model)
        quiet_litellm()
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
        # Ask again requests remembered as invalid (`--retry-failed`).
        self.retry_invalid = retry_invalid
        # Final status of every structured request (ok, repaired, invalid, failed).
        self.outcomes: Counter[str] = Counter()
        self._unreachable_limit = unreachable_limit
        self._unreachable = 0  # consecutive attempts that could not connect
        self._broken: LLMUnavailableError | None = None  # the open circuit's error
        self._stopped: str | None = None  # why no request may go out any more (see `stop`)
        self.failure: BaseException | None = None  # the error that stopped the client, if any

    def response_format(self, request: LLMRequest[Any]) -> dict[str, Any]:
        """JSON constrained by the schema, in the dialect the endpoint understands.

        OpenAI-compatible local servers (llama.cpp) take `json_object` plus a `schema` and
        reject `json_schema`; hosted providers take `json_schema`, which litellm translates.
        """
        schema = request.schema_for_model()
        if self.api_base:
            return {"type": "json_object", "schema": schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": request.schema.__name__, "schema": schema},
        }

    async def structured(self, request: LLMRequest[T]) -> Outcome[T]:
        """The validated answer; one repair attempt on invalid content, then `invalid`.

        Answers that end valid are cached (the repaired pair included), and so is the verdict
        `invalid` (a negative entry): a re-run asks neither again. A `failed` request (transient)
        is not cached, so the next run asks it again. Raises LLMUnavailableError when the
        endpoint cannot be reached or refuses the model or key (see `_call_with_retries`).
        """
        try:
            outcome = await self._structured(request)
        except (asyncio.CancelledError, DayCancelledError):
            raise
        except BaseException as exc:
            # The stage cannot finish (an unavailable LLM, an unwritable cache): stop at once,
            # on this loop, every request of the client still waiting for a slot. The error is
            # kept: the cancellations it causes in other stages may reach their callers first.
            self.failure = self.failure or exc
            self.stop(f"stopped after an error: {str(exc) or type(exc).__name__}")
            raise
        self.outcomes[outcome.status] += 1
        return outcome

    def stop(self, reason: str) -> None:
        """Send no more requests: each one still queued or retrying raises DayCancelledError."""
        if self._stopped is None:
            self._stopped = reason

    async def _structured(self, request: LLMRequest[T]) -> Outcome[T]:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        remembered = self._remembered_invalid(request)
        if remembered is not None:
            return remembered
        key, content, error, record = await self._answer(request, request.messages)
        if content is None:
            return Outcome(None, "failed", error)
        value, problem = self._judge(request, content, record)
        if value is not None:
            # Persisting writes a file: off the event loop, so other calls keep flowing.
            await self._persist(key, request, content)
            return Outcome(value, "ok")
        repair = [
            *request.messages,
            {"role": "assistant", "content": content[:4000]},
            repair_message(request.language, problem),
        ]
        repair_key, repaired, error, record = await self._answer(request, repair)
        if repaired is None:
            return Outcome(None, "failed", error)
        value, after_repair = self._judge(request, repaired, record)
        if value is None:
            # The rule that refused the repaired answer: what analyses.error and the
            # remembered verdict record ("rule: detail").
            await self._persist(invalid_key(key), request, after_repair)
            return Outcome(None, "invalid", after_repair)
        await self._persist(key, request, content)
        await self._persist(repair_key, request, repaired)
        return Outcome(value, "repaired", problem)  # the rule the first answer broke

    def _judge(
        self, request: LLMRequest[T], content: str, record: LLMCallRecord
    ) -> tuple[T | None, str]:
        """The answer's value, or None and why not. The record of the call (or cache hit) that
        brought the answer is final only now: `rejected` with the rule if refused."""
        try:
            value: T | None = parse_answer(request, content)
            problem = ""
        except ValueError as exc:
            value, problem = None, str(exc)
            record.status, record.error = "rejected", problem
        if self.on_record is not None:
            self.on_record(record)
        return value, problem

    async def _persist(self, key: str, request: LLMRequest[Any], content: str) -> None:
        await asyncio.get_running_loop().run_in_executor(
            _CACHE_WRITER, self.cache.put, key, request.stage, request.subject, content
        )

    def _remembered_invalid(self, request: LLMRequest[T]) -> Outcome[T] | None:
        """The `invalid` verdict of an earlier run for this very request (no call), if any."""
        key = request.cache_key(self.model)
        if self.retry_invalid or self.cache.get(key) is not None:
            return None
        problem = self.cache.get(invalid_key(key))
        if problem is None:
            return None
        record = self._record(request, key, cache_hit=True)
        record.status, record.error = "invalid", problem
        self.calls.append(record)
        return Outcome(None, "invalid", problem)

    async def structured_many(self, requests: Iterable[LLMRequest[T]]) -> list[Outcome[T]]:
        """Every request's outcome; if one raises, the others are cancelled before it propagates
        (a stage that cannot finish must not keep calling)."""
        tasks = [asyncio.ensure_future(self.structured(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            # Wait until they have stopped (and collect their errors: no "never retrieved").
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _record(self, request: LLMRequest[T], key: str, *, cache_hit: bool) -> LLMCallRecord:
        return LLMCallRecord(
            call_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{self.run_id}/{key}").hex,
            stage=request.stage,
            subject=request.subject,
            model=self.model,
            prompt_hash=request.prompt.sha256,
            cache_key=key,
            cache_hit=cache_hit,
        )

    async def _answer(
        self, request: LLMRequest[T], messages: list[dict[str, str]]
    ) -> tuple[str, str | None, str | None, LLMCallRecord]:
        """(cache key, answer or None, why none, the call's record). The record of an answer
        is handed on by `_judge` once the answer is read; that of a failure here."""
        key = request.cache_key(self.model, messages)
        cached = self.cache.get(key)
        if cached is not None:
            hit = self._record(request, key, cache_hit=True)
            self.calls.append(hit)
            return key, cached, None, hit
        assert self._semaphore is not None
        async with self._semaphore:
            self._raise_if_closed()
            # Recorded once it goes out: a request stopped while queued was never a call.
            record = self._record(request, key, cache_hit=False)
            self.calls.append(record)
            content, error = await self._call_with_retries(request, messages, record)
        if content is None and self.on_record is not None:
            self.on_record(record)
        return key, content, error, record

    def _raise_if_closed(self) -> None:
        """Fail before sending when the circuit is open or the client was stopped."""
        if self._broken is not None:
            raise type(self._broken)(str(self._broken))
        if self._stopped is not None:
            raise DayCancelledError(self._stopped)

    def _trip(self, error: LLMUnavailableError) -> LLMUnavailableError:
        """Open the circuit: this and every later call of the client fail with `error`."""
        if self._broken is None:
            self._broken = error
        return error

    async def _back_off(self, attempt: int, exc: BaseException) -> None:
        """Wait before the next attempt (none after the last one)."""
        if attempt < self.max_attempts - 1:
            await self._sleep(
                backoff_seconds(self.backoff_s, attempt, self._jitter(), _retry_after(exc))
            )

    async def _call_with_retries(
        self, request: LLMRequest[T], messages: list[dict[str, str]], record: LLMCallRecord
    ) -> tuple[str | None, str | None]:
        """The answer's text, or why there is none after the retries (transient failures).

        Raises LLMUnavailableError instead when no call can succeed: the provider refused the
        model or key (401/403/404), or `unreachable_limit` attempts in a row could not connect.
        The circuit then stays open: every later call of this client fails at once.
        """
        started = self._clock()
        problem = "no attempt"
        try:
            for attempt in range(self.max_attempts):
                record.attempts = attempt + 1
                await self._limiter.wait()
                self._raise_if_closed()
                try:
                    response = await self._completion(
                        model=self.model,
                        api_base=self.api_base,
                        api_key=self.api_key,
                        messages=messages,
                        temperature=TEMPERATURE,
                        max_tokens=request.max_tokens,
                        response_format=self.response_format(request),
                        timeout=self.timeout_s,
                        max_retries=0,
                        num_retries=0,
                    )
                except _FATAL_CONFIG as exc:
                    raise self._refused(type(exc).__name__) from None
                except _RETRYABLE as exc:
                    problem = f"{type(exc).__name__}"
                    self._count_unreachable(exc)
                    await self._back_off(attempt, exc)
                    continue
                except litellm.BadRequestError as exc:
                    self._unreachable = 0
                    problem = f"BadRequestError: {str(exc)[:200]}"
                    break
                except litellm.APIError as exc:
                    self._unreachable = 0
                    # Statuses litellm maps to no specific type (403, 409, 520, 529, ...).
                    status = int(getattr(exc, "status_code", 0) or 0)
                    if status in (401, 403, 404):
                        raise self._refused(f"HTTP {status}") from None
                    problem = f"APIError HTTP {status}"
                    if status not in (408, 409, 429) and status < 500:
                        break
                    await self._back_off(attempt, exc)
                    continue
                self._unreachable = 0
                usage = getattr(response, "usage", None)
                record.tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
                record.tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
                record.cost_usd = _cost(self.model, response)
                record.latency_ms = round((self._clock() - started) * 1000, 1)
                return str(response.choices[0].message.content or ""), None
        except (asyncio.CancelledError, DayCancelledError):
            record.status, record.error = "cancelled", "cancelled: the day's LLM work stopped"
            record.latency_ms = round((self._clock() - started) * 1000, 1)
            raise
        except LLMUnavailableError as exc:
            record.status, record.error = "error", str(exc)
            record.latency_ms = round((self._clock() - started) * 1000, 1)
            raise
        record.status = "error"
        record.error = problem
        record.latency_ms = round((self._clock() - started) * 1000, 1)
        return None, f"LLM call failed after {record.attempts} attempt(s): {problem}"

    def _refused(self, what: str) -> LLMUnavailableError:
        return self._trip(
            LLMConfigError(
                f"the LLM at {endpoint_name(self.model, self.api_base)} refused the request: "
                f"{what} (check DIGEST_LLM_MODEL, DIGEST_LLM_API_BASE and the provider's API key "
                "variable)"
            )
        )

    def _count_unreachable(self, exc: BaseException) -> None:
        """Count attempts in a row that could not connect; at the limit, open the circuit.

        Any answer from the server (even a 429 or 500) resets the count: only a server that
        cannot be reached at all stops the client, a transient error never does.
        """
        if not cannot_connect(exc):
            self._unreachable = 0
            return
        self._unreachable += 1
        if self._unreachable >= self._unreachable_limit:
            raise self._trip(
                LLMUnavailableError(
                    f"cannot reach the LLM at {endpoint_name(self.model, self.api_base)}: "
                    f"{self._unreachable} connection attempts in a row failed (check "
                    "DIGEST_LLM_API_BASE and that the server is running)"
                )
            )
