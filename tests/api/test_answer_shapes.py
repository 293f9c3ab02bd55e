"""Answers in shapes the sandbox's own writes never make but a live account (or a proxy in
front of it) may send (issue 20, item 5): custom dates with a `T`, a zone or fractions."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.api.test_cli import run, write
from tests.api.test_export import export

# one moment, 17:30:00 UTC on 1 March 2026, and one day, 29 February 2024, as servers write them
FORMS = [
    ("2026-03-01T17:30:00Z", "2024-02-29T00:00:00"),
    ("2026-03-01T19:30:00+02:00", "2024-02-29"),
    ("2026-03-01T17:30:00.000", "2024-02-29 00:00:00"),
    ("2026-03-01 17:30:00", "2024-02-29T00:00:00Z"),
]


def _restate(sb, ids: list[int]) -> None:
    """Give each contact the moment and the day in one of the FORMS, stored as the server
    would answer them (past the sandbox's own write rules)."""
    contacts = sb.account.collections["Contacts"]
    for rid, (moment, day) in zip(ids, FORMS, strict=True):
        record = copy.deepcopy(contacts.records[rid])
        for item in record["CUSTOMFIELDS"]:
            if item["FIELD_NAME"] == "Last_Webinar__c":
                item["FIELD_VALUE"] = moment
            if item["FIELD_NAME"] == "First_Purchase__c":
                item["FIELD_VALUE"] = day
        contacts.put(record)


@pytest.mark.anyio
async def test_custom_dates_in_every_iso_form_export_as_the_same_moment_and_day(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    ids = sb.account.collections["Contacts"].ids[:4]
    _restate(sb, ids)
    result = await export(sb, tmp_path, "contacts")
    assert not [w for w in result.warnings if "did not fit" in w], result.warnings
    rows = {
        r["CONTACT_ID"]: r
        for r in pq.read_table(tmp_path / "contacts.parquet").to_pylist()
        if r["CONTACT_ID"] in ids
    }
    assert {r["Last_Webinar__c"] for r in rows.values()} == {
        datetime(2026, 3, 1, 17, 30, tzinfo=UTC)
    }
    assert {r["First_Purchase__c"] for r in rows.values()} == {date(2024, 2, 29)}


def test_a_file_with_the_same_dates_is_unchanged_whatever_form_insightly_answers_in(
    make_sandbox, tmp_path: Path
) -> None:
    """Compared as text, a `T` or an offset made every re-run send a PUT and then report the
    value "not applied"; compared by value, nothing is to do."""
    sb = make_sandbox()
    ids = sb.account.collections["Contacts"].ids[:4]
    _restate(sb, ids)
    body = "".join(f"{rid},2026-03-01 17:30:00,2024-02-29\n" for rid in ids)
    file = write(tmp_path, "dates.csv", "Id,Webinar,Purchase\n" + body)
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Id, field: CONTACT_ID}\ncolumns:\n"
        "  Webinar: Last_Webinar__c\n  Purchase: First_Purchase__c\n",
    )
    result = run(sb, "import", str(file), "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    assert "dates.csv -> contacts: 0 created, 0 updated, 4 unchanged" in result.stdout
    assert not any(m == "PUT" for (m, _, _) in sb.stats)


@pytest.mark.slow
@pytest.mark.anyio
async def test_large_records_make_the_pages_after_the_first_smaller_and_it_says_so(
    make_sandbox, tmp_path: Path
) -> None:
    from insightly_etl.extract import ExportOptions, extract_objects
    from tests.conftest import sandbox_client

    sb = make_sandbox(generate={"Contacts": 600}, record_kb=20)
    async with sandbox_client(sb) as client:
        client.page_bytes = 2 << 20  # a first page of ~10 MB is five times this
        client.page_seconds = float("inf")  # sizes from bytes alone, whatever this machine's pace
        result = await extract_objects(
            client, ExportOptions(out_dir=tmp_path, objects=["contacts"])
        )
        notices = client.stats.notices
    # the first page held the 220 small seed contacts too; the second, only large ones
    contacts = sb.account.collections["Contacts"]
    first = 2 + sum(len(contacts.json_of(i)) + 1 for i in contacts.ids[:500]) - 1  # [a,b…]
    size = int(500 / (first / (2 << 20)) * 0.8)  # in proportion, with a margin
    assert re.fullmatch(  # all of it but the time it took
        rf"Contacts: a page of 500 records came to {first / 1e6:,.1f} MB in [0-9.]+s; "
        rf"asking for {size} at a time",
        notices[0],
    ), notices[0]
    sizes = [int(n.rsplit("asking for ", 1)[1].split()[0]) for n in notices]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) <= 3
    largest = max(len(contacts.json_of(i)) for i in contacts.ids)
    assert sizes[-1] * largest <= 2 << 20  # the pages after the last change fit
    ids = pq.read_table(tmp_path / "contacts.parquet", columns=["CONTACT_ID"])["CONTACT_ID"]
    assert len(ids) == len(set(ids.to_pylist())) == 820
    assert result.objects[0].rows == 820
    big = next(
        r for r in sb.account.collections["Contacts"].records.values() if r["CONTACT_ID"] > 10**6
    )
    assert len(json.dumps(big, ensure_ascii=False).encode()) > 18_000  # about 20 KB a record


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_first_page_beyond_the_size_cap_is_asked_again_smaller(make_sandbox) -> None:
    from tests.conftest import sandbox_client

    sb = make_sandbox(generate={"Contacts": 600}, record_kb=20)
    async with sandbox_client(sb, max_body=4 << 20) as client:
        records = [r async for page in client.iter_pages("Contacts") for r in page.records]
        notices = client.stats.notices
    assert (
        notices[0] == "Contacts: a page of 500 records was larger than 4.2 MB; asked again for 125"
    )
    assert len(records) == len({r["CONTACT_ID"] for r in records}) == 820


@pytest.mark.slow
def test_the_export_command_says_when_it_asks_for_smaller_pages(make_sandbox, tmp_path: Path):
    sb = make_sandbox(generate={"Contacts": 600}, record_kb=80)  # a first page of ~23 MB
    result = run(sb, "export", "contacts", "--out", str(tmp_path), "--rate-limit", "100")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note: ")]
    assert len(notes) >= 1 and re.fullmatch(
        r"Note: Contacts: a page of 500 records came to [0-9.]+ MB in [0-9.]+s; "
        r"asking for [0-9]+ at a time",
        notes[0],
    ), result.stderr
    assert "Exported 1 object type, 820 rows" in result.stderr


@pytest.mark.anyio
async def test_week_dates_and_json_nan_are_no_values(make_sandbox, tmp_path: Path) -> None:
    """`2026-W44-1` reads as a date to Python's ISO parser but is no form the API writes; a
    lenient JSON parser takes NaN, which is no text and no number."""
    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    rid = contacts.ids[0]
    record = copy.deepcopy(contacts.records[rid])
    record["FIRST_NAME"] = float("nan")
    for item in record["CUSTOMFIELDS"]:
        if item["FIELD_NAME"] == "Last_Webinar__c":
            item["FIELD_VALUE"] = "2026-W44-1T10:00:00"
        if item["FIELD_NAME"] == "Lifetime_Value__c":
            item["FIELD_VALUE"] = float("inf")
    contacts.put(record)
    result = await export(sb, tmp_path, "contacts")
    row = next(
        r
        for r in pq.read_table(tmp_path / "contacts.parquet").to_pylist()
        if r["CONTACT_ID"] == rid
    )
    assert (row["FIRST_NAME"], row["Last_Webinar__c"], row["Lifetime_Value__c"]) == (
        None,
        None,
        None,
    )
    assert "contacts.Last_Webinar__c: 1 value(s) did not fit" in " ".join(result.warnings)


@pytest.mark.anyio
async def test_pages_grow_back_after_one_large_answer(make_sandbox) -> None:
    """One page too large (or slow) makes the next pages smaller; pages with room for twice as
    many make them grow back, so one odd answer does not cost more requests for the rest of
    the listing."""
    import httpx

    from tests.conftest import sandbox_client

    sb = make_sandbox(generate={"Contacts": 4000})
    inner = httpx.ASGITransport(app=sb.app)
    asked: list[int] = []  # the page size of each listing request, in the order sent

    class PaddedFirstPage(httpx.AsyncBaseTransport):  # 3 MB of spaces after the first page
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            asked.append(int(request.url.params["top"]))
            answer = await inner.handle_async_request(request)
            if request.url.params.get("skip") != "0":
                return answer
            body = await answer.aread() + b" " * (3 << 20)  # as read: no longer gzip
            headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-encoding"}
            headers.pop("content-length", None)
            return httpx.Response(answer.status_code, headers=headers, content=body)

    async with sandbox_client(sb, transport=PaddedFirstPage(), max_in_flight=4) as client:
        client.page_bytes = 3 << 20  # the first page, at 3 MB and its records, is over
        client.page_seconds = float("inf")  # sizes from bytes alone, whatever the machine's pace
        read = [r async for page in client.iter_pages("Contacts") for r in page.records]
        notices = client.stats.notices
    shrunk = re.fullmatch(
        r"Contacts: a page of 500 records came to [0-9.]+ MB in [0-9.]+s; asking for "
        r"([0-9]+) at a time",
        notices[0],
    )
    assert shrunk, notices
    size = int(shrunk[1])
    assert 200 <= size <= 400
    assert notices[1:] == [
        "Contacts: 3 pages in a row had room for twice as many records; "
        "asking for 500 at a time again"
    ]
    assert len(read) == len({r["CONTACT_ID"] for r in read}) == 4220
    # four asked at once at the smaller size, one more after each of the first two answers;
    # after the third, the larger size
    assert asked[:7] == [500] + [size] * 6 and set(asked[7:]) == {500}, asked
