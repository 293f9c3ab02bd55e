"""One exception tree for the whole tool.

Every error the user can cause or the API can answer is an `InsightlyEtlError`; each class
knows its process exit code and may carry a one-line hint saying how to fix it. The CLI prints
`Error: <message>` and the hint, and exits with the code. Anything else is a bug.

    InsightlyEtlError                      exit 1
    ├── ConfigError                        exit 2   bad/missing settings (key, pod, URL)
    ├── InputError                         exit 2   a bad file or mapping given by the user
    │   └── CheckpointError                exit 2   a checkpoint that cannot be used
    │       └── CheckpointInUse            exit 75  another run holds it: try again later
    ├── StorageError                       exit 74  object storage refused or unreachable
    ├── TemporaryFolderError               exit 74  TMPDIR cannot hold what a run keeps there
    ├── RunStopped                         the run must stop now; a later run resumes
    │   ├── QuotaError                     exit 75  no more requests may be spent now
    │   │   ├── QuotaExhausted     429 with X-RateLimit-Remaining: 0, never retried
    │   │   ├── BudgetExhausted    the caller's max_requests is spent (no request sent)
    │   │   └── ReserveReached     the next request would eat into the reserve (none sent)
    │   └── Halted                         exit 130 Ctrl-C / SIGTERM; this request never left
    └── ApiError                           exit 1   an HTTP answer from Insightly (status, message)
        ├── AuthError              401     exit 77
        ├── ForbiddenError         403     exit 77  plan or permission; readers skip the object
        ├── NotFoundError          404/405 exit 1
        ├── ValidationError        400     exit 65  carries the server's Message
        ├── ConflictError          412, or 400 about If-Match (stale ETag)
        ├── RateLimited            429 with requests left today (burst): retried by the client
        ├── RecordLimitReached     402     exit 69  the plan's record limit: no more creates
        ├── AnswerTooLarge                 exit 69  an answer beyond the size cap, refused
        ├── UnstableOrder                  exit 69  a list that cannot be paged consistently
        ├── ServerError            5xx     exit 69
        ├── TransportError                 exit 69  timeout / connection failure
        └── OutcomeUnknown                 exit 69  a write was sent but its result never came back

`RunStopped` stands beside `ApiError`, not under it (as httpx keeps `RequestError` apart from
`HTTPStatusError`): code that fails one row on `except ApiError` can never swallow a quota stop
or a Ctrl-C by accident.

The exit codes follow sysexits.h where one fits: 65 data error, 69 service unavailable,
75 temporary failure (try again later), 77 permission denied.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

KEY_HINT = (
    "Find your API key in Insightly under User Settings → API; "
    "the pod (e.g. na1, eu1) shown there must match --pod / INSIGHTLY_POD."
)


class StopReason(StrEnum):
    """Why a run stopped before its work was done, as a run summary names it."""

    QUOTA = "quota"  # the account's daily allowance: retry_not_before says when to try again
    RESERVE = "reserve"  # --reserve reached: the same, the allowance left for other integrations
    BUDGET = "budget"  # --max-requests spent: run again at any time
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM
    RECORD_LIMIT = "record_limit"  # the plan holds no more records of a type
    LOCKED = "locked"  # another run holds the checkpoint or the export folder
    ERROR = "error"  # anything else: the summary's error says what


class InsightlyEtlError(Exception):
    exit_code = 1
    stop_reason = StopReason.ERROR  # how a run summary names the stop
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(InsightlyEtlError):
    exit_code = 2


class InputError(InsightlyEtlError):
    """A file or mapping the user gave cannot be used (names the file, row, column, value)."""

    exit_code = 2


class StorageError(InsightlyEtlError):
    """Object storage (`s3://…`, `gs://…`, `abfs://…`) refused or could not be reached: a missing
    bucket, credentials it does not take, an endpoint that does not answer (EX_IOERR, as a
    local file that cannot be written)."""

    exit_code = 74


class TemporaryFolderError(InsightlyEtlError):
    """The temporary folder (TMPDIR) could not take what a run keeps there: a full disk, a
    folder that cannot be written (EX_IOERR)."""

    exit_code = 74


class CheckpointError(InputError):
    """A checkpoint file that is not one, or belongs to another import."""


class CheckpointInUse(CheckpointError):
    """Another run has the checkpoint open; running beside it would send rows twice."""

    stop_reason = StopReason.LOCKED

    exit_code = 75


class _AboutRequest(InsightlyEtlError):
    """An error about one request: where it went (method, path) and the status, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else None
        status = f"HTTP {self.status}" if self.status is not None else None
        prefix = ", ".join(p for p in (where, status) if p)
        return f"{prefix}: {self.message}" if prefix else self.message


class ApiError(_AboutRequest):
    """An HTTP answer from the API that is not a success, or no answer at all."""


class RunStopped(_AboutRequest):
    """The run must stop now (quota, budget, reserve, Ctrl-C): not a failure of any row.

    What was sent is journaled; the next run with the same arguments resumes."""

    exit_code = 75


class AuthError(ApiError):
    exit_code = 77
    hint = KEY_HINT


class ForbiddenError(ApiError):
    exit_code = 77
    hint = "The key's user lacks permission for this object, or the plan does not include it."


class NotFoundError(ApiError):
    """404 (or 405). `from_api`: the answer was the API's own JSON (`{"Message": …}`), not a
    proxy's or a gateway's page: only that says a record is gone."""

    def __init__(self, message: str, *, from_api: bool = False, **where: Any) -> None:
        super().__init__(message, **where)
        self.from_api = from_api


class ValidationError(ApiError):
    exit_code = 65


class ConflictError(ApiError):
    """The record changed since it was read (stale ETag in If-Match)."""

    exit_code = 65


class RateLimited(ApiError):
    """A burst 429: requests are left today, the per-second ceiling was crossed."""

    exit_code = 75

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, path=path)
        self.retry_after = retry_after


class QuotaError(RunStopped):
    """Stop cleanly: no more requests may be spent now. A later run resumes."""

    exit_code = 75


class QuotaExhausted(QuotaError):
    stop_reason = StopReason.QUOTA
    hint = "The account's daily request quota is spent; it frees up within 24 hours."


class BudgetExhausted(QuotaError):
    stop_reason = StopReason.BUDGET
    hint = "This run's --max-requests budget is spent; run again to continue."


class ReserveReached(QuotaError):
    stop_reason = StopReason.RESERVE
    hint = "Stopped to leave --reserve requests for the account's other integrations."


class Halted(RunStopped):
    """The run is stopping (Ctrl-C, SIGTERM): a request not yet sent is not sent at all."""

    stop_reason = StopReason.INTERRUPTED

    exit_code = 130


class RecordLimitReached(ApiError):
    """402: the account's plan allows no more records of this type. No create of that type
    can succeed until the plan changes or records go; updates can."""

    stop_reason = StopReason.RECORD_LIMIT

    exit_code = 69
    hint = (
        "The account's Insightly plan holds no more of these records: upgrade it or remove "
        "some, then run the same command again to create the rest."
    )


class AnswerTooLarge(ApiError):
    """An answer beyond the client's size cap: refused unread (a page asks for fewer next)."""

    exit_code = 69


class UnstableOrder(ApiError):
    """A listing cannot be read consistently: records already read came back in another
    order, or the records changed faster than the pages could be read again."""

    exit_code = 69
    hint = "Run again when the account is quiet; if it happens every time, report it."


class ServerError(ApiError):
    exit_code = 69


class TransportError(ApiError):
    exit_code = 69
    hint = "Check the network and the pod / API URL."


class OutcomeUnknown(ApiError):
    """A write reached (or may have reached) the server but no answer came back.

    The record may or may not exist: never resend blindly, reconcile first.
    """

    exit_code = 69
