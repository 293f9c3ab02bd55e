"""`load_file`: validate, plan, show the quota plan, execute within the quota, record everything.

Run it again with the same file, mapping and checkpoint and it continues where it stopped:
rows already done cost nothing, rows whose outcome was unknown are reconciled first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from insightly_etl.api.accounting import frees_up
from insightly_etl.api.client import InsightlyClient, RequestMeter
from insightly_etl.api.registry import get_object
from insightly_etl.errors import Halted, RunStopped
from insightly_etl.files import write_csv
from insightly_etl.load.account import facts_from_api
from insightly_etl.load.base import find_base, read_base
from insightly_etl.load.checkpoint import (
    Checkpoint,
    RowState,
    mapping_fingerprint,
    row_digests,
    sha256_file,
)
from insightly_etl.load.execute import Executor, Outcome, send_groups, server_now
from insightly_etl.load.identity import duplicate_action
from insightly_etl.load.mapping import Mapping
from insightly_etl.load.plan import Plan, PlannedRow, Planner, display
from insightly_etl.load.readers import SourceTable
from insightly_etl.load.report import ErrorGroup, error_groups
from insightly_etl.load.results import write_results
from insightly_etl.load.steps import RowRecord, StepRunner, has_steps, step_counts
from insightly_etl.load.validate import ValidationResult, validate_table
from insightly_etl.progress import NullProgress, Progress

TRANSIENT = (None, 429, 500, 502, 503, 504)


@dataclass
class ImportOptions:
    file: Path
    mapping_file: Path | None
    checkpoint: Path | None = None  # default: FILE.checkpoint.sqlite
    results_dir: Path | None = None  # default: beside FILE
    dry_run: bool = False
    batch_size: int = 200
    on_match: str = "update"  # update | skip | error
    create_missing: bool = True
    skip_duplicates: bool = False
    on_duplicate_email: str = "warn"  # warn | skip | error (identity.py)
    on_duplicate: str = "error"  # rows sharing a key with different values: error | first | last
    on_conflict: str = "skip"  # a record changed in Insightly after the file's DATE_UPDATED_UTC
    base: Path | None = None  # the export an edited copy is merged with (else _base/ beside it)

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint or self.file.with_name(self.file.name + ".checkpoint.sqlite")

    @property
    def results_path(self) -> Path:
        return self.results_dir or self.file.parent


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
    steps: dict[str, int] = field(default_factory=dict)  # pipeline/stage/state/link requests
    # field -> why -> cells left as they are: a spreadsheet's re-save, not an edit
    artefacts: dict[str, dict[str, int]] = field(default_factory=dict)
    not_sent: dict[str, dict[str, int]] = field(default_factory=dict)  # see Plan.not_sent
    conflicts: dict[str, int] = field(default_factory=dict)  # field -> rows (Plan.conflicts)
    base: str | None = None  # the export the file was merged with


@dataclass
class ImportResult:
    counts: dict[str, int]
    requests: int
    quota_remaining: int | None
    quota_limit: int | None
    stopped: str | None = None  # quota | interrupted
    stop_reason: str | None = None
    stop_hint: str | None = None
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plan: QuotaPlan | None = None
    dry_run: bool = False
    stats: dict[str, object] = field(default_factory=dict)  # the client's accounting
    since_last_run: str | None = None  # "3 row(s) edited, 1 new, 0 removed since the last run"
    account: str | None = None  # GET /Instance's subdomain, as the checkpoint keeps it
    rejections: list[ErrorGroup] = field(default_factory=list)  # by column and kind
    quota_frees: str | None = None  # after a quota stop: when the rolling window frees enough

    @property
    def left(self) -> int:
        return self.counts.get("left", 0)

    @property
    def exit_code(self) -> int:
        if self.stopped == "quota":
            return 75
        if self.stopped == "interrupted":
            return 130
        if self.stopped == "record_limit":
            return 69
        if self.plan is not None and self.plan.conflicts:
            return 1  # an edit of the person's was not applied: the plan says which
        if any(
            self.counts.get(k, 0)
            for k in (
                "rejected",
                "failed",
                "duplicate",
                "left",
                "not_applied",
                "steps_failed",
                "steps_left",
            )
        ):
            return (
                0
                if self.dry_run
                and not any(self.counts.get(k, 0) for k in ("rejected", "failed", "duplicate"))
                else 1
            )
        return 0


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


def summarise(checkpoint: Checkpoint, bad_rows: int, steps_left: int = 0) -> dict[str, int]:
    """Rows by outcome, and steps by the request they sent (steps.py)."""
    counts = {
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": bad_rows,
        "duplicate": 0,
        "skipped": 0,
        "failed": 0,
        "left": 0,
        "not_applied": checkpoint.not_applied(),
    }
    for (action, state), n in checkpoint.counts().items():
        if state == "done":
            counts[{"create": "created", "update": "updated"}.get(action or "", "unchanged")] += n
        elif state in ("rejected", "duplicate", "skipped", "failed"):
            counts[state] += n
        else:
            counts["left"] += n
    steps = step_counts(checkpoint)
    unsettled = steps.pop("steps_unsettled")
    counts.update(steps)
    counts["steps_left"] = max(steps_left, unsettled)
    return counts


async def load_file(
    client: InsightlyClient,
    options: ImportOptions,
    table: SourceTable,
    mapping: Mapping,
    *,
    stop: asyncio.Event | None = None,
    progress: Progress | None = None,
    announce: Callable[[QuotaPlan], None] | None = None,
) -> ImportResult:
    stop = stop or asyncio.Event()
    client.halt_on(stop)  # after a stop, not one more request leaves
    checkpoint = (
        Checkpoint.scratch(options.checkpoint_path)
        if options.dry_run
        else Checkpoint(options.checkpoint_path)
    )
    try:
        changes = checkpoint.bind(
            file_sha=sha256_file(options.file),
            mapping_sha=mapping_fingerprint(options.mapping_file, mapping.object),
            object_name=mapping.object,
            source=options.file.name,
            digests=row_digests(table.frame),
            lines=table.lines,
            keyed=mapping.match is not None
            or (mapping.identity and get_object(mapping.object).id_field in table.columns),
        )
        checkpoint.start_run()
        remembered = checkpoint.meta("learned_limits")  # what an earlier run learned of the limits
        with contextlib.suppress(ValueError):  # only a hint: a damaged one is ignored
            client.start_from_learned(json.loads(remembered) if remembered else None)
        result = await _run(
            client, options, table, mapping, checkpoint, stop, progress or NullProgress(), announce
        )
        result.since_last_run = changes.describe()
        result.account = checkpoint.meta("account")
        if (learned := client.learned_limits()) and not options.dry_run:
            checkpoint.remember(learned_limits=json.dumps(learned))
        if result.stopped == "quota" and client.quota.remaining == 0:
            result.quota_frees = when_quota_frees(checkpoint, max(1, result.left))
        return result
    finally:
        checkpoint.close()


async def _run(
    client: InsightlyClient,
    options: ImportOptions,
    table: SourceTable,
    mapping: Mapping,
    checkpoint: Checkpoint,
    stop: asyncio.Event,
    progress: Progress,
    announce: Callable[[QuotaPlan], None] | None,
) -> ImportResult:
    meter = client.meter()
    try:
        checkpoint.bind_account(await client.account())  # refused if it is another account's
        facts = await facts_from_api(client, mapping)
    except RunStopped as exc:
        return _stopped_early(client, options, table, None, checkpoint, meter, exc)
    validation = validate_table(table, mapping, facts)
    states = checkpoint.states()
    rejected = [int(r) for r in validation.rejected_rows if states[int(r)].state != "done"]
    messages = (
        validation.errors.groupby("row")["message"].agg("; ".join) if len(validation.errors) else {}
    )
    for r in rejected:
        checkpoint.mark_many([r], state="rejected", message=str(messages[r]))
    rejected_set = set(rejected)
    valid = [r for r in range(validation.rows) if r not in rejected_set]
    states = checkpoint.states()
    todo = [
        r
        for r in valid
        # rejected / duplicate: valid now (the file or mapping was fixed), or re-marked by planning
        if states[r].state
        in ("planned", "in_flight", "unknown", "skipped", "rejected", "duplicate")
        or (states[r].state == "failed" and states[r].status in TRANSIENT)
    ]
    obj = get_object(validation.mapping.object)
    base_path = find_base(options.file, obj.name, options.base)
    planner = Planner(
        client,
        validation,
        on_match=options.on_match,
        create_missing=options.create_missing,
        skip_duplicates=options.skip_duplicates,
        on_duplicate_email=options.on_duplicate_email,
        on_duplicate=options.on_duplicate,
        on_conflict=options.on_conflict,
        base=read_base(base_path, obj.id_field or "") if base_path and obj.id_field else None,
    )
    planned_at = server_now(client)
    executor = Executor(
        client,
        checkpoint,
        planner,
        Plan(rows=[]),
        batch_size=options.batch_size,
        stop=stop,
        planned_at=planned_at,
        progress=progress,
    )
    try:
        todo = await _reconcile_earlier_creates(executor, checkpoint, validation, states, todo)
        known_ids = {r: rid for r in todo if (rid := states[r].record_id) is not None}
        plan = await planner.plan(todo, table.lines, all_valid_rows=valid, known_ids=known_ids)
    except RunStopped as exc:
        return _stopped_early(client, options, table, validation, checkpoint, meter, exc)
    _record_plan(checkpoint, plan, states)
    steps = (
        StepRunner(client, checkpoint, validation, planner.records, stop=stop, progress=progress)
        if has_steps(validation)
        else None
    )
    estimate = None
    if steps is not None:  # the steps' requests count in the plan and in this run's share
        new = [p.row for p in plan.rows if p.action == "create"]
        estimate = steps.estimate(_step_rows(checkpoint, valid), new)
    quota_plan = _quota_plan(client, plan, options, states, estimate)
    if announce:
        announce(quota_plan)
    plan_file = write_plan(options, table, plan)
    outcome = Outcome()
    steps_left = 0
    if not options.dry_run:
        executor.plan = plan
        outcome = await executor.run()
        if steps is not None and outcome.stopped in (None, "record_limit"):
            after = checkpoint.states()
            steps.new_records = frozenset(
                rid
                for p in plan.rows
                if p.action == "create" and (rid := after[p.row].record_id) is not None
            )
            done = await steps.run(_step_rows(checkpoint, valid))
            steps_left = done.left
            if done.stopped:
                outcome = Outcome(done.stopped, done.error)
    requests = meter.requests
    checkpoint.finish_run(
        requests,
        "dry-run" if options.dry_run else outcome.stopped or "finished",
        dict(client.stats.sent_minutes),
    )
    files = [
        plan_file,
        *write_results(
            options.results_path,
            options.file.stem,
            table,
            validation,
            checkpoint,
            stopped=bool(outcome.stopped),
        ),
    ]
    return ImportResult(
        summarise(checkpoint, len(table.bad_rows), steps_left),
        requests,
        client.quota.remaining,
        client.quota.limit,
        stopped=outcome.stopped,
        stop_reason=str(outcome.error) if outcome.error else None,
        stop_hint=outcome.error.hint if outcome.error else None,
        files=files,
        warnings=plan.warnings,
        rejections=error_groups(validation) if len(validation.rejected_rows) else [],
        dry_run=options.dry_run,
        plan=quota_plan,
    )


def _step_rows(checkpoint: Checkpoint, valid: list[int]) -> list[RowRecord]:
    """Rows whose record is written (this run or an earlier one): their steps may follow."""
    states, created = checkpoint.states(), checkpoint.created_row_numbers()
    return [
        RowRecord(r, rid, r in created)
        for r in valid
        if states[r].state == "done" and (rid := states[r].record_id) is not None
    ]


def _stopped_early(
    client: InsightlyClient,
    options: ImportOptions,
    table: SourceTable,
    validation: ValidationResult | None,
    checkpoint: Checkpoint,
    meter: RequestMeter,
    exc: RunStopped,
) -> ImportResult:
    requests = meter.requests
    stopped = "interrupted" if isinstance(exc, Halted) else "quota"
    checkpoint.finish_run(requests, stopped, dict(client.stats.sent_minutes))
    files = (
        write_results(
            options.results_path, options.file.stem, table, validation, checkpoint, stopped=True
        )
        if validation
        else []
    )
    return ImportResult(
        summarise(checkpoint, len(table.bad_rows)),
        requests,
        client.quota.remaining,
        client.quota.limit,
        stopped=stopped,
        stop_reason=str(exc),
        stop_hint=exc.hint,
        files=files,
    )


async def _reconcile_earlier_creates(
    executor: Executor,
    checkpoint: Checkpoint,
    validation: ValidationResult,
    states: dict[int, RowState],
    todo: list[int],
) -> list[int]:
    """A create that an earlier run sent without hearing back, for a mapping without a match
    key: look for it among records changed since just before it was sent. (With a match key,
    planning finds it by its key.)"""
    if validation.mapping.match is not None:
        return todo
    unknown = [
        r
        for r in todo
        if states[r].state in ("in_flight", "unknown")
        and states[r].action == "create"
        and states[r].payload
    ]
    if not unknown:
        return todo
    found_rows = set()
    for r in unknown:
        p = PlannedRow(
            r, states[r].line, "create", states[r].payload or {}, None, sent_at=states[r].sent_at
        )
        record = await executor.find_created(p)
        if record is not None:
            executor.finish(p, record)
            found_rows.add(r)
    return [r for r in todo if r not in found_rows]


def _record_plan(checkpoint: Checkpoint, plan: Plan, states: dict[int, RowState]) -> None:
    for r, message in plan.duplicates.items():
        checkpoint.mark_many([r], state="duplicate", action="duplicate", message=message)
    for r, message in plan.skipped.items():
        checkpoint.mark_many([r], state="skipped", action="skip", message=message)
    for r, message in plan.failed.items():
        checkpoint.failed(r, None, message)  # decided here, not by Insightly: no HTTP status
    for p in plan.rows:
        if p.action == "unchanged":
            earlier = states[p.row]
            # a create from an earlier run whose answer was lost, found by its key
            action = (
                "create"
                if earlier.state in ("in_flight", "unknown") and earlier.action == "create"
                else "unchanged"
            )
            checkpoint.done(p.row, action, p.record_id)
        else:
            checkpoint.mark_many([p.row], state="planned", action=p.action)


def _quota_plan(
    client: InsightlyClient,
    plan: Plan,
    options: ImportOptions,
    states: dict[int, RowState],
    steps: dict[str, int] | None = None,
) -> QuotaPlan:
    writes = plan.writes
    batches_with_updates = sum(
        1
        for group in send_groups(writes, options.batch_size, client.rate_ceiling)
        if any(p.action == "update" for p in group)
    )
    needed = len(writes) + batches_with_updates + sum((steps or {}).values())
    remaining = client.quota.remaining
    reserve = client.reserve
    allowed = [needed]
    if remaining is not None:
        allowed.append(max(0, remaining - reserve))
    if client.max_requests is not None:
        allowed.append(max(0, client.max_requests - client.stats.sent))
    this_run = min(allowed)
    return QuotaPlan(
        creates=plan.count("create"),
        updates=plan.count("update"),
        unchanged=plan.count("unchanged"),
        rejected=sum(1 for s in states.values() if s.state == "rejected"),
        duplicates=len(plan.duplicates),
        skipped=len(plan.skipped),
        failed=len(plan.failed),
        done_before=sum(1 for s in states.values() if s.state == "done"),
        requests_needed=needed,
        remaining=remaining,
        reserve=reserve,
        this_run=this_run,
        seconds=math.ceil(this_run / client.rate_ceiling) if this_run else 0,
        strategy=plan.strategy,
        planning_requests=plan.requests,
        examples=plan_examples(plan),
        artefacts=plan.artefacts(),
        not_sent=dict(sorted(plan.not_sent.items())),
        conflicts=plan.conflicts(),
        steps=dict(steps or {}),
    )


PLAN_COLUMNS = ("action", "record_id", "field", "current", "new", "note")


def write_plan(options: ImportOptions, table: SourceTable, plan: Plan) -> Path:
    """NAME.plan.csv: one row per field a write will change, with its value now and after;
    and one per cell left as it is because it differs only as a spreadsheet re-saves values
    (action `artefact`, the note says how)."""
    import pandas as pd

    records = [
        (p.line, p.action, p.record_id, name, display(p.before.get(name)), display(new), "")
        for p in plan.writes
        for name, new in p.after.items()
    ]
    records += [
        (p.line, "artefact", p.record_id, name, display(old), display(new), why)
        for p in plan.rows
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
            f"changed in Insightly since the export (it was {display(was)!r}); "
            + ("overwritten (--on-conflict overwrite)" if name in p.after else "kept"),
        )
        for p in plan.rows
        for name, (was, now, new) in p.conflicts.items()
    ]
    ids = {p.row: p.record_id for p in plan.rows}
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
        for r, (name, value, holder) in plan.shared.items()
    ]
    records.sort(key=lambda r: r[0])
    frame = pd.DataFrame(records, columns=[table.unit, *PLAN_COLUMNS])
    frame["record_id"] = frame["record_id"].astype("Int64")
    options.results_path.mkdir(parents=True, exist_ok=True)
    return write_csv(frame, options.results_path / f"{options.file.stem}.plan.csv")


def plan_examples(plan: Plan, limit: int = 5) -> list[str]:
    """A few changes, as the plan prints them: `line 3: update 1042 BACKGROUND '' -> 'x'`."""
    out: list[str] = []
    for p in plan.writes:
        for name, new in p.after.items():
            if len(out) == limit:
                return out
            target = f"update {p.record_id}" if p.action == "update" else "create"
            old = p.before.get(name) if p.action == "update" else None
            change = (
                f"{_short(display(old))} -> {_short(display(new))}"
                if p.action == "update"
                else _short(display(new))
            )
            out.append(f"line {p.line}: {target} {name} {change}")
    return out


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")
