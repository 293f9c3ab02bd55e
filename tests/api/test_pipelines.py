"""The sandbox's pipeline, stage and opportunity-state endpoints (docs/api.md §2.1, swagger):
what a migration needs to put a deal in its stage with its won/lost state."""

from __future__ import annotations

import pytest

from insightly_etl.sandbox import Sandbox
from tests.conftest import asgi_client

pytestmark = pytest.mark.anyio
NOT_FOUND = {"Message": "Record, Pipeline or Pipeline Stage not found"}


def stages(sb: Sandbox, pipeline: int) -> list[int]:
    records = sb.account.collections["PipelineStages"].records.values()
    return [
        s["STAGE_ID"]
        for s in sorted(records, key=lambda s: s["STAGE_ORDER"])
        if s["PIPELINE_ID"] == pipeline
    ]


async def test_an_opportunity_goes_into_a_pipeline_at_a_stage_and_moves_on(make_sandbox) -> None:
    sb = make_sandbox()
    opp = sb.account.collections["Opportunities"].ids[0]
    before = sb.account.collections["Opportunities"].records[opp]["DATE_UPDATED_UTC"]
    first, second, *_ = stages(sb, 1)
    async with asgi_client(sb) as c:
        put = await c.put(
            f"Opportunities/{opp}/Pipeline",
            json={"PIPELINE_ID": 1, "PIPELINE_STAGE_CHANGE": {"STAGE_ID": second}},
        )
        moved = await c.put(f"opportunities/{opp}/pipelinestage", json={"STAGE_ID": first})
        record = (await c.get(f"Opportunities/{opp}")).json()
        cleared = await c.delete(f"Opportunities/{opp}/Pipeline")
        after = (await c.get(f"Opportunities/{opp}")).json()
    assert put.status_code == 200 and (put.json()["PIPELINE_ID"], put.json()["STAGE_ID"]) == (
        1,
        second,
    )
    assert moved.status_code == 200 and record["STAGE_ID"] == first
    assert record["DATE_UPDATED_UTC"] >= before
    assert cleared.status_code == 202 and (after["PIPELINE_ID"], after["STAGE_ID"]) == (None, None)


async def test_a_pipeline_with_no_stage_named_starts_at_its_first(make_sandbox) -> None:
    sb = make_sandbox()
    project = sb.account.collections["Projects"].ids[0]
    async with asgi_client(sb) as c:
        put = await c.put(f"Projects/{project}/Pipeline", json={"PIPELINE_ID": 3})
    assert put.status_code == 200 and put.json()["STAGE_ID"] == stages(sb, 3)[0]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("Opportunities/{opp}/Pipeline", {"PIPELINE_ID": 3}),  # a pipeline for projects
        ("Opportunities/{opp}/Pipeline", {"PIPELINE_ID": 99}),
        (
            "Opportunities/{opp}/Pipeline",
            {"PIPELINE_ID": 1, "PIPELINE_STAGE_CHANGE": {"STAGE_ID": 999}},
        ),
        ("Opportunities/999999/Pipeline", {"PIPELINE_ID": 1}),
        ("Opportunities/{opp}/PipelineStage", {"STAGE_ID": 11}),  # no pipeline yet
        ("Leads/{lead}/Pipeline", {"PIPELINE_ID": 1}),  # no pipeline of the seed is for leads
    ],
)
@pytest.mark.slow
async def test_what_does_not_fit_together_is_not_found(make_sandbox, path: str, body: dict) -> None:
    sb = make_sandbox()
    opp = sb.account.collections["Opportunities"].ids[1]
    lead = sb.account.collections["Leads"].ids[0]
    sb.account.clear_pipeline("Opportunities", opp)
    async with asgi_client(sb) as c:
        answer = await c.put(path.format(opp=opp, lead=lead), json=body)
    assert (answer.status_code, answer.json()) == (404, NOT_FOUND)


async def test_a_stage_of_another_pipeline_is_refused(make_sandbox) -> None:
    sb = make_sandbox()
    opp = sb.account.collections["Opportunities"].ids[0]
    async with asgi_client(sb) as c:
        await c.put(f"Opportunities/{opp}/Pipeline", json={"PIPELINE_ID": 1})
        wrong = await c.put(
            f"Opportunities/{opp}/PipelineStage", json={"STAGE_ID": stages(sb, 2)[0]}
        )
    assert (wrong.status_code, wrong.json()) == (404, NOT_FOUND)


async def test_a_won_or_lost_state_is_set_with_its_reason_and_kept_in_the_history(
    make_sandbox,
) -> None:
    sb = make_sandbox()
    opp = sb.account.collections["Opportunities"].ids[0]
    async with asgi_client(sb) as c:
        reasons = (await c.get("OpportunityStateReasons")).json()
        won_reason = next(r for r in reasons if r["FOR_OPPORTUNITY_STATE"] == "Won")
        lost_reason = next(r for r in reasons if r["FOR_OPPORTUNITY_STATE"] == "Lost")
        lost = await c.put(
            f"Opportunities/{opp}/StateChange",
            json={
                "FOR_OPPORTUNITY_STATE": "Lost",
                "STATE_REASON_ID": lost_reason["STATE_REASON_ID"],
            },
        )
        won = await c.put(
            f"opportunities/{opp}/statechange",
            json={"FOR_OPPORTUNITY_STATE": "won", "STATE_REASON_ID": won_reason["STATE_REASON_ID"]},
        )
        mismatched = await c.put(
            f"Opportunities/{opp}/StateChange",
            json={
                "FOR_OPPORTUNITY_STATE": "Won",
                "STATE_REASON_ID": lost_reason["STATE_REASON_ID"],
            },
        )
        unknown = await c.put(
            f"Opportunities/{opp}/StateChange", json={"FOR_OPPORTUNITY_STATE": "Maybe"}
        )
        history = (await c.get(f"Opportunities/{opp}/StateHistory")).json()
        none = await c.get("Opportunities/999999/StateHistory")
    assert lost.status_code == 200 and won.json()["OPPORTUNITY_STATE"] == "Won"
    assert [(h["FOR_OPPORTUNITY_STATE"], h["STATE_REASON"]) for h in history] == [
        ("Lost", lost_reason["STATE_REASON"]),
        ("Won", won_reason["STATE_REASON"]),
    ]
    assert mismatched.status_code == 400
    assert mismatched.json() == {
        "Message": f"STATE_REASON_ID {lost_reason['STATE_REASON_ID']} is not a reason for Won."
    }
    assert unknown.json() == {
        "Message": "'Maybe' is not an opportunity state (Open, Won, Lost, Abandoned, Suspended)."
    }
    assert (none.status_code, none.json()) == (404, NOT_FOUND)


def test_the_state_history_survives_a_restart(tmp_path) -> None:
    from insightly_etl.sandbox import SandboxConfig
    from tests.conftest import KEY

    state = tmp_path / "account.sqlite"
    first = Sandbox(SandboxConfig(api_key=KEY, state=state))
    opp = first.account.collections["Opportunities"].ids[0]
    first.account.change_state(opp, {"FOR_OPPORTUNITY_STATE": "Won", "STATE_REASON_ID": 4})
    first.account.close()
    again = Sandbox(SandboxConfig(api_key=KEY, state=state))
    assert [h["STATE_REASON"] for h in again.account.state_history[opp]] == ["Budget approved"]
    assert again.account.collections["Opportunities"].records[opp]["OPPORTUNITY_STATE"] == "Won"
