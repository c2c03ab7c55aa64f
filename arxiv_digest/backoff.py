"""The one backoff rule shared by the arXiv and LLM adapters."""

from __future__ import annotations

MAX_WAIT_S = 60.0


def backoff_seconds(
    base_s: float, attempt: int, jitter: float, retry_after: float | None = None
) -> float:
    """Exponential backoff with jitter (`jitter` in [0, 1) scales it by 0.5-1), never shorter
    than the server's Retry-After, so parallel clients do not retry in lockstep.

    >>> backoff_seconds(1.0, 2, 1.0)
    4.0
    >>> backoff_seconds(1.0, 0, 0.0, retry_after=7)
    7.0
    """
    wait = min(MAX_WAIT_S, base_s * 2**attempt) * (0.5 + jitter / 2)
    return float(max(wait, retry_after or 0.0))
