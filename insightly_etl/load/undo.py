"""`undo_import`: reverse an import from its checkpoint, without damaging later work.

- A record the import **created** is deleted — unless it no longer carries what the import
  wrote (someone worked on it since): then it is left alone and listed as a conflict.
- A field the import **changed** gets its before-image back — only where it still holds the
  value the import wrote. A field changed by hand since is left alone and listed as a conflict
  (line, record, field, before, written, now).
- A record deleted since is listed as gone.
- A record a row created or updated before its match key was edited (so that it writes
  another record now) is still deleted or restored, as itself (rows.moved); never is one
  record's undo put onto another. No record older than the import's first planning (by
  Insightly's clock) is ever deleted, whatever the checkpoint says (a checkpoint of an earlier
  release does not know that moment: there is no such check for it).

Rows removed from the file since (fix-and-rerun sets them aside) are not undone: undo reverses
what the rows of the file as it is now did. Each record costs a GET, just before it is
undone (a restore carries its ETag: a colleague's edit made meanwhile is a conflict, never
overwritten), and when something is to undo, one DELETE or PUT. A dry run changes nothing, so
it reads the records by one listing when that costs fewer requests than a GET each. The cost
is announced before anything is read. Progress is journaled
in the checkpoint's `undo` table, so a run stopped by the quota (exit 75), Ctrl-C or a crash
continues where it stopped, and a record is never deleted twice. Rows whose import outcome is
still unknown must be settled first (`insightly-etl reconcile`): undo cannot know whether
their record exists. `NAME.undo.csv` lists every action.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from insightly_etl.api.client import PAGE_SIZE, InsightlyClient
from insightly_etl.api.registry import ObjectType, get_object, record_id
from insightly_etl.api.tasks import gather_all
from insightly_etl.errors import (
    ApiError,
    CheckpointError,
    ConflictError,
    InputError,
    NotFoundError,
    RunStopped,
)
from insightly_etl.files import unescape_frame, write_csv
from insightly_etl.load.account import facts_from_api
from insightly_etl.load.checkpoint import DAMAGE, Checkpoint, FieldChange, damaged
from insightly_etl.load.fields import FieldSpec, field_specs
from insightly_etl.load.mapping import read_mapping
from insightly_etl.load.plan import (
    FieldPolicy,
    Record,
    current_value,
    display,
    same_value,
    update_payload,
)
from insightly_etl.load.reconcile import agreement
from insightly_etl.load.sender import Call, Outcome, Sender, Then, run_outcome
from insightly_etl.load.states import UNDONE, Stop, UndoState
from insightly_etl.moments import iso_instant

UNDO_COLUMNS = ("line", "action", "record_id", "field", "before", "written", "now")
WORKERS = 4  # records undone at once (each a read then a write; the client paces them)


@dataclass
class UndoCounts:
    deleted: int = 0
    restored: int = 0
    conflict: int = 0
    gone: int = 0
    nothing: int = 0
    failed: int = 0
    left: int = 0  # not reached: the run stopped first
    # fields given back in records counted as conflicts (their other fields changed since)
    fields_restored: int = 0

    def add(self, state: UndoState) -> None:
        setattr(self, state.value, getattr(self, state.value) + 1)


@dataclass
class UndoResult:
    counts: UndoCounts
    requests: int
    dry_run: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    files: list[Path] = field(default_factory=list)
    object_name: str = ""  # the object the import wrote (contacts)
    account: str | None = None  # the account it wrote to (GET /Instance's subdomain)
    earlier: UndoCounts | None = None  # what earlier runs of undo settled (None: none did)

    @property
    def exit_code(self) -> int:
        if self.outcome.stopped is not None:
            return self.outcome.stopped.exit_code
        return 1 if self.counts.conflict or self.counts.failed else 0


@dataclass
class _Job:
    row: int
    line: int
    record_id: int
    created: bool
    payload: dict[str, Any] | None = None  # created: the last body sent
    stamp: str | None = None  # created: DATE_UPDATED_UTC as our last write left the record
    changes: list[FieldChange] = field(default_factory=list)  # updated: fields changed
    earlier: UndoState | None = None  # what an earlier undo journaled for it (failed, unknown)

    @property
    def sent_before(self) -> bool:
        """An earlier undo's write for it was in flight, its answer lost."""
        return self.earlier in (UndoState.IN_FLIGHT, UndoState.UNKNOWN)


class _Undo:
    def __init__(
        self,
        client: InsightlyClient,
        checkpoint: Checkpoint,
        obj: ObjectType,
        specs: dict[str, FieldSpec],
        dry_run: bool,
        sender: Sender,
    ) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self.obj = obj
        self.specs = specs
        self.dry_run = dry_run
        self.sender = sender
        self.report: list[tuple[Any, ...]] = []
        self.counts = UndoCounts()
        self.settled: set[int] = set()  # rows finished in this run
        self.known: dict[int, Record] = {}  # a dry run's records, read by one listing
        # by Insightly's clock, when the import's first run planned: nothing it created can
        # be older (a checkpoint of an earlier release lacks it: no such check)
        self.began = iso_instant(checkpoint.meta("first_planned"))

    async def read(self, ids: list[int], announce: Callable[[str], None]) -> None:
        """Say what reading costs before reading. Undo reads each record just before it
        undoes it (its ETag guards the write: a colleague's edit made meanwhile is a
        conflict, never overwritten). A dry run changes nothing, so it may read them all by
        one listing when that costs fewer requests than a GET each (a count says)."""
        each = f"Undo reads {len(ids):,} record(s), one GET each"
        if not self.dry_run:
            announce(f"{each}, just before undoing each; then up to {len(ids):,} write(s).")
            return
        total = None
        if len(ids) > 2:
            params = {"top": 1, "count_total": "true"} | (
                {"brief": "true"} if self.obj.brief else {}
            )
            total = (await self.client.get(self.obj.endpoint, params)).total
        pages = max(1, math.ceil(total / PAGE_SIZE)) if total is not None else None
        if pages is None or pages >= len(ids):
            announce(f"{each}; no write (dry run).")
            return
        announce(
            f"Undo reads {len(ids):,} records by listing {self.obj.name} (about {pages:,} "
            f"request(s) of up to 500, instead of a GET each); no write (dry run)."
        )
        wanted = set(ids)
        async for page in self.client.iter_pages(self.obj.endpoint, key=self.obj.id_field):
            for record in page.records:
                rid = record_id(record, self.obj.id_field or "")
                if rid in wanted:
                    self.known[rid] = record

    def note(self, job: _Job, action: str, name: str = "", *values: Any) -> None:
        before, written, now = (display(v) for v in (*values, None, None, None)[:3])
        self.report.append((job.line, action, job.record_id, name, before, written, now))

    def finish(self, job: _Job, state: UndoState, message: str | None = None) -> None:
        self.counts.add(state)
        self.settled.add(job.row)
        if not self.dry_run:
            self.checkpoint.undo.mark(job.row, state, message)

    def fail(self, job: _Job, message: str, *, state: UndoState = UndoState.FAILED) -> None:
        """A request refused (journaled failed: the next undo tries again) or unanswered
        (journaled unknown: the next undo reads the record first)."""
        self.counts.failed += 1
        self.settled.add(job.row)
        self.note(job, "failed", "", None, None, message)
        if not self.dry_run:
            self.checkpoint.undo.mark(job.row, state, message)

    async def one(self, job: _Job) -> None:
        if self.sender.stopping:
            return
        path = f"{self.obj.endpoint}/{job.record_id}"
        listed = self.known.pop(job.record_id, None)
        etag = None
        try:
            # a record the listing lacked is read by itself: deleted (404), or one this user
            # may not see (403, lists may leave those out)
            if listed is not None:
                record = dict(listed)
            else:
                reply = await self.client.get(path)
                record, etag = dict(reply.data), reply.etag
        except NotFoundError as exc:
            if not exc.from_api:  # a proxy's or a gateway's page: no word on the record
                self.fail(job, str(exc))
            elif job.created and job.sent_before:  # our own DELETE, whose answer was lost
                self.note(job, "delete")
                self.finish(job, UndoState.DELETED)
            else:
                self.note(job, "gone")
                self.finish(job, UndoState.GONE, "deleted in Insightly since the import")
            return
        except RunStopped as exc:
            self.sender.stop_for(exc)
            return
        except ApiError as exc:
            self.fail(job, str(exc))
            return
        await self.sender.send(_UndoWrite(self, job, record, etag))


# how much earlier than the import's first planning a record undo deletes may say it was made
# (both by Insightly's clock; its Date header has whole seconds, a listing may be cached)
CREATED_SLACK = timedelta(minutes=10)


def _later(now: Any, stamp: str) -> bool:
    """The record's DATE_UPDATED_UTC is later than the one our last write left: as instants
    (the server's form may differ between the import and the undo); text that is no
    instant counts as later, so the record is left alone."""
    a, b = iso_instant(now), iso_instant(stamp)
    if a is None or b is None:
        return True
    if not a.microsecond or not b.microsecond:  # one form has no fractions: to the second
        a, b = a.replace(microsecond=0), b.replace(microsecond=0)
    return a > b


class _UndoWrite:
    """Undoing one row, as the sender's job: a created record deleted, or changed fields
    given their values before back. Decided once, on the record as just read: a lost answer
    is left for the next undo (which reads the record first), a stale ETag is a conflict."""

    def __init__(self, undo: _Undo, job: _Job, record: Record, etag: str | None) -> None:
        self.undo, self.job, self.record, self.etag = undo, job, record, etag
        self.conflicts = 0
        self.restored = 0  # fields given back (or found given back by an earlier undo)
        self.restored_before = False

    def decide(self) -> Call | None:
        return self._delete() if self.job.created else self._restore()

    def _delete(self) -> Call | None:
        undo, job, record = self.undo, self.job, self.record
        made = iso_instant(record.get("DATE_CREATED_UTC"))
        if made is not None and undo.began is not None and made < undo.began - CREATED_SLACK:
            # not a record this import made, whatever the checkpoint says (edited by hand?)
            undo.note(job, "conflict", "(record)", None, "created by the import", f"created {made}")
            undo.finish(
                job,
                UndoState.CONFLICT,
                f"created in Insightly at {made:%Y-%m-%d %H:%M:%S}, before this import began; "
                "not deleted",
            )
            return None
        now = record.get("DATE_UPDATED_UTC")
        # what the import sent, as the server may keep it (case, spaces: loosely_same), field
        # by field: a field that holds something else was changed since, by someone
        changed = sorted(f for f, same in agreement(record, job.payload or {}).items() if not same)
        if job.stamp and now and _later(now, job.stamp):
            fields = ", ".join(changed) or "(a field the import did not send)"
            undo.note(job, "conflict", fields, None, f"updated {job.stamp}", f"updated {now}")
            undo.finish(
                job,
                UndoState.CONFLICT,
                f"changed in Insightly at {now}, after the import; not deleted",
            )
            return None
        if changed:
            undo.note(
                job, "conflict", ", ".join(changed), None, "created by the import", "changed since"
            )
            undo.finish(
                job,
                UndoState.CONFLICT,
                f"changed since the import created it ({', '.join(changed)}); not deleted",
            )
            return None
        if undo.dry_run:
            undo.note(job, "delete")
            undo.finish(job, UndoState.DELETED)
            return None
        return Call("delete", "DELETE", f"{undo.obj.endpoint}/{job.record_id}")

    def _restore(self) -> Call | None:
        undo, job, record = self.undo, self.job, self.record
        restore: dict[str, Any] = {}
        for change in job.changes:
            spec = undo.specs.get(change.field)
            if spec is None:  # a custom field deleted since
                continue
            now = current_value(record, spec)
            if same_value(spec, change.written, now):
                restore[change.field] = change.before
                self.restored += 1
                undo.note(job, "restore", change.field, change.before, change.written, now)
            elif job.sent_before and same_value(spec, change.before, now):
                self.restored_before = True  # an earlier undo's PUT, whose answer was lost
                self.restored += 1
                undo.note(job, "restore", change.field, change.before, change.written, now)
            else:
                self.conflicts += 1
                undo.note(job, "conflict", change.field, change.before, change.written, now)
        body: dict[str, Any] = {}
        if restore:
            body, _, _ = update_payload(
                undo.obj,
                undo.specs,
                restore,
                record,
                dict.fromkeys(restore, FieldPolicy("overwrite", "replace")),
            )
        if body and not undo.dry_run:
            return Call("restore", "PUT", undo.obj.endpoint, body, self.etag)
        self._restored(bool(body) or self.restored_before)  # nothing left to send, or a dry run
        return None

    def _restored(self, restored: bool) -> None:
        if self.conflicts:
            message = f"{self.conflicts} field(s) changed since the import"
            if restored and self.restored:  # the rest given back: counted, not hidden
                self.undo.counts.fields_restored += self.restored
                message += f"; {self.restored} field(s) restored"
            self.undo.finish(self.job, UndoState.CONFLICT, message)
        else:
            self.undo.finish(self.job, UndoState.RESTORED if restored else UndoState.NOTHING)

    async def send(self, client: InsightlyClient, call: Call, before_send: Any) -> Any:
        if call.method == "DELETE":
            return (await client.request("DELETE", call.path, before_send=before_send)).data
        return await client.update(call.path, call.body, etag=call.etag, before_send=before_send)

    def sending(self, call: Call) -> None:
        self.undo.checkpoint.undo.mark(self.job.row, UndoState.IN_FLIGHT)

    def done(self, call: Call, answer: Any) -> None:
        if call.method == "DELETE":
            self.undo.note(self.job, "delete")
            self.undo.finish(self.job, UndoState.DELETED)
        else:
            self._restored(True)

    def failed(
        self,
        call: Call | None,
        status: int | None,
        message: str,
        error: ApiError | None = None,
    ) -> None:
        undo, job = self.undo, self.job
        if call is not None and call.method == "DELETE" and status == 417:
            # 417 Expectation Failed: Insightly will not delete it (the swagger lists it for
            # deletes; why is not documented): the record stays, as a conflict
            undo.note(job, "conflict", "(record)", None, "created by the import", message)
            undo.finish(
                job, UndoState.CONFLICT, f"Insightly refused to delete it (HTTP 417: {message})"
            )
            return
        undo.fail(job, str(error) if error is not None else message)

    def unknown(self, call: Call, message: str) -> None:
        self.undo.fail(self.job, message, state=UndoState.UNKNOWN)

    async def reconcile(self, call: Call) -> Then:
        return Then.LEAVE  # the next undo reads the record: a delete that happened is done

    async def conflict(self, call: Call, error: ConflictError) -> Then:
        undo, job = self.undo, self.job  # changed since it was read, a moment ago: left alone
        undo.note(job, "conflict", "(record)", None, None, "changed while undoing")
        undo.finish(job, UndoState.CONFLICT, "changed in Insightly while undo ran; left alone")
        return Then.SETTLED

    def not_sent(self, call: Call) -> None:
        """Never applied: still to undo, journaled as before this attempt."""
        journal, job = self.undo.checkpoint.undo, self.job
        if job.earlier is None:
            journal.unmark(job.row)
        else:
            journal.mark(job.row, job.earlier)
        self.undo.settled.discard(job.row)


async def undo_import(
    client: InsightlyClient,
    checkpoint_path: Path,
    *,
    dry_run: bool = False,
    results_dir: Path | None = None,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], None] | None = None,
) -> UndoResult:
    if not checkpoint_path.is_file():
        raise CheckpointError(f"{checkpoint_path}: no such checkpoint file")
    stop = stop or asyncio.Event()
    client.halt_on(stop)
    checkpoint = (
        Checkpoint.scratch(checkpoint_path) if dry_run else Checkpoint.existing(checkpoint_path)
    )
    try:
        if dry_run:  # a scratch copy: nothing is recorded
            return await _undo(
                client, checkpoint, checkpoint_path, dry_run, results_dir,
                announce or (lambda _: None), stop,
            )  # fmt: skip
        spent = lambda: (client.stats.sent, dict(client.stats.sent_minutes))  # noqa: E731
        with checkpoint.recorded_run("undo", spent) as run:
            result = await _undo(
                client, checkpoint, checkpoint_path, dry_run, results_dir,
                announce or (lambda _: None), stop,
            )  # fmt: skip
            run.outcome = run_outcome(result.outcome.stopped, client)
            return result
    finally:
        checkpoint.close()


def _jobs(checkpoint: Checkpoint) -> dict[int, _Job]:
    """What is left to undo, by row: records to delete, fields to restore."""
    journal = checkpoint.undo.states()
    lines = checkpoint.rows.lines()
    jobs: dict[int, _Job] = {
        c.row: _Job(c.row, c.line, c.record_id, True, c.payload, c.stamp)
        for c in checkpoint.rows.created()
        if journal.get(c.row) not in UNDONE
    }
    for m in checkpoint.rows.moved():  # written by a row that took another record since
        if journal.get(m.row) not in UNDONE:
            jobs[m.row] = _Job(
                m.row, m.line, m.record_id, m.created, m.payload, m.stamp, list(m.changes)
            )
    for row, changes in checkpoint.rows.changes().items():
        if journal.get(row) not in UNDONE and row not in jobs:  # created: deleted, not restored
            jobs[row] = _Job(
                row, lines.get(row, 0), changes[0].record_id, False, None, None, changes
            )
    for job in jobs.values():
        job.earlier = journal.get(job.row)
    return jobs


async def _undo(
    client: InsightlyClient,
    checkpoint: Checkpoint,
    path: Path,
    dry_run: bool,
    results_dir: Path | None,
    announce: Callable[[str], None],
    stop: asyncio.Event,
) -> UndoResult:
    object_name = checkpoint.meta("object")
    try:
        obj = get_object(object_name or "")
    except InputError:
        raise CheckpointError(f"{path} is not an import checkpoint (no object recorded)") from None
    unsettled = checkpoint.rows.unsettled()
    if unsettled:
        raise CheckpointError(
            f"{unsettled:,} row(s) of this import have an unknown outcome: undo cannot know "
            "whether their records exist",
            hint=f"Settle them with `insightly-etl reconcile {path}` (again later if some stay "
            "unknown), then undo.",
        )
    meter = client.meter()
    checkpoint.bind_account(
        await client.account_for(checkpoint.account()), record=False
    )  # never undo in another account
    facts = await facts_from_api(client, read_mapping(None, object_name=obj.name))
    specs = field_specs(obj, facts.definitions)
    try:
        jobs = _jobs(checkpoint)
        earlier = _settled(checkpoint)
    except DAMAGE as exc:
        raise damaged(path, exc) from None
    sender = Sender(client, stop)
    undo = _Undo(client, checkpoint, obj, specs, dry_run, sender)
    ordered = sorted(jobs.values(), key=lambda j: j.row)
    # a few records at a time, each read then written before the next starts: a run cut short
    # by the quota has undone what it read, instead of reading everything and writing nothing
    slots = asyncio.Semaphore(WORKERS)

    async def run(job: _Job) -> None:
        async with slots:
            await undo.one(job)

    try:
        await undo.read([j.record_id for j in ordered], announce)
    except RunStopped as exc:
        sender.stop_for(exc)
    if not sender.stopping:
        await gather_all(*(run(job) for job in ordered))
    undo.counts.left = sum(1 for j in ordered if j.row not in undo.settled)
    outcome = sender.finish()
    if outcome.stopped == Stop.INTERRUPTED and not undo.counts.left:
        outcome = Outcome()  # stopped after the last record: nothing was cut short
    source = Path(checkpoint.meta("source") or path.name)
    directory = results_dir or path.parent
    directory.mkdir(parents=True, exist_ok=True)
    report = pd.DataFrame(undo.report, columns=list(UNDO_COLUMNS))
    report["record_id"] = report["record_id"].astype("Int64")
    target = directory / f"{source.stem}.undo.csv"
    if report.empty and target.exists():
        written = target  # nothing done this time: the earlier run's report stays
    else:
        if earlier is not None:  # a run that goes on: the records earlier runs undid stay
            report = _with_earlier(report, target, set(report["line"]))
        written = write_csv(report.sort_values(["line", "field"], kind="stable"), target)
    return UndoResult(
        undo.counts,
        meter.requests,
        dry_run=dry_run,
        outcome=outcome,
        files=[written],
        object_name=obj.name,
        account=checkpoint.meta("account"),
        earlier=earlier,
    )


def _settled(checkpoint: Checkpoint) -> UndoCounts | None:
    """What earlier runs of undo settled, by how (None: nothing yet)."""
    counts = UndoCounts()
    for state, n in checkpoint.undo.summary().items():
        if state in UNDONE:
            setattr(counts, state.value, n)
    return counts if counts != UndoCounts() else None


def _with_earlier(report: pd.DataFrame, target: Path, redone: set[int]) -> pd.DataFrame:
    """This run's lines, and those of the earlier NAME.undo.csv for lines this run did not
    report (undone before, or not reached this time): a run that went on after Ctrl-C or the
    quota wrote only its own, and the records the first run deleted were in no file. An
    earlier file that is not one undo wrote (edited, another release's columns) is left out,
    not read as one."""
    if not target.is_file():
        return report
    try:
        before = pd.read_csv(target, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, OSError, UnicodeDecodeError):
        return report
    if tuple(before.columns) != UNDO_COLUMNS:
        return report
    before = unescape_frame(before)
    lines = pd.to_numeric(before["line"], errors="coerce")
    kept = before[lines.notna() & ~lines.isin(redone)].copy()
    if kept.empty:
        return report
    kept["line"] = lines[kept.index].astype(int)
    kept["record_id"] = pd.to_numeric(kept["record_id"], errors="coerce").astype("Int64")
    kept = kept.replace({"": None})
    return pd.concat([kept, report], ignore_index=True)
