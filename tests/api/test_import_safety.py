"""Imports never damage what is already in Insightly (issue: import safety): defaults only fill,
per-column update policies, sets added to, a before→after plan, fix-and-rerun."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from insightly_etl.errors import CheckpointError
from insightly_etl.load.undo import UndoCounts
from insightly_etl.sandbox import Sandbox
from tests.api.test_cli import run
from tests.api.test_import import custom, run_import, write, writes
from tests.conftest import asgi_client, sandbox_client

pytestmark = pytest.mark.anyio


async def existing(sb: Sandbox, **fields: Any) -> dict[str, Any]:
    """A contact someone typed into the CRM before the import."""
    async with asgi_client(sb) as http:
        reply = await http.post("Contacts", json=fields)
    assert reply.status_code in (200, 201), reply.text
    return dict(reply.json())


def record(sb: Sandbox, rid: int) -> dict[str, Any]:
    return dict(sb.account.collections["Contacts"].records[rid])


# contacts by e-mail, with their names
MATCH_PERSON = (
    "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n"
    "  First: FIRST_NAME\n  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n"
)


def external_id(sb: Sandbox, rid: int) -> str | None:
    """The contact's External_Id__c, as the sandbox holds it."""
    fields = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in record(sb, rid)["CUSTOMFIELDS"]}
    return fields.get("External_Id__c")


async def made_by(sb: Sandbox, file: Path, mapping: Path) -> int:
    """Import `file` (one new row) and the id of the contact it made."""
    assert (await run_import(sb, file, mapping)).counts.created == 1
    return max(sb.account.collections["Contacts"].records)


def tags(r: dict[str, Any]) -> list[str]:
    return [t["TAG_NAME"] for t in r.get("TAGS") or ()]


# a person by e-mail, with name and title: an edited e-mail keeps the row (its name) the same
PERSON_BY_EMAIL = (
    "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n"
    "  First: FIRST_NAME\n  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n  Title: TITLE\n"
)
MAPPING_HEAD = "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n"


async def test_defaults_fill_an_empty_field_of_a_matched_record_and_never_overwrite(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    typed = await existing(
        sb,
        FIRST_NAME="Ada",
        EMAIL_ADDRESS="ada@safe.example",
        BACKGROUND="Met at the Berlin trade fair.",
    )
    empty = await existing(sb, FIRST_NAME="Bob", EMAIL_ADDRESS="bob@safe.example")
    file = write(
        tmp_path,
        "p.csv",
        "Name,Email\nAda,ada@safe.example\nBob,bob@safe.example\nCy,cy@safe.example\n",
    )
    mapping = write(
        tmp_path, "m.yaml", MAPPING_HEAD + "defaults: {BACKGROUND: Imported from the fair list}\n"
    )
    result = await run_import(sb, file, mapping)
    assert (result.counts.created, result.counts.updated, result.counts.unchanged) == (
        1,
        1,
        1,
    )
    assert record(sb, typed["CONTACT_ID"])["BACKGROUND"] == "Met at the Berlin trade fair."
    assert record(sb, empty["CONTACT_ID"])["BACKGROUND"] == "Imported from the fair list"
    created = [
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] == "cy@safe.example"
    ]
    assert [r["BACKGROUND"] for r in created] == ["Imported from the fair list"]


async def test_tags_and_multiselect_keep_their_values_on_update_unless_merge_replace(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    before = await existing(
        sb,
        FIRST_NAME="Ada",
        EMAIL_ADDRESS="ada@tags.example",
        TAGS=[{"TAG_NAME": "vip"}, {"TAG_NAME": "newsletter"}],
        CUSTOMFIELDS=[{"FIELD_NAME": "Interests__c", "FIELD_VALUE": "Music"}],
    )
    rid = before["CONTACT_ID"]
    file = write(
        tmp_path, "p.csv", "Name,Email,Tags,Interests\nAda,ada@tags.example,customer,Sports\n"
    )
    add = write(
        tmp_path,
        "add.yaml",
        MAPPING_HEAD
        + "  Tags: {field: TAGS, split: ','}\n  Interests: {field: Interests__c, split: ','}\n",
    )
    result = await run_import(sb, file, add)
    assert result.counts.updated == 1
    assert tags(record(sb, rid)) == ["vip", "newsletter", "customer"]
    assert custom(record(sb, rid))["Interests__c"] == "Music;Sports"
    replace = write(
        tmp_path,
        "replace.yaml",
        MAPPING_HEAD
        + "  Tags: {field: TAGS, split: ',', merge: replace}\n  Interests: {field: Interests__c, split: ',', merge: replace}\n",
    )
    result = await run_import(sb, file, replace, checkpoint=tmp_path / "second.sqlite")
    assert result.counts.updated == 1
    assert tags(record(sb, rid)) == ["customer"]
    assert custom(record(sb, rid))["Interests__c"] == "Sports"


class OddTags(httpx.AsyncBaseTransport):
    """The sandbox behind a server whose answers for one contact say its tags oddly: not at
    all (as a brief listing), or as bare names."""

    def __init__(self, sb: Sandbox, rid: int, tags: Any) -> None:
        self.inner, self.rid, self.tags = httpx.ASGITransport(app=sb.app), rid, tags

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET" or "/Contacts" not in request.url.path:
            return response
        data = json.loads(await response.aread())
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict) and item.get("CONTACT_ID") == self.rid:
                if self.tags is None:
                    item.pop("TAGS", None)
                else:
                    item["TAGS"] = self.tags
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        headers.pop("content-encoding", None)
        return httpx.Response(response.status_code, headers=headers, json=data)


@pytest.mark.parametrize("answered", [None, ["vip", "newsletter"], [{"TAG_ID": 7}]])
async def test_tags_an_answer_does_not_say_are_never_replaced(
    answered: Any, make_sandbox, tmp_path: Path
) -> None:
    """merge: add sends the record's tags and the row's; an answer without TAGS made the
    record's tags look empty, and the PUT replaced vip and newsletter by the row's one (bare
    names stopped the run with an internal error)."""
    sb = make_sandbox()
    rid = (
        await existing(
            sb,
            FIRST_NAME="Ada",
            EMAIL_ADDRESS="ada@tags.example",
            TAGS=[{"TAG_NAME": "vip"}, {"TAG_NAME": "newsletter"}],
        )
    )["CONTACT_ID"]
    file = write(tmp_path, "p.csv", "Name,Email,Tags\nAda,ada@tags.example,customer\n")
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD + "  Tags: {field: TAGS, split: ','}\n")
    transport = lambda sb: OddTags(sb, rid, answered)  # noqa: E731
    result = await run_import(sb, file, mapping, transport=transport)
    assert (result.counts.updated, result.counts.failed, result.exit_code) == (0, 1, 1)
    assert tags(record(sb, rid)) == ["vip", "newsletter"]
    errors = list(csv.DictReader((tmp_path / "p.errors.csv").open(encoding="utf-8-sig")))
    why = "holds no TAGS for the record" if answered is None else "holds TAGS that are no list"
    assert errors[0]["message"].startswith(f"TAGS: Insightly's answer {why}"), errors
    assert errors[0]["message"].endswith(
        ": not sent, as a PUT with TAGS replaces the record's tags and would remove the ones "
        "not known; run again later, or add them in Insightly"
    )


async def test_update_fill_and_never_leave_what_people_typed(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    typed = await existing(
        sb,
        FIRST_NAME="Ada",
        LAST_NAME="Lovelace",
        EMAIL_ADDRESS="ada@pol.example",
        TITLE="Countess",
    )
    blank = await existing(sb, FIRST_NAME="Bob", EMAIL_ADDRESS="bob@pol.example")
    file = write(
        tmp_path,
        "p.csv",
        "Name,Email,Last,Title\nAda,ada@pol.example,Byron,Engineer\nBob,bob@pol.example,Smith,Clerk\nCy,cy@pol.example,New,Boss\n",
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        MAPPING_HEAD
        + "  Last: {field: LAST_NAME, update: fill}\n  Title: {field: TITLE, update: never}\n",
    )
    result = await run_import(sb, file, mapping)
    assert (result.counts.created, result.counts.updated, result.counts.unchanged) == (
        1,
        1,
        1,
    )
    ada, bob = record(sb, typed["CONTACT_ID"]), record(sb, blank["CONTACT_ID"])
    assert (ada["LAST_NAME"], ada["TITLE"]) == ("Lovelace", "Countess")
    assert (bob["LAST_NAME"], bob["TITLE"]) == ("Smith", None)
    cy = [
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] == "cy@pol.example"
    ]
    assert [(r["LAST_NAME"], r["TITLE"]) for r in cy] == [("New", "Boss")]  # never: create only


def test_an_unknown_update_or_merge_mode_is_a_mapping_error(tmp_path: Path) -> None:
    from insightly_etl.errors import InputError
    from insightly_etl.load.mapping import read_mapping

    mapping = write(
        tmp_path, "m.yaml", MAPPING_HEAD + "  Last: {field: LAST_NAME, update: sometimes}\n"
    )
    with pytest.raises(InputError) as caught:
        read_mapping(mapping)
    assert (
        str(caught.value)
        == f"{mapping}: columns.Last.update: must be one of overwrite, fill, never, not 'sometimes'"
    )


def puts_and_posts(sb: Sandbox) -> tuple[int, int]:
    return (
        sum(n for (m, _, _), n in sb.stats.items() if m == "PUT"),
        sum(n for (m, _, _), n in sb.stats.items() if m == "POST"),
    )


async def test_edit_one_cell_and_rerun_the_same_command_sends_exactly_one_put(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(
        tmp_path,
        "p.csv",
        "Name,Email\nAda,ada@fix.example\nBob,bob@fix.example\nCy,cy@fix.example\n",
    )
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD)
    first = await run_import(sb, file, mapping)
    assert first.counts.created == 3 and puts_and_posts(sb) == (0, 3)
    file.write_text("Name,Email\nAda,ada@fix.example\nRobert,bob@fix.example\nCy,cy@fix.example\n")
    second = await run_import(sb, file, mapping)
    assert second.exit_code == 0 and puts_and_posts(sb) == (1, 3)
    assert (second.counts.created, second.counts.updated) == (2, 1)
    assert second.since_last_run == (
        "1 row(s) edited, 0 new, 0 removed (removed rows are left alone in Insightly)"
    )
    bob = [
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] == "bob@fix.example"
    ]
    assert [r["FIRST_NAME"] for r in bob] == ["Robert"]
    plan = (tmp_path / "p.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert plan[1:] == [f"3,update,{bob[0]['CONTACT_ID']},FIRST_NAME,Bob,Robert,"]


async def test_an_id_of_another_system_in_other_letters_is_never_taken_for_the_same_record(
    make_sandbox, tmp_path: Path
) -> None:
    """Salesforce's 15-character ids differ by case alone: `0035g00000QA1bC` matched
    case-blind to Anna's `0035g00000Qa1Bc` made Anna into Bernd."""
    sb = make_sandbox()
    head = "Contact ID,First,Last\n"
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Contact ID, field: External_Id__c}\ncolumns:\n"
        "  Contact ID: External_Id__c\n  First: FIRST_NAME\n  Last: LAST_NAME\n",
    )
    january = write(tmp_path, "january.csv", head + "0035g00000Qa1Bc,Anna,Alpha\n")
    assert (await run_import(sb, january, mapping)).counts.created == 1
    (anna,) = [
        r for r in sb.account.collections["Contacts"].records.values() if r["FIRST_NAME"] == "Anna"
    ]
    february = write(tmp_path, "february.csv", head + "0035g00000QA1bC,Bernd,Beta\n")
    refused = await run_import(sb, february, mapping)
    assert (refused.exit_code, refused.counts.failed, refused.counts.updated) == (1, 1, 0)
    assert record(sb, anna["CONTACT_ID"]) == anna
    errors = (tmp_path / "february.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        f"External_Id__c '0035g00000QA1bC' matches record {anna['CONTACT_ID']} only ignoring case "
        "(it holds '0035g00000Qa1Bc'): ids written in other letters are other records in many "
        "systems (Salesforce); not written: add compare: exact to the match key, or compare: "
        "casefold if they are the same"
    ) in errors
    # the file's id in capitals alone reads as no id: the record's does, and is another's
    capitals = write(tmp_path, "capitals.csv", head + "0035G00000QA1BC,Erin,E\n")
    held = await run_import(sb, capitals, mapping)
    assert (held.counts.failed, held.counts.updated) == (1, 0)
    assert record(sb, anna["CONTACT_ID"]) == anna
    exact = write(
        tmp_path,
        "exact.yaml",
        mapping.read_text().replace("External_Id__c}", "External_Id__c, compare: exact}"),
    )
    made = await run_import(sb, february, exact, checkpoint=tmp_path / "exact.sqlite")
    assert (made.exit_code, made.counts.created) == (0, 1)
    assert record(sb, anna["CONTACT_ID"]) == anna
    # both in one file: neither is sent, and --on-duplicate never makes one of them
    both = write(tmp_path, "both.csv", head + "0035g00000Qa2Bc,Cleo,C\n0035g00000QA2bC,Dan,D\n")
    held = await run_import(sb, both, mapping, on_duplicate="last", dry_run=True)
    assert (held.counts.duplicate, held.plan and held.plan.creates) == (2, 0)
    errors = (tmp_path / "both.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "lines 2, 3 have External_Id__c '0035g00000Qa2Bc' and '0035g00000QA2bC', alike only "
        "ignoring case: ids written in other letters are other records in many systems "
        "(Salesforce); none is sent: add compare: exact to the match key, or compare: "
        "casefold if they are the same"
    ) in errors
    # a key in other letters that is no id (a name) still matches, as a person would
    by_name = write(
        tmp_path,
        "name.yaml",
        "object: contacts\nmatch: {column: Last, field: LAST_NAME}\ncolumns:\n"
        "  First: FIRST_NAME\n  Last: LAST_NAME\n",
    )
    renamed = write(tmp_path, "renamed.csv", "First,Last\nAnnie,ALPHA\n")
    updated = await run_import(sb, renamed, by_name)
    assert (updated.exit_code, updated.counts.updated) == (0, 1)
    assert record(sb, anna["CONTACT_ID"])["FIRST_NAME"] == "Annie"


async def test_without_a_match_key_an_edited_row_updates_its_record_even_after_an_insertion(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAnn,ann@nokey.example\nBob,bob@exmaple.com\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n",
    )
    await run_import(sb, file, mapping)
    # a row inserted at the top, and Bob's email fixed: every row moved
    file.write_text("Name,Email\nCy,cy@nokey.example\nAnn,ann@nokey.example\nBob,bob@example.com\n")
    second = await run_import(sb, file, mapping)
    assert second.exit_code == 0, second.counts
    assert puts_and_posts(sb) == (1, 3)  # Bob updated, Cy created: no second Bob
    assert second.since_last_run is not None and second.since_last_run.startswith(
        "1 row(s) edited, 1 new, 0 removed"
    )
    ours = {"ann@nokey.example", "bob@exmaple.com", "bob@example.com", "cy@nokey.example"}
    emails = sorted(
        r["EMAIL_ADDRESS"]
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] in ours
    )
    assert emails == ["ann@nokey.example", "bob@example.com", "cy@nokey.example"]
    third = await run_import(sb, file, mapping)
    assert third.since_last_run is None and puts_and_posts(sb) == (1, 3)  # nothing more to do


async def ada_and_bob_without_a_key(sb: Sandbox, folder: Path) -> tuple[Path, Path]:
    """Ada and Bob imported by a mapping without a match key: the file and the mapping."""
    file = write(folder, "p.csv", "Name,Email\nAda,ada@guess.example\nBob,bob@guess.example\n")
    mapping = write(
        folder, "m.yaml", "object: contacts\ncolumns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n"
    )
    assert (await run_import(sb, file, mapping)).counts.created == 2
    return file, mapping


async def test_without_a_match_key_a_new_row_like_a_vanished_one_is_refused_not_guessed(
    make_sandbox, tmp_path: Path
) -> None:
    """Bob's row now says Robert, at Bob's e-mail: an edit of Bob's row (his name fixed), or
    Bob gone and Robert new? Refused, naming both lines, and nothing is sent."""
    sb = make_sandbox()
    file, mapping = await ada_and_bob_without_a_key(sb, tmp_path)
    bob = max(sb.account.collections["Contacts"].records)
    file.write_text("Name,Email\nAda,ada@guess.example\nRobert,bob@guess.example\n")
    with pytest.raises(CheckpointError) as caught:
        await run_import(sb, file, mapping)
    assert str(caught.value) == (
        "p.csv: 1 new row(s) may be edits of rows of the last run that are gone (line 3 and "
        f"the earlier line 3, record {bob}); without a match key an edit cannot be told from "
        "a new record, and sending them could create a second record"
    )
    assert caught.value.hint == (
        "Put the earlier rows back as they were and make the edit in Insightly, or add a "
        "match key those rows kept unchanged (match: {column: Email, field: EMAIL_ADDRESS}, "
        "where the e-mail is as it was): a key they changed makes them new records."
    )
    assert puts_and_posts(sb) == (0, 2)  # nothing sent
    other = write(tmp_path, "q.csv", file.read_text())  # another file, the same checkpoint
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    with pytest.raises(CheckpointError) as caught:
        await run_import(sb, other, mapping, checkpoint=checkpoint)
    assert str(caught.value).startswith("q.csv (the checkpoint is of p.csv): 1 new row(s)")


async def test_without_a_match_key_a_new_person_beside_a_vanished_one_is_created(
    make_sandbox, tmp_path: Path
) -> None:
    """Bob's row deleted and Dee's added in one edit, sharing no name, e-mail or phone: two
    people, so Dee is created and Bob's record left alone (the run was refused)."""
    sb = make_sandbox()
    file, mapping = await ada_and_bob_without_a_key(sb, tmp_path)
    file.write_text("Name,Email\nAda,ada@guess.example\nDee,dee@guess.example\n")
    again = await run_import(sb, file, mapping)
    assert (again.this_run, again.since_last_run) == (
        (1, 0),
        "0 row(s) edited, 1 new, 1 removed (removed rows are left alone in Insightly)",
    )
    assert puts_and_posts(sb) == (0, 3)


async def test_without_a_match_key_a_person_replaced_by_another_sharing_a_phone_is_no_edit(
    make_sandbox, tmp_path: Path
) -> None:
    """Zoe Quinn in Alan Turing's place, with the same switchboard phone: the phone agreed in
    full, so the rerun updated Alan's record into Zoe's."""
    sb = make_sandbox()
    head = "First,Last,Email,Phone,Title\n"
    file = write(
        tmp_path,
        "people.csv",
        head + "Alan,Turing,,+44 20 7946 0000,Engineer\nGrace,Hopper,grace@navy.example,,Admiral\n",
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  First: FIRST_NAME\n  Last: LAST_NAME\n"
        "  Email: EMAIL_ADDRESS\n  Phone: PHONE\n  Title: TITLE\n",
    )
    await run_import(sb, file, mapping)
    (alan,) = [
        r for r in sb.account.collections["Contacts"].records.values() if r["LAST_NAME"] == "Turing"
    ]
    file.write_text(
        head + "Zoe,Quinn,,+44 20 7946 0000,Engineer\nGrace,Hopper,grace@navy.example,,Admiral\n"
    )
    with pytest.raises(CheckpointError) as caught:
        await run_import(sb, file, mapping)
    assert str(caught.value).startswith(  # they share a phone: maybe Alan's row edited
        "people.csv: 1 new row(s) may be edits of rows of the last run that are gone (line 2 "
        f"and the earlier line 2, record {alan['CONTACT_ID']})"
    )
    assert record(sb, alan["CONTACT_ID"]) == alan


async def test_a_changed_mapping_diffs_every_row_again_and_sends_only_the_differences(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(
        tmp_path, "p.csv", "Name,Email,Title\nAda,ada@map.example,Boss\nBob,bob@map.example,\n"
    )
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD)
    await run_import(sb, file, mapping)
    mapping.write_text(MAPPING_HEAD + "  Title: TITLE\n")
    second = await run_import(sb, file, mapping)
    assert (
        second.since_last_run == "the mapping changed: every row is compared with Insightly again"
    )
    assert puts_and_posts(sb) == (1, 2)  # Ada gets her title; Bob has nothing new
    assert (second.counts.updated, second.counts.unchanged) == (1, 1)


async def test_an_edited_export_never_overwrites_a_record_changed_in_insightly_since(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    fresh = await existing(sb, FIRST_NAME="Ada", EMAIL_ADDRESS="ada@conflict.example")
    moved = await existing(sb, FIRST_NAME="Bob", EMAIL_ADDRESS="bob@conflict.example")
    # the file is an export edited in a spreadsheet: Bob's copy is older than Bob's record
    text = (
        "CONTACT_ID,FIRST_NAME,DATE_UPDATED_UTC\n"
        f"{fresh['CONTACT_ID']},Adaline,{fresh['DATE_UPDATED_UTC']}\n"
        f"{moved['CONTACT_ID']},Robert,2000-01-01 00:00:00\n"
    )
    file = write(tmp_path, "export.csv", text)
    result = await run_import(sb, file, None, object_name="contacts")
    assert (result.counts.updated, result.counts.failed, result.exit_code) == (1, 1, 1)
    assert record(sb, fresh["CONTACT_ID"])["FIRST_NAME"] == "Adaline"
    assert record(sb, moved["CONTACT_ID"])["FIRST_NAME"] == "Bob"
    errors = list(csv.DictReader((tmp_path / "export.errors.csv").open(encoding="utf-8-sig")))
    assert [(e["line"], e["state"], e["status"], e["message"]) for e in errors] == [
        (
            "3",
            "failed",
            "",
            f"conflict: record {moved['CONTACT_ID']} changed in Insightly at "
            f"{moved['DATE_UPDATED_UTC']} UTC, after this file's copy (2000-01-01 00:00:00 UTC); "
            "not overwritten (FIRST_NAME). Re-export it, or use --on-conflict overwrite",
        )
    ]
    again = await run_import(sb, file, None, object_name="contacts", on_conflict="overwrite")
    assert again.counts.updated == 2 and record(sb, moved["CONTACT_ID"])["FIRST_NAME"] == "Robert"
    # without the export's _base, the whole row went, said before it was sent
    assert again.warnings == [
        "1 row(s) whose record changed in Insightly after the file's copy are overwritten whole "
        "(--on-conflict overwrite, and no export's _base to tell the cells edited in the file "
        "from the rest): every cell that differs from Insightly is sent, a colleague's later "
        f"edit reverted too (line 3: record {moved['CONTACT_ID']}, FIRST_NAME). To send only what "
        "the file changed, import from the export's folder or give --base FILE"
    ]
    # a copy's time that cannot be read: a change is not known, only possible
    unread = write(tmp_path, "unread.csv", text.replace("2000-01-01 00:00:00", "yesterday"))
    unread.write_text(unread.read_text().replace("Robert", "Rob"))
    third = await run_import(sb, unread, None, object_name="contacts", on_conflict="overwrite")
    assert third.warnings[0].startswith(
        "1 row(s) whose record changed (or, where the copy's time cannot be read, may have "
        "changed) in Insightly after the file's copy are overwritten whole"
    )


async def run_undo(sb: Sandbox, checkpoint: Path, **options: Any):  # -> UndoResult
    from insightly_etl.load.undo import undo_import

    client_options = {k: options.pop(k) for k in ("max_requests",) if k in options}
    async with sandbox_client(sb, **client_options) as client:
        return await undo_import(client, checkpoint, **options)


async def test_undo_deletes_what_was_created_and_restores_what_was_changed_except_later_edits(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    ada = await existing(
        sb, FIRST_NAME="Ada", LAST_NAME="L", EMAIL_ADDRESS="ada@undo.example", TITLE="Countess"
    )
    bob = await existing(
        sb,
        FIRST_NAME="Bob",
        LAST_NAME="B",
        EMAIL_ADDRESS="bob@undo.example",
        TAGS=[{"TAG_NAME": "vip"}],
    )
    file = write(
        tmp_path,
        "u.csv",
        "Name,Email,Title,Tags\n"
        "Ada,ada@undo.example,Engineer,\n"
        "Bob,bob@undo.example,Clerk,customer\n"
        "Cy,cy@undo.example,,\nDee,dee@undo.example,,\nEve,eve@undo.example,Boss,\n",
    )
    mapping = write(
        tmp_path, "m.yaml", MAPPING_HEAD + "  Title: TITLE\n  Tags: {field: TAGS, split: ','}\n"
    )
    result = await run_import(sb, file, mapping)
    assert (result.counts.created, result.counts.updated) == (3, 2)
    # someone edits Bob's title by hand after the import
    async with asgi_client(sb) as http:
        await http.put("Contacts", json={"CONTACT_ID": bob["CONTACT_ID"], "TITLE": "Manager"})
    checkpoint = tmp_path / "u.csv.checkpoint.sqlite"
    preview = await run_undo(sb, checkpoint, dry_run=True)
    assert (preview.counts.deleted, preview.counts.restored, preview.counts.conflict) == (
        3,
        1,
        1,
    )
    assert (
        len(sb.account.collections["Contacts"].records) > 0
        and record(sb, ada["CONTACT_ID"])["TITLE"] == "Engineer"
    )
    undone = await run_undo(sb, checkpoint)
    assert (undone.counts.deleted, undone.counts.restored, undone.counts.conflict) == (
        3,
        1,
        1,
    )
    assert undone.exit_code == 1
    emails = {r["EMAIL_ADDRESS"] for r in sb.account.collections["Contacts"].records.values()}
    assert not emails & {"cy@undo.example", "dee@undo.example", "eve@undo.example"}
    assert record(sb, ada["CONTACT_ID"])["TITLE"] == "Countess"
    bob_now = record(sb, bob["CONTACT_ID"])
    assert (bob_now["TITLE"], tags(bob_now)) == ("Manager", ["vip"])  # tags restored, title kept
    report = list(csv.DictReader((tmp_path / "u.undo.csv").open(encoding="utf-8-sig")))
    assert [
        (r["line"], r["action"], r["field"], r["before"], r["written"], r["now"])
        for r in report
        if r["line"] == "3"
    ] == [
        ("3", "restore", "TAGS", "vip", "vip;customer", "vip;customer"),
        ("3", "conflict", "TITLE", "", "Clerk", "Manager"),
    ]
    again = await run_undo(sb, checkpoint)  # resumable, and never deletes twice
    # the account (GET /Instance) and the definitions only
    assert again.counts == UndoCounts() and again.requests == 2


async def test_undo_stopped_by_the_quota_exits_75_and_the_next_run_finishes_it(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    rows = "".join(f"P{i},p{i}@undoq.example\n" for i in range(6))
    file = write(tmp_path, "q.csv", "Name,Email\n" + rows)
    await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    checkpoint = tmp_path / "q.csv.checkpoint.sqlite"
    first = await run_undo(sb, checkpoint, max_requests=6)  # the definitions, then GET + DELETE
    assert first.outcome.stopped == "quota" and first.exit_code == 75
    assert 0 < first.counts.deleted < 6 and first.counts.left == 6 - first.counts.deleted
    ids = {r: d for r, d in _undo_lines(tmp_path / "q.undo.csv")}
    assert len(ids) == first.counts.deleted and set(ids.values()) == {"delete"}
    second = await run_undo(sb, checkpoint)
    assert second.exit_code == 0 and first.counts.deleted + second.counts.deleted == 6
    assert second.counts.gone == 0  # nothing deleted twice or looked for again
    assert second.earlier is not None and second.earlier.deleted == first.counts.deleted
    # every record either run deleted, once: the second run's file had only its own
    assert _undo_lines(tmp_path / "q.undo.csv") == [(line, "delete") for line in range(2, 8)]
    left = [
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"].endswith("@undoq.example")
    ]
    assert left == []


def _undo_lines(path: Path) -> list[tuple[int, str]]:
    """NAME.undo.csv's (line, action)s."""
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    return [(int(r["line"]), r["action"]) for r in rows]


async def test_running_the_import_after_undo_imports_again(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "a.csv", "Name,Email\nAda,ada@again.example\nBob,bob@again.example\n")
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD)
    await run_import(sb, file, mapping)
    checkpoint = tmp_path / "a.csv.checkpoint.sqlite"
    assert (await run_undo(sb, checkpoint)).counts.deleted == 2
    report = (tmp_path / "a.undo.csv").read_text(encoding="utf-8-sig")
    assert (await run_undo(sb, checkpoint)).counts.deleted == 0
    assert (tmp_path / "a.undo.csv").read_text(encoding="utf-8-sig") == report  # kept
    again = await run_import(sb, file, mapping)
    assert again.counts.created == 2 and again.exit_code == 0
    assert again.since_last_run == "the import was undone: its 2 row(s) are imported again"
    emails = [r["EMAIL_ADDRESS"] for r in sb.account.collections["Contacts"].records.values()]
    assert sorted(e for e in emails if e.endswith("@again.example")) == [
        "ada@again.example",
        "bob@again.example",
    ]


class DroppingTitle(httpx.AsyncBaseTransport):
    """The sandbox behind a server that silently does not apply TITLE, as live servers drop
    read-only fields: the write succeeds, the value is not there."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method in ("POST", "PUT"):
            body = json.loads(request.content)
            body.pop("TITLE", None)
            request = httpx.Request(request.method, request.url, headers=request.headers, json=body)
        return await self.inner.handle_async_request(request)


async def test_a_value_the_server_silently_dropped_is_reported_per_line_and_field(
    make_sandbox, tmp_path: Path
) -> None:

    sb = make_sandbox()
    file = write(
        tmp_path,
        "t.csv",
        "Name,Email,Title\nAda,ada@drop.example,Countess\nBob,bob@drop.example,\n",
    )
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD + "  Title: TITLE\n")
    result = await run_import(sb, file, mapping, transport=DroppingTitle)
    assert (result.counts.created, result.counts.not_applied, result.exit_code) == (2, 1, 1)
    errors = list(csv.DictReader((tmp_path / "t.errors.csv").open(encoding="utf-8-sig")))
    assert [(e["line"], e["state"], e["message"]) for e in errors] == [
        ("2", "not applied", "not applied: TITLE (sent 'Countess', Insightly has None)")
    ]
    # no extra request: the answers themselves were compared
    assert not [key for key in sb.stats if key[0] == "GET" and key[1] == "/v3.1/Contacts/{id}"]


def test_frees_up_counts_what_this_tool_sent_in_the_rolling_window() -> None:
    from datetime import UTC, datetime

    from insightly_etl.api.accounting import frees_up

    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    sent = [("2026-11-23 09:00", 5), ("2026-11-23 11:30", 3), ("2026-11-23 12:00", 4)]
    # 09:00's five expired at 09:01 today; 11:30's three free at 11:31, 12:00's four at 12:01
    assert frees_up(sent, 3, now) == datetime(2026, 11, 24, 11, 31, tzinfo=UTC)
    assert frees_up(sent, 5, now) == datetime(2026, 11, 24, 12, 1, tzinfo=UTC)
    assert frees_up(sent, 8, now) is None  # the rest was spent by someone else


async def test_a_quota_stop_says_when_the_rolling_window_frees_enough(
    make_sandbox, tmp_path: Path
) -> None:
    import re
    from datetime import UTC, datetime, timedelta

    sb = make_sandbox(daily_quota=6)
    rows = "".join(f"P{i},p{i}@q.example\n" for i in range(10))
    file = write(tmp_path, "q.csv", "Name,Email\n" + rows)
    result = await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    assert result.outcome.stopped == "quota" and result.exit_code == 75
    assert result.quota_frees is not None
    match = re.fullmatch(
        rf"{result.counts.left} request\(s\) free up by (\S+ \S+) UTC at the earliest \(other "
        r"integrations on the account share the allowance, so it may be later\)",
        result.quota_frees,
    )
    assert match, result.quota_frees
    at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert timedelta(hours=24) <= at - datetime.now(UTC) <= timedelta(hours=24, minutes=2)


async def test_undo_leaves_a_created_record_that_someone_edited_since(
    make_sandbox, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    clock = {"now": datetime(2026, 11, 23, 9, 0, tzinfo=UTC)}
    sb = make_sandbox(now=lambda: clock["now"])
    file = write(tmp_path, "e.csv", "Name,Email\nAda,ada@edit.example\nBob,bob@edit.example\n")
    await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    ada = next(
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] == "ada@edit.example"
    )
    clock["now"] += timedelta(minutes=5)  # later, someone adds to Ada's record by hand
    async with asgi_client(sb) as http:
        await http.put(
            "Contacts", json={"CONTACT_ID": ada["CONTACT_ID"], "BACKGROUND": "Met in Berlin"}
        )
    (bob,) = [
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["FIRST_NAME"] == "Bob" and r["EMAIL_ADDRESS"] == "bob@edit.example"
    ]
    undone = await run_undo(sb, tmp_path / "e.csv.checkpoint.sqlite")
    assert (undone.counts.deleted, undone.counts.conflict) == (1, 1)
    assert record(sb, ada["CONTACT_ID"])["BACKGROUND"] == "Met in Berlin"  # still there
    report = (tmp_path / "e.undo.csv").read_text(encoding="utf-8-sig").splitlines()
    assert report[1:] == [  # the conflict names the fields it can (it said `(record)`)
        f"2,conflict,{ada['CONTACT_ID']},(a field the import did not send),,updated "
        "2026-11-23 09:00:00,updated 2026-11-23 09:05:00",
        f"3,delete,{bob['CONTACT_ID']},,,,",
    ]
    # a field the import sent, changed since: named
    file.write_text("Name,Email\nCy,cy@edit.example\n")
    await run_import(
        sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD), checkpoint=tmp_path / "c.sqlite"
    )
    cy = next(
        r
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"] == "cy@edit.example"
    )
    clock["now"] += timedelta(minutes=5)
    async with asgi_client(sb) as http:
        await http.put("Contacts", json={"CONTACT_ID": cy["CONTACT_ID"], "FIRST_NAME": "Cyril"})
    await run_undo(sb, tmp_path / "c.sqlite")
    report = (tmp_path / "e.undo.csv").read_text(encoding="utf-8-sig").splitlines()
    assert report[1].startswith(f"2,conflict,{cy['CONTACT_ID']},FIRST_NAME,,updated ")


def test_reconciliation_never_takes_a_record_that_differs_after_19_characters() -> None:
    from insightly_etl.load.reconcile import WHO, agreement, resembles

    sent = {"FIRST_NAME": "AP", "EMAIL_ADDRESS": "accounts.payable.team@acme-holding.com"}
    other = {"FIRST_NAME": "AP", "EMAIL_ADDRESS": "accounts.payable.team@acme-holding.co.uk"}
    assert agreement(other, sent) == {"FIRST_NAME": True, "EMAIL_ADDRESS": False}
    assert resembles(other, sent, WHO) is False
    assert all(agreement(dict(sent), sent).values()) and resembles(dict(sent), sent, WHO)
    assert agreement({"DATE_OF_BIRTH": "1990-02-03 00:00:00"}, {"DATE_OF_BIRTH": "1990-02-03"}) == {
        "DATE_OF_BIRTH": True
    }


async def test_merge_add_keeps_a_tag_whose_name_holds_a_semicolon(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    before = await existing(
        sb,
        FIRST_NAME="Ada",
        EMAIL_ADDRESS="ada@semi.example",
        TAGS=[{"TAG_NAME": "Partner; EMEA"}, {"TAG_NAME": "Key account"}],
    )
    file = write(tmp_path, "s.csv", "Name,Email,Tags\nAda,ada@semi.example,VIP\n")
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD + "  Tags: {field: TAGS, split: ','}\n")
    result = await run_import(sb, file, mapping)
    assert result.counts.updated == 1
    assert tags(record(sb, before["CONTACT_ID"])) == ["Partner; EMEA", "Key account", "VIP"]
    undone = await run_undo(sb, tmp_path / "s.csv.checkpoint.sqlite")
    assert undone.counts.restored == 1
    assert tags(record(sb, before["CONTACT_ID"])) == ["Partner; EMEA", "Key account"]


async def test_edits_after_a_removal_and_after_an_undo_keep_the_checkpoint_consistent(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD + "  Title: TITLE\n")
    existing_rows = "Ann,ann@k.example,A\nBob,bob@k.example,B\nCy,cy@k.example,C\n"
    for email in ("ann", "bob", "cy"):
        await existing(sb, FIRST_NAME=email.title(), EMAIL_ADDRESS=f"{email}@k.example")
    file = write(tmp_path, "k.csv", "Name,Email,Title\n" + existing_rows)
    await run_import(sb, file, mapping)  # three updates, with before-images
    file.write_text("Name,Email,Title\nAnn,ann@k.example,A\nCy,cy@k.example,C\n")  # Bob removed
    await run_import(sb, file, mapping)
    file.write_text("Name,Email,Title\nAnn,ann@k.example,AA\nCy,cy@k.example,C\n")  # then an edit
    third = await run_import(sb, file, mapping)
    assert third.exit_code == 0 and third.counts.updated == 3 - 1
    checkpoint = tmp_path / "k.csv.checkpoint.sqlite"
    assert (await run_undo(sb, checkpoint)).counts.restored == 2
    file.write_text(
        "Name,Email,Title\nZed,zed@k.example,Z\nAnn,ann@k.example,AA\nCy,cy@k.example,C\n"
    )
    fourth = await run_import(sb, file, mapping)  # after the undo, with every row moved
    assert fourth.exit_code == 0
    titles = {
        r["EMAIL_ADDRESS"]: r["TITLE"]
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"].endswith("@k.example")
    }
    assert titles == {
        "ann@k.example": "AA",
        "bob@k.example": "B",
        "cy@k.example": "C",
        "zed@k.example": "Z",
    }


class LosesTheFirstDelete(httpx.AsyncBaseTransport):
    """The sandbox, except that the first DELETE is applied and its answer lost."""

    method = "DELETE"

    def __init__(self, sb: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sb.app)
        self.lost = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == self.method and not self.lost:
            self.lost = True
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response


async def test_an_undo_whose_delete_answer_was_lost_counts_it_deleted_next_time(
    make_sandbox, tmp_path: Path
) -> None:
    from insightly_etl.api import InsightlyClient
    from insightly_etl.config import load_settings
    from insightly_etl.load.undo import undo_import
    from tests.conftest import KEY

    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@lost.example\nBob,bob@lost.example\n")
    await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    settings = load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/")
    async with InsightlyClient(settings, transport=LosesTheFirstDelete(sb), rate=1000) as client:
        first = await undo_import(client, checkpoint)
    assert (first.counts.deleted, first.counts.failed, first.exit_code) == (1, 1, 1)
    second = await run_undo(sb, checkpoint)
    # the lost one is gone: it was undo's own DELETE, not a colleague's
    assert (second.counts.deleted, second.counts.gone, second.exit_code) == (1, 0, 0)
    assert not {"ada@lost.example", "bob@lost.example"} & {
        r["EMAIL_ADDRESS"] for r in sb.account.collections["Contacts"].records.values()
    }


class LosesTheFirstPut(LosesTheFirstDelete):
    method = "PUT"


async def test_an_undo_whose_restore_answer_was_lost_counts_it_restored_next_time(
    make_sandbox, tmp_path: Path
) -> None:
    from insightly_etl.api import InsightlyClient
    from insightly_etl.config import load_settings
    from insightly_etl.load.undo import undo_import
    from tests.conftest import KEY

    sb = make_sandbox()
    ada = await existing(sb, FIRST_NAME="Ada", EMAIL_ADDRESS="ada@put.example", TITLE="Countess")
    file = write(tmp_path, "p.csv", "Name,Email,Title\nAda,ada@put.example,Engineer\n")
    mapping = write(tmp_path, "m.yaml", MAPPING_HEAD + "  Title: TITLE\n")
    assert (await run_import(sb, file, mapping)).counts.updated == 1
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    settings = load_settings(api_key=KEY, api_url="http://127.0.0.1/v3.1/")
    async with InsightlyClient(settings, transport=LosesTheFirstPut(sb), rate=1000) as client:
        first = await undo_import(client, checkpoint)
    assert (first.counts.restored, first.counts.failed) == (0, 1)
    assert record(sb, ada["CONTACT_ID"])["TITLE"] == "Countess"  # the PUT went through
    second = await run_undo(sb, checkpoint)
    assert (second.counts.restored, second.counts.conflict, second.exit_code) == (1, 0, 0)


def test_a_sandbox_rehearsal_leaves_the_real_run_s_results_alone(tmp_path: Path) -> None:
    """NAME.success.csv holds the real account's record ids: a --sandbox rehearsal of the same
    file writes NAME.sandbox.*.csv beside it, as it keeps a checkpoint of its own."""
    from tests.api.test_cli import run

    file = tmp_path / "p.csv"
    file.write_text("Name,Email\nAda,ada@rehearsal.example\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING_HEAD)
    real = "line,action,record_id\n2,created,987654\n"
    (tmp_path / "p.success.csv").write_text(real, encoding="utf-8")
    result = run(None, "import", str(file), "--mapping", str(mapping), "--sandbox", "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.success.csv").read_text(encoding="utf-8") == real
    rehearsal = (tmp_path / "p.sandbox.success.csv").read_text(encoding="utf-8-sig")
    assert rehearsal.startswith("line,action,record_id\n2,created,")
    assert f"Results: {tmp_path / 'p.sandbox.plan.csv'}" in result.stdout


@pytest.mark.parametrize("title", ["Head of Sales", "Head of Buying"])
async def test_a_row_whose_edited_key_finds_another_record_is_undone_as_what_it_did(
    make_sandbox, tmp_path: Path, title: str
) -> None:
    """A typo in the key made a new record; the fixed row matches the person already there
    (and, with another title, updates her). Undo deletes the record the import made, and only
    that: it deleted the person it had matched, keeping its own duplicate."""
    sb = make_sandbox()
    head = "First,Last,Email,Title\n"
    mapping = write(tmp_path, "m.yaml", PERSON_BY_EMAIL)
    samir = record(sb, 2001)
    file = write(tmp_path, "p.csv", f"{head}Samir,Ivanova,samir.ivanova@typo.example,{title}\n")
    made = await made_by(sb, file, mapping)
    write(tmp_path, "p.csv", f"{head}Samir,Ivanova,{samir['EMAIL_ADDRESS']},{title}\n")
    again = await run_import(sb, file, mapping)
    changed = title != samir["TITLE"]
    assert (again.counts.updated, again.counts.unchanged) == (int(changed), int(not changed))
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    undone = await run_undo(sb, checkpoint)
    assert (undone.counts.deleted, undone.counts.restored, undone.counts.conflict) == (
        1,
        int(changed),
        0,
    )
    assert made not in sb.account.collections["Contacts"].records
    assert record(sb, 2001)["TITLE"] == samir["TITLE"]
    report = list(csv.DictReader((tmp_path / "p.undo.csv").open(encoding="utf-8-sig")))
    assert [(r["action"], r["record_id"]) for r in report] == [("delete", str(made))] + (
        [("restore", "2001")] if changed else []
    )
    assert (await run_undo(sb, checkpoint)).counts.deleted == 0  # never twice


BY_EXTERNAL_ID = (
    "object: contacts\nmatch: {column: Id, field: External_Id__c}\ncolumns:\n"
    "  Id: External_Id__c\n  First: FIRST_NAME\n  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n"
)


@pytest.mark.parametrize(
    ("was", "now", "held"),
    [
        ("", "K-2", "K-2"),  # the key filled in: written into the record the row made
        ("000501", "501", "000501"),  # a spreadsheet dropped the zeros: the record keeps them
        ("1234567890123456", "1.23457E+15", "1234567890123456"),  # shown in scientific form
    ],
)
async def test_a_row_whose_key_finds_nothing_keeps_the_record_an_earlier_run_made(
    make_sandbox, tmp_path: Path, was: str, now: str, held: str
) -> None:
    """The record the row made holds no key, or the row's as a spreadsheet re-saved it: the
    row's key finds nothing, yet it is that row's record, updated, never made a second time
    (the key filled in, or saved by Calc, made a second Emma)."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", BY_EXTERNAL_ID)
    head = "Id,First,Last,Email\n"
    file = write(tmp_path, "p.csv", f"{head}{was},Emma,Empty,emma@x.example\n")
    made = await made_by(sb, file, mapping)
    count = len(sb.account.collections["Contacts"].records)
    write(tmp_path, "p.csv", f"{head}{now},Emma,Empty-Smith,emma@x.example\n")
    again = await run_import(sb, file, mapping)
    assert (again.counts.created, again.counts.updated, again.this_run) == (0, 1, (0, 1))
    assert len(sb.account.collections["Contacts"].records) == count
    assert (record(sb, made)["LAST_NAME"], external_id(sb, made)) == ("Empty-Smith", held)


async def test_switching_the_mapping_to_another_key_keeps_the_records_the_import_made(
    make_sandbox, tmp_path: Path
) -> None:
    """Imported matched by e-mail, then (as `mapping draft` advises for another system's
    ids) by an external id no record holds yet: the records the checkpoint made are the
    rows', given the id, not made a second time."""
    sb = make_sandbox()
    head = "Id,First,Last,Email\n"
    file = write(tmp_path, "p.csv", f"{head}X-1,Ann,Lee,ann@s.example\nX-2,Bob,Ray,bob@s.example\n")
    by_email = BY_EXTERNAL_ID.replace(
        "{column: Id, field: External_Id__c}", "{column: Email, field: EMAIL_ADDRESS}"
    )
    by_email = by_email.replace("  Id: External_Id__c\n", "")
    assert (await run_import(sb, file, write(tmp_path, "m.yaml", by_email))).counts.created == 2
    count = len(sb.account.collections["Contacts"].records)
    again = await run_import(sb, file, write(tmp_path, "m.yaml", BY_EXTERNAL_ID))
    assert again.this_run == (0, 2)
    assert len(sb.account.collections["Contacts"].records) == count


async def test_a_match_key_no_column_maps_is_written_into_the_records_created(
    make_sandbox, tmp_path: Path
) -> None:
    """`match:` names Id, `columns:` does not: each record created carries its key, as an
    upsert writes it, so next month's file finds it (it made a second Emma); a record that
    holds another key is never overwritten with this one."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", BY_EXTERNAL_ID.replace("  Id: External_Id__c\n", ""))
    head = "Id,First,Last,Email\n"
    first = await run_import(
        sb, write(tmp_path, "p.csv", f"{head} K-1 ,Emma,Empty,e@k.example\n"), mapping
    )
    assert first.counts.created == 1
    made = max(sb.account.collections["Contacts"].records)
    assert external_id(sb, made) == "K-1"
    later = write(tmp_path, "q.csv", f"{head}K-1,Emma,Empty-Smith,e@k.example\nK-2,Zed,New,\n")
    again = await run_import(sb, later, mapping)
    assert (again.counts.created, again.counts.updated) == (1, 1)
    assert again.warnings == []
    assert record(sb, made)["LAST_NAME"] == "Empty-Smith"
    assert external_id(sb, max(sb.account.collections["Contacts"].records)) == "K-2"


def test_validate_says_the_match_key_is_written(make_sandbox, tmp_path: Path) -> None:
    mapping = write(tmp_path, "m.yaml", BY_EXTERNAL_ID.replace("  Id: External_Id__c\n", ""))
    file = write(tmp_path, "p.csv", "Id,First,Last,Email\nK-1,Emma,Empty,e@k.example\n")
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Note: Id -> External_Id__c (the match key) is written into each record created, and "
        "into one found that holds none, as an upsert does: the next file finds them by it"
    ]


async def test_a_key_found_as_the_key_compares_is_not_written_back_as_the_file_has_it(
    make_sandbox, tmp_path: Path
) -> None:
    """` björn-1 ` finds `BJÖRN-1` case-blind: the same key, so the update leaves it as the
    record holds it (it wrote ' björn-1 ' over it, spaces and all)."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", BY_EXTERNAL_ID)
    head = "Id,First,Last,Email\n"
    file = write(tmp_path, "p.csv", f"{head}BJÖRN-1,Björn,Borg,bjorn@x.example\n")
    made = await made_by(sb, file, mapping)
    other = write(tmp_path, "q.csv", f'{head}" björn-1 ",Björn,Borg-Ek,bjorn@x.example\n')
    again = await run_import(sb, other, mapping)
    assert (again.counts.created, again.counts.updated) == (0, 1)
    assert (external_id(sb, made), record(sb, made)["LAST_NAME"]) == ("BJÖRN-1", "Borg-Ek")


@pytest.mark.parametrize(
    ("was", "now"),
    [
        ("Bruno,Costa,bruno@old.example", "Bruno,Costa,bruno.costa@new.example"),  # a fixed e-mail
        ("Ann,Lee,ann@k.example", "Ann,Lee-Ray,ann@k.example"),  # a new name, the same e-mail
    ],
)
async def test_a_person_corrected_in_a_key_stays_the_record_an_earlier_run_made(
    make_sandbox, tmp_path: Path, was: str, now: str
) -> None:
    """A key of a person's own (e-mail, name) edited in a row that is still the same person
    by another of them: that person's record is corrected, not made a second time (fixing an
    e-mail made a second Bruno)."""
    sb = make_sandbox()
    keys = "[{column: First, field: FIRST_NAME}, {column: Last, field: LAST_NAME}]"
    match = "{column: Email, field: EMAIL_ADDRESS}" if "Bruno" in was else keys
    mapping = write(
        tmp_path,
        "m.yaml",
        f"object: contacts\nmatch: {match}\ncolumns:\n"
        "  First: FIRST_NAME\n  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n",
    )
    head = "First,Last,Email\n"
    file = write(tmp_path, "p.csv", f"{head}{was}\nZed,Ray,zed@k.example\n")
    assert (await run_import(sb, file, mapping)).counts.created == 2
    made = max(sb.account.collections["Contacts"].records) - 1
    count = len(sb.account.collections["Contacts"].records)
    write(tmp_path, "p.csv", f"{head}{now}\nZed,Ray,zed@k.example\n")
    again = await run_import(sb, file, mapping)
    assert again.this_run == (0, 1)
    assert len(sb.account.collections["Contacts"].records) == count
    held = record(sb, made)
    assert ",".join((held["FIRST_NAME"], held["LAST_NAME"], held["EMAIL_ADDRESS"])) == now


@pytest.mark.parametrize(
    ("match", "was", "now"),
    [  # another person at the same switchboard phone / the same shared mailbox
        (
            "email",
            ",Alan,Turing,alan@s.example,+44 20 7000,CTO,Leeds",
            ",Zoe,Quinn,zoe@s.example,+44 20 7000,CTO,Leeds",
        ),
        (
            "name",
            ",Bob,Eighteen,info@s.example,+1 555 0100,CTO,Leeds",
            ",Carol,Jones,info@s.example,+1 555 0100,CTO,Leeds",
        ),
        # made with no key, the key filled in beside another person's name
        ("id", ",Alan,Turing,,+44 20 7000,CTO,Leeds", "K-7,Zoe,Quinn,,+44 20 7000,CTO,Leeds"),
    ],
)
async def test_another_person_in_a_row_never_takes_over_the_record_it_made(
    make_sandbox, tmp_path: Path, match: str, was: str, now: str
) -> None:
    """The row's key changes, and nothing else of the record's person stays (a phone two
    people share is no evidence; a whole new name is a new person): created, the earlier
    record left as it was (Alan's record became Zoe's)."""
    sb = make_sandbox()
    keys = {
        "email": "{column: Email, field: EMAIL_ADDRESS}",
        "name": "[{column: First, field: FIRST_NAME}, {column: Last, field: LAST_NAME}]",
        "id": "{column: Id, field: External_Id__c}",
    }[match]
    mapping = write(
        tmp_path,
        "m.yaml",
        f"object: contacts\nmatch: {keys}\ncolumns:\n  First: FIRST_NAME\n"
        "  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n  Phone: PHONE\n  Title: TITLE\n"
        "  City: ADDRESS_MAIL_CITY\n",
    )
    head = "Id,First,Last,Email,Phone,Title,City\n"  # half the cells alike: an edit of the row
    file = write(tmp_path, "p.csv", f"{head}{was}\n")
    made = await made_by(sb, file, mapping)
    before = record(sb, made)
    write(tmp_path, "p.csv", f"{head}{now}\n")
    again = await run_import(sb, file, mapping)
    assert again.this_run == (1, 0)
    assert record(sb, made) == before
    assert (
        record(sb, max(sb.account.collections["Contacts"].records))["FIRST_NAME"]
        == now.split(",")[1]
    )


async def test_two_rows_that_would_write_one_record_send_neither(
    make_sandbox, tmp_path: Path
) -> None:
    """A colleague gave Grace's record a new e-mail; the file gives it to Alan, and corrects
    Grace's own: Alan's key finds Grace's record, and Grace's row (her name agrees) corrects
    the e-mail in it. Both wrote it, both were reported updated, and Alan's write was lost:
    neither is sent, and each says why."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", MATCH_PERSON)
    head = "First,Last,Email\n"
    file = write(tmp_path, "p.csv", f"{head}Grace,Hopper,grace@t.example\n")
    grace = await made_by(sb, file, mapping)
    sb.account.update("Contacts", {"CONTACT_ID": grace, "EMAIL_ADDRESS": "g@t.example"})
    before = record(sb, grace)
    write(tmp_path, "p.csv", f"{head}Grace,Hopper,gh@t.example\nAlan,Turing,g@t.example\n")
    again = await run_import(sb, file, mapping)
    assert (again.counts.failed, again.this_run, again.exit_code) == (2, (0, 0), 1)
    assert record(sb, grace) == before
    errors = (tmp_path / "p.errors.csv").read_text(encoding="utf-8-sig")
    said = (
        f"lines 2, 3 would each write record {grace}: none is sent (a record is one row of the "
        "file; fix the file)"
    )
    assert errors.count(said) == 2


@pytest.mark.parametrize("blank", [" ", "\u200b"])
async def test_a_key_of_spaces_is_no_key_two_rows_share(
    make_sandbox, tmp_path: Path, blank: str
) -> None:
    """Alan, with an e-mail of spaces, replaced by Grace with one too: the two blank keys
    are no key they share (Alan's record was made Grace's), and nothing else says Grace is
    Alan: she is created, his record left as it was."""
    sb = make_sandbox()
    mapping = write(
        tmp_path, "m.yaml", MATCH_PERSON.replace("\n  Email:", "\n  Title: TITLE\n  Email:")
    )
    head = "First,Last,Email,Title\n"
    ada = "Ada,Lovelace,ada.l@x.example,Countess\n"
    file = write(tmp_path, "p.csv", f"{head}{ada}Alan,Turing,{blank},Mathematician\n")
    assert (await run_import(sb, file, mapping)).counts.created == 2
    alan = record(sb, max(sb.account.collections["Contacts"].records))
    write(tmp_path, "p.csv", f"{head}{ada}Grace,Hopper,{blank},Mathematician\n")
    assert (await run_import(sb, file, mapping)).this_run == (1, 0)
    assert record(sb, alan["CONTACT_ID"]) == alan


async def test_of_two_namesakes_the_corrected_row_is_its_own_not_the_others(
    make_sandbox, tmp_path: Path
) -> None:
    """Two John Smiths; the IT one's row deleted, the Sales one's e-mail corrected: that row
    is the Sales John's (three cells of four alike), not the IT John's (two), whose record
    was given the Sales John's e-mail and title."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", MATCH_PERSON + "  Title: TITLE\n")
    head = "First,Last,Email,Title\n"
    it, carol = "John,Smith,js.it@t.example,IT\n", "Carol,Chen,carol@t.example,CFO\n"
    file = write(tmp_path, "p.csv", f"{head}{it}{carol}John,Smith,js.sales@t.example,Sales\n")
    assert (await run_import(sb, file, mapping)).counts.created == 3
    john_it, _, john_sales = sorted(sb.account.collections["Contacts"].records)[-3:]
    before = record(sb, john_it)
    write(tmp_path, "p.csv", f"{head}{carol}John,Smith,john.smith.sales@t.example,Sales\n")
    again = await run_import(sb, file, mapping)
    assert again.this_run == (0, 1)
    assert record(sb, john_it) == before
    assert record(sb, john_sales)["EMAIL_ADDRESS"] == "john.smith.sales@t.example"


@pytest.mark.parametrize(
    ("mapping", "was", "now"),
    [  # a key emptied beside other edits; a key filled in beside other edits
        (MATCH_PERSON + "  Title: TITLE\n", "Bob,Brown,bob@t.example,CTO", "Robert,Brown,,Chief"),
        (
            MATCH_PERSON.replace(
                "{column: Email, field: EMAIL_ADDRESS}", "{column: Title, field: External_Id__c}"
            ),
            "Carol,Chen,carol@t.example,",
            "Caroline,Chen,caroline@t.example,X-3",
        ),
    ],
)
async def test_a_row_without_a_key_on_one_side_that_cannot_be_paired_is_refused(
    make_sandbox, tmp_path: Path, mapping: str, was: str, now: str
) -> None:
    """The row's key emptied (or filled in) and more of it edited: an edit of the vanished
    row cannot be told from a new record, so the run is refused, as without a key (a second
    Bob was made)."""
    sb = make_sandbox()
    file_mapping = write(tmp_path, "m.yaml", mapping)
    head = "First,Last,Email,Title\n"
    ada = "Ada,Lovelace,ada@t.example,CEO\n"
    file = write(tmp_path, "p.csv", f"{head}{ada}{was}\n")
    assert (await run_import(sb, file, file_mapping)).counts.created == 2
    before = writes(sb)
    write(tmp_path, "p.csv", f"{head}{ada}{now}\n")
    with pytest.raises(CheckpointError) as info:
        await run_import(sb, file, file_mapping)
    assert str(info.value).startswith(  # they share a last name: maybe Bob's row edited
        "p.csv: 1 new row(s) may be edits of rows of the last run that are gone (line 3 and "
        "the earlier line 3, record "
    )
    assert "); with an empty match key an edit cannot be told from a new record" in str(info.value)
    assert writes(sb) == before


async def test_a_mistyped_id_never_writes_over_another_person(make_sandbox, tmp_path: Path) -> None:
    """Sophia's row wrote her record; her CONTACT_ID is then mistyped as Eve's: the key finds
    Eve, another person by name than the record the row wrote, so the row fails (Eve's
    record became Sophia's)."""
    sb = make_sandbox()
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Id, field: CONTACT_ID}\ncolumns:\n"
        "  First: FIRST_NAME\n  Last: LAST_NAME\n  Title: TITLE\n",
    )
    eve = sb.account.collections["Contacts"].records[2010]
    file = write(tmp_path, "p.csv", "Id,First,Last,Title\n2011,Sophia,Sorel,Director\n")
    assert (await run_import(sb, file, mapping)).this_run == (0, 1)
    before = dict(eve)
    write(tmp_path, "p.csv", "Id,First,Last,Title\n2010,Sophia,Sorel,Finance Director\n")
    again = await run_import(sb, file, mapping)
    assert (again.counts.failed, again.this_run) == (1, (0, 0))
    assert sb.account.collections["Contacts"].records[2010] == before
    errors = (tmp_path / "p.errors.csv").read_text(encoding="utf-8-sig")
    assert "its CONTACT_ID finds record 2010 (" in errors
    assert "another person than the record 2011 this row wrote in an earlier run" in errors


async def test_a_keyed_row_whose_record_a_colleague_deleted_is_not_made_again(
    make_sandbox, tmp_path: Path
) -> None:
    """The key finds nothing because the record the row made was deleted in Insightly: the
    row fails, as it does without a key (a deletion, an erasure perhaps, is not undone)."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", BY_EXTERNAL_ID)
    head = "Id,First,Last,Email\n"
    file = write(tmp_path, "p.csv", f"{head}K-1,Emma,Empty,emma@x.example\n")
    made = await made_by(sb, file, mapping)
    sb.account.delete("Contacts", made)  # a colleague, in Insightly
    # edited enough that only the key says it is that row (less than half its cells alike)
    write(tmp_path, "p.csv", f"{head}K-1,Emmy,Empty-Smith,emmy@x.example\n")
    again = await run_import(sb, file, mapping)
    assert (again.counts.failed, again.this_run) == (1, (0, 0))
    assert max(sb.account.collections["Contacts"].records) < made
    errors = (tmp_path / "p.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        f"record {made}, written by an earlier run, was deleted in Insightly since; not created again"
        in errors
    )


@pytest.mark.parametrize(
    ("now", "this_run", "held"),
    [  # another Emma (her own e-mail) by a key of her own; Emma's id with a typo fixed
        ("K-9,Emma,Empty,emma.two@x.example", (1, 0), "K-1"),
        ("K-9,Emma,Empty,emma@x.example", (0, 1), "K-9"),
    ],
)
async def test_a_row_whose_key_names_another_record_moves_on_from_the_one_it_made(
    make_sandbox, tmp_path: Path, now: str, this_run: tuple[int, int], held: str
) -> None:
    """K-1 made Emma; the row now says K-9, a key that finds nothing: another record by its
    key, created, Emma's left as it is — unless the row is still Emma by name and e-mail
    both: then K-1 was a typo, corrected in her record (it made Emma twice)."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", BY_EXTERNAL_ID)
    head = "Id,First,Last,Email\n"
    file = write(tmp_path, "p.csv", f"{head}K-1,Emma,Empty,emma@x.example\n")
    made = await made_by(sb, file, mapping)
    write(tmp_path, "p.csv", f"{head}{now}\n")
    again = await run_import(sb, file, mapping)
    assert again.this_run == this_run
    assert (max(sb.account.collections["Contacts"].records) > made) == (this_run == (1, 0))
    assert external_id(sb, made) == held


async def test_a_row_that_updated_one_record_then_another_is_undone_on_each(
    make_sandbox, tmp_path: Path
) -> None:
    """Run 1 updates Samir (2001), the key is edited, run 2 updates 2002: undo restored only
    2002 and left Samir with the import's values (before, it put Samir's old values on 2002)."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", PERSON_BY_EMAIL)
    first, second = record(sb, 2001), record(sb, 2002)
    head = "First,Last,Email,Title\n"  # the same person by name: an edited row, not a new one
    file = write(tmp_path, "u.csv", f"{head}Pat,Doe,{first['EMAIL_ADDRESS']},Imported\n")
    assert (await run_import(sb, file, mapping)).counts.updated == 1
    write(tmp_path, "u.csv", f"{head}Pat,Doe,{second['EMAIL_ADDRESS']},Imported\n")
    again = await run_import(sb, file, mapping)
    assert (again.counts.updated, again.since_last_run) == (
        1,
        "1 row(s) edited, 0 new, 0 removed (removed rows are left alone in Insightly)",
    )
    undone = await run_undo(sb, tmp_path / "u.csv.checkpoint.sqlite")
    assert (undone.counts.restored, undone.counts.deleted, undone.counts.conflict) == (2, 0, 0)
    for before in (first, second):
        now = record(sb, before["CONTACT_ID"])
        assert [now[f] for f in ("FIRST_NAME", "LAST_NAME", "TITLE")] == [
            before[f] for f in ("FIRST_NAME", "LAST_NAME", "TITLE")
        ]


async def test_undo_compares_update_moments_as_instants_not_as_text(
    make_sandbox, tmp_path: Path
) -> None:
    """The import heard `2026-11-23 09:00:00`, the undo reads `…T…Z` forms: a colleague's edit
    the same day is still an edit ('T' sorts after ' ', so the text said it was not)."""
    from datetime import UTC, datetime, timedelta

    clock = {"now": datetime(2026, 11, 23, 9, 0, tzinfo=UTC)}
    sb = make_sandbox(now=lambda: clock["now"])
    file = write(tmp_path, "z.csv", "Name,Email\nAda,ada@forms.example\n")
    await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    ada = max(sb.account.collections["Contacts"].records)
    clock["now"] += timedelta(minutes=5)
    async with asgi_client(sb) as http:
        await http.put("Contacts", json={"CONTACT_ID": ada, "BACKGROUND": "colleague: met at fair"})
    sb.config.date_form = "iso-z"
    undone = await run_undo(sb, tmp_path / "z.csv.checkpoint.sqlite")
    assert (undone.counts.deleted, undone.counts.conflict) == (0, 1)
    assert record(sb, ada)["BACKGROUND"] == "colleague: met at fair"


async def test_undo_never_deletes_a_record_older_than_the_import_whatever_the_checkpoint_says(
    make_sandbox, tmp_path: Path
) -> None:
    """A checkpoint edited by hand (or damaged) names a record Insightly made months before
    the import began: undo leaves it, as a conflict."""
    import sqlite3
    from contextlib import closing

    sb = make_sandbox()
    file = write(tmp_path, "g.csv", "Name,Email\nAda,ada@guard.example\n")
    await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    checkpoint = tmp_path / "g.csv.checkpoint.sqlite"
    with closing(sqlite3.connect(checkpoint)) as db, db:
        db.execute("UPDATE rows SET record_id=2001, payload=NULL, stamp=NULL")
    undone = await run_undo(sb, checkpoint)
    assert (undone.counts.deleted, undone.counts.conflict) == (0, 1)
    assert 2001 in sb.account.collections["Contacts"].records
    report = (tmp_path / "g.undo.csv").read_text(encoding="utf-8-sig").splitlines()
    assert (
        report[1] == "2,conflict,2001,(record),,created by the import,created 2026-09-17 15:53:55"
    )


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("record_id", "abc", "ValueError: record id 'abc'"),
        ("record_id", 2228.5, "ValueError: record id 2228.5"),
        ("payload", "not json", "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        ("payload", "[1, 2]", "TypeError: a body that is a list, not an object"),
    ],
)
async def test_undo_of_a_damaged_checkpoint_row_is_refused_naming_the_damage(
    make_sandbox, tmp_path: Path, column: str, value: Any, why: str
) -> None:
    """Each ended undo in an internal error (2228.5 would have been read as record 2228)."""
    import sqlite3
    from contextlib import closing

    sb = make_sandbox()
    file = write(tmp_path, "d.csv", "Name,Email\nAda,ada@damaged.example\n")
    await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    checkpoint = tmp_path / "d.csv.checkpoint.sqlite"
    with closing(sqlite3.connect(checkpoint)) as db, db:
        db.execute(f"UPDATE rows SET {column}=?", (value,))
    before = writes(sb)
    for dry_run in (True, False):
        with pytest.raises(CheckpointError) as refused:
            await run_undo(sb, checkpoint, dry_run=dry_run)
        assert str(refused.value) == f"{checkpoint}: a damaged checkpoint ({why})"
    assert writes(sb) == before


async def test_a_key_edited_away_and_back_is_undone_and_imported_again_exactly(
    make_sandbox, tmp_path: Path
) -> None:
    """Create Gus (a typo'd key), the key is fixed to Quinn's (2006 updated), then set back:
    undo kept the record it made as a 'conflict' (and left 2006 changed), and a re-import
    after undo created nothing, reporting 'unchanged' on the deleted record."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", PERSON_BY_EMAIL)
    quinn = record(sb, 2006)
    head = "First,Last,Email,Title\n"
    file = write(tmp_path, "g.csv", f"{head}Gus,Grey,gus.grey@x.example,Buyer\n")
    gus = await made_by(sb, file, mapping)
    write(tmp_path, "g.csv", f"{head}Gus,Grey,{quinn['EMAIL_ADDRESS']},Buyer\n")
    assert (await run_import(sb, file, mapping)).counts.updated == 1
    write(tmp_path, "g.csv", f"{head}Gus,Grey,gus.grey@x.example,Buyer\n")
    back = await run_import(sb, file, mapping)
    assert (back.counts.unchanged, back.counts.created) == (1, 0)
    checkpoint = tmp_path / "g.csv.checkpoint.sqlite"
    undone = await run_undo(sb, checkpoint)
    assert (undone.counts.deleted, undone.counts.restored, undone.counts.conflict) == (1, 1, 0)
    assert gus not in sb.account.collections["Contacts"].records
    now = record(sb, 2006)
    assert [now[f] for f in ("FIRST_NAME", "LAST_NAME", "TITLE")] == [
        quinn[f] for f in ("FIRST_NAME", "LAST_NAME", "TITLE")
    ]
    again = await run_import(sb, file, mapping)
    assert (again.counts.created, again.since_last_run) == (
        1,
        "the import was undone: its 1 row(s) are imported again",
    )


async def test_a_stamp_in_whole_seconds_is_not_earlier_than_the_same_second_with_a_fraction(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "f.csv", "Name,Email\nAda,ada@fraction.example\n")
    await run_import(sb, file, write(tmp_path, "m.yaml", MAPPING_HEAD))
    sb.config.date_form = "fraction"  # `…T…:52.250Z`: a second the import heard as `…:52`
    undone = await run_undo(sb, tmp_path / "f.csv.checkpoint.sqlite", dry_run=True)
    assert (undone.counts.deleted, undone.counts.conflict) == (1, 0)


async def test_rows_sharing_a_key_far_apart_are_read_in_the_file_s_order(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of 16 keys twice, 16 rows apart (a file joined from two exports), in batches of
    4 rows: the duplicate check reads each batch once, not once a row (a row's batch is
    converted to Python values whole: read a key at a time, 8,192 such rows took minutes)."""
    from insightly_etl.load import spill
    from insightly_etl.load.validate import ValidationResult

    monkeypatch.setattr(spill, "BATCH_ROWS", 4)
    converted: list[int] = []
    plain = ValidationResult._plain
    monkeypatch.setattr(
        ValidationResult,
        "_plain",
        lambda self, block: converted.append(block) or plain(self, block),
    )
    rows = [f"Person {i},p{i % 16}@example.com,{'Gold' if i < 16 else 'Silver'}" for i in range(32)]
    file = write(tmp_path, "twice.csv", "Name,Email,Tier\n" + "\n".join(rows) + "\n")
    mapping = write(
        tmp_path,
        "twice.yaml",
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n"
        "  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n  Tier: Customer_Tier__c\n",
    )
    result = await run_import(make_sandbox(), file, mapping, on_duplicate="last", dry_run=True)
    assert (result.counts.skipped, result.plan and result.plan.creates) == (16, 16)
    assert converted[:8] == list(range(8))  # the duplicate check: each batch once, in order
    errors = (tmp_path / "twice.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[1].startswith(
        '2,skipped,,"lines 2, 18 share EMAIL_ADDRESS p0@example.com with different values; '
        'line 18 wins (--on-duplicate last)"'
    )
