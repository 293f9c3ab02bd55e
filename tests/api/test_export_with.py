"""`export --with links,state_history`: a request per record, announced first, refused above
the quota minus the reserve (issues 12, 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from insightly_etl.cli import main
from insightly_etl.errors import InputError, ReserveReached
from insightly_etl.extract import ExportOptions, extract_objects
from tests.conftest import asgi_client, cli_runner, sandbox_client

pytestmark = pytest.mark.anyio


async def test_links_and_state_history_come_a_request_per_record_at_the_announced_cost(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    opps = sb.account.collections["Opportunities"].ids
    contact = sb.account.collections["Contacts"].ids[0]
    async with asgi_client(sb) as c:
        await c.put(
            f"Opportunities/{opps[0]}/StateChange",
            json={"FOR_OPPORTUNITY_STATE": "Lost", "STATE_REASON_ID": 1},
        )
        await c.put(f"Opportunities/{opps[0]}/StateChange", json={"FOR_OPPORTUNITY_STATE": "Won"})
        await c.post(
            f"Opportunities/{opps[1]}/Links",
            json={"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": contact, "ROLE": "Champion"},
        )
    announced = []
    async with sandbox_client(sb) as client:
        result = await extract_objects(
            client,
            ExportOptions(
                out_dir=tmp_path, objects=["opportunities"], with_=["links", "state_history"]
            ),
            announce=announced.append,
        )
    plan = announced[0]
    assert plan.parts == {
        ("links", "opportunities"): len(opps),
        ("state_history", "opportunities"): len(opps),
    }
    assert result.sub_collections["links"]["requests"] == len(opps)
    assert result.sub_collections["state_history"]["requests"] == len(opps)
    history = pq.read_table(tmp_path / "state_history.parquet").to_pylist()
    assert [(h["opportunity_id"], h["state"], h["state_reason"]) for h in history] == [
        (opps[0], "Lost", "Price too high"),
        (opps[0], "Won", None),
    ]
    links = pq.read_table(tmp_path / "links.parquet").to_pylist()
    assert {
        "object": "opportunities",
        "id": opps[1],
        "linked_object": "Contact",
        "linked_id": contact,
        "role": "Champion",
    }.items() <= next(lk for lk in links if lk["role"] == "Champion").items()
    m = json.loads((tmp_path / "_manifest.json").read_text())
    assert m["links"]["per_record"] == ["opportunities"] and m["links"]["rows"] == len(links)


async def test_a_with_that_would_cross_the_quota_minus_the_reserve_is_refused_before_exporting(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(daily_quota=300)
    for _ in range(100):  # spent today by others: tomorrow the run fits
        sb.quota.spend()
    async with sandbox_client(sb, reserve=10) as client:
        with pytest.raises(ReserveReached) as refused:
            await extract_objects(
                client, ExportOptions(out_dir=tmp_path, objects=["contacts"], with_=["links"])
            )
    n = len(sb.account.collections["Contacts"].ids)
    assert f"--with costs about {n} request(s), one per record (links of {n} contacts)" in (
        refused.value.message
    )
    assert "more than this run may spend (188); nothing was exported" in refused.value.message
    assert not (tmp_path / "contacts.parquet").exists()
    assert sum(sb.stats.values()) == 2  # the account (GET /Instance) and the one count probe


async def test_a_with_beyond_the_runs_own_budget_is_an_error_not_a_wait(
    make_sandbox, tmp_path: Path
) -> None:
    """An orchestrator reads `reserve` (and any exit 75) as "wait for the quota window": a
    --max-requests refusal said so, where raising the budget is what helps, and every run
    with the same budget is refused the same."""
    sb = make_sandbox()
    async with sandbox_client(sb, max_requests=10) as client:
        with pytest.raises(InputError) as refused:
            await extract_objects(
                client, ExportOptions(out_dir=tmp_path, objects=["contacts"], with_=["links"])
            )
    n = len(sb.account.collections["Contacts"].ids)
    assert refused.value.exit_code == 2
    assert "more than this run may spend (8); nothing was exported" in refused.value.message
    assert refused.value.hint == (
        f"Name fewer object types, or give --max-requests of at least {n + 2} (the objects' own "
        "pages come on top)."
    )


async def test_a_with_beyond_a_whole_day_s_allowance_is_an_error_not_a_wait(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(daily_quota=200)
    async with sandbox_client(sb, reserve=10) as client:
        with pytest.raises(InputError) as refused:
            await extract_objects(
                client, ExportOptions(out_dir=tmp_path, objects=["contacts"], with_=["links"])
            )
    assert refused.value.message.endswith(
        "more than this run may spend (188), or a whole day's (200 less --reserve 10); nothing "
        "was exported"
    )


async def test_with_state_history_needs_opportunities_in_the_export(
    make_sandbox, tmp_path: Path
) -> None:
    async with sandbox_client(make_sandbox()) as client:
        with pytest.raises(
            InputError, match="--with state_history: the export names no opportunities"
        ):
            await extract_objects(
                client,
                ExportOptions(out_dir=tmp_path, objects=["contacts"], with_=["state_history"]),
            )


@pytest.mark.slow
def test_the_cli_prints_the_cost_and_refuses_an_unknown_name(tmp_path: Path) -> None:
    runner = cli_runner()
    bad = runner.invoke(main, ["export", "--sandbox", "--out", str(tmp_path), "--with", "comets"])
    assert bad.exit_code == 2
    assert "--with 'comets': not a per-record collection this tool exports" in bad.stderr
    ok = runner.invoke(
        main, ["export", "projects", "--sandbox", "--out", str(tmp_path), "--with", "links", "-q"]
    )
    assert ok.exit_code == 0, ok.output
    assert "--with costs about 15 request(s), one per record (links of 15 projects)" in ok.stderr


def downloads(sb) -> int:
    return sum(
        n
        for (m, p, _), n in sb.stats.items()
        if m == "GET" and p.startswith("/v3.1/FileAttachments/")
    )


async def test_files_are_listed_and_downloaded_once_named_by_their_id(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    files_dir = tmp_path / "files"
    options = ExportOptions(
        out_dir=tmp_path / "out", objects=["opportunities"], with_=["files"], files_dir=files_dir
    )
    async with sandbox_client(sb) as client:
        result = await extract_objects(client, options)
    opps = len(sb.account.collections["Opportunities"].ids)
    assert result.sub_collections["files"]["requests"] == opps + 3  # a listing each, 3 files
    rows = pq.read_table(tmp_path / "out" / "file_attachments.parquet").to_pylist()
    assert [(r["file_name"], r["local_file"]) for r in rows] == [
        ("proposal v3.docx", "905.docx"),
        ("site photo.png", "906.png"),
        ("../../etc/passwd", "907"),  # a name is never a path
    ]
    _, content = sb.account.attachment_content(906)
    assert (files_dir / "906.png").read_bytes() == content and len(content) == 412_002
    assert sorted(p.name for p in files_dir.iterdir()) == ["905.docx", "906.png", "907"]
    assert not (tmp_path / "etc").exists()

    (files_dir / "906.png").write_bytes(b"cut short")  # an interrupted download
    before = downloads(sb)
    async with sandbox_client(sb) as client:
        await extract_objects(client, options)
    assert downloads(sb) == before + 1  # only the damaged one is fetched again
    assert (files_dir / "906.png").read_bytes() == content


async def test_a_file_that_is_gone_is_a_warning_and_the_rest_is_kept(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    sb.account.attachments[905]["FILE_SIZE"] = 10
    del_meta = sb.account.attachments.pop(906)
    sb.account.attachments[990] = {**del_meta, "FILE_ID": 990}  # listed under 906's record
    sb.account.attachments[-5] = {**del_meta, "FILE_ID": -5}  # a server's: no id to ask by
    original = sb.account.attachment_content

    def gone(file_id: int):
        if file_id == 990:
            raise KeyError(file_id)
        meta, content = original(file_id)
        return meta, content + (b"more" if file_id == 907 else b"")  # 907 longer than listed

    sb.account.attachment_content = gone
    async with sandbox_client(sb) as client:
        result = await extract_objects(
            client,
            ExportOptions(
                out_dir=tmp_path,
                objects=["opportunities"],
                with_=["files"],
                files_dir=tmp_path / "f",
            ),
        )
    size = len(original(907)[1])
    assert result.warnings == [
        "--files-dir: 1 file(s) without a FILE_ID that is a whole number from 1 up; not downloaded",
        "--files-dir: file 990: File Attachment not found. (HTTP 404); not downloaded",
        # a listed size that is not the file's: said, since each run fetches it again
        f"--files-dir: file 907: {size + 4:,} byte(s) came, its FILE_SIZE says {size:,}; kept, "
        "and fetched again by each run (its size is how a run knows a file it has)",
    ]
    local = {
        r["file_id"]: r["local_file"]
        for r in pq.read_table(tmp_path / "file_attachments.parquet").to_pylist()
    }
    assert local == {905: "905.docx", 990: None, None: None, 907: "907"}


@pytest.mark.slow
async def test_comments_and_each_records_emails_come_per_record(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    async with sandbox_client(sb) as client:
        result = await extract_objects(
            client,
            ExportOptions(
                out_dir=tmp_path, objects=["tickets", "contacts"], with_=["comments", "emails"]
            ),
        )
    tickets, contacts = (len(sb.account.collections[n].ids) for n in ("Ticket", "Contacts"))
    assert result.sub_collections["comments"]["requests"] == tickets
    assert result.sub_collections["emails"]["requests"] == contacts
    comments = pq.read_table(tmp_path / "comments.parquet").to_pylist()
    assert [(c["object"], c["body"]) for c in comments] == [
        ("tickets", "Reproduced on version 4.2; fix in the next release."),
        ("tickets", 'A "quoted" answer,\nover two lines'),
    ]
    assert json.loads(comments[0]["item"])["COMMENT_ID"] == comments[0]["comment_id"] == 705
    linked = {
        (lk["LINK_OBJECT_ID"], e["EMAIL_ID"])
        for e in sb.account.collections["Emails"].records.values()
        for lk in e["LINKS"]
        if lk["LINK_OBJECT_NAME"] == "Contact"
    }
    rows = pq.read_table(tmp_path / "record_emails.parquet").to_pylist()
    assert {(r["id"], r["email_id"]) for r in rows} == linked and len(rows) == len(linked) > 0


async def test_a_server_that_ignores_skip_does_not_page_forever(
    make_sandbox, tmp_path: Path
) -> None:
    """500 links on one record, and a server that answers the first page whatever `skip` is:
    the second page brings nothing new, and the reading of that record ends there."""
    import httpx

    sb = make_sandbox()
    opp = sb.account.collections["Opportunities"].ids[0]
    record = sb.account.collections["Opportunities"].records[opp]
    record["LINKS"] = [
        {
            "LINK_ID": 50_000 + n,
            "LINK_OBJECT_NAME": "Contact",
            "LINK_OBJECT_ID": 2001,
            "ROLE": str(n),
        }
        for n in range(500)
    ]
    sb.account.collections["Opportunities"].put(record)

    class IgnoreSkip(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.ASGITransport(app=sb.app)

        async def handle_async_request(self, request):
            if request.url.path.endswith("/Links"):
                request.url = request.url.copy_remove_param("skip")
            return await self.inner.handle_async_request(request)

    from insightly_etl.api import InsightlyClient
    from insightly_etl.config import load_settings
    from tests.conftest import KEY

    client = InsightlyClient(
        load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/"),
        transport=IgnoreSkip(),
        rate=1000,
    )
    async with client:
        result = await extract_objects(
            client, ExportOptions(out_dir=tmp_path, objects=["opportunities"], with_=["links"])
        )
    opps = len(sb.account.collections["Opportunities"].ids)
    assert result.sub_collections["links"]["requests"] == opps + 1  # that record: two pages
    rows = pq.read_table(tmp_path / "links.parquet").to_pylist()
    assert sum(1 for r in rows if r["id"] == opp) == 500


async def test_an_incremental_with_reads_only_the_changed_records_and_merges(
    make_sandbox, tmp_path: Path
) -> None:
    """Issue 21: on an incremental export, --with reads the sub-collections of the records
    changed since they were last read (and of new ones), keeps the others' rows, drops the
    deleted ones'; the files equal what a full export writes."""
    sb = make_sandbox()
    opps = sb.account.collections["Opportunities"]
    contact = sb.account.collections["Contacts"].ids[0]
    options = {"objects": ["opportunities"], "with_": ["links", "state_history"]}
    async with sandbox_client(sb) as client:
        await extract_objects(client, ExportOptions(out_dir=tmp_path, **options))
    newest = max(r["DATE_UPDATED_UTC"] for r in opps.records.values())
    at_mark = sum(1 for r in opps.records.values() if r["DATE_UPDATED_UTC"] == newest)
    won, linked, gone = opps.ids[3], opps.ids[4], opps.ids[5]
    async with asgi_client(sb) as c:
        await c.put(f"Opportunities/{won}/StateChange", json={"FOR_OPPORTUNITY_STATE": "Won"})
        await c.post(
            f"Opportunities/{linked}/Links",
            json={"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": contact, "ROLE": "Sponsor"},
        )
        await c.delete(f"Opportunities/{gone}")
        new = (await c.post("Opportunities", json={"OPPORTUNITY_NAME": "Late deal"})).json()
    announced = []
    async with sandbox_client(sb) as client:
        result = await extract_objects(
            client,
            ExportOptions(out_dir=tmp_path, incremental=True, detect_deletes=True, **options),
            announce=announced.append,
        )
    changed = 3 + at_mark  # won, linked, the new one; and what shares the earlier mark's second
    assert announced[0].parts == {
        ("links", "opportunities"): changed,
        ("state_history", "opportunities"): changed,
    }
    assert (
        announced[0]
        .describe()
        .startswith(
            f"--with costs about {2 * changed} request(s), one per record (links of {changed} "
            f"changed opportunities, state_history of {changed} changed opportunities)"
        )
    )
    for sub in ("links", "state_history"):
        entry = result.sub_collections[sub]
        assert (entry["records_read"], entry["requests"], entry["incremental"]) == (
            changed,
            changed,
            ["opportunities"],
        )
    links = pq.read_table(tmp_path / "links.parquet").to_pylist()
    history = pq.read_table(tmp_path / "state_history.parquet").to_pylist()
    assert any(lk["id"] == linked and lk["role"] == "Sponsor" for lk in links)
    assert [h["state"] for h in history if h["opportunity_id"] == won] == ["Won"]
    assert gone not in {lk["id"] for lk in links} | {h["opportunity_id"] for h in history}
    assert new["OPPORTUNITY_ID"] in {r["OPPORTUNITY_ID"] for r in opps.records.values()}
    full = tmp_path / "full"
    async with sandbox_client(sb) as client:
        await extract_objects(client, ExportOptions(out_dir=full, **options))
    for name in ("links.parquet", "state_history.parquet"):
        assert pq.read_table(tmp_path / name).equals(pq.read_table(full / name)), name


async def test_an_incremental_with_after_a_with_that_never_finished_reads_everything(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    opps = len(sb.account.collections["Opportunities"].ids)
    async with sandbox_client(sb) as client:
        await extract_objects(client, ExportOptions(out_dir=tmp_path, objects=["opportunities"]))
        result = await extract_objects(
            client,
            ExportOptions(
                out_dir=tmp_path, objects=["opportunities"], incremental=True, with_=["links"]
            ),
        )
    links = result.sub_collections["links"]
    assert (links["records_read"], links["incremental"]) == (opps, [])
