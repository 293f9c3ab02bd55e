"""One place decides what an answer means: done, retry, fail, or outcome unknown.

Reads are idempotent, so 5xx, timeouts and dropped connections are retried. A write is retried
only when it certainly did not take effect: it never left (connect error) or the server said
so (429, 503). A write that was sent and then lost its answer (timeout, dropped connection,
500/502/504) may have created the record: it is reported as `OutcomeUnknown` and never resent
here; the loader reconciles it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from insightly_etl.config import printable, redact
from insightly_etl.errors import (
    KEY_HINT,
    ApiError,
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknown,
    QuotaExhausted,
    RateLimited,
    RecordLimitReached,
    RunStopped,
    ServerError,
    TransportError,
    ValidationError,
)


class Verdict(Enum):
    RETRY = "retry"
    FAIL = "fail"
    UNKNOWN = "unknown"  # a write that may have been applied


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    error: ApiError | RunStopped
    sent_at: float | None = None  # when the request left (the client's clock), if it did


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 180.0  # give up once this much time went to backoff
    max_retry_after: float = 120.0  # a longer Retry-After is clamped
    max_throttled: int = 50  # burst 429s for one request before giving up

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2^attempt))."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))

    def wait_for(self, error: ApiError | RunStopped, attempt: int, rng: random.Random) -> float:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return max(0.0, min(self.max_retry_after, error.retry_after))
        return self.backoff(attempt, rng)


def _body(response: httpx.Response) -> Any:
    """The answer's JSON, or None (HTML, text, nothing)."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def _api_words(body: Any) -> str | None:
    """The API's own error message: ASP.NET Web API answers `{"Message": …}` (docs/api.md §5);
    None for an answer in another shape, such as a proxy's, a gateway's or a load balancer's
    page answered in its place."""
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        return printable(redact(str(body["Message"])))[:500]
    return None


def server_message(response: httpx.Response, body: Any = None) -> str:
    """The server's own words, short, with any echo of the API key blanked out: a server or
    proxy that echoes the request headers must not put the key into an error line or file.
    `body`: the answer's JSON, when read already."""
    body = _body(response) if body is None else body
    if (said := _api_words(body)) is not None:
        return said
    # JSON as decoded: a key written `\u004b\u0033…` is the key, and redacted as such
    text = json.dumps(body, ensure_ascii=False) if body is not None else response.text
    text = printable(redact(text.strip()))
    return text[:200] if text else response.reason_phrase or "no message"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date; fall back to our own backoff


def error_for(response: httpx.Response, method: str, path: str) -> ApiError | RunStopped:
    status = response.status_code
    body = _body(response)
    said = _api_words(body)  # None: not the API's answer (a proxy's or a gateway's page)
    message = said if said is not None else server_message(response, body)
    where: dict[str, Any] = {"status": status, "method": method, "path": path}
    if status == 401:
        return AuthError(f"the API key was refused ({message})", **where, hint=KEY_HINT)
    if status == 403:
        return ForbiddenError(message, **where)
    if status in (404, 405):
        if said is None:  # not the API's words: its status only, not a page of HTML
            message = f"{response.reason_phrase or 'Not Found'} (a page that is not the API's)"
        return NotFoundError(message, from_api=said is not None, **where)
    if status == 412 or (status == 400 and "If-Match" in message):
        return ConflictError(message, **where)
    if status == 400:
        return ValidationError(message, **where)
    if status == 402:  # "Record limit reached": the plan's, not this request's
        return RecordLimitReached(message, **where)
    if status == 429:
        if response.headers.get("X-RateLimit-Remaining") == "0":
            return QuotaExhausted(message, **where)
        return RateLimited(message, retry_after=_retry_after(response), **where)
    if status >= 500:
        return ServerError(message, **where)
    return ApiError(message, **where)


def decide_response(response: httpx.Response, *, write: bool, method: str, path: str) -> Decision:
    """For a non-success answer."""
    error = error_for(response, method, path)
    if isinstance(error, RateLimited) or response.status_code == 503:
        return Decision(Verdict.RETRY, error)  # not processed: safe for writes too
    if isinstance(error, ServerError):
        if not write:
            return Decision(Verdict.RETRY, error)
        return Decision(
            Verdict.UNKNOWN,
            OutcomeUnknown(
                f"the server failed while handling the write ({error.message})",
                status=error.status,
                method=method,
                path=path,
            ),
        )
    return Decision(Verdict.FAIL, error)


def decide_exception(exc: Exception, *, write: bool, method: str, path: str) -> Decision:
    """For a request that got no answer."""
    kind = type(exc).__name__
    error = TransportError(redact(f"{kind}: {exc}") if str(exc) else kind, method=method, path=path)
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if never_sent or not write:
        return Decision(Verdict.RETRY, error)
    return Decision(
        Verdict.UNKNOWN,
        OutcomeUnknown(
            f"the write was sent but no answer came back ({kind})", method=method, path=path
        ),
    )
