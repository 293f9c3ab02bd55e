"""Custom objects end to end against the in-process sandbox: the sandbox serves the seed's
Site__c and Asset__c; imports create and update them through mappings, with lookups to a
standard object and to another custom object, exactly once and resumably."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from insightly_etl.errors import InputError
from insightly_etl.load.checkpoint import Checkpoint
from insightly_etl.sandbox import Sandbox, SandboxConfig, SeedError
from tests.api.test_import import run_import, writes
from tests.conftest import KEY, asgi_client

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def values(record: dict) -> dict:
    return {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in record["CUSTOMFIELDS"]}


def by_name(sb: Sandbox, collection: str) -> dict[str, dict]:
    return {r["RECORD_NAME"]: r for r in sb.account.collections[collection].records.values()}


def sample(tmp_path: Path, name: str) -> Path:
    shutil.copy(ROOT / "sample_data" / name, tmp_path / name)
    return tmp_path / name


# ---------------------------------------------------------------- the sandbox


async def test_custom_objects_are_listed_and_each_is_found_by_name(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        listed = (await c.get("CustomObjects")).json()
        one = await c.get("customobjects/site__c")
        missing = await c.get("CustomObjects/Fruit__c")
    assert [o["OBJECT_NAME"] for o in listed] == ["Site__c", "Asset__c"]
    assert one.status_code == 200 and one.json()["RECORD_NAME_LABEL"] == "Site Name"
    assert (missing.status_code, missing.json()) == (
        404,
        {"Message": "Custom object Fruit__c not found."},
    )


async def test_custom_object_records_page_search_and_filter_like_standard_ones(
    seeded: Sandbox,
) -> None:
    sites = seeded.account.collections["Site__c"]
    first = sites.records[sites.ids[0]]
    async with asgi_client(seeded) as c:
        page = await c.get("site__c", params={"top": 10, "skip": 5, "count_total": "true"})
        brief = (await c.get("Site__c", params={"brief": "true", "top": 1})).json()[0]
        found = await c.get(
            "Site__c/Search",
            params={"field_name": "RECORD_NAME", "field_value": first["RECORD_NAME"]},
        )
        by_custom = await c.get(
            "Site__c/Search",
            params={"field_name": "Site_No__c", "field_value": values(first)["Site_No__c"]},
        )
        after = await c.get("Site__c", params={"updated_after_utc": "2026-10-01T00:00:00Z"})
        fields = (await c.get("CustomFields/Site__c")).json()
    assert page.headers["X-Total-Count"] == "30"
    assert [r["RECORD_ID"] for r in page.json()] == sites.ids[5:15]
    assert "CUSTOMFIELDS" not in brief and brief["RECORD_ID"] == sites.ids[0]
    assert [r["RECORD_ID"] for r in found.json()] == [first["RECORD_ID"]]
    assert [r["RECORD_ID"] for r in by_custom.json()] == [first["RECORD_ID"]]
    changed = [i for i in sites.ids if sites.records[i]["DATE_UPDATED_UTC"] > "2026-10-01 00:00:00"]
    assert [r["RECORD_ID"] for r in after.json()] == changed[:100] and 0 < len(changed) < 30
    assert {f["FIELD_FOR"] for f in fields} == {"SITE__C"}
    lookup = next(f for f in fields if f["FIELD_NAME"] == "Organisation__c")
    assert (lookup["FIELD_TYPE"], lookup["JOIN_OBJECT"]) == ("LOOKUP", "Organisation")


async def test_custom_object_writes_are_validated_like_standard_ones(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        nameless = await c.post("Asset__c", json={"CUSTOMFIELDS": []})
        dangling = await c.post(
            "Asset__c",
            json={
                "RECORD_NAME": "Crane",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Site__c", "FIELD_VALUE": 1001}],
            },
        )
        bad_option = await c.post(
            "Asset__c",
            json={
                "RECORD_NAME": "Crane",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Status__c", "FIELD_VALUE": "Broken"}],
            },
        )
        created = await c.post(
            "Asset__c",
            json={
                "RECORD_NAME": "Crane",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Site__c", "FIELD_VALUE": 100001}],
            },
        )
        rid = created.json()["RECORD_ID"]
        updated = await c.put(
            "Asset__c",
            json={
                "RECORD_ID": rid,
                "CUSTOMFIELDS": [{"FIELD_NAME": "Status__c", "FIELD_VALUE": "Retired"}],
            },
        )
        deleted = await c.delete(f"Asset__c/{rid}")
        gone = await c.get(f"Asset__c/{rid}")
    assert (nameless.status_code, nameless.json()) == (
        400,
        {"Message": "The RECORD_NAME field is required."},
    )
    # 1001 is an organisation's id, not a site's: a lookup names a record of its JOIN_OBJECT
    assert (dangling.status_code, dangling.json()) == (
        400,
        {"Message": "Custom field Site__c: Site__c 1001 does not exist."},
    )
    assert bad_option.json() == {
        "Message": "'Broken' is not a valid option for custom field Status__c."
    }
    assert created.status_code == 201 and created.json()["DATE_UPDATED_UTC"] is not None
    assert values(updated.json()) == {
        "Site__c": 100001,  # a PUT changes only the custom fields it lists
        "Status__c": "Retired",  # the unset ones are left out of the answer (docs/api.md §10)
    }
    assert (deleted.status_code, gone.status_code) == (202, 404)


def test_generate_makes_records_of_a_seed_custom_object_with_valid_lookups() -> None:
    sb = Sandbox(SandboxConfig(api_key=KEY, generate={"asset__c": 500, "Site__c": 20}))
    assets, sites = sb.account.collections["Asset__c"], sb.account.collections["Site__c"]
    assert (len(assets.ids), len(sites.ids)) == (580, 50)
    site_ids = set(sites.ids)
    linked = [values(assets.records[i]).get("Site__c") for i in assets.ids[80:]]
    assert (
        all(v is None or v in site_ids for v in linked) and sum(v is not None for v in linked) > 300
    )
    with pytest.raises(SeedError, match="the seed has no such custom object"):
        Sandbox(SandboxConfig(api_key=KEY, generate={"Fruit__c": 1}))


def test_custom_objects_and_their_records_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "account.sqlite"
    first = Sandbox(SandboxConfig(api_key=KEY, state=state))
    first.account.create("Site__c", {"RECORD_NAME": "Depot 9"})
    first.account.close()
    again = Sandbox(SandboxConfig(api_key=KEY, state=state))
    assert [o["OBJECT_NAME"] for o in again.account.custom_objects] == ["Site__c", "Asset__c"]
    assert "Depot 9" in by_name(again, "Site__c")


# ---------------------------------------------------------------- imports


@pytest.mark.slow
async def test_sites_then_their_assets_import_with_lookups_and_a_rerun_writes_nothing(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    sites_file, assets_file = sample(tmp_path, "sites.csv"), sample(tmp_path, "assets.csv")
    orgs = {
        r["ORGANISATION_NAME"]: r["ORGANISATION_ID"]
        for r in sb.account.collections["Organisations"].records.values()
    }
    # assets first: their sites are not there yet, each row says so and nothing is sent
    early = await run_import(
        sb, assets_file, ROOT / "mappings" / "assets.yaml", checkpoint=tmp_path / "early.sqlite"
    )
    assert early.counts.rejected == 3 and writes(sb) == 0
    sites = await run_import(sb, sites_file, ROOT / "mappings" / "sites.yaml")
    assert sites.exit_code == 0 and sites.counts.created == 3
    made = by_name(sb, "Site__c")
    harbour = made["Hamburg Harbour Warehouse"]
    assert values(harbour) == {
        "Organisation__c": orgs["Bright Partners GmbH"],
        "Site_Type__c": "Warehouse",
        "Street__c": "Am Sandtorkai 5",
        "Access_Notes__c": "Gate code 4411\nAsk for the site manager",
        "Opened__c": "2021-02-03 00:00:00",
        "Last_Inspection__c": None,
        "Floor_Area__c": 12400,
        "Occupancy__c": 85,
        "Active__c": True,
        "Services__c": "Security;Cleaning",
        "Site_No__c": values(harbour)["Site_No__c"],  # numbered by Insightly
    }
    assert values(made["Leipzig Store"])["Street__c"] == "Petersstraße 22"
    assets = await run_import(
        sb, assets_file, ROOT / "mappings" / "assets.yaml", results_dir=tmp_path / "assets"
    )
    assert assets.exit_code == 0 and assets.counts.created == 3
    forklift = by_name(sb, "Asset__c")["Forklift FL-20"]
    assert values(forklift)["Site__c"] == harbour["RECORD_ID"]
    assert (
        values(by_name(sb, "Asset__c")["Till system T3"])["Site__c"]
        == (made["Leipzig Store"]["RECORD_ID"])
    )
    sent = writes(sb)
    assert sent == 6
    # again, and with fresh checkpoints: found by their keys, unchanged, nothing sent
    for name, file in (("sites", sites_file), ("assets", assets_file)):
        again = await run_import(
            sb,
            file,
            ROOT / "mappings" / f"{name}.yaml",
            checkpoint=tmp_path / f"{name}.fresh.sqlite",
            results_dir=tmp_path / f"{name}.fresh",
        )
        assert again.counts.unchanged == 3
    assert writes(sb) == sent


async def test_an_edited_site_is_updated_in_place(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = sample(tmp_path, "sites.csv")
    await run_import(sb, file, ROOT / "mappings" / "sites.yaml")
    before = len(sb.account.collections["Site__c"].ids)
    file.write_text(file.read_text("utf-8").replace("640,,no", "700,,yes"), "utf-8")
    result = await run_import(sb, file, ROOT / "mappings" / "sites.yaml")
    assert result.counts.updated == 1
    store = values(by_name(sb, "Site__c")["Leipzig Store"])
    assert (store["Floor_Area__c"], store["Active__c"]) == (700, True)
    assert len(sb.account.collections["Site__c"].ids) == before


class DropFirstCreate(httpx.AsyncBaseTransport):
    """The first create reaches Insightly and is applied; its answer is lost on the way back."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)
        self.dropped = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and not self.dropped:
            self.dropped += 1
            await response.aread()
            raise httpx.ReadError("connection reset after the write was applied")
        return response


async def test_a_create_whose_answer_was_lost_is_written_exactly_once(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = sample(tmp_path, "sites.csv")
    before = len(sb.account.collections["Site__c"].ids)
    result = await run_import(sb, file, ROOT / "mappings" / "sites.yaml", transport=DropFirstCreate)
    assert result.exit_code == 0, result.counts
    names = [r["RECORD_NAME"] for r in sb.account.collections["Site__c"].records.values()]
    assert len(names) == before + 3
    assert sorted(n for n in names if not n[0].isdigit() and "Site 1" not in n) == [
        "Hamburg Harbour Warehouse",
        "Leipzig Store",
        "Rotterdam Office",
    ]
    cp = Checkpoint.read_only(tmp_path / "sites.csv.checkpoint.sqlite")
    try:
        assert cp.rows.unsettled() == 0
    finally:
        cp.close()


async def test_a_lookup_to_another_object_than_the_fields_is_refused_before_any_request(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    mapping = tmp_path / "assets.yaml"
    mapping.write_text(
        (ROOT / "mappings" / "assets.yaml")
        .read_text("utf-8")
        .replace("lookup: {object: Site__c, by: RECORD_NAME}", "lookup: {object: organisations}")
    )
    with pytest.raises(InputError) as caught:
        await run_import(sb, sample(tmp_path, "assets.csv"), mapping)
    assert caught.value.message == (
        f"{mapping}: columns.Site: Site__c holds Site__c record ids, "
        "but the lookup finds organisations records"
    )
    assert writes(sb) == 0


# ---------------------------------------------------------------- the command line


def test_fields_of_a_custom_object_name_what_a_lookup_holds(make_sandbox) -> None:
    result = cli(make_sandbox(), "fields", "site__c")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert list(lines)[:2] == ["RECORD_NAME", "OWNER_USER_ID"]
    assert lines["RECORD_NAME"].split()[-1] == "yes"
    assert lines["Organisation__c"].endswith("ids of Organisation (map with lookup:)")
    assert lines["Site_Type__c"].endswith("Warehouse, Store, Office, Plant")


def test_import_and_undo_of_a_custom_object_from_the_command_line(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    before = len(sb.account.collections["Site__c"].ids)
    file = sample(tmp_path, "sites.csv")
    done = cli(sb, "import", str(file), "--mapping", str(ROOT / "mappings" / "sites.yaml"), "-q")
    assert done.exit_code == 0, done.output
    assert "sites.csv -> Site__c: 3 created, 0 updated, 0 unchanged" in done.stdout
    assert len(sb.account.collections["Site__c"].ids) == before + 3
    undone = cli(sb, "undo", str(tmp_path / "sites.csv.checkpoint.sqlite"))
    assert undone.exit_code == 0, undone.output
    assert len(sb.account.collections["Site__c"].ids) == before


def cli(sb: Sandbox, *args: str):  # -> click.testing.Result
    from tests.api.test_cli import run

    return run(sb, *args)
