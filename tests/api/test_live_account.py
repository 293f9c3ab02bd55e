"""A live account (issue 22): people work in the CRM while the tool reads and writes it.

Driven by the sandbox's own knobs: `list_churn` (a colleague deletes records already served
and creates new ones before every page), `shuffle_lists` (a server whose order changes
between requests)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from insightly_etl.errors import CheckpointError, QuotaError, UnstableOrder
from insightly_etl.extract.export import DELETED, ExportOptions, extract_objects
from insightly_etl.load.checkpoint import Checkpoint
from insightly_etl.sandbox import Sandbox
from tests.api.test_cli import run
from tests.api.test_export import export, manifest, read
from tests.api.test_import import MATCH_EMAIL, run_import, write
from tests.api.test_import_safety import run_undo
from tests.conftest import asgi_client, sandbox_client

pytestmark = pytest.mark.anyio


def contact_ids(sb: Sandbox) -> set[int]:
    return set(sb.account.collections["Contacts"].ids)


class ColleagueStops(httpx.AsyncBaseTransport):
    """The sandbox, whose colleague stops working when the export lists the ids again
    (`brief=true`) to see which records read were deleted since: the records live then
    (`end`) are the ones the file must hold, each once."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb, self.inner = sb, httpx.ASGITransport(app=sb.app)
        self.end: set[int] | None = None
        self.brief = 0  # the pages of the listing of ids

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("brief") == "true":
            self.brief += 1
            if self.end is None:
                self.sb.config.list_churn = 0
                self.end = contact_ids(self.sb)
        return await self.inner.handle_async_request(request)


async def export_while_a_colleague_works(
    sb: Sandbox, out: Path, churn: int, **options: str
) -> tuple[object, ColleagueStops]:
    sb.config.list_churn = churn
    colleague = ColleagueStops(sb)
    async with sandbox_client(sb, transport=colleague) as client:
        asked = ExportOptions(out_dir=out, objects=["contacts"], **options)  # type: ignore[arg-type]
        return await extract_objects(client, asked), colleague


@pytest.mark.parametrize("churn", [3, 40])
async def test_an_export_while_a_colleague_deletes_and_creates_holds_every_live_record_once(
    make_sandbox, tmp_path: Path, churn: int
) -> None:
    """3 a page: the pages' overlap (5 of 500) absorbs the shift. 40 a page: pages no longer
    join and are read again further back. Either way the file holds every record alive at
    the end once and no other: the records read, then deleted before the export ended (the
    last count is below the records read) are found by listing the ids again, confirmed by
    GET and left out; `_deleted` holds every record of the earlier file deleted since."""
    sb = make_sandbox(generate={"Contacts": 3000})
    await export(sb, tmp_path, "contacts")
    start = contact_ids(sb)
    result, colleague = await export_while_a_colleague_works(sb, tmp_path, churn)
    end = colleague.end
    assert end is not None and end == contact_ids(sb)
    written = read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()
    assert len(written) == len(set(written))
    assert set(written) == end
    deleted = set(pq.read_table(tmp_path / DELETED)["id"].to_pylist())
    assert deleted == start - end
    assert len(start - end) >= churn * 6  # a colleague at work before every page
    [contacts] = result.objects
    assert (contacts.rows, contacts.deleted) == (len(end), len(start - end))
    assert colleague.brief == 7  # 3,000 ids and more, 500 a page (less the overlap)
    assert manifest(tmp_path)["objects"]["contacts"]["rows"] == len(end)
    notices = result.stats["notices"]
    [left_out] = [n for n in notices if "before the export ended" in n]
    said = re.fullmatch(
        r"contacts: (\d+) record\(s\) read were deleted in Insightly before the export ended "
        r"\(the last count \(([\d,]+)\) was below the ([\d,]+) records read\); left out of the "
        r"file, found by listing the ids again and asking for each \((\d+) \+ (\d+) requests\)",
        left_out,
    )
    assert said is not None, left_out
    gone, count, held, listing, asked = (int(g.replace(",", "")) for g in said.groups())
    assert held == len(end) + gone and count < held
    assert listing == colleague.brief and asked == gone  # none was still there
    assert gone >= churn * 3  # half the colleague's deletions, among those read
    # a GET for each record of the earlier file no longer listed or read then deleted (the
    # colleague's own records too, made and deleted while the list was read)
    assert len(start - end) <= contacts.confirm_requests <= len(start - end) + gone
    shifted = [n for n in notices if "were deleted while" in n]
    assert shifted == (
        [
            "Contacts: records were deleted while the list was read (the page at 495 no longer "
            "joined the one before); the pages that shifted were read again"
        ]
        if churn > 5
        else []
    )


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_a_spreadsheet_export_while_a_colleague_deletes_holds_only_live_records(
    make_sandbox, tmp_path: Path, fmt: str
) -> None:
    """CSV and XLSX files cannot have rows taken out: the file is written again from the
    Parquet copy beside it, without the records deleted after they were read."""
    sb = make_sandbox(generate={"Contacts": 2000})
    _, colleague = await export_while_a_colleague_works(sb, tmp_path, 40, fmt=fmt)
    if fmt == "csv":
        written = pacsv.read_csv(tmp_path / "contacts.csv")["CONTACT_ID"].to_pylist()
    else:
        sheet = load_workbook(tmp_path / "contacts.xlsx", read_only=True).active
        column = [row[0] for row in sheet.iter_rows(values_only=True)]
        assert column[0] == "CONTACT_ID"
        written = column[1:]
    assert len(written) == len(set(written))
    assert set(written) == colleague.end
    assert not list(tmp_path.glob(".*partial*"))


async def test_a_lake_export_while_a_colleague_deletes_holds_only_live_records(
    make_sandbox, tmp_path: Path
) -> None:
    """The lake layout's snapshot and change file are made without the records deleted
    after they were read: none of them is a change either (a Delta table: test_delta.py)."""
    sb = make_sandbox(generate={"Contacts": 2000})
    await export(sb, tmp_path, "contacts", layout="lake")
    start = contact_ids(sb)
    result, colleague = await export_while_a_colleague_works(sb, tmp_path, 40, layout="lake")
    assert colleague.end is not None
    written = pq.read_table(tmp_path / "contacts" / "part-00000.parquet")["CONTACT_ID"]
    assert sorted(written.to_pylist()) == sorted(colleague.end)
    [contacts] = result.objects
    assert contacts.changed == 0  # the colleague edited nothing; what they made is new
    [changes] = (tmp_path / "contacts" / "_changes").glob("run=*/part-00000.parquet")
    changed = pq.read_table(changes).to_pylist()
    upserts = {c["CONTACT_ID"] for c in changed if c["_op"] == "upsert"}
    assert upserts <= colleague.end and len(upserts) == contacts.new > 0
    # a delete for each record of the earlier snapshot, none for the colleague's own records
    # made and deleted while the list was read, which no snapshot held
    deletes = {c["CONTACT_ID"] for c in changed if c["_op"] == "delete"}
    assert deletes == start - colleague.end


class CountsLow(httpx.AsyncBaseTransport):
    """The sandbox behind a server whose X-Total-Count is always 5 below what it lists."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner, self.brief = httpx.ASGITransport(app=sb.app), 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.brief += request.url.params.get("brief") == "true"
        response = await self.inner.handle_async_request(request)
        if "X-Total-Count" not in response.headers:
            return response
        headers = {"X-Total-Count": str(int(response.headers["X-Total-Count"]) - 5)}
        return httpx.Response(response.status_code, headers=headers, content=await response.aread())


async def test_a_count_below_the_records_listed_costs_one_listing_of_ids_and_says_so(
    make_sandbox, tmp_path: Path
) -> None:
    """Nothing was deleted: every record stays, and the requests the check took are said
    (a count that always lies would otherwise double every export's bill unseen)."""
    sb = make_sandbox(generate={"Contacts": 1200})
    server = CountsLow(sb)
    result = await export_through(sb, server, tmp_path)
    assert set(read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()) == contact_ids(sb)
    assert server.brief == 3  # the ids, 500 a request
    held = len(contact_ids(sb))
    assert held == 1420  # the sandbox's own 220 and 1,200 more
    assert [n for n in result.stats["notices"] if "count" in n] == [
        "contacts: the last count (1,415) was below the 1,420 records read, but listing the "
        "ids again (3 requests) found every one of them: none was left out"
    ]


async def test_a_budget_spent_by_the_check_of_deletions_stops_the_run(
    make_sandbox, tmp_path: Path
) -> None:
    """The run's last request allowed goes to the pages: the listing of ids the check needs
    stops the run (exit 75, resumed by the next), never a file published unchecked."""
    sb = make_sandbox(generate={"Contacts": 1200})
    with pytest.raises(QuotaError) as stopped:
        await export_through(sb, CountsLow(sb), tmp_path, max_requests=2 + 3)
    assert stopped.value.exit_code == 75
    assert "the budget of 5 requests for this run is spent" in str(stopped.value)
    assert not (tmp_path / "contacts.parquet").exists()
    assert json.loads((tmp_path / "_manifest.json").read_text())["stopped"]["exit_code"] == 75


class IdsRefused(CountsLow):
    """A count 5 low, and the listing of ids (`brief=true`) answered `answer`."""

    def __init__(self, sb: Sandbox, answer: httpx.Response) -> None:
        super().__init__(sb)
        self.answer = answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("brief") == "true":
            self.brief += 1
            return self.answer
        return await super().handle_async_request(request)


@pytest.mark.parametrize(
    ("answer", "warning"),
    [
        (
            httpx.Response(200, headers={"X-Total-Count": "0"}, json=[]),
            "contacts: the last count (1,415) was below the 1,420 records read, but listing "
            "the ids again left out 1,420 of them: not trusted, and none was left out of the "
            "file (the next export checks again)",
        ),
        (
            httpx.Response(403, json={"Message": "brief listings are not allowed"}),
            "contacts: the last count (1,415) was below the 1,420 records read; which were "
            "deleted since could not be checked (GET Contacts, HTTP 403: brief listings are not "
            "allowed), so the file holds every record read (the next export checks again)",
        ),
    ],
)
async def test_a_check_of_deletions_since_read_that_fails_never_costs_the_export(
    make_sandbox, tmp_path: Path, answer: httpx.Response, warning: str
) -> None:
    """A listing of ids that shows none of the records read is not worth a GET for each
    (1,420 requests on the word of a listing the count belies); one that is refused is not
    worth the export: either way the file is written as read, and the run says why."""
    sb = make_sandbox(generate={"Contacts": 1200})
    server = IdsRefused(sb, answer)
    result = await export_through(sb, server, tmp_path)
    assert set(read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()) == contact_ids(sb)
    assert result.warnings == [warning]
    # the account, its field definitions, the pages, and the refused or empty listing of ids
    assert (result.requests, server.brief) == (2 + 3 + 1, 1)


async def test_a_server_whose_order_changes_between_pages_is_not_trusted(
    make_sandbox,
) -> None:
    sb = make_sandbox(generate={"Contacts": 3000}, shuffle_lists=True)
    async with sandbox_client(sb) as client:
        with pytest.raises(UnstableOrder, match="order changes between requests"):
            async for _ in client.iter_pages("Contacts"):
                pass


async def test_a_deletion_is_journaled_once_though_the_run_stopped_before_the_file(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk when the object's file is published, after the deletion was journaled:
    the next run finds the deletion again (the old file still has the id) and the journal
    keeps it once; before, a crash between the two lost it or recorded it twice."""
    from insightly_etl.extract import export as exporting

    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    gone = sb.account.collections["Contacts"].ids[10]
    sb.account.delete("Contacts", gone)
    opened = exporting.open_writer

    def full_disk(path: Path, *args: object, **kwargs: object) -> object:
        writer = opened(path, *args, **kwargs)
        if path.name == "contacts.parquet":

            def commit() -> None:
                writer.abort()
                raise OSError(28, "No space left on device")

            writer.commit = commit
        return writer

    monkeypatch.setattr(exporting, "open_writer", full_disk)
    with pytest.raises(OSError, match="No space left"):
        await export(sb, tmp_path, "contacts")
    journal = pq.read_table(tmp_path / DELETED).to_pylist()
    assert [(d["object"], d["id"]) for d in journal] == [("contacts", gone)]
    assert gone in read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()  # the old file stands
    monkeypatch.setattr(exporting, "open_writer", opened)
    result = await export(sb, tmp_path, "contacts")
    assert [o.deleted for o in result.objects] == [1]
    journal = pq.read_table(tmp_path / DELETED).to_pylist()
    assert [(d["object"], d["id"]) for d in journal] == [("contacts", gone)]
    assert gone not in read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()


class Hides(httpx.AsyncBaseTransport):
    """The sandbox behind a listing that leaves one record out (its GET still answers)."""

    def __init__(self, sb: Sandbox, hidden: int) -> None:
        self.inner, self.hidden = httpx.ASGITransport(app=sb.app), hidden

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/v3.1/Contacts":
            return response
        records = json.loads(await response.aread())
        kept = [r for r in records if r["CONTACT_ID"] != self.hidden]
        headers = {"X-Total-Count": response.headers.get("X-Total-Count", str(len(kept)))}
        return httpx.Response(response.status_code, headers=headers, json=kept)


async def export_through(
    sb: Sandbox, transport: httpx.AsyncBaseTransport, out: Path, **client_options: Any
) -> object:
    """A contacts export with `transport` (a proxy of the test's) in front of the sandbox."""
    async with sandbox_client(sb, transport=transport, **client_options) as client:
        return await extract_objects(client, ExportOptions(out_dir=out, objects=["contacts"]))


async def test_a_record_the_listing_missed_is_asked_for_and_written_not_deleted(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    hidden = sb.account.collections["Contacts"].ids[42]
    result = await export_through(sb, Hides(sb, hidden), tmp_path)
    written = read(tmp_path, "contacts")["CONTACT_ID"].to_pylist()
    assert hidden in written and len(written) == len(set(written)) == 220
    assert not (tmp_path / DELETED).exists()
    assert result.warnings == [
        "contacts: 1 of 1 record(s) the listing no longer shows are still in Insightly (0 this "
        "user may not read, 1 the listing missed, now written): not recorded as deleted"
    ]


def test_an_export_against_a_server_of_unstable_order_stops_with_a_clear_error(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(generate={"Contacts": 3000}, shuffle_lists=True)
    result = run(sb, "export", "contacts", "--out", str(tmp_path))
    assert result.exit_code == 69
    assert result.stderr == (
        "Error: Contacts: the page at 495 lists records already read in another order than "
        "before; the server's order changes between requests, so paging by offset cannot be "
        "trusted to see every record, and nothing read is used\n"
        "Hint: Run again when the account is quiet; if it happens every time, report it.\n"
    )
    assert not (tmp_path / "contacts.parquet").exists()


async def test_planning_by_listing_while_a_colleague_works_creates_no_duplicate(
    make_sandbox, tmp_path: Path
) -> None:
    """400 rows keyed by e-mail against 3,220 contacts: the import lists them (7 pages are
    cheaper than 400 searches) while a colleague deletes and creates 40 before every page.
    Every row finds its contact; none is created again."""
    sb = make_sandbox(generate={"Contacts": 3000})
    contacts = sb.account.collections["Contacts"]
    emails = [contacts.records[i]["EMAIL_ADDRESS"] for i in contacts.ids[100:500]]
    assert len(set(emails)) == 400 and all(emails)
    rows = "".join(f"Row {n},{e}\n" for n, e in enumerate(emails))
    file = write(tmp_path, "people.csv", "Name,Email\n" + rows)
    mapping = write(tmp_path, "people.yaml", MATCH_EMAIL)
    sb.config.list_churn = 40
    result = await run_import(sb, file, mapping)
    assert result.counts.created == 0
    by_email: dict[str, int] = {}
    for rid in contacts.ids:
        email = contacts.records[rid]["EMAIL_ADDRESS"]
        by_email[email] = by_email.get(email, 0) + 1
    assert all(by_email[e] == 1 for e in emails)
    # a record read, then deleted and made again by the colleague, was listed twice: asked
    # again, only the one still there is the match (no "2 existing records have this …")
    cp = Checkpoint.read_only(tmp_path / "people.csv.checkpoint.sqlite")
    messages = [e.message or "" for e in cp.rows.states().values()]
    cp.close()
    assert not [m for m in messages if "existing records have this" in m]


@pytest.mark.parametrize(
    ("form", "written"),
    [
        ("iso-z", "2026-11-20T12:00:00Z"),
        ("offset", "2026-11-20T12:00:00+00:00"),
        ("fraction", "2026-11-20T12:00:00.250Z"),
    ],
)
async def test_every_date_form_the_server_may_send_is_read_as_the_moment_it_is(
    make_sandbox, tmp_path: Path, form: str, written: str
) -> None:
    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0], date_form=form)
    async with asgi_client(sb) as c:
        answer = (await c.put("Contacts", json={"CONTACT_ID": 2002, "TITLE": "Now"})).json()
    assert answer["DATE_UPDATED_UTC"] == written
    await export(sb, tmp_path, "contacts")
    table = read(tmp_path, "contacts")
    assert table["DATE_UPDATED_UTC"].null_count == 0
    rows = {r["CONTACT_ID"]: r for r in table.to_pylist()}
    assert rows[2002]["DATE_UPDATED_UTC"] == datetime.fromisoformat(written)  # .250 kept
    assert manifest(tmp_path)["objects"]["contacts"]["high_water_mark"] == "2026-11-20 12:00:00"
    clock[0] += timedelta(hours=1)
    async with asgi_client(sb) as c:
        await c.put("Contacts", json={"CONTACT_ID": 2003, "TITLE": "Later"})
    result = await export(sb, tmp_path, "contacts", incremental=True)
    assert [(o.status, o.changed) for o in result.objects] == [("incremental", 1)]
    assert manifest(tmp_path)["objects"]["contacts"]["high_water_mark"] == "2026-11-20 13:00:00"


async def test_without_a_date_header_the_mark_comes_from_the_server_s_stamps_not_our_clock(
    make_sandbox, tmp_path: Path
) -> None:
    """The server's clock is 10 minutes behind ours and it sends no Date header. While the
    export reads, a colleague edits a contact on a page already read, then one on a page not
    yet read. The mark must stay before the first edit, or the next incremental run misses it
    for good: our clock would cap it 10 minutes late; the first page's newest stamp, written
    before the scan began, caps it in time."""
    clock = [datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)]
    sb = make_sandbox(generate={"Contacts": 3000}, date_header=False, now=lambda: clock[0])
    ids = sb.account.collections["Contacts"].ids
    sb.account.update("Contacts", {"CONTACT_ID": ids[1], "TITLE": "Before"})  # on page 1
    app = sb.app

    async def colleague(scope, receive, send):  # type: ignore[no-untyped-def]
        if b"skip=495" in scope.get("query_string", b""):
            clock[0] += timedelta(seconds=5)
            sb.account.update("Contacts", {"CONTACT_ID": ids[2], "TITLE": "Edited, page 1"})
            clock[0] += timedelta(seconds=5)
            sb.account.update("Contacts", {"CONTACT_ID": ids[-1], "TITLE": "Edited, last page"})
        await app(scope, receive, send)

    await export_through(sb, httpx.ASGITransport(app=colleague), tmp_path)
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert rows[ids[-1]]["TITLE"] == "Edited, last page"
    assert rows[ids[2]]["TITLE"] != "Edited, page 1"  # read before the edit
    await export(sb, tmp_path, "contacts", incremental=True)
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert rows[ids[2]]["TITLE"] == "Edited, page 1"


async def test_one_record_stamped_in_the_future_never_holds_the_mark_past_later_edits(
    make_sandbox, tmp_path
) -> None:
    """No Date header, and one record stamped 20 hours ahead: the first page's newest stamp
    became the mark, and the next incremental run asked for changes after it, missing every
    edit made before (exit 0, "0 changed")."""
    sb = make_sandbox(date_header=False)
    contacts = sb.account.collections["Contacts"]
    future = (datetime.now(UTC) + timedelta(hours=20)).strftime("%Y-%m-%d %H:%M:%S")
    contacts.put({**contacts.records[2001], "DATE_UPDATED_UTC": future})
    first = await export(sb, tmp_path, "contacts")
    assert [w for w in first.warnings if "later than this machine's clock" in w] == [
        f"contacts: a record's DATE_UPDATED_UTC ({future}) is later than this machine's clock "
        "by more than 10 minutes, and the server sends no Date header: the mark is held at "
        f"{json.loads((tmp_path / '_manifest.json').read_text())['objects']['contacts']['high_water_mark']}"
        ", so the next incremental run reads what changed since then again"
    ]
    sb.account.update("Contacts", {"CONTACT_ID": 2005, "FIRST_NAME": "Edited"})
    await export(sb, tmp_path, "contacts", incremental=True)
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert rows[2005]["FIRST_NAME"] == "Edited"


async def test_a_clock_far_from_the_server_s_is_warned_about_once(make_sandbox, tmp_path) -> None:
    sb = make_sandbox(now=lambda: datetime.now(UTC) - timedelta(minutes=10))
    result = await export(sb, tmp_path, "contacts", "organisations")
    warned = [
        "this machine's clock is 10 min ahead of the server's; the server's time is used for "
        "marks and reconciliation"
    ]
    assert [n for n in result.stats["notices"] if "clock" in n] == warned
    # the import says so too (its accounting was never filled, so it said nothing)
    file = write(tmp_path, "p.csv", "Name,Surname,Email\nAda,L,ada@clock.example\n")
    imported = await run_import(sb, file, write(tmp_path, "m.yaml", KEYED))
    assert [n for n in imported.stats["notices"] if "clock" in n] == warned


UNKEYED = (
    "object: contacts\ncolumns:\n  Name: FIRST_NAME\n  Surname: LAST_NAME\n  Email: EMAIL_ADDRESS\n"
)
KEYED = UNKEYED + "match: {column: Email, field: EMAIL_ADDRESS}\n"


@pytest.mark.slow
@pytest.mark.parametrize("mapping_text", [UNKEYED, KEYED], ids=["unkeyed", "keyed"])
async def test_lost_answers_with_a_lagging_search_and_a_normalising_server_make_each_row_once(
    make_sandbox, tmp_path: Path, mapping_text: str
) -> None:
    """40 rows; a third of the writes fail (5xx, slow, or applied and the answer dropped); the
    search index lags 20 s; the server lower-cases e-mails and collapses spaces. Before, such
    an import made 57 records. A lost create is found among the newest records (a list does
    not lag), the server's changes allowed for; one not found (a 500 may or may not have been
    applied) stays unknown and is not sent again until, 15 minutes on by the server's clock,
    it certainly was not made. 40 records, one per row, each held by its row: undoable."""
    clock = [datetime.now(UTC).replace(microsecond=0)]
    sb = make_sandbox(fault_rate=0.3, fault_seed=7, fault_slow_s=0.05, now=lambda: clock[0])
    sb.config.search_lag_s, sb.config.normalise_writes = 20.0, True
    rows = "".join(f"Row{n},Lost  {n},Row{n}.Lost@Example.com\n" for n in range(40))
    file = write(tmp_path, "people.csv", "Name,Surname,Email\n" + rows)
    mapping = write(tmp_path, "people.yaml", mapping_text)
    before = contact_ids(sb)
    result = await run_import(sb, file, mapping)
    assert sb.faults_injected["drop"] >= 3  # answers really were lost after the write
    assert result.counts.created + result.counts.left == 40 and result.counts.failed == 0
    unknown = result.counts.left
    assert unknown and len(contact_ids(sb) - before) == 40 - unknown  # none made twice
    again = await run_import(sb, file, mapping)  # at once: still unknown, none sent
    assert (again.counts.created, again.counts.left) == (40 - unknown, unknown)
    assert len(contact_ids(sb) - before) == 40 - unknown
    for _ in range(5):  # later, by the server's clock: not found is not made
        clock[0] += timedelta(minutes=16)
        result = await run_import(sb, file, mapping)
        if not result.counts.left:
            break
    made = [sb.account.collections["Contacts"].records[i] for i in contact_ids(sb) - before]
    assert sorted(r["EMAIL_ADDRESS"] for r in made) == sorted(
        f"row{n}.lost@example.com" for n in range(40)
    )
    assert (result.counts.created, result.counts.left, result.counts.failed) == (40, 0, 0)
    cp = Checkpoint.read_only(tmp_path / "people.csv.checkpoint.sqlite")
    held = sorted(e.record_id for e in cp.rows.states().values())
    cp.close()
    assert held == sorted(contact_ids(sb) - before)


class LosesCreates(httpx.AsyncBaseTransport):
    """The sandbox behind a network that loses every POST's answer: `applied` forwards the
    POST first (the record is made), else the request never arrives. With `blind`, lists and
    searches answer 503 from the first POST on, so the run cannot look for what it made."""

    def __init__(self, sb: Sandbox, *, applied: bool, blind: bool = False) -> None:
        self.inner, self.applied = httpx.ASGITransport(app=sb.app), applied
        self.blinds, self.blind = blind, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.blind = self.blinds
            if self.applied:
                await self.inner.handle_async_request(request)
            raise httpx.ReadError("connection reset by peer", request=request)
        if self.blind and request.method == "GET" and request.url.path.startswith("/v3.1/Contacts"):
            return httpx.Response(503, json={"Message": "Service Unavailable"})
        return await self.inner.handle_async_request(request)


def run_through(transport: httpx.AsyncBaseTransport, *args: str) -> object:
    from insightly_etl.cli import main
    from insightly_etl.cli.common import Context
    from tests.api.test_cli import ENV
    from tests.conftest import cli_runner

    return cli_runner().invoke(main, list(args), obj=Context(transport=transport), env=ENV)


PEOPLE = "Name,Email\nAda,ada@lost.example\nBob,bob@lost.example\nCy,cy@lost.example\n"


@pytest.mark.slow
def test_reconcile_finds_the_records_lost_answers_made_and_undo_deletes_them(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", PEOPLE)
    mapping = write(tmp_path, "m.yaml", UNKEYED.replace("  Surname: LAST_NAME\n", ""))
    before = contact_ids(sb)
    lossy = LosesCreates(sb, applied=True, blind=True)
    first = run_through(lossy, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert len(contact_ids(sb) - before) == 3  # made, though no answer said so
    assert "p.csv -> contacts: 0 created" in first.stdout and ", 3 left;" in first.stdout
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    assert (
        "3 rows' answers were lost and what they made is not found yet (a search index may "
        f"lag); they are not sent again. Settle them later with: insightly-etl reconcile "
        f"{checkpoint}\n"
    ) in first.stderr
    settled = run(sb, "reconcile", str(checkpoint))
    assert (settled.exit_code, settled.stdout) == (
        0,
        "p.csv.checkpoint.sqlite: 3 found (done, with their records), 0 never made (planned "
        "again: the next import run sends them), 0 still unknown\n",
    )
    again = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert again.exit_code == 0 and "p.csv -> contacts: 3 created" in again.stdout
    assert len(contact_ids(sb) - before) == 3
    undone = run(sb, "undo", str(checkpoint))
    assert undone.exit_code == 0, undone.output
    assert contact_ids(sb) == before


@pytest.mark.slow
def test_reconcile_says_not_yet_then_plans_again_what_was_never_made(
    make_sandbox, tmp_path: Path
) -> None:
    clock = [datetime.now(UTC).replace(microsecond=0)]
    sb = make_sandbox(now=lambda: clock[0])
    file = write(tmp_path, "p.csv", PEOPLE)
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    before = contact_ids(sb)
    lossy = LosesCreates(sb, applied=False)
    first = run_through(lossy, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert first.exit_code == 1 and ", 3 left;" in first.stdout
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    soon = run(sb, "reconcile", str(checkpoint))
    assert soon.exit_code == 75
    assert soon.stdout.endswith(
        "0 found (done, with their records), 0 never made (planned "
        "again: the next import run sends them), 3 still unknown\n"
    )
    assert soon.stderr == (
        "Still unknown: sent less than 15 minutes ago (by the server's clock), too recently to "
        "say it was never made. Run the same command again later (the import's "
        "NAME.errors.csv lists them, state unknown, as of its last run).\n"
    )
    held = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert ", 3 left;" in held.stdout and contact_ids(sb) == before  # not sent again
    clock[0] += timedelta(minutes=16)
    later = run(sb, "reconcile", str(checkpoint))
    assert later.exit_code == 0 and "3 never made" in later.stdout
    done = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert done.exit_code == 0 and "p.csv -> contacts: 3 created" in done.stdout
    assert len(contact_ids(sb) - before) == 3


def test_results_and_lock_files_never_follow_planted_links(make_sandbox, tmp_path: Path) -> None:
    """Someone who may write to the results folder plants symlinks under the names the tool
    writes through: customer data must not reach their targets, nor a lock truncate one."""
    sb = make_sandbox()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@links.example\n=1+1,bad\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    for name in (".p.plan.csv.partial", ".p.errors.csv.partial", ".p.success.csv.partial"):
        (tmp_path / name).symlink_to(victim)
    result = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert result.exit_code == 1, result.output  # the bad row
    assert victim.read_text() == "precious\n"
    assert (
        (tmp_path / "p.success.csv")
        .read_text(encoding="utf-8-sig")
        .startswith("line,action,record_id\n2,created,")
    )
    assert not list(tmp_path.glob(".*.partial"))
    out = tmp_path / "out"
    out.mkdir()
    (out / ".contacts.parquet.partial").symlink_to(victim)
    assert run(sb, "export", "contacts", "--out", str(out)).exit_code == 0
    assert victim.read_text() == "precious\n" and len(read(out, "contacts")) == 221
    lock = tmp_path / "p.csv.checkpoint.sqlite.lock"
    lock.unlink()
    lock.symlink_to(victim)
    refused = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert refused.exit_code == 2
    assert f"Error: {lock} is a symbolic link; a run's lock is never written through one" in (
        refused.stderr
    )
    assert victim.read_text() == "precious\n"


def test_a_checkpoint_with_another_name_by_hard_link_is_refused(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@hard.example\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    assert run(sb, "import", str(file), "--mapping", str(mapping), "--quiet").exit_code == 0
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    other = tmp_path / "other.sqlite"
    other.hardlink_to(checkpoint)
    refused = run(
        sb, "import", str(file), "--mapping", str(mapping), "--checkpoint", str(other), "--quiet"
    )
    assert refused.exit_code == 2
    assert (
        f"Error: {other} has 2 names (hard links): a run under one would not see a run under "
        "another, and both would send every row"
    ) in refused.stderr


def test_the_time_estimate_follows_the_rate_learned_of_the_account(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@rate.example\n")
    assert run(sb, "import", str(file), "--mapping", str(mapping), "--quiet").exit_code == 0
    cp = Checkpoint(tmp_path / "p.csv.checkpoint.sqlite")
    cp.remember(learned_limits='{"rate": 2.0}')  # what an earlier run met: 2/s
    cp.close()
    rows = "".join(f"P{n},p{n}@rate.example\n" for n in range(20))
    write(tmp_path, "p.csv", "Name,Email\nAda,ada@rate.example\n" + rows)
    preview = run(sb, "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert "this run sends up to 20, about 10s." in preview.stderr, preview.stderr


class SortsKeys(httpx.AsyncBaseTransport):
    """The sandbox behind a proxy that writes every JSON object with its keys sorted: the id
    is no longer each record's first field."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        headers = {
            k: v for k, v in response.headers.items() if k.lower() in ("x-total-count", "date")
        }
        data = json.loads(body) if body else None
        return httpx.Response(
            response.status_code, headers=headers, content=json.dumps(data, sort_keys=True).encode()
        )


async def test_records_are_known_by_their_id_field_whatever_order_their_keys_come_in(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(generate={"Contacts": 1000})
    await export_through(sb, SortsKeys(sb), tmp_path)
    assert len(read(tmp_path, "contacts")) == 1220


class OtherRecord(Hides):
    """A listing that leaves one record out, and a GET of it that answers another record."""

    def __init__(self, sb: Sandbox, hidden: int, other: int) -> None:
        super().__init__(sb, hidden)
        self.other = other

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/v3.1/Contacts/{self.hidden}":
            url = str(request.url).replace(str(self.hidden), str(self.other))
            request = httpx.Request("GET", url, headers=request.headers)
        return await super().handle_async_request(request)


async def test_a_deletion_check_answered_with_another_record_records_nothing(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    ids = sb.account.collections["Contacts"].ids
    result = await export_through(sb, OtherRecord(sb, ids[5], ids[6]), tmp_path)
    assert not (tmp_path / DELETED).exists()
    assert result.warnings == [
        "contacts: 1 record(s) the listing no longer shows were answered with another record "
        "than the one asked for, or with a 404 that is not the API's (a proxy's or a "
        "gateway's page): not recorded as deleted, not written",
        # and the count says so: the file lacks one
        "contacts: the last count (220) was above the 219 records read, and listing the ids "
        "again found no more: 1 record(s) may be missing from the file (ones this user may not "
        "read, or a server whose pages come short)",
    ]


class GatewayPage(Hides):
    """A listing that leaves one record out, and a GET of it that a gateway answers with its
    own HTML 404 page (nginx's), not the API's `{"Message": …}`."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/v3.1/Contacts/{self.hidden}":
            page = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>"
            return httpx.Response(404, headers={"Content-Type": "text/html"}, text=page)
        return await super().handle_async_request(request)


async def test_a_404_that_is_not_the_api_s_answer_is_no_deletion(
    make_sandbox, tmp_path: Path
) -> None:
    """A gateway's 404 page for every record was taken for Insightly's word: with a listing
    that came back empty, all 1,520 contacts went into _deleted.parquet (exit 0)."""
    sb = make_sandbox()
    await export(sb, tmp_path, "contacts")
    hidden = sb.account.collections["Contacts"].ids[7]
    result = await export_through(sb, GatewayPage(sb, hidden), tmp_path)
    assert not (tmp_path / DELETED).exists()
    assert result.warnings[0] == (
        "contacts: 1 record(s) the listing no longer shows were answered with another record "
        "than the one asked for, or with a 404 that is not the API's (a proxy's or a "
        "gateway's page): not recorded as deleted, not written"
    )


def test_a_damaged_deletion_journal_stops_only_a_run_that_must_write_to_it(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    assert run(sb, "export", "contacts", "--out", str(tmp_path)).exit_code == 0
    (tmp_path / DELETED).write_text("garbage")
    # nothing deleted: nothing to journal, the damaged file is not read
    assert run(sb, "export", "contacts", "--out", str(tmp_path)).exit_code == 0
    sb.account.delete("Contacts", sb.account.collections["Contacts"].ids[3])
    result = run(sb, "export", "contacts", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert f"Error: {tmp_path / DELETED} cannot be read (" in result.stderr
    assert "Hint: Move the damaged file away" in result.stderr


TWINS = "Name,Surname,Phone\nTwin,Smith,+44 1\nTwin,Smith,+44 2\nAda,Byron,+44 3\n"
NAMES = "object: contacts\ncolumns:\n  Name: FIRST_NAME\n  Surname: LAST_NAME\n  Phone: PHONE\n"


@pytest.mark.slow
async def test_two_rows_alike_whose_answers_were_lost_each_find_their_own_record(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "t.csv", TWINS)
    mapping = write(tmp_path, "t.yaml", NAMES)
    result = await run_import(sb, file, mapping, transport=lambda s: LosesCreates(s, applied=True))
    assert (result.counts.created, result.counts.left) == (3, 0)
    cp = Checkpoint.read_only(tmp_path / "t.csv.checkpoint.sqlite")
    phone = {
        e.line: sb.account.collections["Contacts"].records[e.record_id]["PHONE"]
        for e in cp.rows.states().values()
    }
    cp.close()
    assert phone == {2: "+44 1", 3: "+44 2", 4: "+44 3"}


@pytest.mark.slow
def test_rows_alike_in_every_field_both_lost_are_never_sent_again(
    make_sandbox, tmp_path: Path
) -> None:
    clock = [datetime.now(UTC).replace(microsecond=0)]
    sb = make_sandbox(now=lambda: clock[0])
    same = "Name,Surname,Phone\nTwin,Smith,+44 1\nTwin,Smith,+44 1\n"
    file = write(tmp_path, "t.csv", same)
    mapping = write(tmp_path, "t.yaml", NAMES)
    lossy = LosesCreates(sb, applied=True, blind=True)
    run_through(lossy, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert len(sb.account.collections["Contacts"].ids) == 222
    clock[0] += timedelta(minutes=16)
    settled = run(sb, "reconcile", str(tmp_path / "t.csv.checkpoint.sqlite"))
    assert settled.exit_code == 1
    assert "2 cannot be told: records resemble them equally, or in part" in settled.stdout
    again = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert ", 2 left;" in again.stdout
    assert len(sb.account.collections["Contacts"].ids) == 222  # not made twice


@pytest.mark.slow
def test_a_lost_create_a_colleague_edited_since_is_never_called_never_made(
    make_sandbox, tmp_path: Path
) -> None:
    """The creates were made, their answers lost; a colleague then renamed Jon to Jonathan and
    gave Aria a new e-mail. Fifteen minutes on, neither resembled what was sent in full, so
    both were "never made" and the next run made Jon and Aria again. (A surname alone is no
    evidence: an Aria renamed Arya with a new e-mail is not told from another Stark.)"""
    clock = [datetime.now(UTC).replace(microsecond=0)]
    sb = make_sandbox(now=lambda: clock[0])
    file = write(
        tmp_path,
        "p.csv",
        "Name,Surname,Email\nJon,Snow,jon@lost.example\nAria,Stark,aria@lost.example\n",
    )
    mapping = write(tmp_path, "m.yaml", UNKEYED)
    before = contact_ids(sb)
    lossy = LosesCreates(sb, applied=True, blind=True)
    first = run_through(lossy, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert first.exit_code == 1 and ", 2 left;" in first.stdout
    jon, aria = sorted(contact_ids(sb) - before)
    clock[0] += timedelta(seconds=30)
    sb.account.update("Contacts", {"CONTACT_ID": jon, "FIRST_NAME": "Jonathan"})  # his e-mail kept
    edit = {"CONTACT_ID": aria, "EMAIL_ADDRESS": "arya@lost.example"}  # her whole name kept
    sb.account.update("Contacts", edit)
    clock[0] += timedelta(minutes=16)
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    later = run(sb, "reconcile", str(checkpoint))
    assert later.exit_code == 1, later.output  # a person must look
    assert "0 never made" in later.stdout
    again = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert again.exit_code == 1 and ", 2 left;" in again.stdout
    assert contact_ids(sb) - before == {jon, aria}  # no second Jon, no second Aria
    errors = (tmp_path / "p.errors.csv").read_text(encoding="utf-8-sig")
    assert f"no record holds all it sent, but {jon} (made as it was sent)" in errors
    assert f"no record holds all it sent, but {aria} (made as it was sent)" in errors


@pytest.mark.slow
def test_without_a_date_header_reconcile_does_not_take_our_clock_for_the_server_s(
    make_sandbox, tmp_path: Path
) -> None:
    """This machine's clock is 20 minutes ahead and the server sends no Date: by our clock
    the lost creates are old enough to be "never made"; by the server's they were just sent."""
    sb = make_sandbox(date_header=False, now=lambda: datetime.now(UTC) - timedelta(minutes=20))
    file = write(tmp_path, "p.csv", PEOPLE)
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    run_through(LosesCreates(sb, applied=False), "import", str(file), "--mapping", str(mapping))
    soon = run(sb, "reconcile", str(tmp_path / "p.csv.checkpoint.sqlite"))
    assert soon.exit_code == 75 and "3 still unknown" in soon.stdout


@pytest.mark.parametrize("clock", ["ours", "20 min behind"])
async def test_a_colleagues_record_made_before_the_run_is_never_taken_for_a_lost_create(
    make_sandbox, tmp_path: Path, clock: str
) -> None:
    """A colleague makes Jaime just before the import; the import's own create of Jaime never
    arrives. With no Date header and this machine's clock 20 minutes behind, the colleague's
    record looked made after the create was sent: booked as the row's, and undo deleted it."""
    behind = timedelta(minutes=20 if clock != "ours" else 0)
    sb = make_sandbox(date_header=False, now=lambda: datetime.now(UTC) + behind)
    colleague = sb.account.create(
        "Contacts",
        {"FIRST_NAME": "Jaime", "LAST_NAME": "Baratheon", "EMAIL_ADDRESS": "jaime@lost.example"},
    )
    file = write(tmp_path, "p.csv", "Name,Surname,Email\nJaime,Baratheon,jaime@lost.example\n")
    mapping = write(tmp_path, "m.yaml", UNKEYED)
    result = await run_import(sb, file, mapping, transport=lambda s: LosesCreates(s, applied=False))
    assert (result.counts.created, result.counts.unknown) == (0, 1)
    cp = Checkpoint.read_only(tmp_path / "p.csv.checkpoint.sqlite")
    (entry,) = cp.rows.states().values()
    cp.close()
    assert entry.record_id is None
    with pytest.raises(CheckpointError, match=r"1 row\(s\) of this import have an unknown outcome"):
        await run_undo(sb, tmp_path / "p.csv.checkpoint.sqlite")  # the colleague's kept
    assert colleague["CONTACT_ID"] in contact_ids(sb)


class CreatesAnswerAs(httpx.AsyncBaseTransport):
    """The sandbox behind a proxy that applies every POST but answers it as the record made,
    under another id (`rid`), or with its creation time set back (`made`)."""

    def __init__(self, sb: Sandbox, *, rid: int | None = None, made: str | None = None) -> None:
        self.inner, self.rid, self.made = httpx.ASGITransport(app=sb.app), rid, made

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.method != "POST":
            return answer
        record = json.loads(await answer.aread())
        record["CONTACT_ID"] = self.rid or record["CONTACT_ID"]
        record["DATE_CREATED_UTC"] = self.made or record["DATE_CREATED_UTC"]
        return httpx.Response(answer.status_code, json=record)


@pytest.mark.slow
@pytest.mark.parametrize(
    "answer",
    [{"rid": 2005}, {"rid": 99999, "made": "2020-01-01 00:00:00"}],
    ids=["existing id", "made long ago"],
)
async def test_a_create_answered_with_a_record_older_than_the_run_is_not_booked_against_it(
    make_sandbox, tmp_path: Path, answer: dict[str, object]
) -> None:
    """Booked against 2005 (a person already in the account), the next run would update her
    with the row's values and undo would delete her; 99999, made years ago, is no record this
    run made either."""
    sb = make_sandbox()
    olga = dict(sb.account.collections["Contacts"].records[2005])
    file = write(tmp_path, "people.csv", "Name,Email\nQuinn,quinn@new.example\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    result = await run_import(sb, file, mapping, transport=lambda s: CreatesAnswerAs(s, **answer))
    cp = Checkpoint.read_only(tmp_path / "people.csv.checkpoint.sqlite")
    (entry,) = cp.rows.states().values()
    cp.close()
    made = [
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] == "quinn@new.example"
    ]
    assert len(made) == 1
    # the answer is doubted; the record is found by its key and booked as what it is
    assert (entry.record_id, result.counts.created) == (made[0]["CONTACT_ID"], 1)
    assert sb.account.collections["Contacts"].records[2005] == olga


class HugeIds(httpx.AsyncBaseTransport):
    """Listings and searches whose records have ids past 64 bits."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.method != "GET" or not request.url.path.startswith("/v3.1/Contacts"):
            return answer
        data = json.loads(await answer.aread())
        for record in data if isinstance(data, list) else [data]:
            record["CONTACT_ID"] = 10**30
        return httpx.Response(
            answer.status_code,
            headers={"X-Total-Count": answer.headers.get("X-Total-Count", "0")},
            json=data,
        )


async def test_records_whose_ids_are_past_64_bits_are_not_taken_for_the_rows(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    email = sb.account.collections["Contacts"].records[2001]["EMAIL_ADDRESS"]
    file = write(tmp_path, "upd.csv", f"Name,Email\nSamir,{email}\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    result = await run_import(sb, file, mapping, dry_run=True, transport=HugeIds)
    assert result.plan is not None and (result.plan.updates, result.plan.failed) == (0, 1)
    errors = (tmp_path / "upd.errors.csv").read_text(encoding="utf-8-sig")
    assert "2,failed,,the matching record has no integer id in Insightly's answer,Samir," in errors


class EmptyAfterTheFirstPage(httpx.AsyncBaseTransport):
    """Every contacts page after the first comes back empty, with the true count."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.url.path == "/v3.1/Contacts" and request.url.params.get("skip", "0") != "0":
            await answer.aread()
            return httpx.Response(
                200, headers={"X-Total-Count": answer.headers["X-Total-Count"]}, json=[]
            )
        return answer


async def test_empty_pages_where_the_count_says_more_stop_the_export_and_the_import(
    make_sandbox, tmp_path: Path
) -> None:
    """Never a short export, never a duplicate of a record the listing did not show."""
    sb = make_sandbox(generate={"Contacts": 1300})
    with pytest.raises(UnstableOrder) as info:
        await export_through(sb, EmptyAfterTheFirstPage(sb), tmp_path / "out")
    assert str(info.value) == (
        "Contacts: 500 records read, but the count is 1,520 and the page at 495 came back "
        "empty; the list is not complete, and nothing read is used"
    )
    assert not (tmp_path / "out" / "contacts.parquet").exists()
    late = sb.account.collections["Contacts"].records[sb.account.collections["Contacts"].ids[-1]]
    file = write(
        tmp_path,
        "u.csv",
        f"Name,Email\nUlla,{late['EMAIL_ADDRESS'].upper()}\nA,a@b.example\nB,b@b.example\n",
    )
    before = len(sb.account.collections["Contacts"].ids)
    with pytest.raises(UnstableOrder):
        await run_import(
            sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL), transport=EmptyAfterTheFirstPage
        )
    assert len(sb.account.collections["Contacts"].ids) == before


class NoIds(httpx.AsyncBaseTransport):
    """Contacts listed with an id that is no id: null, a fraction, true."""

    def __init__(self, sb: Sandbox, value: object) -> None:
        self.inner, self.value = httpx.ASGITransport(app=sb.app), value

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.url.path != "/v3.1/Contacts":
            return answer
        records = json.loads(await answer.aread())
        for record in records:
            record["CONTACT_ID"] = self.value
        headers = {"X-Total-Count": answer.headers["X-Total-Count"]}
        return httpx.Response(200, headers=headers, json=records)


@pytest.mark.parametrize("value", [None, 2001.5, True])
async def test_records_listed_without_ids_stop_the_export_at_the_first_page(
    make_sandbox, tmp_path: Path, value: object
) -> None:
    sb = make_sandbox()
    with pytest.raises(UnstableOrder) as info:
        await export_through(sb, NoIds(sb, value), tmp_path)
    assert str(info.value) == (
        "Contacts: none of the 220 records of the page at 0 has a CONTACT_ID; records without "
        "ids cannot be paged, nor written to a file of records, and nothing read is used"
    )
    assert sum(n for (m, p, _), n in sb.stats.items() if p.startswith("/v3.1/Contacts")) == 1


class ShortPages(httpx.AsyncBaseTransport):
    """The sandbox behind a server whose pages of contacts come 7 records short (of the
    listings with whole records only, or of every listing, the ids' too)."""

    def __init__(self, sb: Sandbox, *, ids_too: bool, short: int = 7) -> None:
        self.inner, self.ids_too, self.short = httpx.ASGITransport(app=sb.app), ids_too, short

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        brief = request.url.params.get("brief") == "true"
        if (
            not request.url.path.endswith("/Contacts")
            or "X-Total-Count" not in response.headers
            or (brief and not self.ids_too)
        ):
            return response
        records = json.loads(await response.aread())
        headers = {"X-Total-Count": response.headers["X-Total-Count"]}
        return httpx.Response(response.status_code, headers=headers, json=records[: -self.short])


async def test_records_a_short_page_left_out_are_found_or_warned_of(
    make_sandbox, tmp_path: Path
) -> None:
    """Pages 7 records short of what was asked (the count says 2,220): 7 records were
    missing from the file, with exit 0 and two notes. One more listing of the ids finds
    them, and each one's GET brings it; where the ids' listing is short too, a warning says
    how many may be missing."""
    sb = make_sandbox(generate={"Contacts": 2000})
    result = await export_through(sb, ShortPages(sb, ids_too=False), tmp_path / "found")
    assert set(read(tmp_path / "found", "contacts")["CONTACT_ID"].to_pylist()) == contact_ids(sb)
    assert result.warnings == []
    assert result.stats["notices"][-1] == (
        "contacts: 7 record(s) the pages left out were found (the last count (2,220) was above "
        "the 2,213 records read) by listing the ids again and asking for each (5 + 7 "
        "requests); written"
    )
    result = await export_through(sb, ShortPages(sb, ids_too=True), tmp_path / "short")
    assert read(tmp_path / "short", "contacts").num_rows == 2213
    assert result.warnings == [
        "contacts: the last count (2,220) was above the 2,213 records read, and listing the ids "
        "again found no more: 7 record(s) may be missing from the file (ones this user may not "
        "read, or a server whose pages come short)"
    ]
    # far more left out than the records read make plausible: not a GET each
    result = await export_through(sb, ShortPages(sb, ids_too=False, short=100), tmp_path / "many")
    assert result.warnings == [
        "contacts: the last count (2,220) was above the 2,120 records read, but listing the ids "
        "again gave 100 not read: not trusted, none asked for, and the file may lack records "
        "(the next export checks again)"
    ]
    assert sb.stats["GET", "/v3.1/Contacts/{id}", 200] == 7  # the first run's 7, no more


class CutEmoji(httpx.AsyncBaseTransport):
    """The sandbox behind a server that cut an emoji in a name in two: `\\ud83d` alone in the
    JSON (valid JSON, which .NET writes), and a whole pair beside it."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if request.url.path.endswith("/Contacts"):
            body = body.replace(b'"Ada"', b'"Ada \\ud83d"').replace(
                b'"Lovelace"', b'"\\ud83d\\ude00"'
            )
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding")
        }
        return httpx.Response(response.status_code, headers=headers, content=body)


async def test_half_an_emoji_from_the_server_is_written_as_a_replacement_character(
    make_sandbox, tmp_path: Path
) -> None:
    """One lone UTF-16 surrogate in one name stopped the whole object with 'cannot decode the
    input … --encoding', an option export does not have."""
    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2001], "FIRST_NAME": "Ada", "LAST_NAME": "Lovelace"})
    await export_through(sb, CutEmoji(sb), tmp_path)
    rows = {r["CONTACT_ID"]: r for r in read(tmp_path, "contacts").to_pylist()}
    assert (rows[2001]["FIRST_NAME"], rows[2001]["LAST_NAME"]) == ("Ada \ufffd", "\U0001f600")


class GatewayPages(httpx.AsyncBaseTransport):
    """The sandbox behind a gateway that answers every GET of one record with its own HTML
    404 page (nginx's), not the API's `{"Message": …}`."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and re.fullmatch(r"/v3\.1/Contacts/\d+", request.url.path):
            page = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>"
            return httpx.Response(404, headers={"Content-Type": "text/html"}, text=page)
        return await self.inner.handle_async_request(request)


def test_a_gateway_s_404_for_a_record_an_id_names_creates_nothing(
    make_sandbox, tmp_path: Path
) -> None:
    """Rows matched by CONTACT_ID whose GET a gateway answers 404: a guard that such a row is
    refused saying why (no word on the record), never planned as a new record."""
    sb = make_sandbox()
    file = write(tmp_path, "c.csv", "CONTACT_ID,FIRST_NAME,LAST_NAME\n2001,Ada,Lovelace\n")
    before = contact_ids(sb)
    result = run_through(GatewayPages(sb), "import", str(file), "--object", "contacts", "-q")
    assert result.exit_code == 1, result.output
    assert contact_ids(sb) == before
    errors = (tmp_path / "c.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "record 2001 could not be read: HTTP 404 Not Found (a page that is not the API's); run "
        "again" in errors
    )
