"""`load_file`: validate, plan, show the quota plan, execute within the quota, record everything.

Run it again with the same file, mapping and checkpoint and it continues where it stopped:
rows already done cost nothing, rows whose outcome was unknown are reconciled first.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import groupby, islice
from pathlib import Path
from typing import Any

from insightly_etl.api.accounting import frees_up
from insightly_etl.api.client import InsightlyClient
from insightly_etl.api.registry import get_object
from insightly_etl.errors import (
    ApiError,
    InputError,
    RunStopped,
    StopReason,
    TemporaryFolderError,
)
from insightly_etl.files import sha256_file, write_csv
from insightly_etl.load.account import AccountFacts, facts_from_api
from insightly_etl.load.base import find_base, read_base
from insightly_etl.load.checkpoint import (
    Checkpoint,
    RowEntry,
    Written,
    mapping_fingerprint,
)
from insightly_etl.load.checkpoint.pairing import Identity
from insightly_etl.load.execute import Executor, send_groups
from insightly_etl.load.identity import duplicate_action
from insightly_etl.load.mapping import Mapping, export_key, matched_by_id
from insightly_etl.load.plan import (
    PERSON_NAME,
    SHOWN_FROM,
    WHO,
    Plan,
    PlannedRow,
    Planner,
    display,
)
from insightly_etl.load.readers import SourceTable
from insightly_etl.load.reconcile import NOT_FOUND_YET
from insightly_etl.load.report import ErrorGroup, error_groups, row_messages
from insightly_etl.load.results import write_results
from insightly_etl.load.sender import Outcome, fmt, run_outcome, server_now, stop_of
from insightly_etl.load.source import SourceFile
from insightly_etl.load.states import (
    LEFT,
    PAST,
    STEP_REQUESTS,
    UNSETTLED,
    WRITES,
    Action,
    OnConflict,
    OnDuplicate,
    OnDuplicateEmail,
    OnMatch,
    Reconciled,
    RowState,
    Stop,
)
from insightly_etl.load.steps import StepRunner, has_steps, step_counts
from insightly_etl.load.validate import ValidationResult
from insightly_etl.progress import NullProgress, Progress, shown

TRANSIENT = (None, 429, 500, 502, 503, 504)
# what files to import are usually called: a.csv and a.xlsx would share results files
SOURCE_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".parquet")
# rows planned again by a run: still to do, or set aside by the last plan (the file or the
# mapping may have been fixed since); a failure only when it may pass (TRANSIENT)
RETRIED = frozenset({*LEFT, RowState.SKIPPED, RowState.REJECTED, RowState.DUPLICATE})


@dataclass
class ImportOptions:
    file: Path
    mapping_file: Path | None
    checkpoint: Path | None = None  # default: FILE.checkpoint.sqlite
    results_dir: Path | None = None  # default: beside FILE
    dry_run: bool = False
    batch_size: int = 200
    on_match: OnMatch = "update"
    create_missing: bool = True
    skip_duplicates: bool = False
    on_duplicate_email: OnDuplicateEmail = "warn"  # identity.py
    on_duplicate: OnDuplicate = "error"  # rows sharing a key with different values
    # a record changed in Insightly after the file's DATE_UPDATED_UTC: skip | overwrite
    on_conflict: OnConflict = "skip"
    base: Path | None = None  # the export an edited copy is merged with (else _base/ beside it)
    results_name: str | None = None  # NAME of the results files (default: the file's stem)
    account_name: str | None = None  # --account: its name in accounts.yaml (kept for status)

    @property
    def results_stem(self) -> str:
        """NAME of NAME.success.csv, NAME.errors.csv, …: the file's, or the one given."""
        return self.results_name or self.file.stem

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint or self.file.with_name(self.file.name + ".checkpoint.sqlite")

    @property
    def results_path(self) -> Path:
        return self.results_dir or self.file.parent

    def results_of_another(self) -> str | None:
        """The name of another file imported from here whose results files are this one's:
        a.csv beside a.xlsx (both write a.success.csv, a.errors.csv, …), found by its
        checkpoint. None if there is none, or this run's results go to a folder of their own.
        (A checkpoint does not say where its own run's results went: one sent elsewhere with
        --results still counts, and this run is asked for a folder of its own too.)"""
        journal = self.checkpoint_path
        if self.results_dir not in (None, self.file.parent) or not journal.name.startswith(
            self.file.name
        ):
            return None  # results elsewhere, or a checkpoint named by hand: no rule to follow
        rest = journal.name[len(self.file.name) :]  # ".checkpoint.sqlite", ".sandbox.…"
        for other in journal.parent.glob(f"{glob.escape(self.file.stem)}.*{glob.escape(rest)}"):
            source = other.name[: -len(rest)]
            suffix = source[len(self.file.stem) :]
            if source != self.file.name and suffix.lower() in SOURCE_SUFFIXES:
                return source
        return None


@dataclass(frozen=True)
class QuotaPlan:
    creates: int
    updates: int
    unchanged: int
    rejected: int
    duplicates: int
    skipped: int
    failed: int
    done_before: int  # rows finished by earlier runs
    requests_needed: int
    remaining: int | None
    reserve: int
    this_run: int
    seconds: float
    strategy: str
    planning_requests: int
    examples: list[str] = field(default_factory=list)  # a few changes, before -> after
    failures: list[str] = field(default_factory=list)  # the first rows planning fails, and why
    steps: dict[str, int] = field(default_factory=dict)  # pipeline/stage/state/link requests
    # field -> why -> cells left as they are: a spreadsheet's re-save, not an edit
    artefacts: dict[str, dict[str, int]] = field(default_factory=dict)
    not_sent: dict[str, dict[str, int]] = field(default_factory=dict)  # see Plan.not_sent
    # field -> rows changed both in the file and in Insightly since the export (Plan.conflicts):
    # kept as Insightly has it, or (--on-conflict overwrite) sent
    conflicts: dict[str, int] = field(default_factory=dict)
    conflict_rows: int = 0  # rows with such a field, counted above as updates or unchanged
    overwritten: bool = False
    base: str | None = None  # the export the file was merged with
    notes: list[str] = field(default_factory=list)  # reading's and the mapping's (ignored columns)
    warnings: list[str] = field(default_factory=list)  # planning's (Plan.warnings): before sending
    since_last_run: str | None = None  # ImportResult.since_last_run, said with the plan


@dataclass
class ImportCounts:
    """Rows by outcome, and steps by the request they sent."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicate: int = 0
    skipped: int = 0
    failed: int = 0
    left: int = 0  # planned, in flight or unknown: the next run's
    unknown: int = 0  # of them, writes whose answer was lost and not found yet (reconcile.py)
    not_applied: int = 0  # done, but Insightly did not keep a value sent
    pipeline: int = 0
    stage: int = 0
    unpipeline: int = 0
    state: int = 0
    link: int = 0
    steps_failed: int = 0
    steps_left: int = 0

    def steps(self) -> dict[str, int]:
        return {a.value: getattr(self, a.value) for a in STEP_REQUESTS}

    @property
    def refused(self) -> int:
        """Rows that cannot go as the file has them: a person must look."""
        return self.rejected + self.failed + self.duplicate

    @property
    def unfinished(self) -> int:
        return self.refused + self.left + self.not_applied + self.steps_failed + self.steps_left


@dataclass
class ImportResult:
    counts: ImportCounts
    requests: int
    quota_remaining: int | None
    quota_limit: int | None
    outcome: Outcome = field(default_factory=Outcome)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plan: QuotaPlan | None = None
    dry_run: bool = False
    stats: dict[str, object] = field(default_factory=dict)  # the client's accounting
    since_last_run: str | None = None  # "3 row(s) edited, 1 new, 0 removed since the last run"
    account: str | None = None  # GET /Instance's subdomain, as the checkpoint keeps it
    rejections: list[ErrorGroup] = field(default_factory=list)  # by column and kind
    written_before: tuple[int, int] = (0, 0)  # rows created, updated by earlier runs
    quota_frees: str | None = None  # after a quota stop: when the rolling window frees enough
    retry_not_before: datetime | None = None  # the same moment (None: not known here)
    # a file read in blocks that changed before its results files were written
    late_warnings: list[str] = field(default_factory=list)

    @property
    def this_run(self) -> tuple[int, int]:
        """Rows created, updated by this run (the counts are the file's, over every run)."""
        created, updated = self.written_before  # a row an edit re-planned moves from one to
        # the other: never less than none
        return max(0, self.counts.created - created), max(0, self.counts.updated - updated)

    @property
    def exit_code(self) -> int:
        if self.outcome.stopped is not None:
            return self.outcome.stopped.exit_code
        if self.plan is not None and self.plan.conflicts and not self.plan.overwritten:
            return 1  # an edit of the person's was not applied: the plan says which
        if self.dry_run:  # nothing was sent: only what a person must fix fails a preview
            return 1 if self.counts.refused else 0
        return 1 if self.counts.unfinished else 0


def when_quota_frees(checkpoint: Checkpoint, needed: int) -> str:
    """Insightly's allowance is a rolling 24-hour window: from what this tool itself sent (every
    run's requests by minute, in the checkpoint), when `needed` requests free up again."""
    sent = checkpoint.sent_minutes()
    at = frees_up(sent, needed)
    shared = "other integrations on the account share the allowance, so it may be later"
    if at is None:
        mine = sum(n for _, n in sent)
        return (
            f"this import sent {mine:,} of the requests spent in the last 24 hours; the rest "
            f"went elsewhere on the account, so when {needed:,} free up is not known here"
        )
    return f"{needed:,} request(s) free up by {at:%Y-%m-%d %H:%M} UTC at the earliest ({shared})"


def summarise(checkpoint: Checkpoint, bad_rows: int, steps_left: int = 0) -> ImportCounts:
    """Rows by outcome, and steps by the request they sent (steps.py)."""
    counts = ImportCounts(rejected=bad_rows, not_applied=checkpoint.rows.not_applied())
    for (action, state), n in checkpoint.rows.counts().items():
        if state == RowState.DONE:
            name = PAST.get(action, "unchanged") if action else "unchanged"
        elif state in (RowState.REJECTED, RowState.DUPLICATE, RowState.SKIPPED, RowState.FAILED):
            name = state.value
        else:
            name = "left"
            if state in UNSETTLED:
                counts.unknown += n
        setattr(counts, name, getattr(counts, name) + n)
    steps = step_counts(checkpoint)
    for request, n in steps.done.items():
        setattr(counts, request.value, n)
    counts.steps_failed = steps.failed
    counts.steps_left = max(steps_left, steps.unsettled)
    return counts


def identity_columns(
    table: SourceTable, mapping: Mapping
) -> tuple[Identity, Identity, tuple[int, ...]]:
    """The groups of the file's columns that say who each row's record is — a person's name,
    e-mail, phone, the object's name field, the match key, the record id — and, for a file
    without a match key, those that name it (not an e-mail or a phone, which two people may
    share); and the match key's columns (checkpoint/pairing.py)."""
    obj = get_object(mapping.object)
    # a contact's or lead's lookup name is its e-mail: contact details, not a name
    named_by = obj.name_field if obj.name_field not in ("EMAIL_ADDRESS", "EMAIL") else None
    naming = [PERSON_NAME, *((f,) for f in (named_by, obj.id_field) if f)]
    groups = [*WHO, *((f,) for f in (obj.name_field, obj.identity, obj.id_field) if f)]
    columns = table.columns
    by_field: dict[str, set[str]] = {}
    for rule in mapping.columns:
        by_field.setdefault(rule.field, set()).add(rule.column)
    if mapping.identity:  # no mapping file: the columns are named like the fields
        for c in columns:
            by_field.setdefault(c, set()).add(c)

    def positions(fields: tuple[str, ...]) -> tuple[int, ...]:
        names = set().union(*(by_field.get(f, set()) for f in fields))
        return tuple(i for i, c in enumerate(columns) if c in names)

    match = export_key(mapping, columns).match  # an export's ids are its key
    wanted = {column for column, _ in match.pairs} if match else set()
    key = tuple(i for i, c in enumerate(columns) if c in wanted)
    out = [*(positions(g) for g in groups), key]
    # a name or the record id that differs is another record, where a row has no key to say
    # who it is (checkpoint/pairing.py; an edited key is judged by planning: plan.py)
    names = [positions(g) for g in naming]
    return (
        tuple(dict.fromkeys(g for g in out if g)),
        tuple(dict.fromkeys(g for g in names if g)),
        key,
    )


async def load_file(
    client: InsightlyClient,
    options: ImportOptions,
    source: SourceFile,
    mapping: Mapping,
    *,
    stop: asyncio.Event | None = None,
    progress: Progress | None = None,
    announce: Callable[[QuotaPlan], None] | None = None,
) -> ImportResult:
    if (other := options.results_of_another()) is not None:
        name = options.results_stem
        raise InputError(
            f"{options.file}: its results files ({name}.success.csv, {name}.errors.csv, …) "
            f"would be written over those of {other}, imported from the same folder",
            hint="Give this import's results a folder of their own with --results DIR.",
        )
    stop = stop or asyncio.Event()
    client.halt_on(stop)  # after a stop, not one more request leaves
    fresh = not options.dry_run and not options.checkpoint_path.exists()
    discard = False  # a new checkpoint of a run refused before any write: not left behind
    checkpoint = (
        Checkpoint.scratch(options.checkpoint_path)
        if options.dry_run
        else Checkpoint(options.checkpoint_path)
    )
    table = source.table
    identity, naming, key = identity_columns(table, mapping)
    keyed_by = export_key(mapping, table.columns)
    try:
        changes = checkpoint.bind(
            file_sha=sha256_file(options.file),
            mapping_sha=mapping_fingerprint(options.mapping_file, mapping.object),
            object_name=mapping.object,
            source=options.file.name,
            digests=source.take_digests(),
            lines=table.lines,
            keyed=keyed_by.match is not None,
            identity=identity,
            naming=naming,
            key=key,
            id_key=bool(key) and matched_by_id(keyed_by),
        )
        checkpoint.start_run()
        remembered = checkpoint.meta("learned_limits")  # what an earlier run learned of the limits
        with contextlib.suppress(ValueError):  # only a hint: a damaged one is ignored
            client.start_from_learned(json.loads(remembered) if remembered else None)
        run = _Run(
            client,
            options,
            source,
            mapping,
            checkpoint,
            stop,
            progress or NullProgress(),
            since_last_run=changes.describe(),
        )
        try:
            result = await run.go(announce)
        # refused (another account's, a mapping's missing column, a key Insightly refuses),
        # or failed (a server's error past its retries, a temporary folder with no room)
        except (InputError, ApiError, TemporaryFolderError):
            if not checkpoint.rows.sent(this_run=True):  # before any write: not a run
                checkpoint.forget_run()
            else:  # its requests count in the quota's window; status says how it ended
                checkpoint.finish_run(
                    run.meter.requests, str(StopReason.ERROR), dict(client.stats.sent_minutes)
                )
            # a checkpoint this run made and wrote nothing with would greet the next run
            # with a run that never finished and rows "removed" from a file never imported
            discard = fresh and not checkpoint.rows.sent()
            raise
        if options.account_name and not options.dry_run:  # accounts.yaml's name, for status
            checkpoint.remember(account_name=options.account_name)
        result.stats = client.stats.summary()  # retries, 429s, a clock far from the server's
        result.since_last_run = run.since_last_run
        result.written_before = (run.before.created, run.before.updated)
        result.account = checkpoint.meta("account")
        if (learned := client.learned_limits()) and not options.dry_run:
            checkpoint.remember(learned_limits=json.dumps(learned))
        if result.outcome.stopped == Stop.QUOTA and client.quota.remaining == 0:
            needed = max(1, result.counts.left)
            result.quota_frees = when_quota_frees(checkpoint, needed)
            result.retry_not_before = frees_up(checkpoint.sent_minutes(), needed)
        return result
    finally:
        if discard:  # deleted before its lock is let go: no other run opens it in between
            checkpoint.discard()
        else:
            checkpoint.close()


@dataclass(frozen=True)
class Validated:
    """What validation left to do: the rows that may be sent, and those of them not done."""

    validation: ValidationResult
    valid: list[int]  # every row that passed
    todo: list[int]  # of those, the rows this run plans (not done by an earlier run)
    # of the entries before planning (after validation), only what planning reads: a
    # million rows' entries would be held twice while the plan is journaled
    record_ids: dict[int, int]  # rows to plan whose record an earlier run wrote or found
    unsettled: dict[int, RowEntry]  # rows to plan whose last write's answer was lost
    rejected: int  # rows rejected, by this validation or (rows done since) an earlier one
    done_before: int  # rows finished by earlier runs


@dataclass(frozen=True)
class Planned:
    plan: Plan
    quota: QuotaPlan
    steps: StepRunner | None  # the rows' pipeline, stage, state and links, if any
    file: Path  # NAME.plan.csv


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    steps_left: int = 0


class _Run:
    """One run, phase by phase: account → validate → reconcile → plan → execute → steps →
    report. Each phase returns what the next needs; a quota stop or Ctrl-C before anything is
    sent ends the run early (with the results files once the file is validated)."""

    def __init__(
        self,
        client: InsightlyClient,
        options: ImportOptions,
        source: SourceFile,
        mapping: Mapping,
        checkpoint: Checkpoint,
        stop: asyncio.Event,
        progress: Progress,
        *,
        since_last_run: str | None = None,  # how the file changed since (rerun.py)
    ) -> None:
        self.client, self.options, self.source, self.mapping = client, options, source, mapping
        self.table = source.table  # every row's line; its cells only when read whole
        self.since_last_run = since_last_run
        self.checkpoint, self.stop, self.progress = checkpoint, stop, progress
        self.meter = client.meter()
        # what earlier runs wrote: this run's own writes are the difference at the end
        self.before = summarise(checkpoint, 0)

    async def go(self, announce: Callable[[QuotaPlan], None] | None) -> ImportResult:
        try:
            facts = await self.account()
        except RunStopped as exc:
            return self.stopped_early(None, exc)
        validated = self.validate(facts)
        planner = self.planner(validated.validation)
        executor = Executor(
            self.client,
            self.checkpoint,
            planner,
            batch_size=self.options.batch_size,
            stop=self.stop,
            planned_at=server_now(self.client),
            progress=self.progress,
            keep_records=has_steps(validated.validation),
            spent=lambda: (self.meter.requests, dict(self.client.stats.sent_minutes)),
        )
        try:
            todo = await self.reconcile(executor, validated)
            planned = await self.plan(planner, validated, todo)
        except RunStopped as exc:
            return self.stopped_early(validated.validation, exc)
        if announce:
            announce(planned.quota)
        sent = Sent(Outcome())
        if not self.options.dry_run:
            sent = await self.execute(executor, planned, validated)
        return self.report(validated, planned, sent)

    async def account(self) -> AccountFacts:
        """The account the key opens (refused if the checkpoint is another's) and its field
        definitions and lookups."""
        self.checkpoint.bind_account(await self.client.account_for(self.checkpoint.account()))
        # before its first write, by Insightly's clock: nothing it creates is older (undo.py)
        if self.checkpoint.meta("first_planned") is None and not self.checkpoint.rows.sent():
            self.checkpoint.remember(first_planned=fmt(server_now(self.client)))
        return await facts_from_api(self.client, self.mapping)

    def validate(self, facts: AccountFacts) -> Validated:
        validation = self.source.validate(self.mapping, facts, self.progress)
        rows = self.checkpoint.rows
        flagged = [int(r) for r in validation.rejected_rows]
        earlier = rows.of(flagged)  # a row done by an earlier run stays done
        rejected = [r for r in flagged if earlier[r].state != RowState.DONE]
        messages = row_messages(validation.errors)  # "Email: 'x' is not a plausible …"
        rows.mark_each(((r, str(messages[r])) for r in rejected), RowState.REJECTED)
        rejected_set = set(rejected)
        del earlier, messages
        valid = [r for r in range(validation.rows) if r not in rejected_set]
        todo: list[int] = []
        record_ids: dict[int, int] = {}
        unsettled: list[int] = []
        states: Counter[RowState] = Counter()
        for r, state, status, rid in rows.brief():
            states[state] += 1
            # rejected / duplicate: valid now (the file or mapping was fixed), or re-marked
            # by planning
            if r in rejected_set or not (
                state in RETRIED or (state == RowState.FAILED and status in TRANSIENT)
            ):
                continue
            todo.append(r)
            if rid is not None:
                record_ids[r] = rid
            if state in UNSETTLED:
                unsettled.append(r)
        return Validated(
            validation,
            valid,
            todo,
            record_ids=record_ids,
            unsettled=rows.of(unsettled),
            rejected=states[RowState.REJECTED],
            done_before=states[RowState.DONE],
        )

    def planner(self, validation: ValidationResult) -> Planner:
        options = self.options
        obj = get_object(validation.mapping.object)
        base_path = find_base(options.file, obj.name, options.base)
        return Planner(
            self.client,
            validation,
            on_match=options.on_match,
            create_missing=options.create_missing,
            skip_duplicates=options.skip_duplicates,
            on_duplicate_email=options.on_duplicate_email,
            on_duplicate=options.on_duplicate,
            on_conflict=options.on_conflict,
            base=read_base(base_path, obj.id_field or "") if base_path and obj.id_field else None,
            last_write=self.checkpoint.rows.last_write,
            progress=self.progress,
        )

    async def reconcile(self, executor: Executor, validated: Validated) -> list[int]:
        """Creates an earlier run sent without hearing back: looked for (reconcile.py) before
        anything is planned. Found: done, with its record. Not found: left `unknown` and not
        sent, unless it was sent long enough ago that it certainly was not made (then it is
        planned again). The rows still to plan."""
        settled = set()
        for r, entry in validated.unsettled.items():
            if entry.action != Action.CREATE or not entry.payload:
                continue
            p = PlannedRow(r, entry.line, Action.CREATE, entry.payload, None, sent_at=entry.sent_at)
            found = await executor.settle(p)
            if found.verdict is Reconciled.NOT_MADE:
                continue  # planned again with the rest
            if found.verdict is Reconciled.FOUND and found.record is not None:
                executor.finish(p, found.record)
            else:  # not found yet, or alike others: left unknown, not sent
                self.checkpoint.rows.unknown(r, found.message or NOT_FOUND_YET)
            settled.add(r)
        return [r for r in validated.todo if r not in settled]

    async def plan(self, planner: Planner, validated: Validated, todo: list[int]) -> Planned:
        known_ids = {r: validated.record_ids[r] for r in todo if r in validated.record_ids}
        try:
            plan = await planner.plan(
                todo, self.table.lines, all_valid_rows=validated.valid, known_ids=known_ids
            )
        finally:  # its bar ends before a stop or an error is said
            self.progress.finish()
        self.record(plan, validated.unsettled)
        steps = None
        estimate = None
        if has_steps(validated.validation):  # their requests count in the plan and this run
            steps = StepRunner(
                self.client,
                self.checkpoint,
                validated.validation,
                planner.records,
                stop=self.stop,
                progress=self.progress,
            )
            new = plan.rows.creates()
            estimate = steps.estimate(self.step_rows(validated.valid), new)
        quota = replace(
            _quota_plan(self.client, plan, self.options, validated, estimate, planner.fill),
            since_last_run=self.since_last_run,
        )
        file = write_plan(self.options, self.table, plan, planner, self.progress)
        return Planned(plan, quota, steps, file)

    def record(self, plan: Plan, unsettled: dict[int, RowEntry]) -> None:
        """The plan's decisions, journaled before anything is sent."""
        rows = self.checkpoint.rows
        rows.mark_each(plan.duplicates.items(), RowState.DUPLICATE, action=Action.DUPLICATE)
        rows.mark_each(plan.skipped.items(), RowState.SKIPPED, action=Action.SKIP)
        for r, message in plan.failed.items():
            rows.failed(r, None, message)  # decided here, not by Insightly: no HTTP status
        planned: dict[Action, list[int]] = {Action.CREATE: plan.rows.creates()}
        for p in plan.rows.built():
            if p.action == Action.UNCHANGED and self._kept_conflicts(p):
                rows.failed(p.row, None, _conflict_text(p))  # not done: retried when run again
            elif p.action == Action.UNCHANGED:
                earlier = unsettled.get(p.row)
                # a create from an earlier run whose answer was lost, found by its key
                action = (
                    Action.CREATE
                    if earlier is not None and earlier.action == Action.CREATE
                    else Action.UNCHANGED
                )
                rows.done(p.row, action, p.record_id)
            else:
                planned.setdefault(p.action, []).append(p.row)
        for action, numbers in planned.items():  # one transaction each, not one per row
            if numbers:
                rows.mark(numbers, RowState.PLANNED, action=action)

    def _kept_conflicts(self, p: PlannedRow) -> bool:
        """Whether the row has fields Insightly changed too, kept as Insightly has them."""
        return bool(p.conflicts) and self.options.on_conflict != "overwrite"

    def step_rows(self, valid: list[int]) -> list[Written]:
        """Rows whose record is written (this run or an earlier one): their steps may follow."""
        passed = set(valid)
        return [w for w in self.checkpoint.rows.written() if w.row in passed]

    async def execute(self, executor: Executor, planned: Planned, validated: Validated) -> Sent:
        """The records' writes, then their steps (not after a quota stop or Ctrl-C)."""
        outcome = await executor.run(planned.plan)
        if kept := [p for p in planned.plan.rows.built() if self._kept_conflicts(p)]:
            # the rest of the row was sent; the fields kept make it not done, so that a run
            # again (--on-conflict overwrite, or after the conflict is settled) takes it up
            states = self.checkpoint.rows.of(p.row for p in kept)
            for p in kept:
                if states[p.row].state == RowState.DONE:
                    self.checkpoint.rows.failed(p.row, None, _conflict_text(p))
        steps = planned.steps
        if steps is None or outcome.stopped not in (None, Stop.RECORD_LIMIT):
            return Sent(outcome)
        made = set(planned.plan.rows.creates())
        steps.new_records = frozenset(
            w.record_id for w in self.checkpoint.rows.written() if w.row in made
        )
        done = await steps.run(self.step_rows(validated.valid))
        return Sent(Outcome(done.stopped, done.error) if done.stopped else outcome, done.left)

    def report(self, validated: Validated, planned: Planned, sent: Sent) -> ImportResult:
        options, outcome = self.options, sent.outcome
        requests = self.meter.requests
        self.checkpoint.finish_run(
            requests,
            "dry-run" if options.dry_run else run_outcome(outcome.stopped, self.client),
            dict(self.client.stats.sent_minutes),
        )
        validation = validated.validation
        late: list[str] = []
        files = [planned.file, *self.results(validation, bool(outcome.stopped), late)]
        return ImportResult(
            summarise(self.checkpoint, len(self.table.bad_rows), sent.steps_left),
            requests,
            self.client.quota.remaining,
            self.client.quota.limit,
            outcome=outcome,
            files=files,
            warnings=planned.plan.warnings,
            rejections=error_groups(validation) if len(validation.rejected_rows) else [],
            dry_run=options.dry_run,
            plan=planned.quota,
            late_warnings=late,
        )

    def results(self, validation: ValidationResult, stopped: bool, late: list[str]) -> list[Path]:
        """NAME.success.csv, NAME.errors.csv …; `late`: what writing them found to say."""
        options = self.options
        return write_results(
            options.results_path,
            options.results_stem,
            self.table,
            validation,
            self.checkpoint,
            stopped=stopped,
            dry_run=options.dry_run,
            warnings=late,
        )

    def stopped_early(self, validation: ValidationResult | None, exc: RunStopped) -> ImportResult:
        requests = self.meter.requests
        stopped = stop_of(exc)
        self.checkpoint.finish_run(
            requests, run_outcome(stopped, self.client), dict(self.client.stats.sent_minutes)
        )
        late: list[str] = []
        files = self.results(validation, True, late) if validation else []
        return ImportResult(
            summarise(self.checkpoint, len(self.table.bad_rows)),
            requests,
            self.client.quota.remaining,
            self.client.quota.limit,
            outcome=Outcome(stopped, exc),
            files=files,
            late_warnings=late,
        )


def _shown(value: object) -> str:
    """A value in a note: quoted, or `empty`."""
    return "empty" if value is None or value == "" else repr(display(value))


def _conflict_text(p: PlannedRow) -> str:
    fields = ", ".join(sorted(p.conflicts))
    sent = sorted(set(p.after) - set(p.conflicts))  # the row's other changes: sent
    return (
        f"conflict: {fields} changed in Insightly since the export, and in the file: kept as "
        "Insightly has it (NAME.plan.csv says both)"
        + (f"; the row's other changes were sent ({', '.join(sent)})" if sent else "")
        + "; run again with --on-conflict overwrite to send the file's"
    )


def _quota_plan(
    client: InsightlyClient,
    plan: Plan,
    options: ImportOptions,
    validated: Validated,
    steps: dict[str, int] | None,
    fill: Callable[[PlannedRow], PlannedRow],
) -> QuotaPlan:
    batches_with_updates = sum(
        1
        for group in send_groups(plan.writes, options.batch_size, client.rate_ceiling)
        if any(p.action == Action.UPDATE for p in group)
    )
    needed = plan.write_count() + batches_with_updates + sum((steps or {}).values())
    remaining = client.quota.remaining
    reserve = client.reserve
    allowed = [needed]
    if remaining is not None:
        allowed.append(max(0, remaining - reserve))
    if client.max_requests is not None:
        allowed.append(max(0, client.max_requests - client.stats.sent))
    this_run = min(allowed)
    return QuotaPlan(
        creates=plan.count(Action.CREATE),
        updates=plan.count(Action.UPDATE),
        unchanged=plan.count(Action.UNCHANGED),
        rejected=validated.rejected,
        duplicates=len(plan.duplicates),
        skipped=len(plan.skipped),
        failed=len(plan.failed),
        done_before=validated.done_before,
        requests_needed=needed,
        remaining=remaining,
        reserve=reserve,
        this_run=this_run,
        seconds=math.ceil(this_run / client.expected_rate) if this_run else 0,
        strategy=plan.strategy,
        planning_requests=plan.requests,
        examples=plan_examples(plan, fill, unit=validated.validation.table.unit),
        failures=_failures(plan, validated.validation.table),
        artefacts=plan.artefacts(),
        not_sent=dict(sorted(plan.not_sent.items())),
        conflicts=plan.conflicts(),
        conflict_rows=sum(1 for p in plan.rows.built() if p.conflicts),
        overwritten=options.on_conflict == "overwrite",
        steps=dict(steps or {}),
        notes=list(validated.validation.notes),
        warnings=list(plan.warnings),
    )


FAILURES_SHOWN = 5


def _failures(plan: Plan, table: SourceTable) -> list[str]:
    """`line 3: <why>` for the first rows planning fails (NAME.errors.csv has every one)."""
    rows = sorted(plan.failed)
    shown = [
        f"{table.unit} {table.lines[r]}: {_cut(plan.failed[r], 200)}" for r in rows[:FAILURES_SHOWN]
    ]
    if len(rows) > FAILURES_SHOWN:
        shown.append(f"… and {len(rows) - FAILURES_SHOWN:,} more")
    return shown


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


PLAN_COLUMNS = ("action", "record_id", "field", "current", "new", "note")


def write_plan(
    options: ImportOptions,
    table: SourceTable,
    plan: Plan,
    planner: Planner,
    progress: Progress | None = None,
) -> Path:
    """NAME.plan.csv: one row per field a write will change, with its value now and after;
    and one per cell left as it is because it differs only as a spreadsheet re-saves values
    (action `artefact`, the note says how). Written a block of rows at a time: a million rows
    make fifteen million lines (`progress`: the rows, a block at a time)."""
    options.results_path.mkdir(parents=True, exist_ok=True)
    path = options.results_path / f"{options.results_stem}.plan.csv"
    rows = len(plan.rows)
    with shown(progress, f"write {path.name}", rows, when=rows > SHOWN_FROM) as advance:
        return write_csv(_plan_frames(table, plan, planner, advance), path)


_PLAN_BLOCK = 5_000  # rows of the file per block of NAME.plan.csv (about 75,000 lines)


def _plan_frames(
    table: SourceTable, plan: Plan, planner: Planner, advance: Callable[[int], None]
) -> Iterator[Any]:
    import pandas as pd

    shared = sorted(plan.shared.items())
    ids = {p.row: p.record_id for p in plan.rows.built()}  # a create has none
    # the rows in the file's order, a block at a time (a create is made as it is read)
    blocks = groupby(plan.rows, key=lambda p: p.row // _PLAN_BLOCK)
    coming = next(blocks, None)
    end = max(plan.rows.last(), shared[-1][0] if shared else -1) + 1
    for first in range(0, max(end, 1), _PLAN_BLOCK):  # one block at least: the header
        last = first + _PLAN_BLOCK - 1
        planned: list[PlannedRow] = []
        if coming is not None and coming[0] == first // _PLAN_BLOCK:
            planned = [planner.fill(p) for p in coming[1]]
            coming = next(blocks, None)
        records = [
            (
                p.line,
                str(p.action),
                p.record_id,
                name,
                display(p.before.get(name)),
                display(new),
                "",
            )
            for p in planned
            if p.action in WRITES
            for name, new in p.after.items()
        ]
        records += [
            (p.line, "artefact", p.record_id, name, display(old), display(new), why)
            for p in planned
            for name, (old, new, why) in p.artefacts.items()
        ]
        records += [
            (
                p.line,
                "conflict",
                p.record_id,
                name,
                display(now),
                display(new),
                f"changed in Insightly since the export (it was {_shown(was)}); "
                + ("overwritten (--on-conflict overwrite)" if name in p.after else "kept"),
            )
            for p in planned
            for name, (was, now, new) in p.conflicts.items()
        ]
        records += [
            (
                table.lines[r],
                duplicate_action(name),
                ids.get(r),
                name,
                holder,
                value,
                "another record has this value; sent all the same (--on-duplicate-email warn)",
            )
            for r, (name, value, holder) in shared[
                bisect_left(shared, (first,)) : bisect_left(shared, (last + 1,))
            ]
        ]
        records += [
            (p.line, "like-existing", like, "", "", "", planner.like_existing(like))
            for p in planned
            if (like := plan.like_existing.get(p.row)) is not None
        ]
        records.sort(key=lambda r: r[0])
        frame = pd.DataFrame(records, columns=[table.unit, *PLAN_COLUMNS])
        frame["record_id"] = frame["record_id"].astype("Int64")
        yield frame
        advance(len(planned))


def plan_examples(
    plan: Plan,
    fill: Callable[[PlannedRow], PlannedRow],
    rows: int = 5,
    fields: int = 3,
    *,
    unit: str = "line",
) -> list[str]:
    """The first rows' changes, a row a line, as the plan prints them: `line 3: update 1042
    BACKGROUND '' -> 'x', TITLE 'a' -> 'b'` (a workbook's: `row 3`, as its results files
    say), and how many more rows write (five fields of the first row said nothing of the
    rest)."""
    out: list[str] = []
    for p in islice(plan.writes, rows):
        target = f"update {p.record_id}" if p.action == Action.UPDATE else "create"
        changes = [
            f"{name} {_short(display(p.before.get(name)))} -> {_short(display(new))}"
            if p.action == Action.UPDATE
            else f"{name} {_short(display(new))}"
            for name, new in fill(p).after.items()
        ]
        more = f" (and {len(changes) - fields} more field(s))" if len(changes) > fields else ""
        shown = ", ".join(changes[:fields]) or "(see NAME.plan.csv)"
        out.append(f"{unit} {p.line}: {target} {shown}{more}")
    if (writes := plan.write_count()) > rows:
        out.append(f"… and {writes - rows:,} more row(s)")
    return out


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")
