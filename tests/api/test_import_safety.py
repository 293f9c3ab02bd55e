"""Imports never damage what is already in Insightly (issue: import safety): defaults only fill,
per-column update policies, sets added to, a before→after plan, fix-and-rerun."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from insightly_etl.sandbox import Sandbox
from tests.api.test_import import custom, run_import, write, writes
from tests.conftest import asgi_client

pytestmark = pytest.mark.anyio


async def existing(sb: Sandbox, **fields: Any) -> dict[str, Any]:
    """A contact someone typed into the CRM before the import."""
    async with asgi_client(sb) as http:
        reply = await http.post("Contacts", json=fields)
    assert reply.status_code in (200, 201), reply.text
    return dict(reply.json())


def record(sb: Sandbox, rid: int) -> dict[str, Any]:
    return dict(sb.account.collections["Contacts"].records[rid])


def tags(r: dict[str, Any]) -> list[str]:
    return [t["TAG_NAME"] for t in r.get("TAGS") or ()]


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
    assert (result.counts["created"], result.counts["updated"], result.counts["unchanged"]) == (
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
    assert result.counts["updated"] == 1
    assert tags(record(sb, rid)) == ["vip", "newsletter", "customer"]
    assert custom(record(sb, rid))["Interests__c"] == "Music;Sports"
    replace = write(
        tmp_path,
        "replace.yaml",
        MAPPING_HEAD
        + "  Tags: {field: TAGS, split: ',', merge: replace}\n  Interests: {field: Interests__c, split: ',', merge: replace}\n",
    )
    result = await run_import(sb, file, replace, checkpoint=tmp_path / "second.sqlite")
    assert result.counts["updated"] == 1
    assert tags(record(sb, rid)) == ["customer"]
    assert custom(record(sb, rid))["Interests__c"] == "Sports"


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
    assert (result.counts["created"], result.counts["updated"], result.counts["unchanged"]) == (
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
