"""Steps: what an import changes through a record's own sub-endpoints, after the record's write.

Insightly changes a pipeline, a stage and an opportunity's state only through endpoints of their
own, and links live under the record (docs/api.md §2.1, §2.2):

    PUT    /{Opportunities|Projects}/{id}/Pipeline   {PIPELINE_ID, PIPELINE_STAGE_CHANGE: {STAGE_ID}}
    PUT    /{Opportunities|Projects}/{id}/PipelineStage   {STAGE_ID}   (same pipeline)
    DELETE /{Opportunities|Projects}/{id}/Pipeline   (PIPELINE_ID cleared, `blank: clear`)
    PUT    /Opportunities/{id}/StateChange   {FOR_OPPORTUNITY_STATE, STATE_REASON_ID}
    POST   /{Object}/{id}/Links   {LINK_OBJECT_NAME, LINK_OBJECT_ID, ROLE, DETAILS}

A row's steps are `pipeline` (pipeline and stage: one request), `state`, and one `link:COLUMN`
per `links:` item of the mapping. Each is decided against the record as Insightly has it — what
is already so costs nothing, a link already there is not added twice — and journaled in the
checkpoint (`steps`): committed in flight before its request leaves, done or failed when the
answer comes. A run that stops between a record's write and its steps, or in the middle of
them, resumes at the first step not done and never sends a done one again; a step whose answer
was lost is decided again on a fresh read of the record, so it is not sent twice.

An opportunity's state changes through StateChange rather than the record's body because only
that carries the reason and writes the state history. Comparisons ignore case (the API's
spelling of states is UNCERTAIN, docs/api.md §2.1); a new opportunity is Open.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

from insightly_etl.api.client import PAGE_SIZE, InsightlyClient
from insightly_etl.api.registry import ObjectType, get_object, record_id
from insightly_etl.api.tasks import gather_all
from insightly_etl.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    RunStopped,
)
from insightly_etl.load.checkpoint import Checkpoint, StepEntry, Written
from insightly_etl.load.plan import Record, row_policies
from insightly_etl.load.sender import SETTLE_SECONDS, Call, Sender, Then, fmt, stop_of
from insightly_etl.load.states import STEP_REQUESTS, StepAction, StepState, Stop
from insightly_etl.load.validate import ABSENT, ValidationResult
from insightly_etl.progress import NullProgress, Progress

STRICTNESS = ("overwrite", "fill", "never")


@dataclass(frozen=True)
class Want:
    step: str  # pipeline | state | link:COLUMN
    value: dict[str, Any]
    update: str = "overwrite"  # the column's policy: overwrite | fill | never (mapping.py)

    @property
    def text(self) -> str:
        return json.dumps(self.value, sort_keys=True, ensure_ascii=False)


def has_steps(result: ValidationResult) -> bool:
    return bool(result.mapping.links) or any(
        result.specs[name].via for name in result.values.columns if name in result.specs
    )


def row_wants(result: ValidationResult, row: int) -> list[Want]:
    """What this row's steps set, from the validated values (nothing for an empty cell)."""
    wants = []
    policies = row_policies(result, row)
    columns = result.values.columns
    pipeline = result.cell(row, "PIPELINE_ID") if "PIPELINE_ID" in columns else ABSENT
    if pipeline is not ABSENT:
        stage = result.cell(row, "STAGE_ID") if "STAGE_ID" in columns else ABSENT
        # one request sets both: the stricter of the two columns' policies holds for it
        strict = max(
            (_policy(policies, f) for f in ("PIPELINE_ID", "STAGE_ID") if f in policies),
            key=STRICTNESS.index,
            default="overwrite",
        )
        wants.append(
            Want(
                "pipeline",
                {"PIPELINE_ID": pipeline, "STAGE_ID": None if stage is ABSENT else stage},
                strict,
            )
        )
    state = result.cell(row, "OPPORTUNITY_STATE") if "OPPORTUNITY_STATE" in columns else ABSENT
    if state is not ABSENT and state is not None:
        reason = result.cell(row, "STATE_REASON_ID") if "STATE_REASON_ID" in columns else ABSENT
        wants.append(
            Want(
                "state",
                {"STATE": state, "STATE_REASON_ID": None if reason is ABSENT else reason},
                _policy(policies, "OPPORTUNITY_STATE"),
            )
        )
    for link in result.mapping.links:
        ids = result.links[link.column]
        if ids.isna().iat[row]:
            continue
        target = ids.iat[row]
        wants.append(
            Want(
                link.step,
                {
                    "LINK_OBJECT_NAME": get_object(link.lookup.object).link_name,
                    "LINK_OBJECT_ID": int(target),
                    "ROLE": link.role,
                    "DETAILS": link.details,
                },
            )
        )
    return wants


def _policy(policies: dict[str, Any], name: str) -> str:
    policy = policies.get(name)
    return str(policy.update) if policy is not None else "overwrite"


def decide(
    obj: ObjectType, want: Want, record: Record, *, created: bool, record_id: int
) -> Call | None:
    """The request that makes `record` what `want` says, or None when it already is (or the
    column's policy leaves it alone: `update: never` on a record this import did not create,
    `fill` on one that has a value)."""
    path = f"{obj.endpoint}/{record_id}"
    if want.step == "pipeline":
        pipeline, stage = want.value["PIPELINE_ID"], want.value["STAGE_ID"]
        now_pipeline, now_stage = record.get("PIPELINE_ID"), record.get("STAGE_ID")
        if not created and (
            want.update == "never" or (want.update == "fill" and now_pipeline is not None)
        ):
            return None
        if pipeline is None:
            return (
                None
                if now_pipeline is None
                else Call(StepAction.UNPIPELINE, "DELETE", f"{path}/Pipeline")
            )
        if _same_id(now_pipeline, pipeline):
            if stage is None or _same_id(now_stage, stage):
                return None
            return Call(StepAction.STAGE, "PUT", f"{path}/PipelineStage", {"STAGE_ID": stage})
        change: dict[str, Any] = {"PIPELINE_ID": pipeline}
        if stage is not None:
            change["PIPELINE_STAGE_CHANGE"] = {"STAGE_ID": stage}
        return Call(StepAction.PIPELINE, "PUT", f"{path}/Pipeline", change)
    if want.step == "state":
        now = str(record.get("OPPORTUNITY_STATE") or "Open")
        if not created and (
            want.update == "never" or (want.update == "fill" and record.get("OPPORTUNITY_STATE"))
        ):
            return None
        if now.lower() == str(want.value["STATE"]).lower():
            return None  # the reason of a state already reached is left as it is
        body = {"FOR_OPPORTUNITY_STATE": want.value["STATE"]}
        if want.value["STATE_REASON_ID"] is not None:
            body["STATE_REASON_ID"] = want.value["STATE_REASON_ID"]
        return Call(StepAction.STATE, "PUT", f"{path}/StateChange", body)
    # a link: added unless one to the same record with the same role is there (either way round)
    if any(_same_link(link, want.value) for link in record.get("LINKS") or ()):
        return None
    body = {k: v for k, v in want.value.items() if v is not None}
    return Call(StepAction.LINK, "POST", f"{path}/Links", body)


def _link_key(obj: ObjectType, rid: int, want: Want) -> tuple[frozenset[tuple[str, int]], str]:
    """A link by its two ends (either way round) and its role."""
    ends = frozenset(
        {
            ((obj.link_name or obj.name).lower(), rid),
            (str(want.value["LINK_OBJECT_NAME"]).lower(), int(want.value["LINK_OBJECT_ID"])),
        }
    )
    return ends, str(want.value["ROLE"] or "")


def _same_id(a: Any, b: Any) -> bool:
    try:
        return a is not None and b is not None and int(a) == int(b)
    except (TypeError, ValueError):
        return False


def _same_link(link: Any, want: dict[str, Any]) -> bool:
    if not isinstance(link, dict):
        return False
    return (
        str(link.get("LINK_OBJECT_NAME") or "").lower() == want["LINK_OBJECT_NAME"].lower()
        and _same_id(link.get("LINK_OBJECT_ID"), want["LINK_OBJECT_ID"])
        and (link.get("ROLE") or "") == (want["ROLE"] or "")
    )


def _apply(record: Record, call: Call, answer: Any, want: Want) -> None:
    """The record as the step left it, for the row's next step."""
    if call.action == "link":
        link = answer if isinstance(answer, dict) and "LINK_OBJECT_ID" in answer else want.value
        record["LINKS"] = [*(record.get("LINKS") or []), link]
    elif call.action == "state":
        record["OPPORTUNITY_STATE"] = want.value["STATE"]
    else:
        known = isinstance(answer, dict) and "PIPELINE_ID" in answer
        for name in ("PIPELINE_ID", "STAGE_ID"):
            record[name] = answer.get(name) if known else want.value.get(name)


@dataclass
class StepOutcome:
    stopped: Stop | None = None
    error: ApiError | RunStopped | None = None
    left: int = 0  # steps not settled when the run ended


class StepRunner:
    """Sends every row's steps that are not done yet; rows run concurrently, a row's steps in
    order (pipeline, state, links), each through the one journaled sender (sender.py)."""

    def __init__(
        self,
        client: InsightlyClient,
        checkpoint: Checkpoint,
        result: ValidationResult,
        records: dict[int, Record],
        *,
        stop: asyncio.Event,
        progress: Progress | None = None,
        new_records: frozenset[int] = frozenset(),
    ) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self.result = result
        self.obj = get_object(result.mapping.object)
        self.records = records  # read or written by this run, by id: no request to know them
        self.new_records = new_records  # created by this run: no links yet
        self.sender = Sender(client, stop)
        self.progress = progress or NullProgress()
        self.journal: dict[tuple[int, str], StepEntry] = {}
        self.linked: set[tuple[frozenset[tuple[str, int]], str]] = set()  # links added this run
        self.settle_seconds = SETTLE_SECONDS

    def pending(self, rows: list[Written]) -> list[tuple[Written, list[Want]]]:
        """Rows with a step not done for this want and this record."""
        self.journal = self.checkpoint.steps.states()
        out = []
        for r in rows:
            wants = [w for w in row_wants(self.result, r.row) if not self._done(r, w)]
            if wants:
                out.append((r, wants))
        return out

    def _done(self, r: Written, want: Want) -> bool:
        entry = self.journal.get((r.row, want.step))
        return (
            entry is not None
            and entry.state == StepState.DONE
            and entry.want == want.text
            and entry.record_id == r.record_id
        )

    def estimate(self, rows: list[Written], planned_new: list[int]) -> dict[str, int]:
        """Requests the steps will cost (none is sent): decided against what planning read;
        where it read nothing, one read and at most one request per step."""
        counts: dict[str, int] = {}

        def count(kind: str) -> None:
            counts[kind] = counts.get(kind, 0) + 1

        for r, wants in self.pending(rows):
            record = self.records.get(r.record_id)
            if record is None:
                count("read")
            for want in wants:
                if record is None:
                    count(want.step.split(":")[0])
                elif call := decide(
                    self.obj,
                    want,
                    dict(record),
                    created=self.created(r, want),
                    record_id=r.record_id,
                ):
                    count(call.action)
        new: Record = {}  # a record to create: no pipeline, Open, no links
        for row in planned_new:
            for want in row_wants(self.result, row):
                if call := decide(self.obj, want, new, created=True, record_id=0):
                    count(call.action)
        return counts

    async def run(self, rows: list[Written]) -> StepOutcome:
        todo = self.pending(rows)
        total = sum(len(w) for _, w in todo)
        try:
            await self._prefetch([r.record_id for r, _ in todo])
        except RunStopped as exc:
            return StepOutcome(stop_of(exc), exc, left=total)
        self.progress.start(f"{self.obj.name}: pipeline, state and links", total=total, unit="step")
        try:
            width = max(4, int(self.client.rate_ceiling * 2))
            for start in range(0, len(todo), width):
                if self.sender.stopping:
                    break
                chunk = todo[start : start + width]
                await gather_all(*(self._row(r, wants) for r, wants in chunk))
        finally:
            self.progress.finish()
        journal = self.checkpoint.steps.states()  # read once: not once per step
        left = sum(1 for r, wants in todo for w in wants if not _settled(journal, r, w))
        outcome = self.sender.finish()
        return StepOutcome(outcome.stopped, outcome.error, left)

    def created(self, r: Written, want: Want) -> bool:
        """Created by this import, and this step never applied to it: a later edit of the
        file is an update, where `update: never|fill` hold."""
        entry = self.journal.get((r.row, want.step))
        applied = (
            entry is not None and entry.state == StepState.DONE and entry.record_id == r.record_id
        )
        return r.created and not applied

    async def _prefetch(self, ids: list[int]) -> None:
        """Records this run has not read (their rows were written by an earlier run): one
        listing of the object when it costs fewer requests than a read per record."""
        missing = [rid for rid in ids if rid not in self.records]
        if len(missing) < 2:
            return
        pages = self.client.iter_pages(self.obj.endpoint, key=self.obj.id_field)
        first = await anext(pages)
        total = first.total or len(first.records)
        if math.ceil(total / PAGE_SIZE) >= len(missing):
            await pages.aclose()
            return
        self._keep(first.records)
        async for page in pages:
            self._keep(page.records)

    def _keep(self, records: list[Record]) -> None:
        for record in records:
            rid = record_id(record, self.obj.id_field or "")
            if rid is not None:
                self.records[rid] = record

    async def _row(self, r: Written, wants: list[Want]) -> None:
        try:
            # every record in self.records was read (or written) by this run: fresh enough to
            # settle a step an earlier run left in flight
            record: Record | None = self.records.get(r.record_id)
            if record is None:
                record = await self.read(r, links=any(w.step.startswith("link:") for w in wants))
            elif any(w.step.startswith("link:") for w in wants) and "LINKS" not in record:
                # since v3.0 a record's GET need not carry its links (docs/api.md §2.2)
                record = dict(record)
                record["LINKS"] = (
                    [] if r.record_id in self.new_records else await self._links(r.record_id)
                )
        except RunStopped as exc:
            self.sender.stop_for(exc)  # the journal holds what was sent; the rest is next run's
            return
        except ApiError as exc:  # reading the record or its links: this row's steps only
            self._fail_unsettled(r, wants, exc)
            return
        for n, want in enumerate(wants):
            if self.sender.stopping or record is None:
                return
            job = _StepWrite(self, r, want, record)
            if not await self.sender.send(job):
                return  # stopped, or unknown: the next run settles it first
            if job.unreadable is not None:
                self._fail_unsettled(r, wants[n + 1 :], job.unreadable)
                return
            record = job.record

    def _fail_unsettled(self, r: Written, wants: list[Want], exc: ApiError) -> None:
        """The record cannot be read: its steps not already settled fail with the reason."""
        for want in wants:
            if not _settled(self.journal, r, want):
                self.failed(r, want, exc.status, _why(exc))

    async def read(self, r: Written, *, links: bool) -> Record:
        path = f"{self.obj.endpoint}/{r.record_id}"
        data = (await self.client.get(path)).data
        if not isinstance(data, dict) or record_id(data, self.obj.id_field or "") != r.record_id:
            raise ApiError(f"the answer to GET {path} is not that record", status=200)
        record = dict(data)
        if links and not isinstance(record.get("LINKS"), list):
            record["LINKS"] = await self._links(r.record_id)
        return record

    async def _links(self, rid: int) -> list[Any]:
        return await self.client.get_all(f"{self.obj.endpoint}/{rid}/Links")

    def settle(
        self,
        r: Written,
        want: Want,
        state: StepState,
        action: StepAction,
        message: str | None = None,
    ) -> None:
        self.checkpoint.steps.settled(
            r.row, want.step, want.text, r.record_id, state=state, action=action, message=message
        )
        if state == StepState.DONE:
            self.progress.advance(1)

    def failed(
        self,
        r: Written,
        want: Want,
        status: int | None,
        message: str,
        action: StepAction | None = None,
    ) -> None:
        self.checkpoint.steps.settled(
            r.row,
            want.step,
            want.text,
            r.record_id,
            state=StepState.FAILED,
            action=action or StepAction(want.step.split(":")[0]),
            status=status,
            message=message,
        )
        self.progress.advance(1)


class _StepWrite:
    """One step of one row, as the sender's job: decided against the record as this run last
    saw it; after a lost answer, decided again on a fresh read (a slow server is given
    SETTLE_SECONDS to finish first), so a step is never sent twice."""

    def __init__(self, runner: StepRunner, r: Written, want: Want, record: Record) -> None:
        self.runner, self.r, self.want = runner, r, want
        self.record: Record | None = record  # as the step leaves it; None: the row stops here
        self.unreadable: ApiError | None = None  # the record could not be read again
        entry = runner.journal.get((r.row, want.step))
        self.earlier = entry  # put back when a request is refused unprocessed
        self.sent_before = (  # an earlier attempt may have made it so: then it counts as sent
            entry.action
            if entry is not None
            and entry.state in (StepState.IN_FLIGHT, StepState.UNKNOWN)
            and entry.want == want.text
            and entry.record_id == r.record_id
            else None
        )

    def decide(self) -> Call | None:
        runner, r, want = self.runner, self.r, self.want
        assert self.record is not None
        call = decide(
            runner.obj, want, self.record, created=runner.created(r, want), record_id=r.record_id
        )
        if call is not None and call.action == StepAction.LINK:
            key = _link_key(runner.obj, r.record_id, want)
            if key in runner.linked:  # the other record's row added it, either way round
                call = None
            else:
                runner.linked.add(key)  # claimed before the await: no race between rows
        if call is None:
            # already so — or made so by a request whose answer was lost: counted as sent
            runner.settle(r, want, StepState.DONE, self.sent_before or StepAction.ALREADY)
            if self.sent_before:  # ours, then: the record as read since carries its mark
                self._touched(self.record.get("DATE_UPDATED_UTC"))
        return call

    async def send(self, client: InsightlyClient, call: Call, before_send: Any) -> Any:
        reply = await client.request(
            call.method, call.path, json=call.body, before_send=before_send
        )
        return reply.data

    def sending(self, call: Call) -> None:
        self.runner.checkpoint.steps.sending(
            self.r.row, self.want.step, self.want.text, self.r.record_id, StepAction(call.action)
        )

    def done(self, call: Call, answer: Any) -> None:
        runner = self.runner
        runner.settle(self.r, self.want, StepState.DONE, StepAction(call.action))
        assert self.record is not None
        _apply(self.record, call, answer, self.want)
        # our own step moved the record's DATE_UPDATED_UTC on: so does the row's stamp, or
        # undo would take it for a colleague's edit. From the record the answer carries (a
        # pipeline or state change's), else the server's clock as it answered (a link's answer
        # is the link) — never ours, which could be ahead and hide a colleague's later edit
        mine = isinstance(answer, dict) and record_id(answer, runner.obj.id_field or "") == (
            self.r.record_id
        )
        answered = runner.client.last_server_time
        self._touched(
            answer.get("DATE_UPDATED_UTC") if mine else (fmt(answered) if answered else None)
        )

    def _touched(self, stamp: Any) -> None:
        if isinstance(stamp, str) and stamp:
            self.runner.checkpoint.rows.touched(self.r.row, stamp)

    def failed(
        self,
        call: Call | None,
        status: int | None,
        message: str,
        error: ApiError | None = None,
    ) -> None:
        self._unclaim(call)
        action = StepAction(call.action) if call is not None else None
        self.runner.failed(self.r, self.want, status, message, action)
        if call is None:
            self.record = None  # the outcome stayed unknown: the row's later steps wait

    def unknown(self, call: Call, message: str) -> None:
        action = StepAction(call.action)
        self.runner.settle(self.r, self.want, StepState.UNKNOWN, action, message=message)
        self.sent_before = action

    async def reconcile(self, call: Call) -> Then:
        await asyncio.sleep(self.runner.settle_seconds)  # a slow server may still apply it
        self._unclaim(call)
        try:
            self.record = await self.runner.read(self.r, links=self.want.step.startswith("link:"))
        except ApiError as exc:  # this step and the row's later ones fail with it
            self.unreadable = exc
            self.runner.failed(self.r, self.want, exc.status, _why(exc), StepAction(call.action))
            return Then.SETTLED
        return Then.DECIDE

    async def conflict(self, call: Call, error: ConflictError) -> Then:
        self.failed(call, error.status, error.message, error)  # steps send no ETag: refused
        return Then.SETTLED

    def not_sent(self, call: Call) -> None:
        self._unclaim(call)
        self.runner.checkpoint.steps.put_back(self.r.row, self.want.step, self.earlier)

    def _unclaim(self, call: Call | None) -> None:
        if call is not None and call.action == StepAction.LINK:
            self.runner.linked.discard(_link_key(self.runner.obj, self.r.record_id, self.want))


def _why(exc: ApiError) -> str:
    if isinstance(exc, NotFoundError) and exc.from_api:
        return "the record was deleted in Insightly"
    return f"reading the record: {exc.message}"


def _settled(journal: dict[tuple[int, str], StepEntry], r: Written, want: Want) -> bool:
    entry = journal.get((r.row, want.step))
    return (
        entry is not None
        and entry.want == want.text
        and entry.record_id == r.record_id
        and entry.state in (StepState.DONE, StepState.FAILED)
    )


@dataclass(frozen=True)
class StepCounts:
    done: dict[StepAction, int]  # done steps by the request they sent (none: `already`)
    failed: int
    unsettled: int  # in flight or unknown


def step_counts(checkpoint: Checkpoint) -> StepCounts:
    done: dict[StepAction, int] = dict.fromkeys(STEP_REQUESTS, 0)
    failed = unsettled = 0
    for (action, state), n in checkpoint.steps.counts().items():
        if state == StepState.DONE and action in done:
            done[action] += n
        elif state == StepState.FAILED:
            failed += n
        elif state in (StepState.IN_FLIGHT, StepState.UNKNOWN):
            unsettled += n
    return StepCounts(done, failed, unsettled)
