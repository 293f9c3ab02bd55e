"""Every mapping in mappings/ validates its sample spreadsheet with zero rejects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from insightly_etl.load.account import facts_from_api
from insightly_etl.load.mapping import read_mapping
from insightly_etl.load.readers import read_table
from insightly_etl.load.validate import ABSENT, ValidationResult, validate_table
from insightly_etl.sandbox import Sandbox
from tests.api.test_import import run_import
from tests.conftest import sandbox_client

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = {
    "contacts": "contacts.csv",
    "organisations": "organisations.csv",
    "leads": "leads.csv",
    "opportunities": "opportunities.csv",
    "projects": "projects.csv",
    "tasks": "tasks.xlsx",
    "notes": "notes.csv",
    "google_contacts": "google_contacts.csv",
    "outlook_contacts": "outlook_contacts.csv",
    "sites": "sites.csv",  # a custom object, Site__c
    "assets": "assets.csv",  # a custom object whose lookup finds the sites above
}
# samples whose lookups find records that another sample creates: that one is imported first
NEEDS = {"assets": "sites"}


async def validate_sample(sb: Sandbox, name: str) -> ValidationResult:
    mapping = read_mapping(ROOT / "mappings" / f"{name}.yaml")
    async with sandbox_client(sb) as client:
        facts = await facts_from_api(client, mapping)
    return validate_table(read_table(ROOT / "sample_data" / SAMPLES[name]), mapping, facts)


def test_every_mapping_has_a_sample() -> None:
    assert {p.stem for p in (ROOT / "mappings").glob("*.yaml")} == set(SAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_shipped_mapping_validates_its_sample_cleanly(
    seeded: Sandbox, make_sandbox, tmp_path: Path, name: str
) -> None:
    sb = seeded
    if name in NEEDS:
        sb = make_sandbox()
        first = NEEDS[name]
        shutil.copy(ROOT / "sample_data" / SAMPLES[first], tmp_path / SAMPLES[first])
        done = await run_import(sb, tmp_path / SAMPLES[first], ROOT / "mappings" / f"{first}.yaml")
        assert done.exit_code == 0
    result = await validate_sample(sb, name)
    assert result.errors.empty, result.errors.to_dict("records")
    assert result.table.bad_rows == [] and result.rows > 0


@pytest.mark.slow
async def test_sample_values_arrive_as_insightly_wants_them(seeded: Sandbox) -> None:
    orgs = await validate_sample(seeded, "organisations")
    assert orgs.column("Employees__c") == [
        1250.0,
        12.0,
        48.0,
        3400.0,
    ]  # decimal comma, dotted thousands
    assert orgs.column("Partner__c") == [True, False, False, True]
    assert orgs.column("Contract_Start__c")[:3] == [
        "2024-04-01 00:00:00",
        "2025-09-15 00:00:00",
        ABSENT,
    ]
    assert orgs.column("ORGANISATION_NAME")[0] == "Müller Fahrzeugbau GmbH"  # Windows-1252 decoded
    contacts = await validate_sample(seeded, "contacts")
    assert contacts.column("EMAIL_ADDRESS")[0] == "amelie.fontaine@example.fr"
    assert contacts.column("ADDRESS_MAIL_POSTCODE")[6] == "00501"
    assert contacts.column("Interests__c")[0] == "Food;Travel"
    leads = await validate_sample(seeded, "leads")
    assert leads.column("Follow_Up__c")[0] == "2026-12-01 08:30:00"  # Berlin (UTC+1) -> UTC
    outlook = await validate_sample(seeded, "outlook_contacts")
    assert outlook.column("DATE_OF_BIRTH") == ["1969-12-28 00:00:00", ABSENT]
    assert outlook.column("TAGS")[0] == "Customers;VIP"
    tasks = await validate_sample(seeded, "tasks")
    assert tasks.column("DUE_DATE")[0] == "2026-12-02 00:00:00" and tasks.column("PRIORITY") == [
        3,
        2,
        1,
    ]
