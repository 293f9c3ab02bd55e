"""Import against the in-process sandbox: plans, diffs, never erasing, re-runs, options."""

from __future__ import annotations

import asyncio
import base64
import csv
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from insightly_etl.api import InsightlyClient
from insightly_etl.config import load_settings
from insightly_etl.errors import CheckpointError, CheckpointInUse, InputError
from insightly_etl.load.checkpoint import Checkpoint, FieldChange
from insightly_etl.load.importer import ImportOptions, ImportResult, load_file
from insightly_etl.load.mapping import read_mapping
from insightly_etl.load.readers import read_table
from insightly_etl.load.reconcile import NOT_FOUND_YET
from insightly_etl.load.source import SourceFile
from insightly_etl.sandbox import Sandbox
from tests.conftest import KEY, sandbox_client

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


async def run_import(sb: Sandbox, file: Path, mapping: Path | None, **options) -> ImportResult:
    """An import against the in-process sandbox; `transport=Class` puts Class(sb) in front of
    it (a misbehaving server or proxy)."""
    object_name = options.pop("object_name", None)
    front = options.pop("transport", None)
    client_options = {k: options.pop(k) for k in ("max_requests", "reserve") if k in options}
    opts = ImportOptions(file=file, mapping_file=mapping, **options)
    client = (
        sandbox_client(sb, **client_options)
        if front is None
        else InsightlyClient(
            load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/"),
            transport=front(sb),
            rate=1000,
            **client_options,
        )
    )
    async with client:
        return await load_file(
            client, opts, SourceFile.read(file), read_mapping(mapping, object_name=object_name)
        )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def writes(sb: Sandbox) -> int:
    return sum(n for (m, _, _), n in sb.stats.items() if m in ("POST", "PUT", "DELETE"))


def contacts_by_email(sb: Sandbox) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in sb.account.collections["Contacts"].records.values():
        out.setdefault(r["EMAIL_ADDRESS"], []).append(r)
    return out


def custom(record: dict) -> dict:
    return {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in record["CUSTOMFIELDS"]}


@pytest.mark.parametrize(
    ("name", "sample", "collection"),
    [
        ("contacts", "contacts.csv", "Contacts"),
        ("organisations", "organisations.csv", "Organisations"),
        ("leads", "leads.csv", "Leads"),
        ("opportunities", "opportunities.csv", "Opportunities"),
        ("projects", "projects.csv", "Projects"),
        ("tasks", "tasks.xlsx", "Tasks"),
        ("notes", "notes.csv", "Notes"),
        ("google_contacts", "google_contacts.csv", "Contacts"),
        ("outlook_contacts", "outlook_contacts.csv", "Contacts"),
    ],
)
@pytest.mark.slow
async def test_samples_import_exactly_and_a_rerun_writes_nothing(
    make_sandbox, tmp_path: Path, name: str, sample: str, collection: str
) -> None:
    sb = make_sandbox()
    file = tmp_path / sample
    shutil.copy(ROOT / "sample_data" / sample, file)
    before = len(sb.account.collections[collection].ids)
    first = await run_import(sb, file, ROOT / "mappings" / f"{name}.yaml")
    rows = len(read_table(file).frame)
    assert first.exit_code == 0 and first.counts.created == rows
    assert len(sb.account.collections[collection].ids) == before + rows
    sent = writes(sb)
    assert sent == rows
    # the same command again: every row is done, no request at all
    again = await run_import(sb, file, ROOT / "mappings" / f"{name}.yaml")
    assert again.counts.created == rows and writes(sb) == sent
    # a fresh checkpoint: planning finds every row unchanged (rows without a match key: notes, tasks)
    fresh = await run_import(
        sb,
        file,
        ROOT / "mappings" / f"{name}.yaml",
        checkpoint=tmp_path / "fresh.sqlite",
        results_dir=tmp_path / "r2",
    )
    if name not in ("notes", "tasks"):
        assert fresh.counts.unchanged == rows and writes(sb) == sent


@pytest.mark.slow
async def test_sample_contacts_arrive_with_every_value(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = tmp_path / "contacts.csv"
    shutil.copy(ROOT / "sample_data/contacts.csv", file)
    await run_import(sb, file, ROOT / "mappings/contacts.yaml")
    amelie = contacts_by_email(sb)["amelie.fontaine@example.fr"][0]
    orgs = {
        r["ORGANISATION_NAME"]: i
        for i, r in sb.account.collections["Organisations"].records.items()
    }
    assert (
        amelie["FIRST_NAME"] == "Amélie" and amelie["ORGANISATION_ID"] == orgs["Clear Partners BV"]
    )
    assert amelie["DATE_OF_BIRTH"] == "1985-07-14 00:00:00" and amelie["OWNER_USER_ID"] == 3
    assert (
        custom(amelie)["Customer_Tier__c"] == "Gold"
        and custom(amelie)["Interests__c"] == "Food;Travel"
    )
    assert custom(amelie)["Newsletter__c"] is True and amelie["ADDRESS_MAIL_POSTCODE"] == "69001"
    assert amelie["BACKGROUND"] == "Imported from the 2026 trade fair list"


async def test_updates_send_only_what_differs_and_never_erase(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox(
        put_customfields="replace"
    )  # the old API: a PUT erases custom fields it omits
    target = sb.account.collections["Contacts"].records[2001]
    before = custom(target)
    file = write(
        tmp_path,
        "u.csv",
        f"Email,Title,Tier,Phone\n{target['EMAIL_ADDRESS']},Chief Buyer,Platinum,\n",
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n  Email: EMAIL_ADDRESS\n  Title: TITLE\n  Tier: Customer_Tier__c\n  Phone: PHONE\n",
    )
    result = await run_import(sb, file, mapping)
    after = sb.account.collections["Contacts"].records[2001]
    assert result.counts.updated == 1
    assert (
        after["TITLE"] == "Chief Buyer" and after["PHONE"] == target["PHONE"]
    )  # blank cell: unchanged
    assert after["FIRST_NAME"] == target["FIRST_NAME"]
    expected = {**before, "Customer_Tier__c": "Platinum"}
    assert custom(after) == expected  # every other custom field survived the replace-mode PUT
    put = [k for k in sb.stats if k[0] == "PUT"]
    assert sum(sb.stats[k] for k in put) == 1


async def test_before_images_are_kept(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    target = dict(sb.account.collections["Contacts"].records[2002])
    file = write(tmp_path, "u.csv", f"Email,Title\n{target['EMAIL_ADDRESS']},New Title\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n  Email: EMAIL_ADDRESS\n  Title: TITLE\n",
    )
    await run_import(sb, file, mapping)
    cp = Checkpoint(tmp_path / "u.csv.checkpoint.sqlite")
    old_title = target["TITLE"]
    assert cp.rows.changes() == {0: [FieldChange(2002, "TITLE", old_title, "New Title")]}
    cp.close()


MATCH_EMAIL = "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n"


DUPLICATES = (
    "Name,Email\nAda,ada@example.com\nAda again,ada@example.com\nBob,bob@example.com\n"
    "Bob,bob@example.com\nAda at last,ada@example.com\n"
)


@pytest.mark.slow
async def test_rows_sharing_a_key_with_different_values_are_all_reported_and_none_sent(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "d.csv", DUPLICATES)
    result = await run_import(sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL))
    counts = result.counts
    assert (counts.created, counts.duplicate, counts.skipped) == (1, 3, 1)
    assert "ada@example.com" not in contacts_by_email(sb)
    assert len(contacts_by_email(sb)["bob@example.com"]) == 1  # identical rows: sent once
    assert result.exit_code == 1
    errors = (tmp_path / "d.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    group = (
        "lines 2, 3, 6 share EMAIL_ADDRESS ada@example.com with different values; none is sent "
        "(fix the file, or choose with --on-duplicate first|last)"
    )
    assert errors[1:] == [
        f'2,duplicate,,"{group}",Ada,ada@example.com',
        f'3,duplicate,,"{group}",Ada again,ada@example.com',
        "5,skipped,,identical to line 4 (EMAIL_ADDRESS bob@example.com): sent once,Bob,bob@example.com",
        f'6,duplicate,,"{group}",Ada at last,ada@example.com',
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("choice", "winner"), [("first", "Ada"), ("last", "Ada at last")])
async def test_on_duplicate_names_the_row_that_wins(
    make_sandbox, tmp_path: Path, choice: str, winner: str
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "d.csv", DUPLICATES)
    result = await run_import(sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL), on_duplicate=choice)
    assert (result.counts.created, result.counts.skipped, result.exit_code) == (2, 3, 0)
    assert [r["FIRST_NAME"] for r in contacts_by_email(sb)["ada@example.com"]] == [winner]


async def test_rows_of_one_key_that_differ_only_as_a_person_reads_alike_are_sent_once(
    make_sandbox, tmp_path: Path
) -> None:
    """`Björn` in two Unicode forms, an e-mail in other capitals, a doubled space: one
    person written twice, not two sets of values that refuse both rows. `validate` agrees."""
    from insightly_etl.load.account import AccountFacts
    from insightly_etl.load.check import check_file
    from insightly_etl.load.mapping import read_mapping

    sb = make_sandbox()
    text = "Name,Email\nBjo\u0308rn  Borg,Bjorn@example.com\nBj\u00f6rn Borg,bjorn@example.com\n"
    file = write(tmp_path, "b.csv", text)
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    check = check_file(file, read_mapping(mapping), lambda: AccountFacts([], {}))
    assert [w for w in check.warnings if "match key" in w] == []
    result = await run_import(sb, file, mapping)
    assert (result.counts.created, result.counts.skipped, result.counts.duplicate) == (1, 1, 0)


@pytest.mark.parametrize(
    ("choice", "sent", "said"),
    [
        (
            "error",
            None,
            {
                n: "duplicate: lines 2, 3 share EMAIL_ADDRESS vic@example.com with different "
                "values; none is sent (fix the file, or choose with --on-duplicate first|last)"
                for n in (2, 3, 4)
            },
        ),
        (
            "last",  # the file's last row, line 4, though its values are line 2's
            "Vic",
            {
                2: "skipped: identical to line 4 (EMAIL_ADDRESS vic@example.com): sent once",
                3: "skipped: lines 2, 3 share EMAIL_ADDRESS vic@example.com with different "
                "values; line 4 wins (--on-duplicate last)",
            },
        ),
        (
            "first",
            "Vic",
            {
                3: "skipped: lines 2, 3 share EMAIL_ADDRESS vic@example.com with different "
                "values; line 2 wins (--on-duplicate first)",
                4: "skipped: identical to line 2 (EMAIL_ADDRESS vic@example.com): sent once",
            },
        ),
    ],
)
async def test_a_row_alike_another_in_a_group_that_differs_shares_the_group_s_fate(
    make_sandbox, tmp_path: Path, choice: str, sent: str | None, said: dict[int, str]
) -> None:
    """Vic, Victor, Vic: none was sent, yet line 4 said `identical to line 2: sent once`;
    and --on-duplicate last sent Victor (the last *different* row), not the file's last."""
    sb = make_sandbox()
    text = "Name,Email\nVic,vic@example.com\nVictor,vic@example.com\nVic,vic@example.com\n"
    file = write(tmp_path, "v.csv", text)
    result = await run_import(sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL), on_duplicate=choice)
    made = [r["FIRST_NAME"] for r in contacts_by_email(sb).get("vic@example.com", [])]
    assert made == ([sent] if sent else [])
    assert result.exit_code == (1 if choice == "error" else 0)
    errors = list(csv.DictReader((tmp_path / "v.errors.csv").open(encoding="utf-8-sig")))
    assert {int(e["line"]): f"{e['state']}: {e['message']}" for e in errors} == said


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "value", "state"), [("on_match", "skip", "skipped"), ("on_match", "error", "failed")]
)
async def test_on_match_skip_or_error(
    make_sandbox, tmp_path: Path, option: str, value: str, state: str
) -> None:
    sb = make_sandbox()
    file = write(
        tmp_path, "m.csv", "Name,Email\nSamir,samir.ivanova.2001@example.com\nNew,new@example.com\n"
    )
    result = await run_import(sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL), **{option: value})
    assert result.counts.created == 1 and getattr(result.counts, state) == 1
    assert writes(sb) == 1


@pytest.mark.slow
async def test_no_create_missing_only_updates(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(
        tmp_path,
        "m.csv",
        "Name,Email\nSamir K,samir.ivanova.2001@example.com\nNew,new@example.com\n",
    )
    result = await run_import(
        sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL), create_missing=False
    )
    assert (result.counts.updated, result.counts.skipped, result.counts.created) == (
        1,
        1,
        0,
    )
    assert sb.account.collections["Contacts"].records[2001]["FIRST_NAME"] == "Samir K"


@pytest.mark.slow
async def test_without_a_match_key_insightly_duplicates_are_warned_or_skipped(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    existing = sb.account.collections["Contacts"].records[2001]
    text = f"First,Last,Email\n{existing['FIRST_NAME']},{existing['LAST_NAME']},{existing['EMAIL_ADDRESS']}\nNew,Person,new@example.com\n"
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  First: FIRST_NAME\n  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n",
    )
    warned = await run_import(sb, write(tmp_path, "a.csv", text), mapping, dry_run=True)
    assert warned.warnings == [
        "1 row(s) look like an existing contact by Insightly's duplicate rule (action "
        "'like-existing' in NAME.plan.csv; created all the same, --skip-duplicates skips "
        "them): line 2 like 2001"
    ]
    plan = (tmp_path / "a.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert (
        "2,like-existing,2001,,,,looks like existing contact 2001 (Insightly's duplicate rule)"
        in plan
    )
    skipped = await run_import(sb, write(tmp_path, "b.csv", text), mapping, skip_duplicates=True)
    assert (skipped.counts.skipped, skipped.counts.created) == (1, 1)
    assert skipped.warnings == []
    errors = (tmp_path / "b.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[1].startswith(
        "2,skipped,,looks like existing contact 2001 (Insightly's duplicate rule); --skip-duplicates,"
    )


async def test_the_plan_shows_a_whole_amount_as_it_is_written(make_sandbox, tmp_path: Path) -> None:
    """Insightly answers amounts as JSON numbers: the plan showed `1054.0`."""
    sb = make_sandbox()
    deals = sb.account.collections["Opportunities"]
    deal = next(iter(deals.records.values()))
    deals.put({**deal, "BID_AMOUNT": 1054.0})
    file = write(tmp_path, "d.csv", f"Name,Amount\n{deal['OPPORTUNITY_NAME']},2000\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: opportunities\nmatch: {column: Name, field: OPPORTUNITY_NAME}\n"
        "columns: {Name: OPPORTUNITY_NAME, Amount: BID_AMOUNT}\n",
    )
    result = await run_import(sb, file, mapping, dry_run=True)
    plan = (tmp_path / "d.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert plan[1:] == [f"2,update,{deal['OPPORTUNITY_ID']},BID_AMOUNT,1054,2000,"]
    assert result.plan is not None
    assert result.plan.examples == [
        f"line 2: update {deal['OPPORTUNITY_ID']} BID_AMOUNT '1054' -> '2000'"
    ]
    # a workbook's rows are rows, in the plan file and in what the command prints
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Name", "Amount"])
    book.active.append([deal["OPPORTUNITY_NAME"], 2000])
    book.save(tmp_path / "d.xlsx")
    result = await run_import(sb, tmp_path / "d.xlsx", mapping, dry_run=True)
    assert result.plan is not None and result.plan.examples[0].startswith("row 2: update")


@pytest.mark.slow
async def test_dry_run_plans_and_writes_nothing(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = tmp_path / "contacts.csv"
    shutil.copy(ROOT / "sample_data/contacts.csv", file)
    result = await run_import(sb, file, ROOT / "mappings/contacts.yaml", dry_run=True)
    assert writes(sb) == 0
    assert result.plan is not None and result.plan.creates == 8 and result.plan.requests_needed == 8
    assert result.exit_code == 0
    plan = (tmp_path / "contacts.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert plan[0] == "line,action,record_id,field,current,new,note"
    assert plan[1:4] == [
        "2,create,,FIRST_NAME,,Amélie,",
        "2,create,,LAST_NAME,,Fontaine,",
        "2,create,,EMAIL_ADDRESS,,amelie.fontaine@example.fr,",
    ]
    assert not (tmp_path / "contacts.csv.checkpoint.sqlite").exists()  # nothing that blocks


@pytest.mark.slow
async def test_a_dry_run_then_a_real_run_works(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "c.csv", "Name,Email\nAda,ada@dry.example\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    await run_import(sb, file, mapping)  # a checkpoint exists now
    file.write_text("Name,Email\nAda,ada@dry.example\nBob,bob@dry.example\n")
    before = (tmp_path / "c.csv.checkpoint.sqlite").read_bytes()
    dry = await run_import(sb, file, mapping, dry_run=True)
    assert dry.plan is not None and (dry.plan.creates, dry.plan.done_before) == (1, 1)
    assert (tmp_path / "c.csv.checkpoint.sqlite").read_bytes() == before and writes(sb) == 1
    real = await run_import(sb, file, mapping)
    assert real.exit_code == 0 and real.counts.created == 2 and writes(sb) == 2


@pytest.mark.slow
async def test_a_dry_run_leaves_the_rows_not_yet_attempted_listed(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"  # where the dry run's copy of the checkpoint goes
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    sb = make_sandbox()
    text = "Name,Email\n" + "".join(f"P{i},p{i}@left.example\n" for i in range(6))
    file = write(tmp_path, "c.csv", text + "Bad,not-an-email\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    stopped = await run_import(sb, file, mapping, max_requests=4)
    assert stopped.exit_code == 75
    names = ("c.success.csv", "c.errors.csv", "c.unprocessed.csv", "c.rejects.csv")
    before = {n: (tmp_path / n).read_bytes() for n in names}
    dry = await run_import(sb, file, mapping, dry_run=True)
    assert dry.plan is not None and dry.plan.creates == 6 - stopped.counts.created
    # nothing was sent: the same files, and the rows not yet attempted still listed
    assert {n: (tmp_path / n).read_bytes() for n in names} == before
    assert [p.name for p in dry.files] == [
        "c.plan.csv",
        "c.success.csv",
        "c.errors.csv",
        "c.rejects.csv",
    ]
    assert list(scratch.iterdir()) == []  # the copy is gone


async def test_a_checkpoint_of_another_object_is_refused(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "c.csv", "Name,Email\nAda,ada@example.com\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    await run_import(sb, file, mapping)
    leads = write(tmp_path, "l.yaml", "object: leads\ncolumns:\n  Name: FIRST_NAME\n")
    with pytest.raises(InputError, match="belongs to an import of contacts, not leads"):
        await run_import(sb, file, leads)


async def test_a_budget_stops_cleanly_and_the_rerun_finishes(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    lines = "".join(f"P{n},p{n}@example.com\n" for n in range(30))
    file = write(tmp_path, "b.csv", "Name,Email\n" + lines)
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    first = await run_import(sb, file, mapping, max_requests=12)
    assert first.outcome.stopped == "quota" and first.exit_code == 75
    created_first = first.counts.created
    assert 0 < created_first < 30 and first.counts.left == 30 - created_first
    unprocessed = (tmp_path / "b.unprocessed.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(unprocessed) == 1 + 30 - created_first
    second = await run_import(sb, file, mapping)
    assert second.exit_code == 0 and second.counts.created == 30
    assert not (tmp_path / "b.unprocessed.csv").exists()
    emails = contacts_by_email(sb)
    assert all(len(emails[f"p{n}@example.com"]) == 1 for n in range(30))
    assert writes(sb) == 30


@pytest.mark.slow
async def test_the_daily_quota_stops_the_run_with_75_and_a_new_day_finishes(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(daily_quota=20)
    file = write(
        tmp_path, "q.csv", "Name,Email\n" + "".join(f"Q{n},q{n}@example.com\n" for n in range(25))
    )
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    first = await run_import(sb, file, mapping)
    assert first.outcome.stopped == "quota" and first.exit_code == 75 and first.quota_remaining == 0
    sb.quota.reset()
    second = await run_import(sb, file, mapping)
    assert second.exit_code == 0 and second.counts.created == 25
    emails = contacts_by_email(sb)
    assert all(len(emails[f"q{n}@example.com"]) == 1 for n in range(25))


async def _import_while_a_colleague_edits(
    sb: Sandbox, tmp_path: Path, at: Any = None
) -> ImportResult:
    file = write(tmp_path, "c.csv", "Id,Title\n2003,Imported title\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Id, field: CONTACT_ID}\ncolumns:\n  Title: TITLE\n",
    )

    def meanwhile(plan) -> None:  # after planning read the record (and its ETag), someone edits it
        clock = sb.account.now
        if at is not None:
            sb.account.now = lambda: at
        sb.account.update("Contacts", {"CONTACT_ID": 2003, "BACKGROUND": "edited by a colleague"})
        sb.account.now = clock

    opts = ImportOptions(file=file, mapping_file=mapping)
    async with sandbox_client(sb) as client:
        return await load_file(
            client, opts, SourceFile.read(file), read_mapping(mapping), announce=meanwhile
        )


async def test_a_change_since_planning_is_caught_by_the_batch_refresh(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    result = await _import_while_a_colleague_edits(sb, tmp_path)
    record = sb.account.collections["Contacts"].records[2003]
    assert result.counts.updated == 1
    assert record["TITLE"] == "Imported title" and record["BACKGROUND"] == "edited by a colleague"
    assert ("PUT", "/v3.1/Contacts", 400) not in sb.stats


async def test_a_stale_etag_is_re_read_and_re_diffed(make_sandbox, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    # the edit is stamped by a clock behind the one the server answers with, so the refresh
    # cannot see it: If-Match must catch it
    sb = make_sandbox(now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    result = await _import_while_a_colleague_edits(
        sb, tmp_path, at=datetime(2025, 12, 1, tzinfo=UTC)
    )
    record = sb.account.collections["Contacts"].records[2003]
    assert result.counts.updated == 1
    assert record["TITLE"] == "Imported title" and record["BACKGROUND"] == "edited by a colleague"
    assert (
        sb.stats[("PUT", "/v3.1/Contacts", 400)] == 1  # a stale If-Match, as live
        and sb.stats[("PUT", "/v3.1/Contacts", 200)] == 1
    )


async def test_rejected_rows_are_never_sent(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "r.csv", "Name,Email\nAda,ada@example.com\nBob,not-an-email\n")
    result = await run_import(sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL))
    assert (result.counts.created, result.counts.rejected) == (1, 1) and result.exit_code == 1
    assert writes(sb) == 1
    assert "3,Email: 'not-an-email' is not a plausible email address" in (
        tmp_path / "r.rejects.csv"
    ).read_text(encoding="utf-8-sig")


async def test_an_import_stopped_by_the_caller_resumes(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(
        tmp_path, "s.csv", "Name,Email\n" + "".join(f"S{n},s{n}@example.com\n" for n in range(12))
    )
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    stop = asyncio.Event()
    stop.set()  # Ctrl-C before the first write
    opts = ImportOptions(file=file, mapping_file=mapping)
    async with sandbox_client(sb) as client:
        result = await load_file(
            client, opts, SourceFile.read(file), read_mapping(mapping), stop=stop
        )
    assert result.outcome.stopped == "interrupted" and result.exit_code == 130 and writes(sb) == 0
    again = await run_import(sb, file, mapping)
    assert again.counts.created == 12


@pytest.mark.slow
async def test_an_edited_export_imports_back_as_updates_without_a_mapping(
    make_sandbox, tmp_path: Path
) -> None:
    import csv

    from insightly_etl.extract import ExportOptions, extract_objects

    sb = make_sandbox()
    async with sandbox_client(sb) as client:
        await extract_objects(
            client, ExportOptions(out_dir=tmp_path / "exp", objects=["contacts"], fmt="csv")
        )
    path = tmp_path / "exp" / "contacts.csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[4]["TITLE"] = "Edited in a spreadsheet"
    rows[7]["Customer_Tier__c"] = (
        "Platinum" if rows[7]["Customer_Tier__c"] != "Platinum" else "Bronze"
    )
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = await run_import(sb, path, None, object_name="contacts")
    assert (result.counts.updated, result.counts.unchanged, result.counts.created) == (
        2,
        218,
        0,
    )
    assert writes(sb) == 2
    edited = sb.account.collections["Contacts"].records[int(rows[4]["CONTACT_ID"])]
    assert edited["TITLE"] == "Edited in a spreadsheet"


@pytest.mark.slow
async def test_the_cheapest_way_to_find_existing_records_is_chosen(
    make_sandbox, tmp_path: Path
) -> None:
    # 5,220 contacts: a listing costs 11 requests; this server's search ignores case
    sb = make_sandbox(generate={"Contacts": 5000}, search_ignores_case=True)
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    few = write(
        tmp_path,
        "few.csv",
        "Name,Email\n" + "".join(f"F{n},few{n}@example.com\n" for n in range(3)),
    )
    result = await run_import(sb, few, mapping, dry_run=True)
    assert result.plan is not None and result.plan.strategy == "search"
    # the first listing page (for the total), 3 searches, and one that asks whether the
    # search ignores case (it does: the rows it did not find have no record)
    assert result.plan.planning_requests == 1 + 3 + 1
    exact = make_sandbox(generate={"Contacts": 5000})  # a search that compares case
    result = await run_import(exact, few, mapping, dry_run=True)
    assert result.plan is not None
    assert result.plan.strategy == "search, then listing for the rows it did not find"
    assert result.plan.planning_requests == 1 + 3 + 1 + 11
    many = write(
        tmp_path,
        "many.csv",
        "Name,Email\n" + "".join(f"M{n},many{n}@example.com\n" for n in range(40)),
    )
    result = await run_import(sb, many, mapping, dry_run=True)
    assert result.plan is not None and result.plan.strategy == "listing"
    assert result.plan.planning_requests == 11  # 11 pages rather than 40 searches


async def test_a_match_key_of_several_fields(make_sandbox, tmp_path: Path) -> None:
    from collections import Counter

    sb = make_sandbox()
    records = sb.account.collections["Contacts"].records
    names = Counter((r["FIRST_NAME"], r["LAST_NAME"]) for r in records.values())
    unique = next(r for r in records.values() if names[(r["FIRST_NAME"], r["LAST_NAME"])] == 1)
    shared = next(name for name, n in names.items() if n > 1)
    file = write(
        tmp_path,
        "k.csv",
        f"First,Last,Title\n{unique['FIRST_NAME']},{unique['LAST_NAME']},Key Account Manager\n{shared[0]},{shared[1]},Twin\nNew,Person,Intern\n",
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: [{column: First, field: FIRST_NAME}, {column: Last, field: LAST_NAME}]\ncolumns:\n  First: FIRST_NAME\n  Last: LAST_NAME\n  Title: TITLE\n",
    )
    result = await run_import(sb, file, mapping)
    assert (result.counts.updated, result.counts.failed, result.counts.created) == (
        1,
        1,
        1,
    )
    assert records[unique["CONTACT_ID"]]["TITLE"] == "Key Account Manager"
    errors = (tmp_path / "k.errors.csv").read_text(encoding="utf-8-sig")
    assert f"{names[shared]} existing records have this FIRST_NAME + LAST_NAME" in errors


# ---------------------------------------------------------------- secrets and locks


class EchoingWrites(httpx.AsyncBaseTransport):
    """The sandbox, except that every write is refused with the request's headers echoed
    back, as a misconfigured proxy or a debugging server might."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                400,
                json={
                    "Message": f"Refused. You sent Authorization: {request.headers['Authorization']}"
                },
                headers={"X-RateLimit-Remaining": "100", "X-RateLimit-Limit": "1000"},
            )
        return await self.inner.handle_async_request(request)


async def test_a_key_echoed_by_the_server_reaches_no_file_the_import_writes(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "First Name,Email\nAda,ada@echo.example\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  First Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n",
    )
    result = await run_import(sb, file, mapping, transport=EchoingWrites)
    assert result.counts.failed == 1
    encoded = base64.b64encode(f"{KEY}:".encode()).decode()
    errors = (tmp_path / "p.errors.csv").read_text(encoding="utf-8-sig")
    assert "Refused. You sent Authorization: Basic ***" in errors
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert KEY.encode() not in data and encoded.encode() not in data, path.name


def test_a_second_run_on_a_checkpoint_in_use_is_refused_naming_the_process(tmp_path: Path) -> None:
    path = tmp_path / "x.checkpoint.sqlite"
    held = Checkpoint(path)
    with pytest.raises(CheckpointInUse) as caught:
        Checkpoint(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))} is in use by process {os.getpid()} since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
        str(caught.value),
    ), str(caught.value)
    assert caught.value.exit_code == 75
    held.close()
    Checkpoint(path).close()  # released: the next run goes ahead


@pytest.mark.slow
def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "x.checkpoint.sqlite"
    code = (
        "import sys, time; from pathlib import Path; "
        "from insightly_etl.load.checkpoint import Checkpoint; "
        f"c = Checkpoint(Path({str(path)!r})); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"held\n"
    with pytest.raises(CheckpointInUse, match=f"in use by process {child.pid} since"):
        Checkpoint(path)
    child.kill()
    child.wait()
    Checkpoint(path).close()


def test_status_reads_without_writing_and_refuses_what_is_not_a_checkpoint(tmp_path: Path) -> None:
    other = tmp_path / "someone_elses.sqlite"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE t (x)")
        db.commit()
    before = other.read_bytes()
    with pytest.raises(CheckpointError, match="is an SQLite file but not an import checkpoint"):
        Checkpoint.read_only(other)
    assert other.read_bytes() == before and not (tmp_path / "someone_elses.sqlite-wal").exists()
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 100)
    with pytest.raises(CheckpointError, match="is not an import checkpoint"):
        Checkpoint.read_only(text)
    with pytest.raises(CheckpointError, match="is not an import checkpoint"):
        Checkpoint(text)
    assert text.read_text() == "hello " * 100


async def test_results_files_escape_cells_a_spreadsheet_would_run(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(
        tmp_path,
        "h.csv",
        'First Name,Email\n"=HYPERLINK(""http://evil.example"")",=1+2\n@Ada,ada@h.example\n',
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  First Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n",
    )
    result = await run_import(sb, file, mapping)
    assert (result.counts.created, result.counts.rejected) == (1, 1)
    assert [r["FIRST_NAME"] for r in contacts_by_email(sb)["ada@h.example"]] == [
        "@Ada"
    ]  # sent as is
    errors = (tmp_path / "h.errors.csv").read_text(encoding="utf-8-sig")
    rejects = (tmp_path / "h.rejects.csv").read_text(encoding="utf-8-sig")
    for text in (errors, rejects):
        assert '\'=HYPERLINK(""http://evil.example"")' in text and ",'=1+2" in text
        assert ",=" not in text and '"=' not in text


class AnswersWritesWithAList(httpx.AsyncBaseTransport):
    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=[], headers={"X-RateLimit-Remaining": "100"})
        return await self.inner.handle_async_request(request)


async def test_a_write_answered_with_no_record_is_unknown_and_never_sent_again(
    make_sandbox, tmp_path: Path
) -> None:
    """A 2xx says the write was applied; an answer that is no record does not say what it
    made. Not a failure (a rerun would make it twice): unknown, looked for, left unknown."""
    sb = make_sandbox()
    file = write(tmp_path, "w.csv", "Name,Email\nAda,ada@list.example\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    result = await run_import(sb, file, mapping, transport=AnswersWritesWithAList)
    assert (result.counts.failed, result.counts.left, result.exit_code) == (0, 1, 1)
    cp = Checkpoint.read_only(tmp_path / "w.csv.checkpoint.sqlite")
    [state] = cp.rows.states().values()
    cp.close()
    assert state.state == "unknown"
    assert state.message == NOT_FOUND_YET
    again = await run_import(sb, file, mapping, transport=AnswersWritesWithAList)
    assert again.counts.left == 1 and writes(sb) == 0  # the sandbox never saw a POST


def test_someone_elses_sqlite_file_is_refused_and_left_exactly_as_it_was(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        db.commit()
    before = other.read_bytes()
    with pytest.raises(CheckpointError, match="is an SQLite file but not an import checkpoint"):
        Checkpoint(other)
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, no .lock
    with pytest.raises(CheckpointError, match="is not a file"):
        Checkpoint(Path("/dev/null"))
    assert not Path("/dev/null.lock").exists()


def test_a_symlink_to_a_checkpoint_meets_the_same_lock(tmp_path: Path) -> None:
    real = tmp_path / "l.csv.checkpoint.sqlite"
    link = tmp_path / "cp_link.sqlite"
    held = Checkpoint(real)
    link.symlink_to(real.name)
    with pytest.raises(CheckpointInUse):
        Checkpoint(link)
    held.close()


def test_a_link_to_no_checkpoint_is_never_followed_to_make_one(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "w.csv.checkpoint.sqlite"
    link.symlink_to(elsewhere / "x")
    with pytest.raises(CheckpointError) as info:
        Checkpoint(link)
    assert str(info.value) == (
        f"{link} is a link to {elsewhere / 'x'}, which does not exist: a checkpoint is never "
        "created through a link"
    )
    assert (
        list(elsewhere.iterdir()) == [] and not (tmp_path / "w.csv.checkpoint.sqlite.lock").exists()
    )


@pytest.mark.slow
@pytest.mark.parametrize("ignores_case", [False, True], ids=["exact search", "case-blind search"])
@pytest.mark.parametrize("rows", [1, 3], ids=["search", "listing"])
async def test_a_key_matches_as_a_person_would(
    make_sandbox, tmp_path: Path, ignores_case: bool, rows: int
) -> None:
    """`Bjorn.Ulvaeus@ABBA.example` in Insightly is the row's ` bjorn.ulvaeus@abba.example\\u200b`:
    updated, never created again — by search or by listing, whether the search ignores case
    or not."""
    sb = make_sandbox(search_ignores_case=ignores_case)
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2001], "EMAIL_ADDRESS": "Bjorn.Ulvaeus@ABBA.example"})
    cells = [" BJORN.ulvaeus@abba.example\u200b", "agnetha@abba.example", "frida@abba.example"]
    file = write(
        tmp_path,
        "p.csv",
        "Name,Email\n" + "".join(f'Björn,"{c}"\n' for c in cells[:rows]),
    )
    result = await run_import(sb, file, write(tmp_path, "m.yaml", MATCH_EMAIL), dry_run=True)
    assert result.plan is not None
    assert (result.plan.updates, result.plan.creates) == (1, rows - 1)
    assert result.plan.examples[0] == "line 2: update 2001 FIRST_NAME 'Samir' -> 'Björn'"
    assert all("EMAIL_ADDRESS" not in e for e in result.plan.examples if "2001" in e)
    if rows == 1:
        assert result.plan.strategy == (
            "search" if ignores_case else "search, then listing for the rows it did not find"
        )


class LosesAnAnswerThenRefusesSearch(httpx.AsyncBaseTransport):
    """The sandbox, except that the first create is applied and its answer lost, and every
    search after it is refused (400): the lost create cannot be looked for."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)
        self.lost = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.lost and request.url.path.endswith("/Search"):
            return httpx.Response(400, json={"Message": "search is down"})
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and not self.lost:
            self.lost = True
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response


async def test_a_lost_create_that_cannot_be_looked_for_stays_unknown_and_the_rest_go_on(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@lost.example\nBob,bob@lost.example\n")
    mapping = write(tmp_path, "m.yaml", MATCH_EMAIL)
    result = await run_import(sb, file, mapping, transport=LosesAnAnswerThenRefusesSearch)
    assert (result.counts.created, result.counts.left, result.exit_code) == (1, 1, 1)
    cp = Checkpoint.read_only(tmp_path / "p.csv.checkpoint.sqlite")
    try:
        assert sorted(s.state for s in cp.rows.states().values()) == ["done", "unknown"]
    finally:
        cp.close()
    again = await run_import(sb, file, mapping)  # search works again: found, not sent twice
    assert (again.counts.created, again.counts.left, again.exit_code) == (2, 0, 0)
    assert len(contacts_by_email(sb)["ada@lost.example"]) == 1


async def test_a_person_replaced_in_a_file_without_a_match_key_is_never_written_over_another(
    make_sandbox, tmp_path: Path
) -> None:
    """Issue 22: Zoe Quinn in the place of Alan Turing is not an edit of Alan's row (empty
    cells agreeing is no evidence), so his record is never overwritten with her: sharing no
    name or phone with him, she is created."""
    sb = make_sandbox()
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  First: FIRST_NAME\n  Last: LAST_NAME\n  City: ADDRESS_MAIL_CITY\n"
        "  Tier: Customer_Tier__c\n  Phone: PHONE\n",
    )
    file = write(tmp_path, "p.csv", "First,Last,City,Tier,Phone\nAlan,Turing,Wilmslow,Gold,\n")
    first = await run_import(sb, file, mapping)
    assert first.counts.created == 1
    file.write_text("First,Last,City,Tier,Phone\nZoe,Quinn,Wilmslow,Gold,\n", encoding="utf-8")
    assert (await run_import(sb, file, mapping)).this_run == (1, 0)
    alan = [
        r for r in sb.account.collections["Contacts"].records.values() if r["LAST_NAME"] == "Turing"
    ]
    assert [(r["FIRST_NAME"], r["LAST_NAME"]) for r in alan] == [("Alan", "Turing")]


async def test_the_plan_file_is_the_same_written_a_few_rows_at_a_time(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NAME.plan.csv is written in blocks of rows (a million rows make fifteen million lines):
    blocks of three rows give the file one block gives, creates and updates in line order."""
    import insightly_etl.load.importer as importer

    sb = make_sandbox()
    mapping = ROOT / "mappings/contacts.yaml"
    for folder in "abc":
        (tmp_path / folder).mkdir()
    first = write(tmp_path / "a", "contacts.csv", (ROOT / "sample_data/contacts.csv").read_text())
    await run_import(sb, first, mapping)  # 8 records
    lines = first.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("@", "+new@", 1)  # a new e-mail: a new record
    lines[4] = lines[4].replace("Fleet Manager", "Fleet Director")  # an update
    text = "\n".join(lines) + "\n"
    plans = []
    for block, folder in ((5_000, "b"), (3, "c")):
        monkeypatch.setattr(importer, "_PLAN_BLOCK", block)
        result = await run_import(
            sb, write(tmp_path / folder, "contacts.csv", text), mapping, dry_run=True
        )
        assert result.plan is not None and (result.plan.creates, result.plan.updates) == (1, 1)
        plans.append((tmp_path / folder / "contacts.plan.csv").read_bytes())
    assert plans[0] == plans[1]
    assert plans[0].count(b"line,action") == 1


async def test_columns_named_like_the_results_own_keep_their_names(
    make_sandbox, tmp_path: Path, monkeypatch
) -> None:
    """A US file's `state` column (or a `line`, `message`, `raw`…) once ended every import in
    "internal error: cannot insert state". The file's columns keep their names, so a fixed
    errors file imports again with the same mapping; ours step aside with a leading `_`.
    Blocks of two rows: the files are written a block at a time, in line order."""
    monkeypatch.setattr("insightly_etl.load.report._BLOCK", 2)
    sb = make_sandbox()
    file = write(
        tmp_path,
        "us.csv",
        "Name,Email,state,line,message,status,raw\n"
        "Ann,ann@example.com,CA,a,m1,s1,r1\n"
        "Bob,not-an-email,NY,b,m2,s2,r2\n"
        "short\n"
        "Cy,cy@example.com,TX,c,m3,s3,r3\n"
        "Di,di@example.com,WA,d,m4,s4,r4\n"
        "Ed,,OR,e,m5,s5,r5\n",
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        MATCH_EMAIL + "  state: ADDRESS_MAIL_STATE\n",
    )
    result = await run_import(sb, file, mapping, max_requests=3)
    assert result.exit_code == 75

    def lines(name: str) -> list[str]:
        return (tmp_path / name).read_text(encoding="utf-8-sig").splitlines()

    own = "Name,Email,state,line,message,status,raw"
    errors = lines("us.errors.csv")
    assert errors[0] == f"_line,_state,_status,_message,{own},_raw"
    assert errors[1].startswith("3,rejected,,Email: 'not-an-email' is not a plausible email")
    assert errors[1].endswith(",Bob,not-an-email,NY,b,m2,s2,r2,")
    assert errors[2] == '4,rejected,,"1 fields, but the header has 7",,,,,,,,short'
    assert len(errors) == 3
    unprocessed = lines("us.unprocessed.csv")
    assert unprocessed == [  # the budget went on reading the account: none was sent
        f"_line,{own}",
        "2,Ann,ann@example.com,CA,a,m1,s1,r1",
        "5,Cy,cy@example.com,TX,c,m3,s3,r3",
        "6,Di,di@example.com,WA,d,m4,s4,r4",
        "7,Ed,,OR,e,m5,s5,r5",
    ]
    assert result.counts.left == 4 and writes(sb) == 0


async def test_plain_words_in_a_mapping_stay_the_text_written(make_sandbox, tmp_path: Path) -> None:
    """YAML 1.1 read Norway's `NO` as false, the postcode `01067` as the octal 567 and the
    keys `Yes`/`No` as booleans: the import sent 'False' and '567' and exited 0."""
    sb = make_sandbox()
    file = write(
        tmp_path,
        "no.csv",
        "First Name,Email,Land,Member\nOla,ola@norway.example,Norge,Yes\n"
        "Kari,kari@norway.example,Norge,No\n",
    )
    mapping = write(
        tmp_path,
        "no.yaml",
        "object: contacts\ncolumns:\n  First Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n"
        "  Land: {field: ADDRESS_MAIL_COUNTRY, values: {Norge: NO}}\n"
        "  Member: {field: Customer_Tier__c, values: {Yes: Gold, No: Bronze}}\n"
        "defaults: {ADDRESS_MAIL_POSTCODE: 01067, ADDRESS_MAIL_CITY: on, TITLE: 12:30:00}\n",
    )
    result = await run_import(sb, file, mapping)
    assert (result.exit_code, result.counts.created) == (0, 2)
    people = contacts_by_email(sb)
    made = [people["ola@norway.example"][0], people["kari@norway.example"][0]]
    assert [
        (
            r["ADDRESS_MAIL_COUNTRY"],
            r["ADDRESS_MAIL_POSTCODE"],
            r["ADDRESS_MAIL_CITY"],
            r["TITLE"],
            custom(r)["Customer_Tier__c"],
        )
        for r in made
    ] == [("NO", "01067", "on", "12:30:00", "Gold"), ("NO", "01067", "on", "12:30:00", "Bronze")]


async def test_a_fixed_rejects_file_of_a_semicolon_file_reads_its_numbers_as_before(
    make_sandbox, tmp_path: Path
) -> None:
    """A `;` file (German Excel) reads `1,234` as one and a quarter. Its rejects file was
    written with commas, where `1,234` is a thousand and more: fixing the e-mail and importing
    it sent 1234. The results files that carry the file's cells keep its delimiter."""
    sb = make_sandbox()
    file = write(
        tmp_path,
        "eu.csv",
        "FIRST_NAME;EMAIL_ADDRESS;Lifetime_Value__c\nA;eu1@x.example;1,234\nB;bad;1,234\n",
    )
    first = await run_import(sb, file, None, object_name="contacts")
    assert (first.counts.created, first.counts.rejected) == (1, 1)
    rejects = tmp_path / "eu.rejects.csv"
    text = rejects.read_text(encoding="utf-8-sig")
    assert text.splitlines()[1:] == [
        "3;EMAIL_ADDRESS: 'bad' is not a plausible email address;B;bad;1,234"
    ]
    errors = (tmp_path / "eu.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[0] == "line;state;status;message;FIRST_NAME;EMAIL_ADDRESS;Lifetime_Value__c"
    rejects.write_text(text.replace(";bad;", ";eu2@x.example;"), encoding="utf-8-sig")
    fixed = await run_import(sb, rejects, None, object_name="contacts")
    assert fixed.counts.created == 1
    people = contacts_by_email(sb)
    assert [
        custom(people[e][0])["Lifetime_Value__c"] for e in ("eu1@x.example", "eu2@x.example")
    ] == [
        1.234,
        1.234,
    ]


async def test_a_leading_zero_is_no_group_of_thousands(make_sandbox, tmp_path: Path) -> None:
    """`0,125` in a comma file was read as 125."""
    sb = make_sandbox()
    file = write(
        tmp_path, "z.csv", 'FIRST_NAME,EMAIL_ADDRESS,Lifetime_Value__c\nA,z@x.example,"0,125"\n'
    )
    result = await run_import(sb, file, None, object_name="contacts")
    assert result.counts.created == 1
    assert custom(contacts_by_email(sb)["z@x.example"][0])["Lifetime_Value__c"] == 0.125
