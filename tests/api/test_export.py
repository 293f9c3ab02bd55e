"""Export against the in-process sandbox: typed files, fixed schemas, CSV, incremental, skips."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from insightly_etl.api.registry import OBJECTS
from insightly_etl.errors import InputError
from insightly_etl.extract import ExportOptions, extract_objects
from insightly_etl.extract.export import ALL_OBJECTS, MANIFEST, _Marks, deletion_cost
from insightly_etl.extract.schema import TIMESTAMP, object_schema
from insightly_etl.sandbox import Sandbox
from tests.conftest import asgi_client, sandbox_client

pytestmark = pytest.mark.anyio


async def export(sb: Sandbox, out: Path, *objects: str, **options) -> object:
    async with sandbox_client(sb) as client:
        return await extract_objects(
            client, ExportOptions(out_dir=out, objects=list(objects), **options)
        )


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())


def read(out: Path, name: str) -> pa.Table:
    return pq.read_table(out / f"{name}.parquet")


class RewritesContacts(httpx.AsyncBaseTransport):
    """The sandbox behind a server that answers each record of its contacts' pages as
    `change` rewrites it (a server's other shapes of the same data)."""

    def __init__(self, sb: Sandbox, change: Callable[[dict], None]) -> None:
        self.inner, self.change = httpx.ASGITransport(app=sb.app), change

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/v3.1/Contacts":
            return response
        records = json.loads(await response.aread())
        for r in records:
            self.change(r)
        headers = {k: v for k, v in response.headers.items() if k.lower() == "x-total-count"}
        return httpx.Response(response.status_code, headers=headers, json=records)


async def export_rewritten(sb: Sandbox, out: Path, change: Callable[[dict], None]) -> object:
    """A contacts export from a server whose records `change` rewrites."""
    async with sandbox_client(sb, transport=RewritesContacts(sb, change)) as client:
        return await extract_objects(client, ExportOptions(out_dir=out, objects=["contacts"]))


@pytest.mark.slow
async def test_every_object_type_is_exported_with_its_row_count(
    seeded: Sandbox, tmp_path: Path
) -> None:
    result = await export(seeded, tmp_path)
    m = manifest(tmp_path)
    custom = [o["OBJECT_NAME"] for o in seeded.account.custom_objects]
    assert custom == ["Site__c", "Asset__c"]
    assert set(m["objects"]) == {*ALL_OBJECTS, *custom}
    for name in [*OBJECTS, *custom]:
        endpoint = OBJECTS[name].endpoint if name in OBJECTS else name
        table = read(tmp_path, name)
        assert (
            table.num_rows
            == len(seeded.account.collections[endpoint].ids)
            == m["objects"][name]["rows"]
        )
    defs = read(tmp_path, "custom_fields")
    assert defs.num_rows == sum(len(v) for v in seeded.account.custom_fields.values())
    assert read(tmp_path, "custom_objects").to_pylist() == [
        {
            **o,
            "DATE_CREATED_UTC": _utc(o["DATE_CREATED_UTC"]),
            "DATE_UPDATED_UTC": _utc(o["DATE_UPDATED_UTC"]),
        }
        for o in seeded.account.custom_objects
    ]
    assert m["objects"]["Site__c"]["definition"]["PLURAL_LABEL"] == "Sites"
    assert m["quota"]["remaining"] is not None and m["started_utc"] and m["finished_utc"]
    assert result.warnings == []
    # one listing per object, one definitions request per object with custom fields, and one
    # request for the list of custom objects
    with_custom = sum(1 for o in OBJECTS.values() if o.has_custom_fields) + len(custom)
    # + the custom objects' list + the account (GET /Instance)
    assert result.requests == len(OBJECTS) + len(custom) + with_custom + 1 + 1


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


async def test_custom_objects_have_typed_columns_lookups_as_ids(
    seeded: Sandbox, tmp_path: Path
) -> None:
    result = await export(seeded, tmp_path, "site__c", "Asset__c")
    assert [o.name for o in result.objects] == ["Site__c", "Asset__c"]  # the account's spelling
    sites, assets = read(tmp_path, "Site__c"), read(tmp_path, "Asset__c")
    types = {f.name: str(f.type) for f in sites.schema}
    assert types == {
        "RECORD_ID": "int64",
        "RECORD_NAME": "string",
        "OWNER_USER_ID": "int64",
        "DATE_CREATED_UTC": "timestamp[ms, tz=UTC]",
        "VISIBLE_TO": "string",
        "VISIBLE_TEAM_ID": "int64",
        "DATE_UPDATED_UTC": "timestamp[ms, tz=UTC]",
        "CREATED_USER_ID": "int64",
        "Organisation__c": "int64",
        "Site_Type__c": "string",
        "Street__c": "string",
        "Access_Notes__c": "string",
        "Opened__c": "date32[day]",  # a calendar day
        "Last_Inspection__c": "timestamp[ms, tz=UTC]",
        "Floor_Area__c": "double",
        "Occupancy__c": "double",
        "Active__c": "bool",
        "Services__c": "list<element: string>",
        "Site_No__c": "string",
    }
    first = seeded.account.collections["Asset__c"].records[200001]
    row = assets.filter(pc.equal(assets["RECORD_ID"], 200001)).to_pylist()[0]
    assert row["RECORD_NAME"] == first["RECORD_NAME"]
    assert row["Site__c"] == next(
        c["FIELD_VALUE"] for c in first["CUSTOMFIELDS"] if c["FIELD_NAME"] == "Site__c"
    )
    # every asset's site is a site of the export: ids join
    site_ids = set(sites["RECORD_ID"].to_pylist())
    assert set(filter(None, assets["Site__c"].to_pylist())) <= site_ids


async def test_a_custom_object_the_account_does_not_have_is_named_with_the_ones_it_has(
    seeded: Sandbox, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as caught:
        await export(seeded, tmp_path, "Fruit__c")
    assert caught.value.message == "the account has no custom object 'Fruit__c'"
    assert caught.value.hint == "Its custom objects: Site__c, Asset__c (GET /CustomObjects)."


async def test_a_custom_object_with_no_records_has_its_full_schema_and_incremental_works(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(rate_limit=1000)
    assets = sb.account.collections["Asset__c"]
    for rid in list(assets.ids):
        assets.remove(rid)
    await export(sb, tmp_path, "Asset__c")
    empty = read(tmp_path, "Asset__c")
    assert empty.num_rows == 0
    assert empty.schema.field("Site__c").type == pa.int64()
    assert empty.schema.field("Purchased__c").type == pa.date32()
    # a new asset, then an incremental run: the change is merged, with the same schema
    sb.account.create(
        "Asset__c",
        {
            "RECORD_NAME": "Pallet jack 3",
            "CUSTOMFIELDS": [{"FIELD_NAME": "Site__c", "FIELD_VALUE": 100002}],
        },
    )
    result = await export(sb, tmp_path, "Asset__c", incremental=True)
    assert [o.status for o in result.objects] == ["full"]  # no mark yet from an empty export
    new = sb.account.create(
        "Asset__c",
        {
            "RECORD_NAME": "Pallet jack 4",
            "CUSTOMFIELDS": [{"FIELD_NAME": "Site__c", "FIELD_VALUE": 100003}],
        },
    )
    result = await export(sb, tmp_path, "Asset__c", incremental=True)
    assert [(o.status, o.rows) for o in result.objects] == [("incremental", 2)]
    after = read(tmp_path, "Asset__c")
    assert after.schema == empty.schema
    assert [(r["RECORD_NAME"], r["Site__c"]) for r in after.to_pylist()] == [
        ("Pallet jack 3", 100002),
        ("Pallet jack 4", 100003),
    ]
    assert after["RECORD_ID"].to_pylist()[-1] == new["RECORD_ID"]


@pytest.mark.slow
async def test_schema_is_fixed_across_pages_runs_and_empty_exports(
    make_sandbox, tmp_path: Path
) -> None:
    big = make_sandbox(generate={"Contacts": 1300})  # three pages
    empty = make_sandbox()
    empty.account.collections["Contacts"].__init__(empty.account.specs["Contacts"])  # no contacts
    await export(big, tmp_path / "a", "contacts")
    await export(big, tmp_path / "b", "contacts")
    await export(empty, tmp_path / "c", "contacts")
    expected = object_schema(OBJECTS["contacts"], big.account.definitions("Contacts"))
    schemas = [pq.read_schema(tmp_path / d / "contacts.parquet") for d in "abc"]
    for schema in schemas:
        assert schema.names == expected.names
        assert [f.type for f in schema] == [f.type for f in expected]
    assert expected.field("DATE_UPDATED_UTC").type == TIMESTAMP == pa.timestamp("ms", tz="UTC")
    assert pq.read_metadata(tmp_path / "a" / "contacts.parquet").num_rows == 1520
    assert pq.read_metadata(tmp_path / "c" / "contacts.parquet").num_rows == 0
    assert (
        manifest(tmp_path / "c")["objects"]["contacts"]["schema"]
        == manifest(tmp_path / "a")["objects"]["contacts"]["schema"]
    )


async def test_custom_fields_become_typed_columns(seeded: Sandbox, tmp_path: Path) -> None:
    await export(seeded, tmp_path, "contacts")
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    for rid, rec in seeded.account.collections["Contacts"].records.items():
        cf = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in rec["CUSTOMFIELDS"]}
        row = rows[rid]
        assert row["Customer_Tier__c"] == cf["Customer_Tier__c"]
        assert row["Interests__c"] == (
            cf["Interests__c"].split(";") if cf["Interests__c"] else None
        )
        assert row["Newsletter__c"] == cf["Newsletter__c"]
        assert row["Lifetime_Value__c"] == (
            float(cf["Lifetime_Value__c"]) if cf["Lifetime_Value__c"] is not None else None
        )
        if cf["First_Purchase__c"]:  # a DATE field: the calendar day
            assert row["First_Purchase__c"] == date.fromisoformat(cf["First_Purchase__c"][:10])
        assert row["TAGS"] == [t["TAG_NAME"] for t in rec["TAGS"]]
        assert row["DATE_UPDATED_UTC"] == datetime.strptime(
            rec["DATE_UPDATED_UTC"], "%Y-%m-%d %H:%M:%S"
        ).replace(tzinfo=UTC)


async def test_calendar_days_are_dates_and_instants_stay_utc_timestamps(
    make_sandbox, tmp_path: Path
) -> None:
    """A birthday is a day, not an instant: as midnight UTC it shows a day early anywhere west of
    UTC (1965-01-06 read as 1965-01-05 19:00 in New York). DATE custom fields and standard
    fields whose names do not end in _UTC are date32; *_UTC and DATETIME stay instants."""
    sb = make_sandbox()
    contact = sb.account.create(
        "Contacts",
        {
            "FIRST_NAME": "Zoë",
            "DATE_OF_BIRTH": "1965-01-06 00:00:00",
            "CUSTOMFIELDS": [
                {"FIELD_NAME": "First_Purchase__c", "FIELD_VALUE": "2024-02-29"},
                {"FIELD_NAME": "Last_Webinar__c", "FIELD_VALUE": "2026-03-01 17:30:00"},
            ],
        },
    )
    await export(sb, tmp_path, "contacts", "tasks")
    await export(sb, tmp_path / "csv", "contacts", fmt="csv")
    contacts = read(tmp_path, "contacts")
    types = {f.name: f.type for f in contacts.schema}
    assert types["DATE_OF_BIRTH"] == pa.date32() and types["First_Purchase__c"] == pa.date32()
    assert types["DATE_UPDATED_UTC"] == types["Last_Webinar__c"] == pa.timestamp("ms", tz="UTC")
    dates = types["DATES"].value_type
    assert dates.field("OCCASION_DATE").type == pa.date32()
    tasks = {f.name: f.type for f in read(tmp_path, "tasks").schema}
    assert tasks["DUE_DATE"] == pa.date32() and tasks["COMPLETED_DATE_UTC"] == TIMESTAMP
    row = next(r for r in contacts.to_pylist() if r["CONTACT_ID"] == contact["CONTACT_ID"])
    assert (row["DATE_OF_BIRTH"], row["First_Purchase__c"]) == (date(1965, 1, 6), date(2024, 2, 29))
    assert row["Last_Webinar__c"] == datetime(2026, 3, 1, 17, 30, tzinfo=UTC)
    with (tmp_path / "csv" / "contacts.csv").open(encoding="utf-8-sig", newline="") as f:
        line = next(r for r in csv.DictReader(f) if r["CONTACT_ID"] == str(contact["CONTACT_ID"]))
    assert (line["DATE_OF_BIRTH"], line["First_Purchase__c"]) == ("1965-01-06", "2024-02-29")
    assert line["Last_Webinar__c"] == "2026-03-01 17:30:00"


async def test_an_older_file_with_timestamps_for_days_merges_as_days(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    path = tmp_path / "contacts.parquet"
    old = pq.read_table(path)
    at = old.schema.get_field_index("DATE_OF_BIRTH")
    as_instants = old.set_column(
        at, pa.field("DATE_OF_BIRTH", TIMESTAMP), old["DATE_OF_BIRTH"].cast(TIMESTAMP)
    )
    pq.write_table(as_instants, path)  # what an earlier version of the tool wrote
    rid = sb.account.collections["Contacts"].ids[0]
    sb.account.update("Contacts", {"CONTACT_ID": rid, "BACKGROUND": "changed"})
    await export(sb, tmp_path, "contacts", incremental=True)
    merged = pq.read_table(path)
    assert merged.schema.field("DATE_OF_BIRTH").type == pa.date32()
    assert merged["DATE_OF_BIRTH"].to_pylist() == old["DATE_OF_BIRTH"].to_pylist()


async def test_a_value_that_does_not_fit_is_null_and_counted(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    rec = contacts.records[2001]
    for item in rec["CUSTOMFIELDS"]:
        if item["FIELD_NAME"] == "Lifetime_Value__c":
            item["FIELD_VALUE"] = "n/a"  # the API is loosely typed
    rec["DATE_OF_BIRTH"] = "0000-00-00 00:00:00"
    contacts.put(rec)
    result = await export(sb, tmp_path, "contacts")
    row = next(r for r in read(tmp_path, "contacts").to_pylist() if r["CONTACT_ID"] == 2001)
    assert row["Lifetime_Value__c"] is None and row["DATE_OF_BIRTH"] is None
    assert (
        "contacts.Lifetime_Value__c: 1 value(s) did not fit double and were kept as null"
        in result.warnings
    )
    assert any(w.startswith("contacts.DATE_OF_BIRTH: 1 value(s)") for w in result.warnings)


async def test_nested_lists_of_another_shape_are_counted_not_nulled_in_silence(
    make_sandbox, tmp_path: Path
) -> None:
    """A server's CUSTOMFIELDS that is no list (every custom field of the record null) and
    LINKS that is text (links.parquet then lost them) went without a word, exit 0."""

    def reshape(r: dict) -> None:
        if r["CONTACT_ID"] in (2001, 2003, 2004):  # an object, a number, text
            r["CUSTOMFIELDS"] = {2001: {"not": "a list"}, 2003: 7, 2004: "x"}[r["CONTACT_ID"]]
        if r["CONTACT_ID"] == 2002:
            r["LINKS"] = "Organisation 7"

    result = await export_rewritten(make_sandbox(), tmp_path, reshape)
    assert [w for w in result.warnings if "CUSTOMFIELDS" in w or "LINKS" in w] == [
        "contacts: 3 record(s) whose CUSTOMFIELDS is no list: their custom fields were kept "
        "as null",
        "contacts.LINKS: 1 value(s) did not fit a list and were kept as null",
    ]


async def test_an_impossible_day_is_no_day_not_the_next_month_s(
    make_sandbox, tmp_path: Path
) -> None:
    """2020-02-31 was exported as 2 March (Arrow's strptime rolls the day over), silently."""
    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    rec = contacts.records[2003]
    rec["CUSTOMFIELDS"] = [
        c for c in rec["CUSTOMFIELDS"] if c["FIELD_NAME"] != "First_Purchase__c"
    ] + [{"FIELD_NAME": "First_Purchase__c", "FIELD_VALUE": "2020-02-31 00:00:00"}]
    rec["DATE_UPDATED_UTC"] = "2021-02-29 10:00:00"
    contacts.put(rec)
    # a possible day, written without leading zeros: kept (not taken for a rolled-over one)
    contacts.put({**contacts.records[2004], "DATE_OF_BIRTH": "1990-2-3 00:00:00"})
    result = await export(sb, tmp_path, "contacts")
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    row = rows[2003]
    assert row["First_Purchase__c"] is None and row["DATE_UPDATED_UTC"] is None
    assert rows[2004]["DATE_OF_BIRTH"] == date(1990, 2, 3)
    assert [w for w in result.warnings if "First_Purchase__c" in w or "DATE_UPDATED" in w] == [
        "contacts.DATE_UPDATED_UTC: 1 value(s) did not fit timestamp[ms, tz=UTC] and were kept "
        "as null",
        "contacts.First_Purchase__c: 1 value(s) did not fit date32[day] and were kept as null",
    ]


async def test_csv_has_the_same_columns_and_spreadsheet_friendly_values(
    seeded: Sandbox, tmp_path: Path
) -> None:
    await export(seeded, tmp_path, "contacts", fmt="csv")
    with (tmp_path / "contacts.csv").open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    schema = object_schema(OBJECTS["contacts"], seeded.account.definitions("Contacts"))
    assert list(rows[0]) == schema.names
    first = next(r for r in rows if r["CONTACT_ID"] == "2001")
    rec = seeded.account.collections["Contacts"].records[2001]
    cf = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in rec["CUSTOMFIELDS"]}
    assert first["Interests__c"] == cf["Interests__c"]  # "A;B" again
    assert first["DATE_UPDATED_UTC"] == rec["DATE_UPDATED_UTC"]  # yyyy-MM-dd HH:mm:ss
    assert first["ADDRESS_MAIL_POSTCODE"] == "00501"  # leading zero kept
    assert json.loads(first["LINKS"])[0]["LINK_OBJECT_NAME"] == "Organisation"
    assert len(rows) == 220


@pytest.mark.slow
async def test_incremental_picks_up_changes_and_replaces_old_rows(
    make_sandbox, tmp_path: Path
) -> None:
    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0])
    await export(sb, tmp_path, "contacts", "users")
    mark = manifest(tmp_path)["objects"]["contacts"]["high_water_mark"]
    async with asgi_client(sb) as c:
        clock[0] += timedelta(hours=1)
        await c.put("Contacts", json={"CONTACT_ID": 2002, "TITLE": "Changed after the export"})
        new = (await c.post("Contacts", json={"FIRST_NAME": "Brand", "LAST_NAME": "New"})).json()
    before = sb.stats.copy()
    result = await export(sb, tmp_path, "contacts", "users", incremental=True)
    contacts = next(o for o in result.objects if o.name == "contacts")
    at_mark = sum(
        1
        for r in sb.account.collections["Contacts"].records.values()
        if r["DATE_UPDATED_UTC"] == mark
    )
    assert at_mark >= 1  # the overlap second re-reads it, unchanged: not counted
    assert contacts.status == "incremental" and contacts.rows == 221
    assert (contacts.new, contacts.changed, contacts.deleted) == (1, 1, 0)
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert rows[2002]["TITLE"] == "Changed after the export"
    assert rows[new["CONTACT_ID"]]["FIRST_NAME"] == "Brand"
    ids = list(rows)
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    m = manifest(tmp_path)["objects"]["contacts"]
    assert m["mode"] == "incremental" and m["high_water_mark"] == "2026-11-20 13:00:00" > mark
    assert (m["new"], m["changed"], m["deleted"]) == (1, 1, None)  # deletions not looked for
    searches = [k for k in sb.stats if k[1] == "/v3.1/Contacts/Search"]
    assert searches and sb.stats[searches[0]] - before.get(searches[0], 0) == 1
    updated_after = [k for k in sb.stats if k[1] == "/v3.1/Contacts"]
    assert sb.stats[updated_after[0]] == before[updated_after[0]]  # no full re-read


@pytest.mark.slow
async def test_incremental_overlaps_the_mark_by_a_second(make_sandbox, tmp_path: Path) -> None:
    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0])
    async with asgi_client(sb) as c:
        await c.put("Contacts", json={"CONTACT_ID": 2003, "TITLE": "first"})
    await export(sb, tmp_path, "contacts")
    assert manifest(tmp_path)["objects"]["contacts"]["high_water_mark"] == "2026-11-20 12:00:00"
    async with asgi_client(sb) as c:  # same second as the mark: a strictly-after filter misses it
        await c.put("Contacts", json={"CONTACT_ID": 2004, "TITLE": "same second"})
    await export(sb, tmp_path, "contacts", incremental=True)
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert rows[2004]["TITLE"] == "same second"


async def test_since_without_an_earlier_export_writes_only_the_changes(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    result = await export(sb, tmp_path, "contacts", since=datetime(2026, 10, 1, tzinfo=UTC))
    expected = [
        i
        for i, r in sb.account.collections["Contacts"].records.items()
        if r["DATE_UPDATED_UTC"] > "2026-09-30 23:59:59"
    ]
    assert sorted(read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()) == sorted(expected)
    assert result.objects[0].status == "incremental"


@pytest.mark.slow
async def test_objects_the_account_cannot_read_are_skipped(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox(deny=frozenset({"Leads", "Quotation"}))
    result = await export(sb, tmp_path, "contacts", "leads", "quotations")
    assert [o.status for o in result.objects] == ["full", "skipped", "skipped"]
    assert not (tmp_path / "leads.parquet").exists() and (tmp_path / "contacts.parquet").exists()
    assert result.warnings == [
        "skipped leads: the account cannot read it (HTTP 403: User doesn't have access to this resource.)",
        "skipped quotations: the account cannot read it (HTTP 403: User doesn't have access to this resource.)",
    ]


async def test_brief_leaves_out_nested_arrays_and_custom_fields(
    seeded: Sandbox, tmp_path: Path
) -> None:
    await export(seeded, tmp_path, "contacts", brief=True)
    names = read(tmp_path, "contacts").column_names
    assert "TAGS" not in names and "Customer_Tier__c" not in names and "FIRST_NAME" in names


def test_the_mark_never_passes_the_start_of_the_scan() -> None:
    marks = _Marks("DATE_UPDATED_UTC")
    started = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)  # the first page's Date header
    marks.add([{"DATE_UPDATED_UTC": "2026-11-20 11:00:00"}], started)
    assert marks.mark() == "2026-11-20 11:00:00"
    later = datetime(2026, 11, 20, 12, 0, 9, tzinfo=UTC)
    marks.add([{"DATE_UPDATED_UTC": "2026-11-20 12:00:07"}], later)  # changed while we read
    assert marks.mark() == "2026-11-20 12:00:00"


HOSTILE = {
    "FIRST_NAME": '=HYPERLINK("http://evil.example","click")',
    "LAST_NAME": "+cmd|' /C calc'!A0",
    "BACKGROUND": "@SUM(1+1)",
    "PHONE": "-2+3",
}


async def test_csv_export_escapes_formulas_and_imports_back_as_the_values(
    make_sandbox, tmp_path: Path
) -> None:
    from insightly_etl.load.readers import read_table

    sb = make_sandbox()
    async with asgi_client(sb) as http:
        created = (await http.post("Contacts", json=HOSTILE)).json()
    await export(sb, tmp_path, "contacts", fmt="csv")
    with (tmp_path / "contacts.csv").open(newline="", encoding="utf-8-sig") as f:
        row = next(r for r in csv.DictReader(f) if r["CONTACT_ID"] == str(created["CONTACT_ID"]))
    assert {k: row[k] for k in HOSTILE} == {k: "'" + v for k, v in HOSTILE.items()}
    back = read_table(tmp_path / "contacts.csv").frame
    again = back[back["CONTACT_ID"] == str(created["CONTACT_ID"])].iloc[0]
    assert {k: again[k] for k in HOSTILE} == HOSTILE  # what is sent back is never escaped


async def test_records_without_an_integer_id_or_seen_twice_are_left_out_and_counted(
    tmp_path: Path,
) -> None:
    import httpx

    from insightly_etl.api import InsightlyClient
    from insightly_etl.config import load_settings
    from tests.conftest import KEY

    pages = {
        0: [{"CONTACT_ID": 1, "FIRST_NAME": "a"}, {"CONTACT_ID": "x7", "FIRST_NAME": "bad"}]
        + [{"CONTACT_ID": -5, "FIRST_NAME": "no id either"}]  # it was written as a row
        + [{"CONTACT_ID": 10 + i} for i in range(497)],
        495: [
            {"CONTACT_ID": 1, "FIRST_NAME": "again"},  # the pages' overlap: taken once
            {"CONTACT_ID": "10", "FIRST_NAME": "ten again"},  # 10 again, in another form
            {"CONTACT_ID": "2", "FIRST_NAME": "b"},
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("CustomFields/Contacts"):
            return httpx.Response(200, json=[])
        records = pages.get(int(request.url.params.get("skip", 0)), [])
        return httpx.Response(200, json=records, headers={"X-Total-Count": "503"})

    client = InsightlyClient(
        load_settings(api_key=KEY, api_url="https://api.na1.insightly.com/v3.1/"),
        transport=httpx.MockTransport(handler),
        rate=1000,
    )
    async with client:
        result = await extract_objects(
            client, ExportOptions(out_dir=tmp_path, objects=["contacts"])
        )
    table = read(tmp_path, "contacts")
    assert table.num_rows == 499  # 503 sent: two without an integer id, two ids twice
    assert sorted(table.column("CONTACT_ID").to_pylist())[:3] == [1, 2, 10]
    first = {r["CONTACT_ID"]: r["FIRST_NAME"] for r in table.to_pylist()}
    assert (first[1], first[10]) == ("a", None)  # each as first read
    assert result.warnings == [
        # 503 counted, 502 sent (the page at 495 ends the list at 498): one is not there
        "contacts: the last count (503) was above the 499 records read, and listing the ids "
        "again found no more: 1 record(s) may be missing from the file (ones this user may not "
        "read, or a server whose pages come short)",
        "contacts: 2 record(s) without an id (a whole number from 1 up) were left out",
        "contacts: 1 record(s) came twice across pages (the same id); written once",
    ]


def throttled(sb: Sandbox) -> int:
    return sum(n for (_, _, status), n in sb.stats.items() if status == 429)


@pytest.mark.slow
async def test_limits_learned_from_429s_are_remembered_and_the_next_run_starts_there(
    make_sandbox, tmp_path: Path
) -> None:
    """An account that allows half of what the client was told (4/s of 8, 3 in flight of 8):
    the first run learns the limits from its 429s and writes them in the manifest; the second
    starts from them and is refused at most once. (make bench measures 5/s of 10 on uvicorn.)"""
    sb = make_sandbox(
        rate_limit=4, burst=2, max_concurrent=3, latency_ms=50, generate={"Contacts": 8_000}
    )

    async def run() -> None:
        async with sandbox_client(sb, rate=8, max_in_flight=8) as client:
            await extract_objects(client, ExportOptions(out_dir=tmp_path, objects=["contacts"]))

    await run()
    limits = manifest(tmp_path)["limits"]
    assert throttled(sb) > 0
    first = throttled(sb)
    # about the account's 4/s (what the server took between two 429s, answers of requests
    # already in flight included), far under the 8 the client was told; low rates, so that a
    # busy machine's CPU is never what limits the in-process run
    assert first > 0 and 3.0 < limits["rate"] < 4.3 and limits.get("in_flight", 3) <= 3
    sb.stats.clear()
    await run()
    assert throttled(sb) <= 1 < first
    assert read(tmp_path, "contacts").num_rows == len(sb.account.collections["Contacts"].ids)


async def test_remembered_limits_are_a_hint_a_damaged_one_is_ignored(
    seeded: Sandbox, tmp_path: Path
) -> None:
    (tmp_path / MANIFEST).write_text(
        json.dumps({"version": 1, "objects": {}, "limits": {"rate": "fast", "in_flight": True}})
    )
    await export(seeded, tmp_path, "users")
    assert "limits" not in manifest(tmp_path)


@pytest.mark.parametrize(
    ("dialect", "delimiter", "eol", "bom", "area"),
    [
        ("excel", ",", b"\r\n", True, "-12400.5"),
        ("excel-eu", ";", b"\r\n", True, "-12400,5"),  # a number: not escaped as `'-12400,5`
        ("plain", ",", b"\n", False, "-12400.5"),
    ],
)
async def test_each_csv_dialect_reads_back_with_its_delimiter_bom_and_decimal_mark(
    make_sandbox, tmp_path: Path, dialect: str, delimiter: str, eol: bytes, bom: bool, area: str
) -> None:
    sb = make_sandbox()
    site = sb.account.create(
        "Site__c",
        {
            "RECORD_NAME": "Zoë's depot; north",
            "CUSTOMFIELDS": [{"FIELD_NAME": "Floor_Area__c", "FIELD_VALUE": -12400.5}],
        },
    )
    await export(sb, tmp_path, "Site__c", fmt="csv", csv_dialect=dialect)
    raw = (tmp_path / "Site__c.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") == bom
    assert raw.split(b"\n")[0].endswith(b"\r") == (eol == b"\r\n")
    text = raw.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    assert len(rows) == len(sb.account.collections["Site__c"].ids)
    mine = next(r for r in rows if r["RECORD_ID"] == str(site["RECORD_ID"]))
    assert mine["RECORD_NAME"] == "Zoë's depot; north"
    assert mine["Floor_Area__c"] == area


@pytest.mark.slow
async def test_deleted_records_leave_the_file_for_deleted_parquet_at_the_printed_cost(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(generate={"Contacts": 1000})  # 1,220 contacts: 3 pages of ids
    await export(sb, tmp_path, "contacts", "users")
    contacts = sb.account.collections["Contacts"]
    gone = [contacts.ids[3], contacts.ids[500]]
    for rid in gone:
        sb.account.delete("Contacts", rid)
    rid = contacts.ids[10]
    sb.account.update("Contacts", {"CONTACT_ID": rid, "TITLE": "Still here"})
    options = ExportOptions(
        out_dir=tmp_path, objects=["contacts"], incremental=True, detect_deletes=True
    )
    assert deletion_cost(options) == 3
    before = sum(sb.stats.values())
    result = await export(sb, tmp_path, "contacts", incremental=True, detect_deletes=True)
    (o,) = result.objects
    assert (o.new, o.changed, o.deleted, o.rows) == (0, 1, 2, 1218)
    # the changes (one page), the custom-field definitions, the ids (three pages of 500), and
    # a GET for each record no longer listed (404: deleted, not hidden from this user)
    assert sum(sb.stats.values()) - before == 1 + 1 + 1 + 3 + 2 == result.requests  # +1: account
    ids = set(read(tmp_path, "contacts")["CONTACT_ID"].to_pylist())
    assert ids == set(contacts.ids) and not ids & set(gone)
    deleted = pq.read_table(tmp_path / "_deleted.parquet").to_pylist()
    assert [(d["object"], d["id"]) for d in deleted] == [("contacts", g) for g in sorted(gone)]
    assert manifest(tmp_path)["objects"]["contacts"]["deleted"] == 2
    # a full export finds deletions from the ids of the file it replaces, and appends
    sb.account.delete("Users", sb.account.collections["Users"].ids[-1])
    full = await export(sb, tmp_path, "users")
    assert full.objects[0].deleted == 1 and full.objects[0].deletes_checked
    assert [d["object"] for d in pq.read_table(tmp_path / "_deleted.parquet").to_pylist()] == [
        "contacts",
        "contacts",
        "users",
    ]


@pytest.mark.slow
async def test_xlsx_cuts_a_text_where_a_cell_ends_as_excel_counts_it(
    make_sandbox, tmp_path: Path
) -> None:
    """Excel's 32,767 characters are UTF-16 units: 20,000 emoji are 40,000 of them and were
    written whole, past what Excel holds; they are cut at 16,383 emoji, never half of one."""
    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    for rid, text in ((2001, "\U0001f600" * 20_000 + "END"), (2002, "x" * 40_000)):
        contacts.put({**contacts.records[rid], "BACKGROUND": text})
    result = await export(sb, tmp_path, "contacts", fmt="xlsx")
    import openpyxl

    sheet = openpyxl.load_workbook(tmp_path / "contacts.xlsx")["contacts"]
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    background = header.index("BACKGROUND")
    assert rows[2001][background] == "\U0001f600" * 16_383
    assert rows[2002][background] == "x" * 32_767
    assert (
        "contacts.BACKGROUND: 2 text(s) longer than a spreadsheet cell holds (32,767 characters "
        "as Excel counts them, an emoji two) were cut there; Parquet and CSV keep them whole"
    ) in result.warnings


async def test_xlsx_says_which_texts_held_control_characters_it_replaced(
    make_sandbox, tmp_path: Path
) -> None:
    """A workbook cannot hold U+0000–U+001F but tab and line breaks: each became U+FFFD
    without a word, and the user took the sheet for the record."""
    import openpyxl

    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2001], "BACKGROUND": "bell\x07 and\tform\x0cfeed"})
    contacts.put({**contacts.records[2002], "BACKGROUND": "two\nlines\tkept"})
    result = await export(sb, tmp_path, "contacts", fmt="xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "contacts.xlsx")["contacts"]
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    background = header.index("BACKGROUND")
    assert rows[2001][background] == "bell\ufffd and\tform\ufffdfeed"
    assert rows[2002][background] == "two\nlines\tkept"
    assert [w for w in result.warnings if "control characters" in w] == [
        "contacts.BACKGROUND: 1 text(s) held control characters a spreadsheet cannot hold "
        "(below U+0020, other than tab and line breaks), each written as U+FFFD (\ufffd); "
        "Parquet and CSV keep them"
    ]


async def test_xlsx_has_one_sheet_per_object_with_real_types_and_no_formulas(
    make_sandbox, tmp_path: Path
) -> None:
    import openpyxl

    sb = make_sandbox()
    contact = sb.account.create(
        "Contacts",
        {
            "FIRST_NAME": '=HYPERLINK("http://evil.example")',
            "LAST_NAME": "Zoë\x07",
            "BACKGROUND": "x" * 4000,
            "DATE_OF_BIRTH": "1965-01-06",
            "CUSTOMFIELDS": [{"FIELD_NAME": "Lifetime_Value__c", "FIELD_VALUE": 1234.5}],
        },
    )
    result = await export(sb, tmp_path, "contacts", "Site__c", fmt="xlsx")
    assert result.warnings == [  # the bell in Zoë's name
        "contacts.LAST_NAME: 1 text(s) held control characters a spreadsheet cannot hold (below "
        "U+0020, other than tab and line breaks), each written as U+FFFD (\ufffd); Parquet and "
        "CSV keep them"
    ]
    book = openpyxl.load_workbook(tmp_path / "contacts.xlsx")
    assert book.sheetnames == ["contacts"]
    sheet = book["contacts"]
    header = [c.value for c in sheet[1]]
    rows = [
        dict(zip(header, (c.value for c in r), strict=True)) for r in sheet.iter_rows(min_row=2)
    ]
    assert len(rows) == len(sb.account.collections["Contacts"].ids)
    mine = next(r for r in rows if r["CONTACT_ID"] == contact["CONTACT_ID"])  # an id, a number
    assert mine["FIRST_NAME"] == '=HYPERLINK("http://evil.example")'  # text, not a formula
    cell = next(c for c in sheet[rows.index(mine) + 2] if c.value == mine["FIRST_NAME"])
    assert cell.data_type == "s"
    assert mine["LAST_NAME"] == "Zoë\ufffd"  # a control character XML cannot hold
    assert mine["BACKGROUND"] == "x" * 4000
    assert mine["DATE_OF_BIRTH"] == datetime(1965, 1, 6)  # a real date (Excel keeps no zone)
    assert mine["Lifetime_Value__c"] == 1234.5
    assert isinstance(mine["DATE_UPDATED_UTC"], datetime)
    assert mine["TAGS"] is None or isinstance(mine["TAGS"], str)
    sites = openpyxl.load_workbook(tmp_path / "Site__c.xlsx")["Site__c"]
    assert sites.max_row == len(sb.account.collections["Site__c"].ids) + 1
    assert manifest(tmp_path)["objects"]["contacts"]["format"] == "xlsx"


async def test_xlsx_refuses_more_rows_than_a_sheet_holds_and_leaves_no_file(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insightly_etl.extract import writers

    monkeypatch.setattr(writers, "EXCEL_ROWS", 100)  # a sheet of 99 rows: the same code path
    sb = make_sandbox()
    with pytest.raises(InputError) as caught:
        await export(sb, tmp_path, "contacts", fmt="xlsx")
    assert caught.value.message == "contacts.xlsx: more than 99 rows do not fit a spreadsheet"
    assert caught.value.hint == "Export this object as --format parquet or csv."
    assert not any(p.suffix == ".xlsx" or ".partial" in p.name for p in tmp_path.iterdir())


async def test_links_in_the_records_become_links_parquet_at_no_request(
    seeded: Sandbox, tmp_path: Path
) -> None:
    result = await export(seeded, tmp_path, "contacts", "notes", "users")
    links = pq.read_table(tmp_path / "links.parquet")
    expected = [
        (name, record[id_field], link["LINK_OBJECT_NAME"], link["LINK_OBJECT_ID"], link["ROLE"])
        for name, endpoint, id_field in (
            ("contacts", "Contacts", "CONTACT_ID"),
            ("notes", "Notes", "NOTE_ID"),
        )
        for record in seeded.account.collections[endpoint].records.values()
        for link in record["LINKS"]
    ]
    got = [
        (r["object"], r["id"], r["linked_object"], r["linked_id"], r["role"])
        for r in links.to_pylist()
    ]
    assert sorted(got, key=str) == sorted(expected, key=str) and len(got) > 100
    assert manifest(tmp_path)["links"] == {"file": "links.parquet", "rows": len(got)}
    # nothing but the listings: links cost no request of their own
    assert result.requests == 1 + 3 + 1  # the account, three listings, contacts' custom fields


async def test_numbers_too_big_for_int64_from_a_server_are_null_and_counted_not_a_crash(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    sb.account.load(  # what a broken or hostile server could answer
        "Asset__c",
        [
            {
                "RECORD_ID": 300001,
                "RECORD_NAME": "Huge",
                "OWNER_USER_ID": 10**25,
                "CUSTOMFIELDS": [{"FIELD_NAME": "Site__c", "FIELD_VALUE": 10**30}],
            },
            {"RECORD_ID": 10**20, "RECORD_NAME": "Id beyond int64"},
        ],
    )
    result = await export(sb, tmp_path, "Asset__c")
    rows = {r["RECORD_ID"]: r for r in read(tmp_path, "Asset__c").to_pylist()}
    assert (rows[300001]["OWNER_USER_ID"], rows[300001]["Site__c"]) == (None, None)
    assert 10**20 not in rows
    assert result.warnings == [
        "Asset__c: 1 record(s) without an id (a whole number from 1 up) were left out",
        "Asset__c.OWNER_USER_ID: 1 value(s) did not fit int64 and were kept as null",
        "Asset__c.Site__c: 1 value(s) did not fit int64 and were kept as null",
    ]


async def test_a_tag_without_a_name_is_no_tag_and_an_old_date_stays_readable_in_a_workbook(
    make_sandbox, tmp_path: Path
) -> None:
    """`{"TAG_NAME": null}` was written as the tag "None" (and "" as an empty tag); a date
    before 1900 (.NET's 0001-01-01) as a date cell Excel shows as #####: it is written as
    its text instead."""
    import openpyxl

    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    contacts.records[2001]["TAGS"] = [{"TAG_NAME": None}, {"TAG_NAME": "vip"}, {"TAG_NAME": ""}]
    contacts.records[2002]["DATE_OF_BIRTH"] = "0001-01-01 00:00:00"
    await export(sb, tmp_path, "contacts")
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert rows[2001]["TAGS"] == ["vip"]
    await export(sb, tmp_path / "x", "contacts", fmt="xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "x" / "contacts.xlsx").active
    header = [c.value for c in sheet[1]]
    row = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == 2002)
    assert row[header.index("DATE_OF_BIRTH")] == "0001-01-01"


class IsoDates(httpx.AsyncBaseTransport):
    """The sandbox behind a server that writes DATE_UPDATED_UTC as ISO with a T, fractions and
    an offset (`2026-11-20T13:00:00.250+00:00`) instead of `2026-11-20 13:00:00`."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        text = re.sub(
            rb'"DATE_UPDATED_UTC":"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)"',
            rb'"DATE_UPDATED_UTC":"\1T\2.250+00:00"',
            body,
        )
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
        return httpx.Response(response.status_code, headers=headers, content=text)


async def test_marks_hold_whatever_form_the_server_writes_dates_in(
    make_sandbox, tmp_path: Path
) -> None:
    """Issue 22: an ISO form with fractions and an offset used to poison the manifest's mark,
    and every later incremental run ended in exit 70."""
    from insightly_etl.api import InsightlyClient
    from insightly_etl.config import load_settings
    from tests.conftest import KEY

    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0])
    settings = load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/")

    async def run(**options: object) -> object:
        async with InsightlyClient(settings, transport=IsoDates(sb), rate=1000) as client:
            return await extract_objects(
                client, ExportOptions(out_dir=tmp_path, objects=["contacts"], **options)
            )

    await run()
    first = manifest(tmp_path)["objects"]["contacts"]["high_water_mark"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first)
    clock[0] += timedelta(hours=1)
    async with asgi_client(sb) as c:
        await c.put("Contacts", json={"CONTACT_ID": 2002, "TITLE": "Changed in ISO"})
    result = await run(incremental=True)
    contacts = next(o for o in result.objects if o.name == "contacts")
    assert (contacts.status, contacts.changed) == ("incremental", 1)
    assert manifest(tmp_path)["objects"]["contacts"]["high_water_mark"] == "2026-11-20 13:00:00"
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert rows[2002]["TITLE"] == "Changed in ISO"


async def test_a_mark_that_is_no_moment_means_a_full_export_with_a_warning(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    saved = manifest(tmp_path)
    saved["objects"]["contacts"]["high_water_mark"] = "yesterday-ish"
    (tmp_path / MANIFEST).write_text(json.dumps(saved))
    result = await export(sb, tmp_path, "contacts", incremental=True)
    contacts = next(o for o in result.objects if o.name == "contacts")
    assert contacts.status == "full" and contacts.rows == 220
    assert (
        "contacts: the manifest's high-water mark 'yesterday-ish' is no moment; exported in "
        "full this time"
    ) in result.warnings


async def test_custom_field_definitions_that_would_be_a_second_column_are_left_out_with_a_warning(
    make_sandbox, tmp_path: Path
) -> None:
    """A definition named like a standard field, listed twice (case aside) or nameless made the
    export end in "internal error"; it is left out, said once, and the rest exported."""
    sb = make_sandbox()
    defs = sb.account.custom_fields["Contacts"]
    tier = next(d for d in defs if d["FIELD_NAME"] == "Customer_Tier__c")
    sb.account.custom_fields["Contacts"] = [
        *defs,
        {**tier, "FIELD_NAME": "EMAIL_ADDRESS"},
        {**tier, "FIELD_NAME": "customer_tier__C", "FIELD_TYPE": "NUMERIC"},
        {**tier, "FIELD_NAME": None},
        # a server's, not Insightly's: the lake's own columns, a path, a formula; a type
        {**tier, "FIELD_NAME": "_op"},
        {**tier, "FIELD_NAME": "../x__c"},
        {**tier, "FIELD_NAME": '=HYPERLINK("http://e")'},
        {**tier, "FIELD_NAME": "Long__c" * 30},
        {**tier, "FIELD_NAME": "名前__c"},
        {**tier, "FIELD_NAME": "Kinds__c", "FIELD_TYPE": ["MULTISELECT"]},
    ]
    result = await export(sb, tmp_path, "contacts")
    table = read(tmp_path, "contacts")
    assert table.schema.names.count("EMAIL_ADDRESS") == 1
    assert table.schema.field("Customer_Tier__c").type == pa.string()
    assert "customer_tier__C" not in table.schema.names
    assert table.num_rows == len(sb.account.collections["Contacts"].records)
    assert [w for w in result.warnings if w.startswith("CustomFields/")] == [
        "CustomFields/Contacts: the custom field 'EMAIL_ADDRESS' has the name of a standard "
        "field; left out",
        "CustomFields/Contacts: the custom field 'customer_tier__C' has the name of an earlier "
        "one; left out",
        "CustomFields/Contacts: a definition without a FIELD_NAME; left out",
        *(
            f"CustomFields/Contacts: the custom field {name} is not named as Insightly names "
            "fields (letters, digits and _, a letter first); left out"
            for name in (
                "'_op'",
                "'../x__c'",
                "'=HYPERLINK(\"http://e\")'",
            )
        ),
        "CustomFields/Contacts: the custom field "
        + repr(("Long__c" * 30)[:60])
        + "… is named in 210 characters, more than 128; left out",
        "CustomFields/Contacts: the custom field '名前__c' is not named as Insightly names "
        "fields (letters, digits and _, a letter first); left out",
        "CustomFields/Contacts: the custom field 'Kinds__c' has a FIELD_TYPE that is no type's "
        "name (['MULTISELECT']); left out",
    ]
    assert not {"_op", "../x__c", "Kinds__c"} & set(table.schema.names)


async def test_a_custom_field_deleted_in_insightly_is_said_when_its_column_goes(
    make_sandbox, tmp_path: Path
) -> None:
    """Its column, with every value the earlier files kept, went without a word."""
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    defs = sb.account.custom_fields["Contacts"]
    sb.account.custom_fields["Contacts"] = [d for d in defs if d["FIELD_NAME"] != "Nickname__c"]
    result = await export(sb, tmp_path, "contacts", incremental=True)
    assert "Nickname__c" not in read(tmp_path, "contacts").schema.names
    assert [w for w in result.warnings if "Nickname__c" in w] == [
        "contacts: custom field(s) no longer defined in Insightly: Nickname__c; their columns, "
        "with the values earlier exports kept, are left out"
    ]
    again = await export(sb, tmp_path, "contacts", incremental=True)
    assert not [w for w in again.warnings if "custom field" in w]  # said once


def test_definitions_of_one_other_object_are_no_columns_of_this_one() -> None:
    """Every object's fields answer a name the API takes for none: on an account with custom
    fields on contacts alone they are all CONTACT's, and leads took them as columns."""
    from insightly_etl.api.registry import OBJECTS, usable_definitions

    tier = {"FIELD_NAME": "Tier__c", "FIELD_TYPE": "TEXT", "FIELD_FOR": "CONTACT"}
    odd = {"FIELD_NAME": "Odd__c", "FIELD_TYPE": "TEXT", "FIELD_FOR": "LEAD_RECORD"}
    kept, left = usable_definitions(OBJECTS["leads"], [tier])
    assert kept == [] and left == ["CustomFields/Leads: 1 definitions of other objects"]
    assert usable_definitions(OBJECTS["contacts"], [tier])[0] == [tier]
    # a FIELD_FOR no object goes by: this object's own answer, whatever it calls itself
    assert usable_definitions(OBJECTS["leads"], [odd]) == ([odd], [])


async def test_every_custom_field_deleted_is_said_too(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    await export(sb, tmp_path, "leads")
    names = [d["FIELD_NAME"] for d in sb.account.custom_fields["Leads"]]
    sb.account.custom_fields["Leads"] = []
    result = await export(sb, tmp_path, "leads", incremental=True)
    assert [w for w in result.warnings if "no longer defined" in w] == [
        f"leads: custom field(s) no longer defined in Insightly: {', '.join(names)}; their "
        "columns, with the values earlier exports kept, are left out"
    ]


async def test_a_custom_object_listed_again_in_another_case_or_with_spaces_is_one_object(
    make_sandbox, tmp_path: Path
) -> None:
    """`site__c`, ` Site__c` and `Site__C` beside `Site__c`: the API's paths ignore case, so
    each was the same object read again, `site__c.parquet` a second file (the first one's,
    on a case-blind disk), the raw names kept in custom_objects.parquet."""
    sb = make_sandbox()
    site = sb.account.custom_objects[0]
    sb.account.custom_objects += [
        {**site, "OBJECT_NAME": name} for name in ("site__c", " Site__c", "Site__C\n")
    ]
    result = await export(sb, tmp_path, "custom_objects")
    names = read(tmp_path, "custom_objects")["OBJECT_NAME"].to_pylist()
    assert names == ["Site__c", "Asset__c"]
    assert [w for w in result.warnings if w.startswith("left out custom object")] == [
        "left out custom object 'site__c': listed already as 'Site__c'",
        "left out custom object ' Site__c': listed already as 'Site__c'",
        "left out custom object 'Site__C\\n': listed already as 'Site__c'",
    ]


async def test_an_answer_of_every_object_s_definitions_gives_an_object_only_its_own(
    make_sandbox, tmp_path: Path
) -> None:
    """The real API answers an object name it does not know with every object's custom
    fields (FIELD_FOR tells them apart): the leads' fields are no columns of contacts."""
    sb = make_sandbox()
    every = [d for defs in sb.account.custom_fields.values() for d in defs]
    own = sorted(d["FIELD_NAME"] for d in sb.account.custom_fields["Contacts"])
    sb.account.custom_fields["Contacts"] = every
    result = await export(sb, tmp_path, "contacts")
    table = read(tmp_path, "contacts")
    assert sorted(n for n in table.schema.names if n.endswith("__c")) == own
    assert [w for w in result.warnings if w.startswith("CustomFields/")] == [
        f"CustomFields/Contacts: {len(every) - len(own)} definitions of other objects; left out"
    ]


async def test_year_one_moments_are_marks_like_any_other(make_sandbox, tmp_path: Path) -> None:
    """.NET's DateTime.MinValue (`0001-01-01 00:00:00`) as --since, or as every record's
    DATE_UPDATED_UTC: a second before year 1 ended the export in an internal error, and the
    mark was written `1-01-01 00:00:00` (every later run a full one, with a warning)."""
    from insightly_etl.extract.export import parse_since

    sb = make_sandbox()
    everyone = len(sb.account.collections["Contacts"].records)
    since = await export(sb, tmp_path / "s", "contacts", since=parse_since("0001-01-01T00:00:00Z"))
    assert [(o.status, o.rows) for o in since.objects] == [("incremental", everyone)]
    sb = make_sandbox()  # one that has served no page yet
    for r in sb.account.collections["Contacts"].records.values():
        r["DATE_UPDATED_UTC"] = "0001-01-01 00:00:00"
    await export(sb, tmp_path, "contacts")
    assert manifest(tmp_path)["objects"]["contacts"]["high_water_mark"] == "0001-01-01 00:00:00"
    again = await export(sb, tmp_path, "contacts", incremental=True)
    assert [o.status for o in again.objects] == ["incremental"]
    assert not [w for w in again.warnings if "no moment" in w]


@pytest.mark.parametrize("detect_deletes", [False, True])
async def test_another_object_s_file_under_this_one_s_name_is_refused_naming_it(
    make_sandbox, tmp_path: Path, detect_deletes: bool
) -> None:
    """organisations.parquet copied over contacts.parquet: an internal error, or (looking
    for deletions) a request for `Contacts/None`."""
    import shutil

    sb = make_sandbox()
    await export(sb, tmp_path, "contacts", "organisations")
    shutil.copy(tmp_path / "organisations.parquet", tmp_path / "contacts.parquet")
    with pytest.raises(InputError) as refused:
        await export(sb, tmp_path, "contacts", incremental=True, detect_deletes=detect_deletes)
    assert str(refused.value) == (
        f"{tmp_path / 'contacts.parquet'} is not an export of this object: it holds "
        "organisations records"
    )
    assert not [k for k in sb.stats if "None" in k[1]]


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("twice", "2 of its rows repeat another row's CONTACT_ID"),
        ("negated", "it has CONTACT_ID -{last}, and records' ids are positive"),
    ],
)
async def test_an_earlier_file_with_rows_twice_or_ids_negated_is_refused_not_merged(
    make_sandbox, tmp_path: Path, tamper: str, why: str
) -> None:
    """Merged as they were, the copies stayed in the export (exit 0) and negated ids were
    records no one has."""
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    path = tmp_path / "contacts.parquet"
    table = pq.read_table(path)
    if tamper == "twice":
        table = pa.concat_tables([table, table.slice(0, 2)])
    else:
        table = table.set_column(0, "CONTACT_ID", pc.negate(table["CONTACT_ID"]))
    pq.write_table(table, path)
    last = max(sb.account.collections["Contacts"].records)
    with pytest.raises(InputError) as refused:
        await export(sb, tmp_path, "contacts", incremental=True)
    assert str(refused.value) == (
        f"{path} is not an export of this object: {why.format(last=last)}"
    )
    assert refused.value.hint == (
        "It is not the file an earlier export wrote: move it away, then run a full export "
        "(without --incremental)."
    )


async def test_since_into_an_empty_folder_is_partial_and_the_next_incremental_run_is_full(
    make_sandbox, tmp_path: Path
) -> None:
    """The --since file held 17 of 229 contacts, and --incremental built on it for ever."""
    from insightly_etl.extract.export import parse_since

    sb = make_sandbox()
    everyone = len(sb.account.collections["Contacts"].records)
    stamps = sorted(
        r["DATE_UPDATED_UTC"] for r in sb.account.collections["Contacts"].records.values()
    )
    since = stamps[len(stamps) // 2].replace(" ", "T") + "Z"
    first = await export(sb, tmp_path, "contacts", since=parse_since(since))
    assert 0 < first.objects[0].rows < everyone
    entry = manifest(tmp_path)["objects"]["contacts"]
    assert entry["partial_since"] == since.replace("T", " ").removesuffix("Z")
    again = await export(sb, tmp_path, "contacts", incremental=True)
    assert [(o.status, o.rows) for o in again.objects] == [("full", everyone)]
    assert [w for w in again.warnings if "only the records" in w] == [
        f"contacts: the file holds only the records changed since {entry['partial_since']} "
        "(--since into a folder without it); exported in full this time"
    ]
    assert "partial_since" not in manifest(tmp_path)["objects"]["contacts"]
    third = await export(sb, tmp_path, "contacts", incremental=True)
    assert [o.status for o in third.objects] == ["incremental"]


async def test_another_custom_object_s_file_is_told_apart_by_the_object_it_holds(
    make_sandbox, tmp_path: Path
) -> None:
    """Asset__c.parquet copied over Site__c.parquet (both keyed RECORD_ID): an incremental
    run merged 80 assets into the sites, and --detect-deletes wrote asset ids as deleted
    sites; a full run took the assets' ids for deletions to confirm."""
    import shutil

    sb = make_sandbox()
    await export(sb, tmp_path, "Site__c", "Asset__c")
    sites = read(tmp_path, "Site__c").num_rows
    shutil.copy(tmp_path / "Asset__c.parquet", tmp_path / "Site__c.parquet")
    with pytest.raises(InputError) as refused:
        await export(sb, tmp_path, "Site__c", incremental=True, detect_deletes=True)
    assert str(refused.value) == (
        f"{tmp_path / 'Site__c.parquet'} is not an export of this object: it holds Asset__c records"
    )
    before = dict(sb.stats)
    full = await export(sb, tmp_path, "Site__c")
    assert [(o.rows, o.deleted) for o in full.objects] == [(sites, 0)]
    assert not [k for k, n in sb.stats.items() if n != before.get(k, 0) and "/Site__c/" in k[1]]
    assert not (tmp_path / "_deleted.parquet").exists()


async def test_a_country_no_longer_listed_is_no_request_for_it(
    make_sandbox, tmp_path: Path
) -> None:
    """Countries are keyed by name, and there is no GET of one: a country gone from the list
    ended every export of them in `GET Countries/Japan, HTTP 400`."""
    sb = make_sandbox()
    await export(sb, tmp_path, "countries")
    countries = sb.account.collections["Countries"]
    gone = countries.ids[0]
    countries.records.pop(gone)
    countries.ids.remove(gone)
    again = await export(sb, tmp_path, "countries")
    assert [(o.rows, o.deleted) for o in again.objects] == [(len(countries.ids), 0)]
    assert gone not in read(tmp_path, "countries")["COUNTRY_NAME"].to_pylist()


async def test_an_incremental_after_an_export_in_another_format_reads_in_full(
    make_sandbox, tmp_path: Path
) -> None:
    """contacts.csv exported into a Parquet export's folder: the next --incremental merged the
    changes since the CSV's mark into the contacts.parquet of the run before, and every edit in
    between was lost for good (exit 0)."""
    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0])
    await export(sb, tmp_path, "contacts")
    clock[0] += timedelta(hours=1)
    sb.account.update("Contacts", {"CONTACT_ID": 2002, "TITLE": "edited between"})
    as_csv = await export(sb, tmp_path, "contacts", fmt="csv")
    assert as_csv.warnings == [
        "contacts: contacts.parquet, which an earlier export wrote, is left as it was (not "
        "updated, and no longer in _manifest.json): the folder's contacts are in contacts.csv now"
    ]
    clock[0] += timedelta(hours=1)
    sb.account.update("Contacts", {"CONTACT_ID": 2003, "TITLE": "edited after"})
    result = await export(sb, tmp_path, "contacts", incremental=True)
    assert result.warnings[0] == (
        "contacts: the last export wrote contacts.csv, not contacts.parquet, which is older "
        "than that export's mark; exported in full this time"
    )
    assert result.objects[0].status == "full"
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert (rows[2002]["TITLE"], rows[2003]["TITLE"]) == ("edited between", "edited after")
    assert manifest(tmp_path)["objects"]["contacts"]["file"] == "contacts.parquet"


async def test_an_incremental_onto_a_parquet_file_with_other_rows_than_written_reads_in_full(
    make_sandbox, tmp_path: Path
) -> None:
    """An older or shorter contacts.parquet put back in the folder: the records it lacked
    stayed missing, every incremental run saying "0 new, 0 changed"."""
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    pq.write_table(read(tmp_path, "contacts").slice(0, 100), tmp_path / "contacts.parquet")
    result = await export(sb, tmp_path, "contacts", incremental=True)
    assert result.warnings == [
        f"contacts: {tmp_path}/contacts.parquet holds 100 row(s), the export that wrote it 220 "
        "(an older copy put back?); exported in full this time"
    ]
    assert read(tmp_path, "contacts").num_rows == 220


async def test_a_full_csv_export_journals_the_records_deleted_since_the_last(
    make_sandbox, tmp_path: Path
) -> None:
    """The README said a full export finds deletions from the file it replaces: a CSV's were
    not looked for (the record just went). Its `_base` copy has the ids."""
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts", fmt="csv")
    sb.account.delete("Contacts", 2005)
    result = await export(sb, tmp_path, "contacts", fmt="csv")
    contacts = result.objects[0]
    assert (contacts.rows, contacts.new, contacts.deleted) == (219, 0, 1)
    assert pq.read_table(tmp_path / "_deleted.parquet").select(["object", "id"]).to_pylist() == [
        {"object": "contacts", "id": 2005}
    ]


async def test_a_csv_export_after_a_parquet_one_finds_deletions_from_the_parquet_file(
    make_sandbox, tmp_path: Path
) -> None:
    """Its `_base` copy, weeks older or none, is not the file it replaces: the Parquet export
    the manifest names is."""
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    sb.account.delete("Contacts", 2006)
    result = await export(sb, tmp_path, "contacts", fmt="csv")
    assert (result.objects[0].new, result.objects[0].deleted) == (0, 1)
    assert pq.read_table(tmp_path / "_deleted.parquet")["id"].to_pylist() == [2006]


async def test_an_older_copy_of_as_many_rows_put_back_is_read_in_full(
    make_sandbox, tmp_path: Path
) -> None:
    """A backup restored over contacts.parquet with the same number of rows: the records it
    lacked stayed missing and the one deleted since came back, every incremental run trusting
    the file (exit 0)."""
    import shutil

    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0])
    await export(sb, tmp_path, "contacts")
    first = manifest(tmp_path)["objects"]["contacts"]["run"]
    shutil.copy2(tmp_path / "contacts.parquet", tmp_path / "backup.parquet")
    clock[0] += timedelta(hours=1)
    made = sb.account.create("Contacts", {"FIRST_NAME": "New", "LAST_NAME": "Since"})
    sb.account.delete("Contacts", 2011)
    await export(sb, tmp_path, "contacts", incremental=True, detect_deletes=True)
    second = manifest(tmp_path)["objects"]["contacts"]["run"]
    shutil.copy2(tmp_path / "backup.parquet", tmp_path / "contacts.parquet")  # 220 rows too
    result = await export(sb, tmp_path, "contacts", incremental=True)
    assert first < second
    assert result.warnings[0] == (
        f"contacts: {tmp_path}/contacts.parquet was written by an earlier run ({first}) than "
        f"the export of {second} the manifest names (an older copy put back?); exported in "
        "full this time"
    )
    ids = read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()
    assert made["CONTACT_ID"] in ids and 2011 not in ids
    again = await export(sb, tmp_path, "contacts", incremental=True)
    assert again.objects[0].status == "incremental" and not again.warnings


async def test_a_parquet_export_after_a_csv_one_finds_deletions_from_its_base(
    make_sandbox, tmp_path: Path
) -> None:
    """No contacts.parquet to compare with: the deletion went without a word."""
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts", fmt="csv")
    sb.account.delete("Contacts", 2007)
    result = await export(sb, tmp_path, "contacts")
    assert (result.objects[0].new, result.objects[0].deleted) == (0, 1)
    assert pq.read_table(tmp_path / "_deleted.parquet")["id"].to_pylist() == [2007]


async def test_a_file_newer_than_its_manifest_entry_is_merged_into_not_read_again(
    make_sandbox, tmp_path: Path
) -> None:
    """A run stopped after it put contacts.parquet in place and before its manifest (a kill,
    an upload to object storage cut between the two): the file is the later run's, and the
    next incremental run merges into it from the older mark, as it always did."""
    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0])
    await export(sb, tmp_path, "contacts")
    before = (tmp_path / MANIFEST).read_bytes()
    clock[0] += timedelta(hours=1)
    sb.account.create("Contacts", {"FIRST_NAME": "New", "LAST_NAME": "Since"})
    await export(sb, tmp_path, "contacts", incremental=True)
    (tmp_path / MANIFEST).write_bytes(before)  # the manifest as it was before that run
    result = await export(sb, tmp_path, "contacts", incremental=True)
    assert result.objects[0].status == "incremental" and result.warnings == []
    assert read(tmp_path, "contacts").num_rows == 221


async def test_ids_written_as_whole_floats_are_ids(make_sandbox, tmp_path: Path) -> None:
    """A server whose JSON writer says 2001.0: the whole page was refused ("none of the
    records … has a CONTACT_ID", exit 69), though "2001" as text was taken."""

    def as_float(r: dict) -> None:
        r["CONTACT_ID"] = float(r["CONTACT_ID"])

    sb = make_sandbox()
    result = await export_rewritten(sb, tmp_path, as_float)
    assert result.warnings == []
    ids = read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()
    assert ids == sorted(sb.account.collections["Contacts"].ids)
