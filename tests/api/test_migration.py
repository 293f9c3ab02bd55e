"""The migration of sample_data/migration (a Pipedrive export) in dependency order: what ends
up in the account, and that running it again sends nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.api.test_import import run_import, writes

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "sample_data" / "migration"
STEPS = ("organizations", "persons", "deals", "notes", "activities")


async def migrate(sb, work: Path) -> dict[str, dict[str, int]]:
    counts = {}
    for step in STEPS:
        result = await run_import(
            sb,
            work / f"{step}.csv",
            DATA / f"{step}.yaml",
            checkpoint=work / f"{step}.checkpoint.sqlite",
            results_dir=work / "results",
        )
        assert result.exit_code == 0, (step, result.counts)
        counts[step] = result.counts
    return counts


def by(sb, collection: str, name: str) -> dict[str, dict]:
    return {r[name]: r for r in sb.account.collections[collection].records.values()}


@pytest.mark.slow
async def test_the_pipedrive_export_lands_whole_and_a_second_run_sends_nothing(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    for step in STEPS:
        shutil.copy(DATA / f"{step}.csv", tmp_path)
    first = await migrate(sb, tmp_path)
    assert first["organizations"].created == 4 and first["organizations"].skipped == 1
    orgs = by(sb, "Organisations", "ORGANISATION_NAME")
    people = by(sb, "Contacts", "EMAIL_ADDRESS")
    assert (
        people["jonas.weber@nordhafen.example"]["ORGANISATION_ID"]
        == (orgs["Nordhafen Logistik GmbH"]["ORGANISATION_ID"])
    )
    assert people["zoe.l@nordhafen.example"]["LAST_NAME"] == "Łukasiewicz"
    deals = by(sb, "Opportunities", "OPPORTUNITY_NAME")
    placed = {
        name: (d["PIPELINE_ID"], d["STAGE_ID"], d["OPPORTUNITY_STATE"].lower())
        for name, d in deals.items()
        if name
        in (
            "Fleet telematics rollout",
            "Cold-chain sensors",
            "Hangar access control",
            "Clinic scheduling renewal",
            "Warehouse scanners",
        )
    }
    assert placed == {
        "Fleet telematics rollout": (1, 13, "open"),
        "Cold-chain sensors": (1, 14, "won"),
        "Hangar access control": (1, 11, "lost"),
        "Clinic scheduling renewal": (2, 22, "open"),  # "Proposal" of Renewals, not New Business
        "Warehouse scanners": (1, 11, "lost"),
    }
    lost = sb.account.state_history[deals["Hangar access control"]["OPPORTUNITY_ID"]]
    assert [h["STATE_REASON"] for h in lost] == ["Price too high"]
    fleet = deals["Fleet telematics rollout"]
    assert [
        (lk["LINK_OBJECT_NAME"], lk["LINK_OBJECT_ID"], lk["ROLE"]) for lk in fleet["LINKS"]
    ] == [("Contact", people["jonas.weber@nordhafen.example"]["CONTACT_ID"], "Decision maker")]
    assert first["deals"].link == 4  # the fifth deal names no contact
    notes = [
        n
        for n in sb.account.collections["Notes"].records.values()
        if n.get("TITLE") == "Note from Pipedrive"
    ]
    assert len(notes) == 3
    tasks = by(sb, "Tasks", "TITLE")
    assert tasks["Demo at the depot"]["OPPORTUNITY_ID"] == fleet["OPPORTUNITY_ID"]
    assert tasks["Demo at the depot"]["COMPLETED"] is True
    assert str(tasks["Quarterly review"]["DUE_DATE"]).startswith("2027-01-12")

    before = writes(sb)
    await migrate(sb, tmp_path)
    assert writes(sb) == before
