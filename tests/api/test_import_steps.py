"""Pipeline, stage, state and links on import (issue 12): steps after a record's write, each
journaled, each sent once, decided against the record so that what is already so costs nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from insightly_etl.errors import InputError
from insightly_etl.load.checkpoint import Checkpoint
from tests.api.test_import import run_import, write, writes
from tests.conftest import KEY, asgi_client, cli_runner

pytestmark = pytest.mark.anyio

DEALS = """\
Deal,Pipeline,Stage,State,Reason
Harbour cranes,New Business,Proposal,Won,Budget approved
Depot roof,Renewals,Proposal,Lost,Price too high
Canteen fit-out,New Business,Negotiation,open,
Forklift lease,,Signed,,
"""
DEALS_MAPPING = """\
object: opportunities
match: {column: Deal, field: OPPORTUNITY_NAME}
columns:
  Deal: OPPORTUNITY_NAME
  Pipeline: {field: PIPELINE_ID, lookup: {object: pipelines}}
  Stage: {field: STAGE_ID, lookup: {object: pipeline_stages}}
  State: OPPORTUNITY_STATE
  Reason: {field: STATE_REASON_ID, lookup: {object: opportunity_state_reasons}}
"""


def deals(sb) -> dict[str, dict]:
    return {
        r["OPPORTUNITY_NAME"]: r for r in sb.account.collections["Opportunities"].records.values()
    }


def calls(sb, method: str, suffix: str) -> int:
    return sum(n for (m, path, _), n in sb.stats.items() if m == method and path.endswith(suffix))


@pytest.mark.slow
async def test_deals_are_created_in_their_stage_with_their_state_and_reason(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    result = await run_import(
        sb, write(tmp_path, "deals.csv", DEALS), write(tmp_path, "deals.yaml", DEALS_MAPPING)
    )
    got = deals(sb)
    # "Proposal" is a stage of both pipelines: looked up within the row's own
    assert (got["Harbour cranes"]["PIPELINE_ID"], got["Harbour cranes"]["STAGE_ID"]) == (1, 13)
    assert (got["Depot roof"]["PIPELINE_ID"], got["Depot roof"]["STAGE_ID"]) == (2, 22)
    assert (got["Forklift lease"]["PIPELINE_ID"], got["Forklift lease"]["STAGE_ID"]) == (2, 23)
    assert [got[d]["OPPORTUNITY_STATE"].lower() for d in ("Harbour cranes", "Depot roof")] == [
        "won",
        "lost",
    ]
    assert got["Canteen fit-out"]["OPPORTUNITY_STATE"] == "OPEN"  # new deals are open: no request
    history = sb.account.state_history[got["Depot roof"]["OPPORTUNITY_ID"]]
    assert [(h["FOR_OPPORTUNITY_STATE"], h["STATE_REASON"]) for h in history] == [
        ("Lost", "Price too high")
    ]
    c = result.counts
    assert (c.created, c.pipeline, c.stage, c.state, c.link) == (4, 4, 0, 2, 0)
    assert (c.steps_failed, c.steps_left, result.exit_code) == (0, 0, 0)
    assert result.plan is not None and result.plan.steps == {"pipeline": 4, "state": 2}
    assert result.plan.requests_needed == result.plan.this_run == 4 + 6  # creates and steps
    # the record bodies never carried what only the steps may set
    assert calls(sb, "POST", "Opportunities") == 4

    before = writes(sb)
    again = await run_import(
        sb, tmp_path / "deals.csv", tmp_path / "deals.yaml", checkpoint=tmp_path / "fresh.sqlite"
    )
    assert writes(sb) == before  # a new checkpoint, the same file: everything is already so
    assert (again.counts.unchanged, again.counts.pipeline, again.counts.state) == (4, 0, 0)


async def test_a_stage_moves_within_its_pipeline_with_one_request_and_unchanged_costs_none(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file, mapping = (
        write(tmp_path, "deals.csv", DEALS),
        write(tmp_path, "deals.yaml", DEALS_MAPPING),
    )
    await run_import(sb, file, mapping)
    write(tmp_path, "deals.csv", DEALS.replace("New Business,Negotiation", "New Business,Proposal"))
    stage_puts, pipeline_puts = calls(sb, "PUT", "/PipelineStage"), calls(sb, "PUT", "/Pipeline")
    result = await run_import(sb, file, mapping)
    assert deals(sb)["Canteen fit-out"]["STAGE_ID"] == 13
    assert calls(sb, "PUT", "/PipelineStage") == stage_puts + 1
    assert calls(sb, "PUT", "/Pipeline") == pipeline_puts
    assert result.counts.stage == 1 and result.exit_code == 0


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("New Business,Signed,,", "no stage 'Signed' in pipeline 'New Business'"),
        ("Onboarding,Kick-off,,", "no pipelines record with PIPELINE_NAME 'Onboarding'"),
        (",Proposal,,", "'Proposal' is a stage of several pipelines ('New Business', 'Renewals')"),
        ("New Business,Proposal,Closed,", "'Closed' is not an opportunity state"),
        ("New Business,Proposal,Won,Price too high", "no reason 'Price too high' for Won"),
        ("New Business,Proposal,,Best fit", "a state reason needs the row's OPPORTUNITY_STATE"),
    ],
)
@pytest.mark.slow
async def test_a_wrong_pipeline_stage_state_or_reason_is_refused_before_any_write(
    make_sandbox, tmp_path: Path, cell: str, message: str
) -> None:
    sb = make_sandbox()
    text = "Deal,Pipeline,Stage,State,Reason\nHarbour cranes," + cell + "\n"
    result = await run_import(
        sb, write(tmp_path, "deals.csv", text), write(tmp_path, "deals.yaml", DEALS_MAPPING)
    )
    assert writes(sb) == 0 and result.counts.rejected == 1 and result.exit_code == 1
    rejects = (tmp_path / "deals.rejects.csv").read_text("utf-8-sig")
    assert message in rejects


class LoseStateAnswers(httpx.AsyncBaseTransport):
    """A proxy that applies a StateChange but loses its answer (a timeout), once per deal."""

    def __init__(self, sb) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)
        self.lost: set[str] = set()

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        if path.endswith("/StateChange") and path not in self.lost:
            self.lost.add(path)
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


@pytest.mark.slow
async def test_a_state_change_whose_answer_is_lost_is_not_sent_again(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    result = await run_import(
        sb,
        write(tmp_path, "deals.csv", DEALS),
        write(tmp_path, "deals.yaml", DEALS_MAPPING),
        transport=LoseStateAnswers,
    )
    assert calls(sb, "PUT", "/StateChange") == 2  # applied once each, found applied on a re-read
    assert result.counts.state == 2 and result.counts.steps_left == 0
    for name in ("Harbour cranes", "Depot roof"):
        assert len(sb.account.state_history[deals(sb)[name]["OPPORTUNITY_ID"]]) == 1


@pytest.mark.slow
async def test_stopped_between_the_record_writes_and_their_steps_the_next_run_sends_only_the_steps(
    make_sandbox, tmp_path: Path
) -> None:
    """A run that stops after the records are written (the quota: max_requests) leaves every
    step; the next run sends exactly those, reading the records in one listing, and no record
    again."""
    sb = make_sandbox()
    file, mapping = (
        write(tmp_path, "deals.csv", DEALS),
        write(tmp_path, "deals.yaml", DEALS_MAPPING),
    )
    # custom fields, pipelines, stages, state reasons; one planning listing; 4 creates
    first = await run_import(sb, file, mapping, max_requests=10)  # the account, then as before
    assert first.outcome.stopped == "quota" and first.exit_code == 75
    assert (first.counts.created, first.counts.pipeline, first.counts.steps_left) == (
        4,
        0,
        7,  # 4 pipelines, 3 states (one of them already so: no request)
    )
    assert calls(sb, "PUT", "/Pipeline") == 0
    second = await run_import(sb, file, mapping)
    # the account, facts, one listing instead of 4 reads, the steps
    assert second.requests == 1 + 4 + 1 + 4 + 2
    third = await run_import(sb, file, mapping)
    assert third.requests == 1 + 4  # the account, facts: every row and every step is done
    assert calls(sb, "POST", "Opportunities") == 4
    assert calls(sb, "PUT", "/Pipeline") == 4 and calls(sb, "PUT", "/StateChange") == 2
    assert second.exit_code == 0 and third.exit_code == 0
    assert (third.counts.created, third.counts.pipeline, third.counts.state) == (4, 4, 2)


@pytest.mark.slow
async def test_a_step_sent_by_a_run_killed_before_its_answer_is_settled_by_reading(
    make_sandbox, tmp_path: Path
) -> None:
    """The journal says a stage change was in flight when the process died (kill -9): the next
    run reads the record, finds the stage set, and records it done without sending it again."""
    sb = make_sandbox()
    file, mapping = (
        write(tmp_path, "deals.csv", DEALS),
        write(tmp_path, "deals.yaml", DEALS_MAPPING),
    )
    await run_import(sb, file, mapping)
    checkpoint = Checkpoint(file.with_name("deals.csv.checkpoint.sqlite"))
    checkpoint.db.execute("UPDATE steps SET state='in_flight' WHERE step='pipeline' AND row=0")
    checkpoint.close()
    before = writes(sb)
    result = await run_import(sb, file, mapping)
    assert writes(sb) == before
    assert result.counts.pipeline == 4 and result.counts.steps_left == 0


CONTACTS = """\
Email,First,Last,Deal,Company
ana@harbour.example,Ana,Ruiz,Harbour cranes,
bo@depot.example,Bo,Lind,Depot roof,
cy@none.example,Cy,Park,,
"""
CONTACTS_MAPPING = """\
object: contacts
match: {column: Email, field: EMAIL_ADDRESS}
columns:
  Email: EMAIL_ADDRESS
  First: FIRST_NAME
  Last: LAST_NAME
links:
  - {column: Deal, object: opportunities, by: OPPORTUNITY_NAME, role: Decision maker}
"""


@pytest.mark.slow
async def test_links_are_added_once_across_reruns_and_shown_on_both_records(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    await run_import(
        sb, write(tmp_path, "deals.csv", DEALS), write(tmp_path, "deals.yaml", DEALS_MAPPING)
    )
    file = write(tmp_path, "people.csv", CONTACTS)
    mapping = write(tmp_path, "people.yaml", CONTACTS_MAPPING)
    first = await run_import(sb, file, mapping)
    assert (first.counts.created, first.counts.link, first.exit_code) == (3, 2, 0)
    ana = next(
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] == "ana@harbour.example"
    )
    deal = deals(sb)["Harbour cranes"]
    async with asgi_client(sb) as c:
        links = (await c.get(f"Contacts/{ana['CONTACT_ID']}/Links")).json()
        mirrored = (await c.get(f"Opportunities/{deal['OPPORTUNITY_ID']}/Links")).json()
    assert [(lk["LINK_OBJECT_NAME"], lk["LINK_OBJECT_ID"], lk["ROLE"]) for lk in links] == [
        ("Opportunity", deal["OPPORTUNITY_ID"], "Decision maker")
    ]
    assert any(lk["LINK_OBJECT_ID"] == ana["CONTACT_ID"] for lk in mirrored)
    before = calls(sb, "POST", "/Links")
    # the same file, with a new checkpoint: the links are there, none is added again
    await run_import(sb, file, mapping, checkpoint=tmp_path / "other.sqlite")
    await run_import(sb, file, mapping)
    assert calls(sb, "POST", "/Links") == before == 2


@pytest.mark.slow
async def test_a_row_linking_to_a_record_that_does_not_exist_is_refused_before_its_write(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    result = await run_import(
        sb,
        write(tmp_path, "people.csv", CONTACTS),
        write(tmp_path, "people.yaml", CONTACTS_MAPPING),
    )
    # the deals are not imported: the two rows naming one are refused, the third is created
    assert writes(sb) == 1 and (result.counts.rejected, result.counts.created) == (2, 1)
    rejects = (tmp_path / "people.rejects.csv").read_text("utf-8-sig")
    assert "no opportunities record with OPPORTUNITY_NAME 'Harbour cranes'" in rejects


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ("[{column: Nope, object: opportunities}]", "column 'Nope' is not in people.csv"),
        ("[{column: Deal, object: pipelines}]", "pipelines cannot be linked to"),
        ("[{column: Deal, object: opportunities, colour: red}]", "links[0].colour: unknown key"),
        ("{column: Deal}", "links: expected a list"),
    ],
)
@pytest.mark.slow
async def test_a_wrong_links_entry_names_what_is_wrong(
    make_sandbox, tmp_path: Path, links: str, message: str
) -> None:
    sb = make_sandbox()
    mapping = CONTACTS_MAPPING.split("links:")[0] + f"links: {links}\n"
    with pytest.raises(InputError) as caught:
        await run_import(
            sb, write(tmp_path, "people.csv", CONTACTS), write(tmp_path, "people.yaml", mapping)
        )
    assert message in caught.value.message
    assert writes(sb) == 0


async def test_a_step_the_server_refuses_is_reported_with_its_line_and_the_row_stays_written(
    make_sandbox, tmp_path: Path
) -> None:
    """A pipeline deleted between validation and the write: 404 for that step only."""
    sb = make_sandbox()
    file, mapping = (
        write(tmp_path, "deals.csv", DEALS),
        write(tmp_path, "deals.yaml", DEALS_MAPPING),
    )

    class DropRenewals(httpx.AsyncBaseTransport):
        def __init__(self, sb) -> None:
            self.inner = httpx.ASGITransport(app=sb.app)

        async def handle_async_request(self, request):
            if request.method == "POST":  # planning is over: the pipeline goes away
                sb.account.collections["Pipelines"].records.pop(2, None)
            return await self.inner.handle_async_request(request)

    result = await run_import(sb, file, mapping, transport=DropRenewals)
    assert result.counts.created == 4 and result.counts.steps_failed == 2
    assert result.exit_code == 1
    errors = (tmp_path / "deals.errors.csv").read_text("utf-8-sig")
    assert "step failed" in errors
    assert "pipeline: Record, Pipeline or Pipeline Stage not found" in errors


async def test_status_shows_the_steps_by_request_and_state(make_sandbox, tmp_path: Path) -> None:

    from insightly_etl.cli import main

    sb = make_sandbox()
    file = write(tmp_path, "deals.csv", DEALS)
    await run_import(sb, file, write(tmp_path, "deals.yaml", DEALS_MAPPING))
    shown = cli_runner().invoke(main, ["status", str(tmp_path / "deals.csv.checkpoint.sqlite")])
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.output.splitlines()]
    assert ["step", "state", "steps"] in lines
    assert ["pipeline", "done", "4"] in lines
    assert ["state", "done", "2"] in lines
    assert ["already", "done", "1"] in lines  # the deal that was to stay open


@pytest.mark.slow
def test_fields_says_which_fields_are_steps() -> None:

    from insightly_etl.cli import main

    shown = cli_runner().invoke(main, ["fields", "opportunities", "--sandbox"])
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line for line in shown.output.splitlines()[1:]}
    assert rows["STAGE_ID"].endswith("a step: PUT …/Pipeline")
    assert rows["STATE_REASON_ID"].endswith("a step: PUT …/StateChange")
    assert "Open, Won, Lost, Abandoned, Suspended; a step" in rows["OPPORTUNITY_STATE"]


async def test_reciprocal_links_in_one_file_are_added_once(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    a, b = [
        c["EMAIL_ADDRESS"] for c in list(sb.account.collections["Contacts"].records.values())[:2]
    ]
    mapping = (
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n  Email: EMAIL_ADDRESS\n"
        "links:\n  - {column: Spouse, object: contacts, by: EMAIL_ADDRESS, role: Spouse}\n"
    )
    result = await run_import(
        sb,
        write(tmp_path, "p.csv", f"Email,Spouse\n{a},{b}\n{b},{a}\n"),
        write(tmp_path, "p.yaml", mapping),
    )
    assert calls(sb, "POST", "/Links") == 1 and result.counts.link == 1


async def test_update_never_on_the_stage_column_holds_when_the_pipeline_is_mapped(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    mapping = DEALS_MAPPING.replace(
        "Stage: {field: STAGE_ID, lookup: {object: pipeline_stages}}",
        "Stage: {field: STAGE_ID, lookup: {object: pipeline_stages}, update: never}",
    )
    file, yaml = write(tmp_path, "d.csv", DEALS), write(tmp_path, "d.yaml", mapping)
    await run_import(sb, file, yaml)  # created here: the stage is set
    assert deals(sb)["Canteen fit-out"]["STAGE_ID"] == 14
    write(tmp_path, "d.csv", DEALS.replace("New Business,Negotiation", "New Business,Proposal"))
    await run_import(sb, file, yaml)  # an edit later is an update: never
    assert deals(sb)["Canteen fit-out"]["STAGE_ID"] == 14


async def test_a_default_state_does_not_close_an_open_deal(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    deal = next(d for d in deals(sb).values() if d["OPPORTUNITY_STATE"] == "OPEN")
    mapping = (
        "object: opportunities\nmatch: {column: Deal, field: OPPORTUNITY_NAME}\ncolumns:\n"
        "  Deal: OPPORTUNITY_NAME\n  State: OPPORTUNITY_STATE\ndefaults: {OPPORTUNITY_STATE: Won}\n"
    )
    await run_import(
        sb,
        write(tmp_path, "d.csv", f"Deal,State\n{deal['OPPORTUNITY_NAME']},\n"),
        write(tmp_path, "d.yaml", mapping),
    )
    assert deals(sb)[deal["OPPORTUNITY_NAME"]]["OPPORTUNITY_STATE"] == "OPEN"
    assert calls(sb, "PUT", "/StateChange") == 0


async def test_a_pipeline_name_is_looked_up_among_the_objects_own_pipelines(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    sb.account.collections["Pipelines"].put(
        {
            "PIPELINE_ID": 4,
            "PIPELINE_NAME": "New Business",
            "FOR_OPPORTUNITIES": False,
            "FOR_PROJECTS": True,
            "OWNER_USER_ID": 1,
        }
    )
    result = await run_import(
        sb, write(tmp_path, "d.csv", DEALS), write(tmp_path, "d.yaml", DEALS_MAPPING)
    )
    assert result.counts.rejected == 0 and deals(sb)["Harbour cranes"]["PIPELINE_ID"] == 1


def test_one_column_feeds_several_fields_and_a_lookup_falls_back(
    make_sandbox, tmp_path: Path
) -> None:
    """Zoho's Stage says the state and the reason; a departed owner's deal goes to user 3."""

    from insightly_etl.cli import main
    from insightly_etl.cli.common import Context

    file = tmp_path / "deals.csv"
    file.write_text(
        "Deal Name,Stage,Deal Owner\n"
        "Acme renewal,Closed Won,sam@northwind.example\n"
        "Globex pilot,Closed Lost,gone@example.com\n"
        "Initech expansion,Qualification,morgan@northwind.example\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "deals.yaml"
    mapping.write_text(
        "object: opportunities\n"
        "match: {column: Deal Name, field: OPPORTUNITY_NAME}\n"
        "columns:\n"
        "  Deal Name: OPPORTUNITY_NAME\n"
        "  Stage:\n"
        "    - {field: OPPORTUNITY_STATE, values: {Closed Won: Won, Closed Lost: Lost, Qualification: Open}}\n"
        "    - field: STATE_REASON_ID\n"
        "      values: {Closed Won: Best fit, Closed Lost: Price too high, Qualification: ''}\n"
        "      lookup: {object: opportunity_state_reasons}\n"
        "  Deal Owner: {field: OWNER_USER_ID, lookup: {object: users, by: EMAIL_ADDRESS, missing: 3}}\n",
        encoding="utf-8",
    )
    sb = make_sandbox()
    result = cli_runner().invoke(
        main,
        ["import", str(file), "--mapping", str(mapping), "--quiet"],
        obj=Context(transport=httpx.ASGITransport(app=sb.app)),
        env={"INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": "http://127.0.0.1/v3.1/"},
    )
    assert result.exit_code == 0, result.output
    deals = {
        d["OPPORTUNITY_NAME"]: d
        for d in sb.account.collections["Opportunities"].records.values()
        if d["OPPORTUNITY_NAME"] in ("Acme renewal", "Globex pilot", "Initech expansion")
    }
    reasons = {
        r["STATE_REASON_ID"]: r["STATE_REASON"]
        for r in sb.account.collections["OpportunityStateReasons"].records.values()
    }
    assert {n: d["OWNER_USER_ID"] for n, d in deals.items()} == {
        "Acme renewal": 2,
        "Globex pilot": 3,  # gone@example.com is no user: the fallback
        "Initech expansion": 1,
    }
    assert {n: d["OPPORTUNITY_STATE"].upper() for n, d in deals.items()} == {
        "Acme renewal": "WON",
        "Globex pilot": "LOST",
        "Initech expansion": "OPEN",
    }
    history = {
        n: [
            reasons.get(h.get("STATE_REASON_ID"))
            for h in sb.account.state_history.get(d["OPPORTUNITY_ID"], [])
        ]
        for n, d in deals.items()
    }
    assert history["Acme renewal"][-1] == "Best fit"
    assert history["Globex pilot"][-1] == "Price too high"


async def test_undo_after_steps_deletes_the_records_the_import_created(
    make_sandbox, tmp_path: Path
) -> None:
    """Each step moves the record's DATE_UPDATED_UTC on (a second per write here): undo must
    not take the import's own steps for a colleague's edit and leave the records behind."""
    from datetime import UTC, datetime, timedelta

    from tests.api.test_import_safety import run_undo

    sb = make_sandbox()
    ticks = iter(range(10_000))
    start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    sb.account.now = lambda: start + timedelta(seconds=next(ticks))
    result = await run_import(
        sb, write(tmp_path, "deals.csv", DEALS), write(tmp_path, "deals.yaml", DEALS_MAPPING)
    )
    assert (result.counts.created, result.counts.pipeline, result.counts.state) == (4, 4, 2)
    undone = await run_undo(sb, tmp_path / "deals.csv.checkpoint.sqlite")
    assert (undone.counts.deleted, undone.counts.conflict, undone.exit_code) == (4, 0, 0)
    names = {"Harbour cranes", "Depot roof", "Canteen fit-out", "Forklift lease"}
    assert not names & set(deals(sb))


async def test_undo_after_links_deletes_the_contacts_the_import_created(
    make_sandbox, tmp_path: Path
) -> None:
    """A link's answer is the link, not the record: the row's stamp moves with the server's
    clock as it answered, and undo does not take the import's own link for an edit."""
    from datetime import UTC, datetime, timedelta

    from tests.api.test_import_safety import run_undo

    sb = make_sandbox()
    ticks = iter(range(10_000))
    start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    sb.account.now = lambda: start + timedelta(seconds=next(ticks))
    await run_import(
        sb, write(tmp_path, "deals.csv", DEALS), write(tmp_path, "deals.yaml", DEALS_MAPPING)
    )
    file = write(tmp_path, "people.csv", CONTACTS)
    first = await run_import(sb, file, write(tmp_path, "people.yaml", CONTACTS_MAPPING))
    assert (first.counts.created, first.counts.link) == (3, 2)
    undone = await run_undo(sb, tmp_path / "people.csv.checkpoint.sqlite")
    assert (undone.counts.deleted, undone.counts.conflict, undone.exit_code) == (3, 0, 0)


async def test_a_step_the_quota_refused_is_not_left_in_flight(make_sandbox, tmp_path: Path) -> None:
    """A 429 'quota spent' is not processed: the step stays to do, not 'sent, outcome unknown'."""
    from insightly_etl.load.states import StepState

    sb = make_sandbox(daily_quota=13)
    file, mapping = (
        write(tmp_path, "deals.csv", DEALS),
        write(tmp_path, "deals.yaml", DEALS_MAPPING),
    )
    first = await run_import(sb, file, mapping)
    assert (first.outcome.stopped, first.exit_code) == ("quota", 75)
    cp = Checkpoint.read_only(tmp_path / "deals.csv.checkpoint.sqlite")
    try:
        states = {state for (_, state) in cp.steps.counts()}
    finally:
        cp.close()
    assert StepState.IN_FLIGHT not in states and StepState.UNKNOWN not in states
