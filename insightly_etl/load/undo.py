"""`undo_import`: reverse an import from its checkpoint, without damaging later work.

- A record the import **created** is deleted — unless it no longer carries what the import
  wrote (someone worked on it since): then it is left alone and listed as a conflict.
- A field the import **changed** gets its before-image back — only where it still holds the
  value the import wrote. A field changed by hand since is left alone and listed as a conflict
  (line, record, field, before, written, now).
- A record deleted since is listed as gone.

Rows removed from the file since (fix-and-rerun sets them aside) are not undone: undo reverses
what the rows of the file as it is now did. Each record costs a GET, just before it is
undone (a restore carries its ETag: a colleague's edit made meanwhile is a conflict, never
overwritten), and when something is to undo, one DELETE or PUT. A dry run changes nothing, so
it reads the records by one listing when that costs fewer requests than a GET each. The cost
is announced before anything is read. Progress is journaled
in the checkpoint's `undo` table, so a run stopped by the quota (exit 75), Ctrl-C or a crash
continues where it stopped, and a record is never deleted twice. Rows whose import outcome is
still unknown must be settled first (by running the import once more): undo cannot know whether
their record exists. `NAME.undo.csv` lists every action.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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
    Halted,
    InputError,
    NotFoundError,
    OutcomeUnknown,
    QuotaError,
)
from insightly_etl.files import write_csv
from insightly_etl.load.account import facts_from_api
from insightly_etl.load.checkpoint import Checkpoint, FieldChange
from insightly_etl.load.execute import payload_matches
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

UNDO_COLUMNS = ("line", "action", "record_id", "field", "before", "written", "now")
FINAL = ("deleted", "restored", "conflict", "gone", "nothing")
WORKERS = 4  # records undone at once (each a read then a write; the client paces them)


@dataclass
class UndoResult:
    counts: Counter[str]
    requests: int
    dry_run: bool = False
    stopped: str | None = None  # quota | interrupted
    stop_reason: str | None = None
    stop_hint: str | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.stopped == "quota":
            return 75
        if self.stopped == "interrupted":
            return 130
        return 1 if self.counts["conflict"] or self.counts["failed"] else 0


@dataclass
class _Job:
    row: int
    line: int
    record_id: int
    created: bool
    payload: dict[str, Any] | None = None  # created: the last body sent
    stamp: str | None = None  # created: DATE_UPDATED_UTC as our last write left the record
    changes: list[FieldChange] = field(default_factory=list)  # updated: fields changed


class _Undo:
    def __init__(
        self,
        client: InsightlyClient,
        checkpoint: Checkpoint,
        obj: ObjectType,
        specs: dict[str, FieldSpec],
        dry_run: bool,
    ) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self.obj = obj
        self.specs = specs
        self.dry_run = dry_run
        self.report: list[tuple[Any, ...]] = []
        self.counts: Counter[str] = Counter()
        self.settled: set[int] = set()  # rows finished in this run
        self.known: dict[int, Record] = {}  # a dry run's records, read by one listing

    async def read(self, ids: list[int], announce: Callable[[str], None]) -> None:
        """Say what reading costs before reading. Undo reads each record just before it
        undoes it (its ETag guards the write: a colleague's edit made meanwhile is a
        conflict, never overwritten). A dry run changes nothing, so it may read them all by
        one listing when that costs fewer requests than a GET each (a count says)."""
        each = f"Undo reads {len(ids):,} record(s), one GET each"
        if not self.dry_run:
            announce(f"{each}, just before undoing it; then up to {len(ids):,} write(s).")
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
        async for page in self.client.iter_pages(self.obj.endpoint):
            for record in page.records:
                rid = record_id(record, self.obj.id_field or "")
                if rid in wanted:
                    self.known[rid] = record

    def _note(self, job: _Job, action: str, name: str = "", *values: Any) -> None:
        before, written, now = (display(v) for v in (*values, None, None, None)[:3])
        self.report.append((job.line, action, job.record_id, name, before, written, now))

    def _finish(self, job: _Job, state: str, message: str | None = None) -> None:
        self.counts[state] += 1
        self.settled.add(job.row)
        if not self.dry_run:
            self.checkpoint.mark_undo(job.row, state, message)

    def fail(self, job: _Job, message: str, *, journal: bool) -> None:
        """A request refused (journaled: the next undo tries again) or unanswered."""
        self.counts["failed"] += 1
        self.settled.add(job.row)
        self._note(job, "failed", "", None, None, message)
        if journal and not self.dry_run:
            self.checkpoint.mark_undo(job.row, "failed", message)

    async def one(self, job: _Job) -> None:
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
        except NotFoundError:
            self._note(job, "gone")
            self._finish(job, "gone", "deleted in Insightly since the import")
            return
        if job.created:
            await self._delete(job, record)
        else:
            await self._restore(job, record, etag)

    async def _delete(self, job: _Job, record: Record) -> None:
        now = record.get("DATE_UPDATED_UTC")
        if job.stamp and now and str(now) > job.stamp:
            self._note(job, "conflict", "(record)", None, f"updated {job.stamp}", f"updated {now}")
            self._finish(
                job, "conflict", f"changed in Insightly at {now}, after the import; not deleted"
            )
            return
        if job.payload and not payload_matches(record, job.payload):
            self._note(job, "conflict", "(record)", None, "created by the import", "changed since")
            self._finish(job, "conflict", "changed since the import created it; not deleted")
            return
        if not self.dry_run:
            try:
                await self.client.delete(self.obj.endpoint, job.record_id)
            except ApiError as exc:
                if exc.status != 417:
                    raise
                # 417 Expectation Failed: Insightly will not delete it (the swagger lists it
                # for deletes; why is not documented): the record stays, as a conflict
                self._note(job, "conflict", "(record)", None, "created by the import", exc.message)
                self._finish(
                    job, "conflict", f"Insightly refused to delete it (HTTP 417: {exc.message})"
                )
                return
        self._note(job, "delete")
        self._finish(job, "deleted")

    async def _restore(self, job: _Job, record: Record, etag: str | None = None) -> None:
        restore: dict[str, Any] = {}
        conflicts = 0
        for change in job.changes:
            spec = self.specs.get(change.field)
            if spec is None:  # a custom field deleted since
                continue
            now = current_value(record, spec)
            if same_value(spec, change.written, now):
                restore[change.field] = change.before
                self._note(job, "restore", change.field, change.before, change.written, now)
            else:
                conflicts += 1
                self._note(job, "conflict", change.field, change.before, change.written, now)
        if restore:
            body, _, _ = update_payload(
                self.obj,
                self.specs,
                restore,
                record,
                dict.fromkeys(restore, FieldPolicy("overwrite", "replace")),
            )
            if not body:
                restore = {}  # already as it was: nothing to send
            elif not self.dry_run:
                try:
                    await self.client.update(self.obj.endpoint, body, etag=etag)
                except ConflictError:  # changed since it was read, a moment ago: left alone
                    self._note(job, "conflict", "(record)", None, None, "changed while undoing")
                    self._finish(job, "conflict", "changed in Insightly while undo ran; left alone")
                    return
        if conflicts:
            self._finish(job, "conflict", f"{conflicts} field(s) changed since the import")
        else:
            self._finish(job, "restored" if restore else "nothing")


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
    client.halt_on(stop or asyncio.Event())
    checkpoint = Checkpoint.scratch(checkpoint_path) if dry_run else Checkpoint(checkpoint_path)
    try:
        return await _undo(
            client, checkpoint, checkpoint_path, dry_run, results_dir, announce or (lambda _: None)
        )
    finally:
        checkpoint.close()


async def _undo(
    client: InsightlyClient,
    checkpoint: Checkpoint,
    path: Path,
    dry_run: bool,
    results_dir: Path | None,
    announce: Callable[[str], None],
) -> UndoResult:
    object_name = checkpoint.meta("object")
    try:
        obj = get_object(object_name or "")
    except InputError:
        raise CheckpointError(f"{path} is not an import checkpoint (no object recorded)") from None
    unsettled = checkpoint.unsettled()
    if unsettled:
        raise CheckpointError(
            f"{unsettled:,} row(s) of this import have an unknown outcome: undo cannot know "
            "whether their records exist",
            hint="Run the import once more (the same command) to settle them, then undo.",
        )
    meter = client.meter()
    checkpoint.bind_account(await client.account(), record=False)  # never undo in another account
    facts = await facts_from_api(client, read_mapping(None, object_name=obj.name))
    specs = field_specs(obj, facts.definitions)
    finished = {r for r, s in checkpoint.undo_states().items() if s in FINAL}
    lines = {r: s.line for r, s in checkpoint.states().items()}
    jobs: dict[int, _Job] = {
        row: _Job(row, line, rid, True, payload, stamp)
        for row, line, rid, payload, stamp in checkpoint.created_rows()
        if row not in finished
    }
    for row, changes in checkpoint.changes().items():
        if row not in finished and row not in jobs:  # a created record is deleted, not restored
            jobs[row] = _Job(
                row, lines.get(row, 0), changes[0].record_id, False, None, None, changes
            )
    undo = _Undo(client, checkpoint, obj, specs, dry_run)
    ordered = sorted(jobs.values(), key=lambda j: j.row)
    stopped: list[tuple[str, str | None, str | None]] = []
    # a few records at a time, each read then written before the next starts: a run cut short
    # by the quota has undone what it read, instead of reading everything and writing nothing
    slots = asyncio.Semaphore(WORKERS)

    async def run(job: _Job) -> None:
        async with slots:
            if stopped:
                return
            try:
                await undo.one(job)
            except Halted:
                stopped.append(("interrupted", None, None))
            except QuotaError as exc:
                stopped.append(("quota", str(exc), exc.hint))
            except (
                OutcomeUnknown
            ) as exc:  # the next undo re-reads it: a delete that happened is gone
                undo.fail(job, exc.message, journal=False)
            except ApiError as exc:
                undo.fail(job, str(exc), journal=True)

    try:
        await undo.read([j.record_id for j in ordered], announce)
    except Halted:
        stopped.append(("interrupted", None, None))
    except QuotaError as exc:
        stopped.append(("quota", str(exc), exc.hint))
    if not stopped:
        await gather_all(*(run(job) for job in ordered))
    quota = [s for s in stopped if s[0] == "quota"]
    stop, reason, hint = (quota or stopped)[0] if stopped else (None, None, None)
    undo.counts["left"] = sum(1 for j in ordered if j.row not in undo.settled)
    source = Path(checkpoint.meta("source") or path.name)
    directory = results_dir or path.parent
    directory.mkdir(parents=True, exist_ok=True)
    report = pd.DataFrame(undo.report, columns=list(UNDO_COLUMNS))
    report["record_id"] = report["record_id"].astype("Int64")
    target = directory / f"{source.stem}.undo.csv"
    if report.empty and target.exists():
        written = target  # nothing done this time: the earlier run's report stays
    else:
        written = write_csv(report.sort_values(["line", "field"]), target)
    return UndoResult(
        undo.counts,
        meter.requests,
        dry_run=dry_run,
        stopped=stop,
        stop_reason=reason,
        stop_hint=hint,
        files=[written],
    )
