"""The one journaled sender: every write an import, its steps or undo make goes through here.

    decide against the record as Insightly has it ─▶ nothing to do: settled, no request
            │
            ▼
    journal it in flight (committed the moment the request leaves, not while it queues)
            │
            ▼
    send ─▶ answer ─────────────────────────▶ done
         ├▶ refused (400, 403, 404, …) ──────▶ failed: this job only
         ├▶ 412 stale ETag ──────────────────▶ the job re-reads: decided again, or settled
         ├▶ lost answer (OutcomeUnknown) ────▶ unknown, then the job reconciles:
         │                                     settled / decide again / left for the next run
         ├▶ 402 record limit (a create) ─────▶ not sent; no more creates this run
         └▶ RunStopped (quota, Ctrl-C) ──────▶ not sent; the run stops

What a write is — which journal, which request, how to reconcile it — is the job's (`Job`):
a row's record write (execute.py), a step (steps.py), an undo (undo.py). How a run stops, and
how many times an unknown outcome is reconciled before the job is failed, is the sender's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import Any, Protocol

from insightly_etl.api.client import InsightlyClient
from insightly_etl.errors import (
    ApiError,
    ConflictError,
    Halted,
    OutcomeUnknown,
    RecordLimitReached,
    RunStopped,
)
from insightly_etl.load.states import Action, Stop
from insightly_etl.moments import DATETIME_FORMAT

RECONCILE_ATTEMPTS = 3
STAYED_UNKNOWN = "the outcome stayed unknown after reconciling; run again to retry"
# after a lost answer, how long to let a slow server finish before looking for what it did: a
# request that reached it late (after our timeout) is applied by then, not sent a second time
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Call:
    """One request a job decided on. `action` is the job's word for it (create, stage, …)."""

    action: str
    method: str
    path: str
    body: Any = None
    etag: str | None = None  # sent as If-Match: refused (412) if the record changed since


class Then(Enum):
    """After a lost answer or a stale ETag, what the job found."""

    SETTLED = "settled"  # the job knows its outcome now and has journaled it
    DECIDE = "decide"  # decide again on what the job re-read, and send if something is left
    LEAVE = "leave"  # it stays unknown: the next run finds out


class Job(Protocol):
    def decide(self) -> Call | None:
        """The request still needed, against what the job knows of the record; None when
        there is nothing to send (the job has settled itself)."""

    async def send(self, client: InsightlyClient, call: Call, before_send: Any) -> Any:
        """Send `call` (`before_send` runs as it leaves) and return the answer's data."""

    def sending(self, call: Call) -> None:
        """Journal the job in flight: committed before the request leaves."""

    def done(self, call: Call, answer: Any) -> None: ...

    def failed(
        self,
        call: Call | None,
        status: int | None,
        message: str,
        error: ApiError | None = None,
    ) -> None:
        """Refused (`error`, when Insightly answered), or its outcome stayed unknown."""

    def unknown(self, call: Call, message: str) -> None: ...

    async def reconcile(self, call: Call) -> Then:
        """After a lost answer: did the write happen?"""

    async def conflict(self, call: Call, error: ConflictError) -> Then:
        """After a 412: the record changed since it was read."""

    def not_sent(self, call: Call) -> None:
        """Refused before it was processed (quota, Ctrl-C, 402): still to do."""


@dataclass
class Outcome:
    """How sending ended: not stopped, or why, with the error that stopped it."""

    stopped: Stop | None = None
    error: ApiError | RunStopped | None = None

    @property
    def message(self) -> str | None:
        return str(self.error) if self.error else None

    @property
    def hint(self) -> str | None:
        return self.error.hint if self.error else None


def server_now(client: InsightlyClient) -> datetime:
    """The server's clock (InsightlyClient.server_now)."""
    return client.server_now()


def fmt(when: datetime) -> str:
    """A moment as the API writes DATE_UPDATED_UTC."""
    return when.astimezone(UTC).strftime(DATETIME_FORMAT)


def stop_of(exc: RunStopped) -> Stop:
    return Stop.INTERRUPTED if isinstance(exc, Halted) else Stop.QUOTA


def run_outcome(stopped: Stop | None, client: InsightlyClient) -> str:
    """How a run ended, for the checkpoint's `runs`, in a run summary's words: a quota stop
    says which limit stopped it (the daily quota, --reserve or --max-requests)."""
    if stopped is None:
        return "finished"
    if stopped == Stop.QUOTA and client.stopped_by is not None:
        return str(client.stopped_by.stop_reason)
    return str(stopped)


class Sender:
    """Sends jobs, many at once (the client paces them), until the run is told to stop."""

    def __init__(self, client: InsightlyClient, stop: asyncio.Event) -> None:
        self.client = client
        self.stop = stop
        self.outcome = Outcome()
        self.limit_reached: RecordLimitReached | None = None  # a 402: no more creates

    @property
    def stopping(self) -> bool:
        return self.stop.is_set() or self.outcome.stopped is not None

    def stop_for(self, exc: RunStopped) -> None:
        if self.outcome.stopped is None:
            self.outcome = Outcome(stop_of(exc), exc)

    def finish(self) -> Outcome:
        """The outcome of everything sent: a 402 stops the run's creates, Ctrl-C the run."""
        if self.stop.is_set() and self.outcome.stopped is None:
            self.outcome = Outcome(Stop.INTERRUPTED)
        if self.limit_reached is not None and self.outcome.stopped is None:
            self.outcome = Outcome(Stop.RECORD_LIMIT, self.limit_reached)
        return self.outcome

    async def send(self, job: Job) -> bool:
        """Decide, journal, send and settle one job. False when it ended unsettled (left for
        the next run: stopped, or its outcome still unknown)."""
        for _ in range(RECONCILE_ATTEMPTS):
            call = job.decide()
            if call is None:
                return True
            try:
                answer = await job.send(self.client, call, partial(job.sending, call))
            except OutcomeUnknown as exc:
                job.unknown(call, exc.message)
                then = await self._after(job, job.reconcile, call, refused=False)
            except ConflictError as exc:
                then = await self._after(job, partial(job.conflict, error=exc), call, refused=True)
            except RecordLimitReached as exc:
                if call.action != Action.CREATE:  # the plan's record limit holds back creates
                    job.failed(call, exc.status, exc.message, exc)
                    return True
                job.not_sent(call)  # refused, not applied: still to do, as every create after
                self.limit_reached = self.limit_reached or exc
                return False
            except RunStopped as exc:
                # not sent (or only attempts the server refused unprocessed, 429/503, were)
                job.not_sent(call)
                self.stop_for(exc)
                return False
            except ApiError as exc:
                job.failed(call, exc.status, exc.message, exc)
                return True
            else:
                job.done(call, answer)
                return True
            if then is Then.SETTLED:
                return True
            if then is Then.LEAVE:
                return False
        job.failed(None, None, STAYED_UNKNOWN)
        return True

    async def _after(self, job: Job, step: Any, call: Call, *, refused: bool) -> Then:
        """Reconcile a lost answer, or re-read after a refusal (412). Stopped or failed
        meanwhile: an unknown write stays unknown for the next run; a refused one is still to
        do (stopped) or failed (the record cannot be read)."""
        try:
            then: Then = await step(call)
            return then
        except RunStopped as exc:
            if refused:
                job.not_sent(call)
            self.stop_for(exc)
            return Then.LEAVE
        except ApiError as exc:
            if not refused:
                return Then.LEAVE  # journaled unknown: reconciled before anything is re-sent
            job.failed(call, exc.status, f"re-reading the record: {exc.message}", exc)
            return Then.SETTLED
