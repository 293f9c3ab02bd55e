"""Sending the planned writes at the rate ceiling, recording every outcome in the checkpoint.

Each write: state `in_flight` committed → request → `done` / `failed` committed. Requests of a
batch run concurrently (the client keeps them under the per-second ceiling). Before a batch
with updates, one `/Search?updated_after_utc=` fetches records changed since planning and those
rows are re-diffed, because a list answer carries no per-record ETag to put in If-Match; where
planning did read a record's own ETag (by id), the PUT carries it.

A write whose answer was lost (`OutcomeUnknown`), or answered with another record than the
one written, is reconciled at once: a create is looked for among the newest records, those
changed since just before it was sent and its match key's search (reconcile.py); one not
found stays `unknown` and is not sent again. An update is re-read and re-diffed (a partial
PUT with the same values is harmless to repeat).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from insightly_etl.api.client import PAGE_SIZE, InsightlyClient
from insightly_etl.api.registry import ObjectType, get_object, record_id
from insightly_etl.api.tasks import gather_all, settle
from insightly_etl.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknown,
    RunStopped,
)
from insightly_etl.load.checkpoint import Checkpoint
from insightly_etl.load.plan import (
    Plan,
    PlannedRow,
    Planner,
    Record,
    current_value,
    same_value,
)
from insightly_etl.load.reconcile import (
    NOT_FOUND_YET,
    Reconciler,
    Settled,
    made_since,
    resembles,
    sent_moment,
)
from insightly_etl.load.sender import (
    SETTLE_SECONDS,
    Call,
    Outcome,
    Sender,
    Then,
    fmt,
    server_now,
)
from insightly_etl.load.states import WRITES, Action, Reconciled, RowState
from insightly_etl.progress import NullProgress, Progress

NOT_APPLIED = "not applied"  # a done write whose answer lacks a value it sent


SPENT_EVERY = 2.0  # seconds between two notes of a run's requests in its checkpoint
REFRESH_SECONDS = 2.0  # the longest a batch of updates runs on what it read before


def send_groups(
    writes: Iterable[PlannedRow], batch_size: int, rate: float
) -> Iterator[list[PlannedRow]]:
    """Batches of `batch_size` writes, read as they are sent (a plan's creates are made as
    they are read); a batch with updates is cut into groups of about REFRESH_SECONDS of
    requests, each re-read just before it is sent: a PUT carries the record's complete
    custom-field list as read, so the shorter that read is old, the smaller the window in
    which someone else's edit of another custom field could be written back."""
    per_refresh = max(5, int(rate * REFRESH_SECONDS))
    rows = iter(writes)
    while batch := list(islice(rows, batch_size)):
        if any(p.action == Action.UPDATE for p in batch):
            yield from (batch[i : i + per_refresh] for i in range(0, len(batch), per_refresh))
        else:
            yield batch


# how much earlier than the send a create's answer may say the record was made: the send's
# moment is the server's clock as last seen (its Date header), not read at the server itself
ANSWER_SKEW = timedelta(minutes=10)


class Executor:
    def __init__(
        self,
        client: InsightlyClient,
        checkpoint: Checkpoint,
        planner: Planner,
        *,
        batch_size: int,
        stop: asyncio.Event,
        planned_at: datetime,
        progress: Progress | None = None,
        keep_records: bool = True,
        spent: Callable[[], tuple[int, dict[str, int]]] | None = None,
    ) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self.planner = planner
        self.obj: ObjectType = planner.obj
        self.batch_size = batch_size
        self.sender = Sender(client, stop)
        self.refreshed_at = planned_at
        self.progress = progress or NullProgress()
        self.settle_seconds = SETTLE_SECONDS
        # records that existed before the first write (planning's): never a lost create's
        self.existed: set[int] = set()
        self.reconciler = Reconciler(
            client, self.obj, lambda: checkpoint.rows.claimed() | self.existed
        )
        # each write's answer kept for the steps that follow it (pipeline, stage, links); an
        # import without steps keeps none: a million created records' answers held ~2 GB
        self.keep_records = keep_records
        # the run's requests so far and by minute, noted in the checkpoint as it sends
        self.spent = spent
        self._noted = time.monotonic()

    async def run(self, plan: Plan) -> Outcome:
        """Writes go out as a pool of up to `batch_size` at a time (the client paces them): a
        slow request holds its own place only, never a whole batch. Each group with updates
        is re-read just before its first write starts (send_groups)."""
        self.existed = self.planner.seen_ids(plan)
        self.progress.start(f"import {self.obj.name}", total=plan.write_count(), unit="row")
        places = asyncio.Semaphore(self.batch_size)
        running: list[asyncio.Future[None]] = []

        async def send(p: PlannedRow) -> None:
            try:
                await self._send(p)
            finally:
                places.release()

        try:
            for group in send_groups(plan.writes, self.batch_size, self.client.rate_ceiling):
                if self.sender.stopping:
                    break
                if any(p.action == Action.UPDATE for p in group):
                    await self._refresh(group)
                for p in group:
                    await places.acquire()
                    if self.sender.stopping:
                        places.release()
                        break
                    running.append(asyncio.ensure_future(send(p)))
                    self._note_spent()
                running = [t for t in running if not t.done() or t.exception() is not None]
                if any(t.done() for t in running):
                    break  # a write failed unexpectedly (a bug): raised below, nothing more sent
            await gather_all(*running)
        except RunStopped as exc:  # raised by the refresh
            await gather_all(*running)
            self.sender.stop_for(exc)
        except BaseException:
            await settle(running)
            raise
        finally:
            self.progress.finish()
        return self.sender.finish()

    def _note_spent(self) -> None:
        """Every SPENT_EVERY seconds, the requests sent so far go into the checkpoint's run:
        a run killed later still counts in the quota's window and in status."""
        if self.spent is not None and time.monotonic() - self._noted >= SPENT_EVERY:
            self._noted = time.monotonic()
            self.checkpoint.spent_so_far(*self.spent())

    async def _send(self, p: PlannedRow) -> None:
        if self.sender.stopping or p.settled or p.action not in WRITES:
            return  # settled: the batch's refresh found it changed (a conflict) or done
        if p.action == Action.CREATE and self.sender.limit_reached is not None:
            return  # the plan holds no more: left planned, sent by a later run
        await self.sender.send(_RowWrite(self, self.planner.fill(p)))

    def path(self, p: PlannedRow) -> str:
        if p.action == Action.UPDATE:
            return self.obj.endpoint
        if self.obj.under_parent:  # notes: POST /{Parent}/{id}/Notes
            parent = self.planner.result.mapping.parent
            assert parent is not None and parent.lookup is not None and p.parent_id is not None
            return f"{get_object(parent.lookup.object).endpoint}/{p.parent_id}/Notes"
        return self.obj.endpoint

    def finish(self, p: PlannedRow, record: Record) -> None:
        rid = record_id(record, self.obj.id_field or "") if isinstance(record, dict) else None
        rid = rid if rid is not None else p.record_id
        update = p.action == Action.UPDATE
        self.checkpoint.rows.done(
            p.row,
            p.action,
            rid,
            p.before if update else None,
            p.after if update else None,
            not_applied=self._not_applied(p, record),
            stamp=record.get("DATE_UPDATED_UTC") if isinstance(record, dict) else None,
        )
        if self.keep_records and rid is not None and isinstance(record, dict):
            self.planner.records[rid] = record
        self.planner.release(p)
        self.progress.advance(1)

    def _not_applied(self, p: PlannedRow, record: Record) -> str | None:
        """Verified writes, at no extra request: the answer to a POST/PUT is the record as
        Insightly stored it. A value it silently did not apply (a read-only field, a value it
        normalised away) is reported, per field, instead of counted as done."""
        if not isinstance(record, dict) or not record:
            return None
        missed = []
        for name, sent in p.after.items():
            spec = self.planner.specs.get(name)
            if spec is None or sent is None:
                continue
            now = current_value(record, spec)
            if not same_value(spec, sent, now):
                missed.append(f"{name} (sent {sent!r}, Insightly has {now!r})")
        return f"{NOT_APPLIED}: {'; '.join(missed)}" if missed else None

    # ---------------------------------------------------------------- reconciliation
    async def reconcile(self, p: PlannedRow) -> bool:
        """After an unknown outcome: True if the write is known to have happened (recorded)."""
        if p.action == Action.UPDATE:
            try:
                reply = await self.client.get(f"{self.obj.endpoint}/{p.record_id}")
            except NotFoundError as exc:
                if not exc.from_api:  # a proxy's or a gateway's page: whether it went is unknown
                    return False
                self.checkpoint.rows.failed(p.row, 404, "the record was deleted during the import")
                return True
            except ForbiddenError as exc:  # it cannot be read: whether the update went is unknown
                self.checkpoint.rows.failed(
                    p.row, 403, f"the record cannot be read to confirm the update: {exc.message}"
                )
                return True
            # nothing left to change: the update went through
            return not self.rediff(p, dict(reply.data), reply.etag, settled_as=Action.UPDATE)
        settled = await self.settle(p)
        if settled.verdict is Reconciled.FOUND and settled.record is not None:
            self.finish(p, settled.record)
            return True
        # not found (a search index may lag), or alike others: never sent again by itself
        self.checkpoint.rows.unknown(p.row, settled.message or NOT_FOUND_YET)
        return False

    async def settle(self, p: PlannedRow) -> Settled:
        """Look for the record a create whose answer was lost made (reconcile.py), its match
        key's search among the places looked in."""
        match = self.planner.result.mapping.match
        written = self.planner.written_key(p.row) if p.key is not None else None
        keyed: list[Record] = []
        if match is not None and written is not None and self.obj.searchable:
            # the value as written: `p.key` is case-folded for matching, the record is not
            params = {"field_name": match.pairs[0][1], "field_value": written[0], "top": PAGE_SIZE}
            keyed = (await self.client.get(f"{self.obj.endpoint}/Search", params)).data or []
        sent = sent_moment(p.sent_at) or self.refreshed_at
        return await self.reconciler.settle(p.payload, sent, keyed)

    def check_answer(self, p: PlannedRow, answer: Record) -> None:
        """A write's answer must be the record written: another record (a proxy's mix-up, a
        cache) is no success for a stranger but an unknown outcome, reconciled."""
        rid = record_id(answer, self.obj.id_field or "")
        if p.action == Action.UPDATE:
            if rid != p.record_id:
                raise OutcomeUnknown(
                    f"the answer to the update of record {p.record_id} is record {rid}, not "
                    "the record written"
                )
        elif (
            rid is None
            or rid in self.checkpoint.rows.claimed()
            or not resembles(answer, p.payload, self.reconciler.who)
        ):
            raise OutcomeUnknown(
                f"the answer to the create is record {rid}, which is not the record sent"
                + (" (another row's)" if rid in self.checkpoint.rows.claimed() else "")
            )
        elif rid in self.planner.records:  # read by planning, and no row's: not made now
            raise OutcomeUnknown(
                f"the answer to the create is record {rid}, which existed before this run"
            )
        elif (sent := sent_moment(p.sent_at)) is not None and not made_since(
            answer, sent - ANSWER_SKEW
        ):
            raise OutcomeUnknown(
                f"the answer to the create is record {rid}, made at "
                f"{answer.get('DATE_CREATED_UTC')}, before the create was sent ({p.sent_at})"
            )

    def rediff(
        self,
        p: PlannedRow,
        record: Record,
        etag: str | None,
        *,
        settled_as: Action = Action.UNCHANGED,
    ) -> bool:
        """Diff the row again against a fresh copy of its record. True: something is still
        to send; False: nothing differs any more (recorded done, as `settled_as`)."""
        assert p.record_id is not None
        self.planner.records[p.record_id] = record
        body, before, after = self.planner.diff(p.row, record)
        if self.planner.base_of(p.row, p.record_id) is not None:
            # merged field by field: a field a colleague changed since planning, that the
            # file changes too, is a conflict now (one changed before was one at planning)
            new = sorted(set(self.planner.field_conflicts.get(p.row, {})) - set(p.conflicts))
            conflict = (
                f"conflict: record {p.record_id} changed in Insightly during this run "
                f"({', '.join(new)}); not overwritten. Run again to see the plan"
                if new
                else None
            )
        else:
            conflict = self.planner.conflict(p.row, record, after) if body else None
        if conflict:
            p.settled = True
            self.checkpoint.rows.failed(p.row, None, conflict)
            self.progress.advance(1)
            return False
        if not body:
            p.action, p.settled = settled_as, True
            update = settled_as == Action.UPDATE
            self.checkpoint.rows.done(
                p.row,
                settled_as,
                p.record_id,
                p.before if update else None,
                p.after if update else None,
            )
            self.progress.advance(1)
            return False
        p.payload, p.before, p.after, p.etag = body, before, after, etag
        return True

    async def _refresh(self, batch: list[PlannedRow]) -> None:
        """Records changed since planning: re-diff the updates of this batch against them."""
        since = self.refreshed_at - timedelta(seconds=1)
        self.refreshed_at = server_now(self.client)
        changed = {
            rid: r
            for r in await self.reconciler.changed_since(since)
            if (rid := record_id(r, self.obj.id_field or "")) is not None
        }
        for p in batch:
            if p.action == Action.UPDATE and p.record_id in changed:
                self.rediff(p, changed[p.record_id], None)  # a list gives no per-record ETag


class _RowWrite:
    """A row's record write, as the sender's job: the planned create or update; after a lost
    answer or a stale ETag, the row diffed again against the record as Insightly has it."""

    def __init__(self, executor: Executor, p: PlannedRow) -> None:
        self.ex, self.p = executor, p

    def decide(self) -> Call:
        p = self.p
        method = "PUT" if p.action == Action.UPDATE else "POST"
        return Call(p.action, method, self.ex.path(p), p.payload, p.etag)

    async def send(self, client: InsightlyClient, call: Call, before_send: Any) -> Record:
        if call.method == "PUT":
            answer = await client.update(
                call.path, call.body, etag=call.etag, before_send=before_send
            )
        else:
            answer = await client.create(call.path, call.body, before_send=before_send)
        self.ex.check_answer(self.p, answer)
        return answer

    def sending(self, call: Call) -> None:
        # committed when the request is handed to the network, not while it queues: a run
        # stopped before that leaves the row planned, with nothing to reconcile
        p = self.p
        p.sent_at = fmt(server_now(self.ex.client))
        self.ex.checkpoint.rows.sending(p.row, p.action, p.payload, p.sent_at, p.record_id)

    def done(self, call: Call, answer: Record) -> None:
        self.ex.finish(self.p, answer)

    def failed(
        self,
        call: Call | None,
        status: int | None,
        message: str,
        error: ApiError | None = None,
    ) -> None:
        self.ex.checkpoint.rows.failed(self.p.row, status, message)
        self.ex.progress.advance(1)

    def unknown(self, call: Call, message: str) -> None:
        self.ex.checkpoint.rows.unknown(self.p.row, message)

    async def reconcile(self, call: Call) -> Then:
        if self.p.action == Action.UPDATE:  # a PUT of the same values is harmless to repeat
            return Then.SETTLED if await self.ex.reconcile(self.p) else Then.DECIDE
        await asyncio.sleep(self.ex.settle_seconds)  # a create must not be made twice: let it land
        return Then.SETTLED if await self.ex.reconcile(self.p) else Then.LEAVE

    async def conflict(self, call: Call, error: ConflictError) -> Then:
        """The record changed since it was read (stale ETag): re-read, re-diff."""
        p = self.p
        try:
            reply = await self.ex.client.get(f"{self.ex.obj.endpoint}/{p.record_id}")
        except ForbiddenError as exc:  # the record was made private since planning
            self.failed(call, exc.status, exc.message)
            return Then.SETTLED
        return Then.DECIDE if self.ex.rediff(p, dict(reply.data), reply.etag) else Then.SETTLED

    def not_sent(self, call: Call) -> None:
        self.ex.checkpoint.rows.mark([self.p.row], RowState.PLANNED)
