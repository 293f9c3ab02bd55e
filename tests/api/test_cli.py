"""The command line in-process: click's CliRunner, the in-process sandbox behind an injected
transport (no socket, no subprocess). Exact messages and exit codes."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from click.testing import Result

from insightly_etl.cli import main
from insightly_etl.cli.common import Context
from insightly_etl.sandbox import Sandbox
from tests.conftest import KEY, cli_runner

ENV = {"INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": "http://127.0.0.1/v3.1/"}


def run(sb: Sandbox | None, *args: str, env: dict[str, str] | None = None) -> Result:
    obj = Context(transport=httpx.ASGITransport(app=sb.app)) if sb else Context()
    return cli_runner().invoke(main, list(args), obj=obj, env=env if env is not None else ENV)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MAPPING = "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n"


def test_the_plan_shows_the_first_rows_a_line_each_and_how_many_more(
    make_sandbox, tmp_path: Path
) -> None:
    """Five fields of the first row were shown, and nothing said of the other rows."""
    rows = "".join(f"P{i},p{i}@more.example,Title {i},Town {i}\n" for i in range(8))
    file = write(tmp_path, "p.csv", "Name,Email,Title,City\n" + rows)
    mapping = write(tmp_path, "m.yaml", MAPPING + "  Title: TITLE\n  City: ADDRESS_MAIL_CITY\n")
    result = run(make_sandbox(), "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    start = lines.index("Changes (every one is in NAME.plan.csv):")
    assert lines[start + 1 : start + 7] == [
        *(
            f"  line {i + 2}: create FIRST_NAME 'P{i}', EMAIL_ADDRESS 'p{i}@more.example', "
            f"TITLE 'Title {i}' (and 1 more field(s))"
            for i in range(5)
        ),
        "  … and 3 more row(s)",
    ]


def test_import_status_and_undo_from_the_command_line(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@cli.example\nBob,bob@cli.example\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    result = run(sb, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert result.exit_code == 0, result.output
    assert "p.csv -> contacts: 2 created, 0 updated, 0 unchanged" in result.stdout
    assert "  line 2: create FIRST_NAME 'Ada'" in result.stderr
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    status = run(None, "status", str(checkpoint))
    assert status.exit_code == 0 and f"  {'create':<10} {'done':<10} {2:>8,}" in status.stdout
    undone = run(sb, "undo", str(checkpoint))
    assert undone.exit_code == 0, undone.output
    assert undone.stdout.startswith(
        "p.csv.checkpoint.sqlite: 2 created records deleted, 0 records restored, 0 left alone as "
        "conflicts, 0 already gone, 0 failed; 6 requests"  # account, definitions, GET + DELETE each
    )
    status = run(None, "status", str(checkpoint)).stdout.splitlines()
    at = status.index(
        "  rows, by their last write: 2 created, 0 updated, 0 unchanged, 0 rejected, "
        "0 duplicate, 0 skipped, 0 failed"
    )
    assert status[at + 1] == "  undo: 2 deleted (of the writes above, by `insightly-etl undo`)"
    emails = {r["EMAIL_ADDRESS"] for r in sb.account.collections["Contacts"].records.values()}
    assert not emails & {"ada@cli.example", "bob@cli.example"}


def test_validate_warns_about_rows_that_can_only_update(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@v.example\n,bob@v.example\n")
    result = run(sb, "validate", str(file), "--mapping", str(write(tmp_path, "m.yaml", MAPPING)))
    assert result.exit_code == 0, result.output
    assert (
        "Warning: 1 row(s) have no FIRST_NAME, so they can only update an existing contact (a new "
        "one needs it): line 3" in result.stderr
    )
    assert "p.csv: 2 rows read (utf-8, ',' delimited): 2 valid, 0 rejected" in result.stdout


def test_validate_says_which_rows_import_refuses_for_sharing_a_match_key(
    make_sandbox, tmp_path: Path
) -> None:
    """The rows import sends none of (exit 1) are said before any is sent, and fail a
    pipeline's `validate` step as they would fail its import (exit 1: `validate && import`
    passed, then the import refused them); --on-duplicate chooses, as import's does."""
    from tests.api.test_import import DUPLICATES, MATCH_EMAIL

    sb = make_sandbox()
    file = write(tmp_path, "d.csv", DUPLICATES)
    mapping = str(write(tmp_path, "m.yaml", MATCH_EMAIL))
    result = run(sb, "validate", str(file), "--mapping", mapping)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (
        "Warning: 3 row(s) share a match key with different values, and import sends none of "
        "them (fix the file, or choose with --on-duplicate first|last): lines 2, 3, 6 share "
        "EMAIL_ADDRESS ada@example.com"
    )
    assert result.stdout.splitlines() == [
        "d.csv: 5 rows read (utf-8, ',' delimited): 5 valid, 0 rejected; 3 of them share a "
        "match key (import sends none of them)"
    ]
    assert not (tmp_path / "d.rejects.csv").exists()  # each row is valid by itself
    chosen = run(sb, "validate", str(file), "--mapping", mapping, "--on-duplicate", "last")
    assert (chosen.exit_code, chosen.stderr) == (0, "")
    assert chosen.stdout == "d.csv: 5 rows read (utf-8, ',' delimited): 5 valid, 0 rejected\n"


def test_validate_says_ids_alike_only_ignoring_case_are_refused_as_import_refuses_them(
    make_sandbox, tmp_path: Path
) -> None:
    """Two Salesforce ids in other letters: validate showed a key in no row (folded) and
    advised --on-duplicate, which import then ignored (exit 1 all the same)."""
    from tests.api.test_import_safety import BY_EXTERNAL_ID

    sb = make_sandbox()
    rows = "0035g00000Qa1Bc,Ann,Lee,ann@c.example\n0035g00000QA1bC,Bob,Ray,bob@c.example\n"
    file = write(tmp_path, "c.csv", "Id,First,Last,Email\n" + rows)
    mapping = str(write(tmp_path, "m.yaml", BY_EXTERNAL_ID))
    checked = run(sb, "validate", str(file), "--mapping", mapping, "--on-duplicate", "first")
    assert checked.exit_code == 1, checked.output  # no choice sends one of them
    assert checked.stderr.splitlines()[-1] == (
        "Warning: 2 row(s) have keys alike only ignoring case that read as ids, and import "
        "sends none of them (ids written in other letters are other records in many systems "
        "(Salesforce); add compare: exact to the match key, or compare: casefold if they are "
        "the same): lines 2, 3 have External_Id__c '0035g00000Qa1Bc' and '0035g00000QA1bC'"
    )
    imported = run(sb, "import", str(file), "--mapping", mapping, "--on-duplicate", "first")
    assert imported.exit_code == 1, imported.output
    errors = (tmp_path / "c.errors.csv").read_text(encoding="utf-8-sig")
    assert errors.count("alike only ignoring case") == 2


def test_a_long_pasted_note_rejects_its_row_not_the_file(make_sandbox, tmp_path: Path) -> None:
    """200,000 characters over many lines (an e-mail body): the row is rejected by the
    field's length, as a note without line breaks is; the file was refused whole (exit 2)."""
    note = "Dear " + "x\n" * 100_000
    file = write(tmp_path, "n.csv", f'First,Last,Notes\nBob,Ray,"two\nlines"\nAda,King,"{note}"\n')
    mapping = (
        "object: contacts\ncolumns:\n  First: FIRST_NAME\n  Last: LAST_NAME\n  Notes: BACKGROUND\n"
    )
    result = run(
        make_sandbox(), "validate", str(file), "--mapping", str(write(tmp_path, "m.yaml", mapping))
    )
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0] == (
        "n.csv: 2 rows read (utf-8, ',' delimited): 1 valid, 1 rejected"
    )
    assert "is 200005 characters long; BACKGROUND allows 4000" in result.stdout


def test_a_two_digit_year_a_spreadsheet_wrote_is_named_as_such(
    make_sandbox, tmp_path: Path
) -> None:
    """LibreOffice (US) opens a CSV of 02/03/1979 and saves 02/03/79: refused, with why and
    the way out (which century is not known), not as any date that is not in the format."""
    rows = "Ada,a@y.example,02/03/79\nBob,b@y.example,13/03/1979\nCy,c@y.example,1979-03-02\n"
    file = write(tmp_path, "b.csv", "Name,Email,Born\n" + rows)
    mapping = MAPPING + '  Born: {field: DATE_OF_BIRTH, date_format: "%d/%m/%Y"}\n'
    result = run(
        make_sandbox(), "validate", str(file), "--mapping", str(write(tmp_path, "m.yaml", mapping))
    )
    assert result.exit_code == 1, result.output
    rejects = (tmp_path / "b.rejects.csv").read_text(encoding="utf-8-sig")
    assert (
        "'02/03/79' is not a date in the format %d/%m/%Y: its year has two digits, as a "
        "spreadsheet program writes the dates of a file it opened and saved (which century is "
        "not known); give the column four-digit years there (a date format with YYYY) and save "
        "again, or take the original file"
    ) in rejects
    assert len(rejects.splitlines()) == 1 + 1  # 13/03/1979 and ISO's 1979-03-02 are dates


def test_a_two_digit_year_without_a_date_format_is_refused_not_given_a_century(
    make_sandbox, tmp_path: Path
) -> None:
    """Another CRM's CSV of birthdays 12/25/1925 and 07/04/1929, opened in LibreOffice and
    saved: 12/25/25 and 07/04/29, which Excel's window read as 2025 and 2029 (a birthday to
    come). Which century is not known: refused, as a day/month order nobody gave is. A
    column whose date_format says %y reads them as written, and a birthday still to come is
    refused whatever the form."""
    rows = "Ada,a@y.example,12/25/25\nBob,b@y.example,07/04/68\nCy,c@y.example,07/04/1929\n"
    file = write(tmp_path, "b.csv", "Name,Email,Born\n" + rows)
    mapping = write(tmp_path, "m.yaml", MAPPING + "  Born: DATE_OF_BIRTH\n")
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(mapping))
    assert result.exit_code == 1, result.output
    assert "3 rows read (utf-8, ',' delimited): 1 valid, 2 rejected" in result.stdout
    rejects = (tmp_path / "b.rejects.csv").read_text(encoding="utf-8-sig")
    assert (
        "'12/25/25' has a two-digit year, and which century it means is not known (a "
        "spreadsheet program that opened and saved the file writes a date of 1925 so, and one "
        "of 2025 alike); take the original file, or give the column four-digit years in the "
        "spreadsheet (a date format with YYYY) and save again"
    ) in rejects
    declared = write(
        tmp_path, "d.yaml", MAPPING + '  Born: {field: DATE_OF_BIRTH, date_format: "%m/%d/%y"}\n'
    )
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(declared))
    # 12/25/25 is 2025-12-25; 07/04/68 (2068) a birthday to come; 07/04/1929 is not %m/%d/%y
    assert "3 rows read (utf-8, ',' delimited): 1 valid, 2 rejected" in result.stdout, result.output
    rejects = (tmp_path / "b.rejects.csv").read_text(encoding="utf-8-sig")
    assert "'07/04/68' is a birthday still to come" in rejects
    assert (
        "'07/04/1929' is not a date in the format %m/%d/%y: its year has four digits, which the "
        "format's %y (two) does not read; write the format with %Y"
    ) in rejects


def test_a_record_id_that_finds_nothing_makes_no_record(make_sandbox, tmp_path: Path) -> None:
    """Matched by CONTACT_ID, an id no contact has (deleted, another account's): the row
    fails; each new file made one more Cara. An empty id creates."""
    sb = make_sandbox()
    mapping = str(
        write(
            tmp_path,
            "m.yaml",
            "object: contacts\nmatch: {column: Id, field: CONTACT_ID}\ncolumns:\n"
            "  First: FIRST_NAME\n  Last: LAST_NAME\n",
        )
    )
    file = write(tmp_path, "b.csv", "Id,First,Last\n999999,Cara,Cole\n,Dan,Dale\n")
    count = len(sb.account.collections["Contacts"].records)
    result = run(sb, "import", str(file), "--mapping", mapping)
    assert result.exit_code == 1, result.output
    assert (
        "b.csv -> contacts: 1 created, 0 updated, 0 unchanged, 0 rejected, 0 duplicate, 0 skipped, 1 failed"
        in result.stdout
    )
    assert len(sb.account.collections["Contacts"].records) == count + 1
    errors = (tmp_path / "b.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "no contact has CONTACT_ID 999999 (deleted in Insightly, or another account's): not "
        "created; to create, empty the cell, or leave the column out of the mapping (a copy "
        "into another account)"
    ) in errors


def test_a_match_key_written_from_another_column_is_refused(make_sandbox, tmp_path: Path) -> None:
    """Found by Legacy ID, written from Other ID: the records made hold another key than
    the next file finds them by (each file made them again)."""
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Legacy ID, field: External_Id__c}\ncolumns:\n"
        "  Other ID: External_Id__c\n  First: FIRST_NAME\n  Last: LAST_NAME\n",
    )
    file = write(tmp_path, "a.csv", "Legacy ID,Other ID,First,Last\nL-500,O-500,Otto,One\n")
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(mapping))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"Error: {mapping}: match: External_Id__c is found by column 'Legacy ID', but columns "
        "write it from 'Other ID': each record created would hold another key than the one the "
        "next file finds it by",
        "Hint: Map 'Legacy ID' to External_Id__c (or nothing to it), or match by 'Other ID'.",
    ]


def exported_contacts(sb: Sandbox, folder: Path) -> tuple[Path, str, list[str]]:
    """An export of the contacts as CSV: the file, its text and its column names."""
    assert run(sb, "export", "contacts", "--format", "csv", "--out", str(folder)).exit_code == 0
    file = folder / "contacts.csv"
    text = file.read_text(encoding="utf-8-sig")
    return file, text, [h.strip('"') for h in text.splitlines()[0].split(",")]


def test_a_row_added_to_an_export_and_corrected_is_never_made_twice(
    make_sandbox, tmp_path: Path
) -> None:
    """A row added by hand (no CONTACT_ID) to an export imported back, then its typo fixed:
    it has no id to say it is that row, so the run is refused as a file without a key is
    (it made a second Lena)."""
    sb = make_sandbox()
    file, text, header = exported_contacts(sb, tmp_path)
    added = {"FIRST_NAME": "Lena", "LAST_NAME": "Smiht", "EMAIL_ADDRESS": "lena@r.example"}
    line = ",".join(added.get(h, "") for h in header)
    file.write_text(text + line + "\n", encoding="utf-8")
    first = run(sb, "import", str(file), "--object", "contacts")
    assert first.exit_code == 0, first.output
    assert "contacts.csv -> contacts: 1 created, 0 updated, 220 unchanged" in first.stdout
    count = len(sb.account.collections["Contacts"].records)
    lena = max(sb.account.collections["Contacts"].records)
    file.write_text(text + line.replace("Smiht", "Smith") + "\n", encoding="utf-8")
    again = run(sb, "import", str(file), "--object", "contacts")
    assert again.exit_code == 2, again.output
    last = len(file.read_text(encoding="utf-8").splitlines())  # the added row: the last line
    assert (
        f"contacts.csv: 1 new row(s) may be edits of rows of the last run that are gone (line "
        f"{last} and the earlier line {last}, record {lena}); with an empty match key an edit "
        "cannot be told from a new record" in again.stderr
    )
    assert len(sb.account.collections["Contacts"].records) == count


def test_record_ids_written_as_numbers_are_the_ids_they_are(make_sandbox, tmp_path: Path) -> None:
    """2001.0 (pandas saved the column as floats) and 2,006 (a spreadsheet's thousands) are
    the ids 2001 and 2006; an id that is no whole number fails its row. The first was
    GET Contacts/2001.0, HTTP 400, and the whole import stopped (exit 65)."""
    sb = make_sandbox()
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\nmatch: {column: Id, field: CONTACT_ID}\ncolumns:\n  Title: TITLE\n",
    )
    file = write(tmp_path, "i.csv", 'Id,Title\n2001.0,Boss\n"2,006",Chief\nabc,Nobody\n')
    result = run(sb, "import", str(file), "--mapping", str(mapping))
    assert result.exit_code == 1, result.output
    assert (
        "i.csv -> contacts: 0 created, 2 updated, 0 unchanged, 0 rejected, 0 duplicate, 0 skipped, 1 failed"
        in result.stdout
    )
    contacts = sb.account.collections["Contacts"].records
    assert (contacts[2001]["TITLE"], contacts[2006]["TITLE"]) == ("Boss", "Chief")
    errors = (tmp_path / "i.errors.csv").read_text(encoding="utf-8-sig")
    assert "CONTACT_ID 'abc' is not a record id" in errors


def test_an_export_made_again_gives_added_rows_their_ids_and_they_stay_theirs(
    make_sandbox, tmp_path: Path
) -> None:
    """A row added by hand to an export, imported, then the export made again: the row now
    carries the id its record was given, and dates and an owner beside it. It is that row
    (it was refused as '1 new row(s) may be edits'), and nothing is sent twice."""
    sb = make_sandbox()
    file, text, header = exported_contacts(sb, tmp_path)
    added = {"FIRST_NAME": "Lena", "LAST_NAME": "Smith", "EMAIL_ADDRESS": "lena@r.example"}
    file.write_text(text + ",".join(added.get(h, "") for h in header) + "\n", encoding="utf-8")
    assert run(sb, "import", str(file), "--object", "contacts").exit_code == 0
    lena = max(sb.account.collections["Contacts"].records)
    stored = sb.account.collections["Contacts"].records[lena]
    again = {**added, "CONTACT_ID": str(lena), "DATE_CREATED_UTC": stored["DATE_CREATED_UTC"]}
    again |= {"DATE_UPDATED_UTC": stored["DATE_UPDATED_UTC"], "OWNER_USER_ID": "1"}
    file.write_text(text + ",".join(again.get(h, "") for h in header) + "\n", encoding="utf-8")
    result = run(sb, "import", str(file), "--object", "contacts")
    assert result.exit_code == 0, result.output
    assert "contacts.csv -> contacts: 0 created, 0 updated, 221 unchanged" in result.stdout
    assert max(sb.account.collections["Contacts"].records) == lena


def test_a_cell_of_spaces_alone_is_empty(make_sandbox, tmp_path: Path) -> None:
    """As the match key reads it: an empty key, and nothing written (it named Ann's last
    name and external id '   ')."""
    from tests.api.test_import_safety import BY_EXTERNAL_ID

    file = write(
        tmp_path, "w.csv", 'Id,First,Last,Email\n"\u200b ",Ann," \t\u00a0\u2060",ann@w.example\n'
    )
    mapping = str(write(tmp_path, "m.yaml", BY_EXTERNAL_ID))
    planned = run(make_sandbox(), "import", str(file), "--mapping", mapping, "--dry-run")
    assert planned.exit_code == 0, planned.output
    plan = (tmp_path / "w.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert plan == [
        "line,action,record_id,field,current,new,note",
        "2,create,,FIRST_NAME,,Ann,",
        "2,create,,EMAIL_ADDRESS,,ann@w.example,",
    ]


def test_an_import_refused_before_any_write_leaves_no_checkpoint_behind(
    make_sandbox, tmp_path: Path
) -> None:
    """A mapping naming a column the file lacks: exit 2, and no checkpoint whose unfinished
    run and planned rows greet the fixed run with rows 'removed' and a mapping 'changed'."""
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@r.example\n")
    wrong = write(tmp_path, "m.yaml", MAPPING + "  Phone: PHONE\n")
    refused = run(sb, "import", str(file), "--mapping", str(wrong))
    assert refused.exit_code == 2, refused.output
    assert "column 'Phone' is not in p.csv" in refused.stderr
    assert [p.name for p in tmp_path.glob("p.csv.checkpoint*")] == []  # nor its lock file
    fixed = run(sb, "import", str(file), "--mapping", str(write(tmp_path, "m.yaml", MAPPING)))
    assert fixed.exit_code == 0, fixed.output
    assert "Since the last run" not in fixed.output + fixed.stderr
    assert fixed.stdout.startswith(
        "p.csv -> contacts: 1 created, 0 updated, 0 unchanged, 0 rejected"
    )


def test_rows_with_an_empty_match_key_are_warned_of_by_validate_and_import(
    make_sandbox, tmp_path: Path
) -> None:
    """A key column left empty (all of it, or some cells) matches no record: said before a
    request is spent, by `validate` and by the import's plan alike."""
    from tests.api.test_import_safety import BY_EXTERNAL_ID

    sb = make_sandbox()
    rows = "".join(f"{'' if i % 2 else f'K-{i}'},P{i},Q{i},p{i}@k.example\n" for i in range(6))
    file = write(tmp_path, "k.csv", "Id,First,Last,Email\n" + rows)
    mapping = str(write(tmp_path, "m.yaml", BY_EXTERNAL_ID))
    said = (
        "Warning: 3 row(s) have an empty match key (Id), so no existing contact is found by "
        "it: each updates the record an earlier run made for it, else is created (where it "
        "gives what a new one needs): line 3, 5, 7"
    )
    checked = run(sb, "validate", str(file), "--mapping", mapping)
    assert checked.exit_code == 0, checked.output
    assert said in checked.stderr.splitlines()
    planned = run(sb, "import", str(file), "--mapping", mapping, "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert said in planned.stderr.splitlines()
    # the summary says nothing was written, as undo's does
    assert planned.stdout.splitlines()[0].endswith("(dry run: nothing sent)")
    # for real: said with the plan, before anything is sent (it came after the writes), once
    sent = run(sb, "import", str(file), "--mapping", mapping)
    assert sent.exit_code == 0, sent.output
    lines = sent.stderr.splitlines()
    assert lines.count(said) == 1 and lines.index(said) < lines.index(
        "Changes (every one is in NAME.plan.csv):"
    )


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (
            ["fields", "contcts"],
            "Error: unknown object type 'contcts'; did you mean 'contacts'?",
            2,
        ),
        (
            ["status", "{tmp}/notes.txt"],
            "Error: {tmp}/notes.txt is not an import checkpoint (file is not a database)",
            2,
        ),
        (
            ["validate", "{tmp}/missing.csv", "--object", "contacts"],
            "Error: {tmp}/missing.csv: no such file",
            2,
        ),
        (
            ["undo", "{tmp}/missing.sqlite"],
            "Error: {tmp}/missing.sqlite: no such checkpoint file",
            2,
        ),
    ],
    ids=["object", "not-a-checkpoint", "missing-file", "missing-checkpoint"],
)
def test_errors_are_one_line_with_their_exit_code_never_a_traceback(
    make_sandbox, tmp_path: Path, args: list[str], message: str, code: int
) -> None:
    (tmp_path / "notes.txt").write_text("hello " * 100)
    result = run(make_sandbox(), *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[0] == message.format(tmp=tmp_path)
    if "not an import checkpoint" in message:  # status said no more than that
        assert result.stderr.splitlines()[1] == (
            "Hint: Give the checkpoint an import wrote: FILE.checkpoint.sqlite beside its file."
        )
    assert "Traceback" not in result.output


def test_a_results_directory_that_cannot_be_written_is_an_error_line_exit_74(
    make_sandbox, tmp_path: Path
) -> None:
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@ro.example\n")
    result = run(
        make_sandbox(),
        "import",
        str(file),
        "--mapping",
        str(write(tmp_path, "m.yaml", MAPPING)),
        "--results",
        "/dev/null/out",
        "--quiet",
    )
    assert result.exit_code == 74, result.output
    assert result.stderr.splitlines()[-1] == "Error: /dev/null/out: Not a directory"


def test_global_options_work_after_the_command_too(make_sandbox, tmp_path: Path) -> None:
    key = write(tmp_path, "key.txt", KEY + "\n")
    env = {"INSIGHTLY_API_URL": "http://127.0.0.1/v3.1/", "INSIGHTLY_API_KEY": ""}
    before = run(make_sandbox(), "--api-key-file", str(key), "fields", "contacts", env=env)
    after = run(make_sandbox(), "fields", "contacts", "--api-key-file", str(key), env=env)
    assert before.exit_code == after.exit_code == 0, after.output
    assert after.stdout == before.stdout and "FIRST_NAME" in after.stdout
    missing = run(make_sandbox(), "fields", "contacts", env=env)
    assert missing.exit_code == 2
    assert missing.stderr.splitlines()[0] == (
        "Error: no Insightly API key: set INSIGHTLY_API_KEY or pass --api-key-file"
    )


def test_export_summary_counts_in_words(make_sandbox, tmp_path: Path) -> None:
    result = run(make_sandbox(), "export", "organization", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "Exported 1 object type, " in result.stderr
    assert (tmp_path / "out" / "organisations.parquet").exists()


def test_an_export_whose_file_cannot_be_put_in_place_leaves_no_partial(
    make_sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    sb = make_sandbox()
    assert run(sb, "export", "countries", "--out", str(out), "--quiet").exit_code == 0
    (out / "organisations.parquet").mkdir(parents=True)  # a directory where the file goes
    result = run(sb, "export", "organisations", "--out", str(out), "--quiet")
    assert result.exit_code == 74, result.output
    # the file as the user knows it, not the `.organisations.parquet.partial` it was written as
    assert result.stderr.splitlines()[-1] == f"Error: {out}/organisations.parquet: Is a directory"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".partial")]


def test_another_programs_file_in_a_folder_without_a_manifest_is_not_overwritten(
    make_sandbox, tmp_path: Path
) -> None:
    (tmp_path / "contacts.parquet").write_text("NOT OURS")
    result = run(make_sandbox(), "export", "contacts", "--out", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"Error: {tmp_path / 'contacts.parquet'} is there already, and {tmp_path} has no "
        "_manifest.json of this tool's: it is another program's, and is not overwritten",
        "Hint: Export into a new or empty folder, or move the file away.",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.parquet"]
    (tmp_path / "_manifest.json").write_text('{"entries": [{"url": "s3://x/y"}]}')  # Redshift's
    other = run(make_sandbox(), "export", "contacts", "--out", str(tmp_path))
    assert other.exit_code == 2
    assert "_manifest.json is not an export manifest" in other.stderr
    assert (tmp_path / "contacts.parquet").read_text() == "NOT OURS"
    (tmp_path / "_manifest.json").write_text(
        '{"objects": {}, "x": ' + "[" * 200_000 + "]" * 200_000 + "}"
    )
    deep = run(make_sandbox(), "export", "contacts", "--out", str(tmp_path))
    assert deep.exit_code == 2, deep.output  # was 70, an internal error
    assert "_manifest.json: nested too deeply to be an export manifest\n" in deep.stderr


def test_an_export_refuses_to_write_over_an_edited_csv_until_told(
    make_sandbox, tmp_path: Path
) -> None:
    """The round trip's file edited in place, then the folder exported again (a refresh, a
    pipeline's next run): the edits not yet imported would be replaced by Insightly's values,
    and `_base` with them. Refused before anything is written; a copy of the folder (new
    times, same bytes) and an untouched file are exported over as before."""
    sb = make_sandbox()
    folder = tmp_path / "out"
    file, text, _ = exported_contacts(sb, folder)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)  # new times, the same bytes: no edit
    assert run(sb, "export", "contacts", "--format", "csv", "--out", str(copy)).exit_code == 0
    assert run(sb, "export", "contacts", "--format", "csv", "--out", str(folder)).exit_code == 0
    first, rest = text.split("\n", 1)
    edited = first + "\n" + rest.replace(",", ",X", 1)  # a cell of the first record
    file.write_text(edited, encoding="utf-8-sig")
    base = (folder / "_base" / "contacts.parquet").read_bytes()
    fingerprint = json.loads((folder / "_manifest.json").read_text())["fingerprints"]
    shown = fingerprint["contacts.csv"]["utc"][:16].replace("T", " ")
    refusal = [
        f"Error: {file} was changed since the export of {shown} UTC wrote it (edited and saved "
        "in a spreadsheet?): this export would write Insightly's values over the edits",
        f"Hint: Import it first (insightly-etl import {file} --object contacts), then export "
        "again with --overwrite-edited; or move it out of the folder.",
    ]
    manifest = (folder / "_manifest.json").read_bytes()
    result = run(sb, "export", "contacts", "--format", "csv", "--out", str(folder))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == refusal
    assert file.read_text(encoding="utf-8-sig") == edited
    assert (folder / "_base" / "contacts.parquet").read_bytes() == base
    # nor is the manifest: it said the last run "stopped", and forgot when it had finished
    assert (folder / "_manifest.json").read_bytes() == manifest
    # another object's export into the folder leaves the edited file alone, and is not refused;
    # nor does exporting it as a workbook in between forget the CSV's fingerprint
    assert run(sb, "export", "countries", "--format", "csv", "--out", str(folder)).exit_code == 0
    assert run(sb, "export", "contacts", "--format", "xlsx", "--out", str(folder)).exit_code == 0
    result = run(sb, "export", "contacts", "--format", "csv", "--out", str(folder))
    assert result.exit_code == 2 and result.stderr.splitlines()[-2:] == refusal, result.output
    told = run(
        sb, "export", "contacts", "--format", "csv", "--out", str(folder), "--overwrite-edited"
    )
    assert told.exit_code == 0, told.output
    assert file.read_text(encoding="utf-8-sig") == text
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["fingerprints"] = None  # a hand edit: no fingerprints, not a crash (exit 70)
    (folder / "_manifest.json").write_text(json.dumps(manifest))
    again = run(sb, "export", "contacts", "--format", "csv", "--out", str(folder))
    assert again.exit_code == 0, again.output
    assert "contacts.csv" in json.loads((folder / "_manifest.json").read_text())["fingerprints"]


def test_a_file_saved_while_another_object_is_exported_is_not_written_over(
    make_sandbox, tmp_path: Path
) -> None:
    """Checked once at the start, a many-object run wrote over leads.csv a person saved
    while contacts were read. It is checked again just before it is put in place."""
    sb = make_sandbox()
    out = tmp_path / "out"
    asked = ["export", "contacts", "leads", "--format", "csv", "--out", str(out), "-q"]
    assert run(sb, *asked).exit_code == 0
    leads = out / "leads.csv"
    saved = leads.read_text(encoding="utf-8-sig").replace("\n", "\nSAVED,", 1)

    class SavesLeads(httpx.ASGITransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/Contacts"):  # the person saves, meanwhile
                leads.write_text(saved, encoding="utf-8-sig")
            return await super().handle_async_request(request)

    result = cli_runner().invoke(
        main, asked, obj=Context(transport=SavesLeads(app=sb.app)), env=ENV
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2].startswith(f"Error: {leads} was changed since the export")
    assert leads.read_text(encoding="utf-8-sig") == saved
    assert not [p.name for p in out.iterdir() if p.name.endswith(".partial")]


def test_an_export_stopped_before_its_base_is_written_leaves_no_false_edit(
    make_sandbox, tmp_path: Path
) -> None:
    """The CSV was put in place before its `_base`: a base that could not be written left a
    new CSV beside the old fingerprint, and every later run was refused as 'edited'. The base
    goes first now, and the fingerprint is kept as soon as the CSV is in place."""
    sb = make_sandbox()
    file, text, _ = exported_contacts(sb, tmp_path)
    base = tmp_path / "_base" / "contacts.parquet"
    base.unlink()
    (base / "x").mkdir(parents=True)  # a directory where the base goes: it cannot be written
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2001], "TITLE": "Changed in Insightly"})
    failed = run(sb, "export", "contacts", "--format", "csv", "--out", str(tmp_path))
    assert failed.exit_code == 74, failed.output
    assert file.read_text(encoding="utf-8-sig") == text  # not put in place without its base
    shutil.rmtree(base)
    again = run(sb, "export", "contacts", "--format", "csv", "--out", str(tmp_path))
    assert again.exit_code == 0, again.output
    assert "Changed in Insightly" in file.read_text(encoding="utf-8-sig")


def test_a_nul_in_a_record_does_not_make_its_csv_unreadable(make_sandbox, tmp_path: Path) -> None:
    """A NUL the server sent was written as it is: the export's own validate (and every CSV
    reader) then took the whole file for binary data. It is written as U+FFFD, as the XLSX
    export writes characters XML cannot hold."""
    sb = make_sandbox()
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2001], "FIRST_NAME": "a\x00b"})
    file, text, _ = exported_contacts(sb, tmp_path)
    assert "\x00" not in text and "a\ufffdb" in text
    checked = run(sb, "validate", str(file), "--object", "contacts")
    assert checked.exit_code == 0, checked.output
    # imported back unedited, it is no edit: U+FFFD is not sent over the NUL
    back = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "0 to create, 0 to update" in back.stderr, back.output
    assert "  FIRST_NAME: 1 (control characters a file cannot hold, written as U+FFFD)" in (
        back.stderr
    )


def test_brief_changes_are_never_merged_into_a_full_export(make_sandbox, tmp_path: Path) -> None:
    """`--incremental --brief` over a file exported without --brief dropped the custom fields,
    tags and links of every record (39 of 53 columns left, links.parquet emptied): refused.
    The other way, a brief file is exported in full once, with a warning."""

    sb = make_sandbox()
    full, brief = tmp_path / "full", tmp_path / "brief"
    assert run(sb, "export", "contacts", "--out", str(full), "-q").exit_code == 0
    columns = pq.read_schema(full / "contacts.parquet").names
    assert "TAGS" in columns
    result = run(sb, "export", "contacts", "--out", str(full), "--incremental", "--brief")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"Error: {full}/contacts.parquet was exported with custom fields and nested lists: "
        "merging --brief changes into it would drop them from every record",
        "Hint: Leave out --brief, or export with --brief in full (without --incremental) or "
        "into another folder.",
    ]
    assert pq.read_schema(full / "contacts.parquet").names == columns
    assert run(sb, "export", "contacts", "--out", str(brief), "--brief", "-q").exit_code == 0
    assert "TAGS" not in pq.read_schema(brief / "contacts.parquet").names
    again = run(sb, "export", "contacts", "--out", str(brief), "--incremental", "--brief")
    assert again.exit_code == 0, again.output  # brief over brief: merged as before
    result = run(sb, "export", "contacts", "--out", str(brief), "--incremental")
    assert result.exit_code == 0, result.output
    assert (
        "Warning: contacts: the file was exported with --brief (no custom fields or nested "
        "lists); exported in full this time" in result.stderr
    )
    assert pq.read_schema(brief / "contacts.parquet").names == columns


def test_a_folder_whose_manifest_names_no_account_is_not_taken_by_another_accounts_key(
    make_sandbox, tmp_path: Path
) -> None:
    """Its "account" taken out by hand: another account's key merged its contacts into the
    file and journaled the folder's 220 as deleted (exit 0)."""
    out = tmp_path / "northwind"
    assert run(make_sandbox(), "export", "contacts", "--out", str(out), "-q").exit_code == 0
    manifest = json.loads((out / "_manifest.json").read_text())
    for name in ("account", "account_number"):
        manifest.pop(name, None)
    (out / "_manifest.json").write_text(json.dumps(manifest))
    before = (out / "contacts.parquet").read_bytes()
    globex = make_sandbox(subdomain="globex")
    args = ("export", "contacts", "--out", str(out), "--incremental", "--detect-deletes")
    result = run(globex, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"Error: {out} holds an export whose _manifest.json does not say which account it is "
        "of; this key is for account 'globex': merging, or detecting deletions, would mix the "
        "two if it is another's",
        "Hint: If the folder is that account's (exported by a release that did not record "
        'it), add "account": "globex" to its _manifest.json and run again; else export into '
        "another --out folder.",
    ]
    assert (out / "contacts.parquet").read_bytes() == before
    assert not (out / "_deleted.parquet").exists()
    # its own account's key, as an older release's folder meets it: refused alike, and
    # claimed as the hint says
    northwind = make_sandbox()
    assert run(northwind, *args).exit_code == 2
    manifest["account"] = "northwind-sandbox"
    (out / "_manifest.json").write_text(json.dumps(manifest))
    claimed = run(northwind, *args)
    assert claimed.exit_code == 0, claimed.output
    assert not (out / "_deleted.parquet").exists()


def test_a_key_that_cannot_say_its_account_never_writes_into_another_accounts_folder(
    make_sandbox, tmp_path: Path
) -> None:
    """A key whose user may not read GET /Instance skipped the check of whose folder it is:
    another account's contacts replaced the file and its ids were journaled as deletions.
    Such a key's account is told by GET /Users/Me's INSTANCE_ID; a folder known by name only
    cannot be matched with it, and is refused."""
    out, restricted = tmp_path / "northwind", tmp_path / "globex"
    assert run(make_sandbox(), "export", "contacts", "--out", str(out), "-q").exit_code == 0
    before = (out / "contacts.parquet").read_bytes()
    globex = make_sandbox(subdomain="globex", deny=frozenset({"Instance"}))
    result = run(globex, "export", "contacts", "--out", str(out), "--incremental")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"Error: {out} holds an export of account 'northwind-sandbox'; this key's user may not "
        "read the account's name (GET /Instance was refused), which is all that is known of it "
        "here, so the key cannot be told from another account's: merging, or detecting "
        "deletions, would mix the two",
        "Hint: Export into another --out folder (or use the key of the folder's account).",
    ]
    assert (out / "contacts.parquet").read_bytes() == before
    assert not (out / "_deleted.parquet").exists()
    # a folder such a key made: known by the account's number
    assert run(globex, "export", "contacts", "--out", str(restricted), "-q").exit_code == 0
    number = json.loads((restricted / "_manifest.json").read_text())["account_number"]
    initech = make_sandbox(subdomain="initech", deny=frozenset({"Instance"}))
    result = run(initech, "export", "contacts", "--out", str(restricted), "--incremental")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2].startswith(
        f"Error: {restricted} holds an export of account number {number}; this key is for "
        "account number "
    )
    # a key refused even its own user (GET /Users/Me): refused everything, it stops there
    blind = make_sandbox(subdomain="initech", deny=frozenset({"Instance", "Users"}))
    result = run(blind, "export", "contacts", "--out", str(restricted), "--incremental")
    assert result.exit_code == 77, result.output
    assert result.stderr.splitlines()[-2].startswith("Error: GET Users/Me, HTTP 403: ")
    assert json.loads((restricted / "_manifest.json").read_text())["account_number"] == number
    again = run(globex, "export", "contacts", "--out", str(restricted), "--incremental", "-q")
    assert again.exit_code == 0, again.output
    admin = run(make_sandbox(subdomain="globex"), "export", "contacts", "--out", str(restricted))
    assert admin.exit_code == 0, admin.output  # the same number: the same account, now named
    manifest = json.loads((restricted / "_manifest.json").read_text())
    assert (manifest["account"], manifest["account_number"]) == ("globex", number)


def test_a_checkpoint_is_never_used_by_a_key_that_cannot_say_its_account(
    make_sandbox, tmp_path: Path
) -> None:
    """The import's and undo's side of it: a checkpoint of one account is refused to a key
    whose user may not read GET /Instance, unless the account's number says it is that one."""
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@cli.example\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    checkpoint = tmp_path / "p.csv.checkpoint.sqlite"
    globex = make_sandbox(subdomain="globex", deny=frozenset({"Instance"}))
    made = run(globex, "import", str(file), "--mapping", str(mapping), "--quiet")
    assert made.exit_code == 0, made.output
    initech = make_sandbox(subdomain="initech", deny=frozenset({"Instance"}))
    for args in (["import", str(file), "--mapping", str(mapping)], ["undo", str(checkpoint)]):
        refused = run(initech, *args)
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.splitlines()[-2].startswith(
            f"Error: {checkpoint} belongs to an import into account number "
        )
        assert "; this key is for account number " in refused.stderr
    assert not [n for (method, _, _), n in initech.stats.items() if method != "GET"]
    assert run(globex, "undo", str(checkpoint)).exit_code == 0
    # a checkpoint known by name only: such a key cannot be matched with it
    named = make_sandbox(subdomain="acme")
    checkpoint.unlink()
    assert run(named, "import", str(file), "--mapping", str(mapping), "-q").exit_code == 0
    refused = run(initech, "import", str(file), "--mapping", str(mapping))
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.splitlines()[-2] == (
        f"Error: {checkpoint} belongs to an import into account 'acme'; this key's user may not "
        "read the account's name (GET /Instance was refused), which is all that is known of it "
        "here, so the key cannot be told from another account's"
    )


def test_an_object_the_mapping_contradicts_and_a_key_field_cut_short_are_named(
    make_sandbox, tmp_path: Path
) -> None:
    """`--object organisations` with a mapping of contacts was refused column by column
    ('EMAIL_ADDRESS is not a field of organisations'); `field: EMAIL` had no suggestion."""
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@cli.example\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    result = run(sb, "import", str(file), "--mapping", str(mapping), "--object", "organisations")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"Error: --object organisations and {mapping}'s object: contacts disagree",
        "Hint: Leave out --object (the mapping says which object), or give the mapping of "
        "organisations.",
    ]
    same = run(
        sb, "import", str(file), "--mapping", str(mapping), "--object", "contact", "--dry-run"
    )
    assert same.exit_code == 0, same.output  # the same object, however spelt
    sites = write(tmp_path, "s.csv", "RECORD_NAME\nDepot\n")
    site = write(tmp_path, "site.yaml", "object: site__c\n")  # a custom object's, in lower case
    same = run(sb, "validate", str(sites), "--mapping", str(site), "--object", "Site__c")
    assert same.exit_code == 0, same.output
    cut = write(tmp_path, "cut.yaml", MAPPING.replace("field: EMAIL_ADDRESS", "field: EMAIL"))
    result = run(sb, "import", str(file), "--mapping", str(cut), "--dry-run")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"Error: {cut}: match: EMAIL is not a field of contacts; did you mean EMAIL_ADDRESS?",
        "Hint: List them with: insightly-etl fields contacts",
    ]


def test_an_import_with_a_wrong_key_leaves_no_checkpoint(make_sandbox, tmp_path: Path) -> None:
    """Refused at its first request, it left a checkpoint of two rows 'planned' and a run
    'did not finish, killed or running', which status showed and undo spent requests on."""
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@cli.example\nBob,bob@cli.example\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    env = {**ENV, "INSIGHTLY_API_KEY": "not-the-key"}
    result = run(make_sandbox(), "import", str(file), "--mapping", str(mapping), env=env)
    assert result.exit_code == 77, result.output
    assert "the API key was refused" in result.stderr
    assert not (tmp_path / "p.csv.checkpoint.sqlite").exists()
    assert not (tmp_path / "p.csv.checkpoint.sqlite.lock").exists()  # nothing beside nothing


def test_export_to_a_path_that_is_not_a_directory_is_one_error_line(
    make_sandbox, tmp_path: Path
) -> None:
    result = run(make_sandbox(), "export", "organisations", "--out", "/dev/null", "--quiet")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: /dev/null: not a directory",
        "Hint: --out names the directory for the files.",
    ]


def test_the_sandbox_warns_when_it_listens_beyond_loopback() -> None:
    from insightly_etl.cli.sandbox import exposure_warning

    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert exposure_warning("0.0.0.0") == (
        "Warning: listening on 0.0.0.0: anyone who can reach this machine can use the sandbox, "
        "and its admin routes (/_sandbox/…: every record, reset-quota) have no key."
    )


def test_a_csv_dialect_without_csv_is_a_usage_error(make_sandbox, tmp_path: Path) -> None:
    result = run(
        make_sandbox(), "export", "users", "--out", str(tmp_path), "--csv-dialect", "plain"
    )
    assert result.exit_code == 2
    assert "Error: --csv-dialect applies to --format csv" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_incremental_run_says_per_object_what_was_new_changed_and_deleted(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    first = run(sb, "export", "contacts", "--out", str(tmp_path))
    assert first.exit_code == 0, first.output
    contacts = sb.account.collections["Contacts"]
    sb.account.delete("Contacts", contacts.ids[0])
    sb.account.create("Contacts", {"FIRST_NAME": "New"})
    result = run(
        sb, "export", "contacts", "--out", str(tmp_path), "--incremental", "--detect-deletes"
    )
    assert result.exit_code == 0, result.output
    assert (
        "Detecting deletions costs about 1 request (every id of each object, 500 a request)."
        in result.stderr
    )
    assert (
        "  contacts: 1 new, 0 changed, 1 deleted (in _deleted.parquet; confirmed by GET: "
        "1 request)" in result.stderr
    )
    alone = run(sb, "export", "contacts", "--out", str(tmp_path), "--detect-deletes")
    assert alone.exit_code == 2 and "--detect-deletes goes with --incremental" in alone.stderr


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["import", "people.csv", "--mapping", "https://example.com/m.yaml"], "'--mapping'"),
    ],
)
def test_object_storage_uris_are_refused_in_one_line(
    args: list[str], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(None, *args)
    assert result.exit_code == 2, result.output
    uri = next(a for a in args if "://" in a)
    assert (
        f"Error: Invalid value for {name}: {uri!r} is a URI; object storage is not supported "
        "yet: give a local path" in result.stderr
    )
    assert not any(tmp_path.iterdir())  # no folder named 's3:' or 'gs:'


def test_export_writes_to_local_folders_and_object_storage_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(None, "export", "contacts", "--out", "ftp://host/exports")
    assert result.exit_code == 2, result.output
    assert (
        "Error: Invalid value for '--out': 'ftp://host/exports': only local paths and s3://, "
        "gs://, gcs://, abfs://, abfss:// locations are supported" in result.stderr
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (
            "s3:/lake/x",
            "Invalid value for '--out': 's3:/lake/x': a storage URI is written s3://bucket/prefix",
        ),
        (
            "S3:lake/x",
            "Invalid value for '--out': 'S3:lake/x': a storage URI is written s3://bucket/prefix",
        ),
        (
            "",
            "Invalid value for '--out': an empty path (it would mean the current folder): give one",
        ),
        ("s3://lake//x", "'s3://lake//x': an empty, . or .. folder name is not a storage path"),
        (
            "gs://lake/a/../b",
            "'gs://lake/a/../b': an empty, . or .. folder name is not a storage path",
        ),
        ("s3://", "'s3://' names no bucket"),
        ("s3://admin:pw-Qx81@lake/x", "s3://***@lake/x: credentials in the URI are not read"),
        (
            "abfs://c@acct.dfs.core.windows.net/x?sv=1&sig=pw-Qx81",  # a SAS token
            "'abfs://c@acct.dfs.core.windows.net/x'…: a storage path has no ?query or #fragment",
        ),
        (
            "s3://lake/x?versionId=3",
            "'s3://lake/x'…: a storage path has no ?query or #fragment",
        ),
    ],
)
def test_malformed_storage_uris_are_one_line_errors_before_any_request(
    out: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(None, "export", "contacts", "--out", out)
    assert result.exit_code == 2, result.output
    assert f"Error: {message}" in result.stderr
    assert "Traceback" not in result.stderr and "pw-Qx81" not in result.stderr
    assert not any(tmp_path.iterdir())  # no local folder named 's3:' or made by an empty path


def test_a_key_given_twice_in_a_mapping_names_both_lines(tmp_path: Path) -> None:
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@x.example\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n  Name: LAST_NAME\n",
    )
    result = run(None, "validate", str(file), "--mapping", str(mapping))  # read before the API
    assert result.exit_code == 2, result.output
    assert (
        f"Error: {mapping}, lines 3 and 5: the key 'Name' is given twice\nHint: Keep one of them."
        in result.stderr
    )


@pytest.mark.slow
def test_results_of_an_earlier_run_do_not_stay_beside_fresh_ones(
    make_sandbox, tmp_path: Path
) -> None:
    """A fixed file: its old NAME.rejects.csv goes, with integer line numbers while it lasts."""
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@r.example\nBob,bob@r.example,extra\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    first = run(sb, "validate", str(file), "--mapping", str(mapping))
    assert first.exit_code == 1, first.output
    rejects = tmp_path / "p.rejects.csv"
    assert rejects.read_text(encoding="utf-8-sig").splitlines()[1].startswith("3,")
    write(tmp_path, "p.csv", "Name,Email\nAda,ada@r.example\nBob,bob@r.example\n")
    second = run(sb, "validate", str(file), "--mapping", str(mapping))
    assert second.exit_code == 0, second.output
    assert not rejects.exists()
    assert f"Removed {rejects}: no row is rejected now." in second.stderr
    write(tmp_path, "p.csv", "Name,Email\nAda,ada@r.example\nBob,bob@r.example,extra\n")
    assert run(sb, "import", str(file), "--mapping", str(mapping), "--quiet").exit_code == 1
    errors = (tmp_path / "p.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[1].startswith("3,rejected,,")
    write(tmp_path, "p.csv", "Name,Email\nAda,ada@r.example\nBob,bob@r.example\n")
    assert run(sb, "import", str(file), "--mapping", str(mapping), "--quiet").exit_code == 0
    assert not rejects.exists()


def test_a_file_of_the_same_name_imported_from_one_folder_keeps_the_first_ones_results(
    make_sandbox, tmp_path: Path
) -> None:
    """p.csv imported, then p.txt beside it: both would write p.success.csv, p.errors.csv, …;
    the second is refused before any request, until its results go to a folder of their own."""
    sb = make_sandbox()
    mapping = write(tmp_path, "m.yaml", MAPPING)
    first = write(tmp_path, "p.csv", "Name,Email\nAda,ada@s.example\n")
    assert run(sb, "import", str(first), "--mapping", str(mapping), "--quiet").exit_code == 0
    success = (tmp_path / "p.success.csv").read_bytes()
    second = write(tmp_path, "p.txt", "Name,Email\nBob,bob@s.example\nCy,cy@s.example\n")
    requests = sum(sb.stats.values())
    refused = run(sb, "import", str(second), "--mapping", str(mapping), "--quiet")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        f"Error: {second}: its results files (p.success.csv, p.errors.csv, …) would be written "
        "over those of p.csv, imported from the same folder\n"
        "Hint: Give this import's results a folder of their own with --results DIR.\n"
    )
    assert sum(sb.stats.values()) == requests  # refused before the account is asked
    assert (tmp_path / "p.success.csv").read_bytes() == success
    assert not (tmp_path / "p.txt.checkpoint.sqlite").exists()
    own = tmp_path / "txt"
    done = run(
        sb, "import", str(second), "--mapping", str(mapping), "--quiet", "--results", str(own)
    )
    assert done.exit_code == 0, done.output
    assert len((own / "p.success.csv").read_text(encoding="utf-8-sig").splitlines()) == 3
    assert (tmp_path / "p.success.csv").read_bytes() == success


def test_an_object_too_big_for_the_run_s_budget_leaves_it_to_the_objects_after_it(
    make_sandbox, tmp_path: Path
) -> None:
    """5,220 contacts take 11 page requests. A run with 6 left used to spend them all on
    contacts, keep nothing, and say "run again" each time, organisations never exported."""
    sb = make_sandbox(generate={"Contacts": 5000}, daily_quota=14)
    out = tmp_path / "out"
    for _ in range(5):  # the day's quota is partly spent by others
        assert sb.quota.spend()
    first = run(sb, "export", "contacts", "organisations", "--out", str(out), "--quiet")
    assert first.exit_code == 75, first.output
    assert (
        "Error: not exported: contacts: its 5,220 records need at least 10 more page requests "
        "after the first, and this run had 6 left\nHint: Run again once the day's requests "
        "free up (within 24 hours): the objects exported are kept.\n"
    ) in first.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert sorted(manifest["objects"]) == ["organisations"]
    sb.quota.reset()  # the next day
    second = run(sb, "export", "contacts", "--out", str(out), "--quiet")
    assert second.exit_code == 0, second.output
    assert json.loads((out / "_manifest.json").read_text())["objects"]["contacts"]["rows"] == 5220


def test_an_object_too_big_is_named_when_the_objects_after_it_then_spend_the_rest(
    make_sandbox, tmp_path: Path
) -> None:
    """A whole-account export: contacts left out, the objects after it spent the budget, and
    the run's one line was the budget's, contacts named nowhere."""
    sb = make_sandbox(generate={"Contacts": 5000})
    out = tmp_path / "out"
    result = run(sb, "export", "--out", str(out), "--quiet", "--max-requests", "9")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        "Error: not exported: contacts: its 5,220 records need at least 10 more page requests "
        "after the first, and this run had 5 left; then the budget of 9 requests for this run "
        "is spent; no run can read it within --max-requests 9\n"
    )
    stopped = json.loads((out / "_manifest.json").read_text())["stopped"]
    assert stopped["exit_code"] == 2


def test_a_reserve_of_the_whole_day_is_an_error_not_a_wait(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox(daily_quota=40_000)
    result = run(sb, "export", "organisations", "--out", str(tmp_path), "--reserve", "50000")
    assert result.exit_code == 2, result.output  # 75 told a nightly job to wait, forever
    assert result.stderr == (
        "Error: --reserve 50,000 keeps back the whole day's allowance (40,000 requests): no "
        "run can send a request\nHint: Reserve less than the account's daily allowance.\n"
    )


@pytest.mark.slow
def test_an_export_stopped_for_its_budget_goes_on_where_it_stopped(
    make_sandbox, tmp_path: Path
) -> None:
    """A whole-account export in runs of 40 requests: each run read the same first objects,
    then stopped (exit 75), and the objects after them were never exported. A run after a
    stop to wait for requests keeps what the stopped one exported, and goes on."""
    sb = make_sandbox(generate={"Contacts": 5000})
    out = tmp_path / "out"
    codes, warned = [], []
    for _ in range(6):
        result = run(sb, "export", "--out", str(out), "--quiet", "--max-requests", "40")
        codes.append(result.exit_code)
        warned += [w for w in result.stderr.splitlines() if "went on with the export" in w]
        if result.exit_code != 75:
            break
    assert codes[-1] == 0 and set(codes[:-1]) == {75} and len(codes) >= 3, codes
    assert len(warned) == len(codes) - 1
    manifest = json.loads((out / "_manifest.json").read_text())
    whole = tmp_path / "whole"
    assert run(make_sandbox(), "export", "--out", str(whole), "--quiet").exit_code == 0
    assert set(manifest["objects"]) == set(
        json.loads((whole / "_manifest.json").read_text())["objects"]
    )
    assert "round_started_utc" not in manifest and "stopped" not in manifest
    pages = sum(n for (method, path, status), n in sb.stats.items() if path == "/v3.1/Contacts")
    assert pages == 11  # contacts read once: 5,220 records, 10 more pages after the first


def test_a_run_after_a_stopped_export_makes_the_format_it_asks_for(
    make_sandbox, tmp_path: Path
) -> None:
    """After a run stopped for its budget, `export contacts --format csv` kept the stopped
    round's contacts.parquet, wrote no contacts.csv and said "Exported 0 object types" (exit 0)."""
    sb = make_sandbox()
    out = tmp_path / "out"
    stopped = run(
        sb, "export", "contacts", "organisations", "--out", str(out), "-q", "--max-requests", "4"
    )
    assert stopped.exit_code == 75, stopped.output
    result = run(sb, "export", "contacts", "--out", str(out), "--format", "csv", "-q")
    assert result.exit_code == 0, result.output
    assert "went on with the export" not in result.stderr
    with (out / "contacts.csv").open(encoding="utf-8-sig", newline="") as f:
        assert len(list(csv.DictReader(f))) == 220
    # a round in CSV, stopped after contacts: its contacts.csv kept by the next CSV run
    again = ("export", "contacts", "organisations", "--out", str(out), "--format", "csv", "-q")
    assert run(sb, *again, "--max-requests", "4").exit_code == 75
    kept = run(
        sb, "export", "contacts", "organisations", "--out", str(out), "--format", "csv", "-q"
    )
    assert kept.exit_code == 0, kept.output
    assert "1 object type(s) it exported (contacts) kept, not read again" in kept.stderr
    # a round of --brief files, stopped: a run without --brief reads them whole
    brief = ("export", "contacts", "organisations", "--out", str(out), "-q", "--brief")
    assert run(sb, *brief, "--max-requests", "2").exit_code == 75
    whole = run(sb, "export", "contacts", "organisations", "--out", str(out), "-q")
    assert whole.exit_code == 0, whole.output
    assert "went on with the export" not in whole.stderr
    assert "TAGS" in pq.read_schema(out / "contacts.parquet").names


def test_an_object_no_run_can_read_within_max_requests_is_an_error_not_a_retry(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(generate={"Contacts": 5000})
    out = tmp_path / "out"
    args = ("export", "contacts", "organisations", "--out", str(out), "--quiet")
    refused = run(sb, *args, "--max-requests", "8")
    assert refused.exit_code == 2, refused.output
    assert (
        "Error: not exported: contacts: its 5,220 records need at least 10 more page requests "
        "after the first, and this run had 5 left; no run can read it within --max-requests 8\n"
    ) in refused.stderr
    assert sorted(json.loads((out / "_manifest.json").read_text())["objects"]) == ["organisations"]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "xlsx"])
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_full_disk_leaves_no_partial_file_and_the_folder_says_how_the_run_ended(
    make_sandbox, tmp_path: Path, full_disk, fmt: str
) -> None:
    """Closing a Parquet writer on a full disk flushes and fails again: the partial file
    stayed, holding the space the manifest's stop record then had no room for, and `report`
    said the run was killed. (The disk is outside the process: its answer is faked.)"""
    import gc

    import insightly_etl.extract.writers as writers

    full_disk(writers, 64_000)
    sb = make_sandbox(generate={"Contacts": 3000})
    out = tmp_path / "out"
    result = run(sb, "export", "contacts", "--out", str(out), "--quiet", "--format", fmt)
    assert result.exit_code == 74, result.output
    stderr = result.stderr
    del result  # its traceback holds the run's writers: collected, one left open prints
    gc.collect()  # "Exception ignored in … _write_rows" (an error here, filterwarnings)
    # XLSX: its base (_base/contacts.parquet) is put in place first, and fills the disk
    failed = out / ("_base/contacts.parquet" if fmt == "xlsx" else f"contacts.{fmt}")
    assert f"Error: {failed}: No space left on device\n" in stderr
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert left == (
        [".insightly-etl.lock", "_base", "_manifest.json"]
        if fmt != "parquet"
        else [".insightly-etl.lock", "_manifest.json"]
    )
    stopped = json.loads((out / "_manifest.json").read_text())["stopped"]
    assert (stopped["reason"], stopped["exit_code"]) == ("error", 74)


def test_options_that_cannot_go_together_are_refused_before_any_cost_is_said(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    out = tmp_path / "out"
    args = ("export", "contacts", "--out", str(out), "--format", "csv", "--incremental")
    refused = run(sb, *args, "--detect-deletes")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        "Error: --incremental and --since merge into Parquet files\n"
        "Hint: Leave out --format for incremental runs (Parquet), or export CSV in full "
        "(without --incremental or --since).\n"
    )
    assert sum(sb.stats.values()) == 0 and not out.exists()


def test_status_keeps_created_rows_created_after_an_edit(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@k.example\nBob,bob@k.example\n")
    mapping = write(tmp_path, "m.yaml", MAPPING)
    assert run(sb, "import", str(file), "--mapping", str(mapping), "--quiet").exit_code == 0
    write(tmp_path, "p.csv", "Name,Email\nAda,ada@k.example\nRobert,bob@k.example\n")
    assert run(sb, "import", str(file), "--mapping", str(mapping), "--quiet").exit_code == 0
    again = run(sb, "import", str(file), "--mapping", str(mapping))
    assert "p.csv -> contacts: 1 created, 1 updated, 0 unchanged, 0 rejected" in again.stdout
    status = run(None, "status", str(tmp_path / "p.csv.checkpoint.sqlite"))
    assert status.stdout.splitlines()[2:6] == [  # the import's own count, then undo's view
        "  rows, by their last write: 1 created, 1 updated, 0 unchanged, 0 rejected, "
        "0 duplicate, 0 skipped, 0 failed",
        "  rows, by the write that made or first changed their record (what undo reverses):",
        "  action     state          rows",
        f"  {'create':<10} {'done':<10} {2:>8,}",
    ]
    assert " update " not in status.stdout


@pytest.mark.parametrize(
    ("obj", "headers", "mapped", "match"),
    [
        (
            "organisations",
            "Account Name,Account Owner,Type,Industry,Billing Street,Billing City,"
            "Billing State/Province,Billing Zip/Postal Code,Billing Country,Phone,Fax,Website,"
            "Employees,Description,Account ID",
            12,  # Employees: the seed's Employees__c custom field, by its label
            "Account Name",
        ),
        (
            "contacts",
            "Salutation,First Name,Last Name,Title,Account Name,Email,Phone,Mobile,Fax,"
            "Home Phone,Other Phone,Mailing Street,Mailing City,Mailing State/Province,"
            "Mailing Zip/Postal Code,Mailing Country,Birthdate,Description,Contact Owner,Contact ID",
            19,
            "Email",
        ),
        (
            "opportunities",
            "Deal Name,Amount,Stage,Closing Date,Account Name,Contact Name,Deal Owner,"
            "Probability (%),Expected Revenue,Lead Source,Type,Next Step,Description,"
            "Created Time,Currency",
            9,
            "Deal Name",
        ),
        (  # HubSpot; Zoho's zip and opt-out
            "contacts",
            "Record ID,First Name,Last Name,Email,Phone Number,State/Region,Associated Company,"
            "Mailing Zip,Email Opt Out",
            8,
            "Email",
        ),
        (  # Pipedrive (sample_data/migration): every column named after its object
            "contacts",
            "Person - First name,Person - Last name,Person - Email,Person - Phone,"
            "Person - Organization,Person - Job title,Person - Labels",
            7,
            "Person - Email",
        ),
        (
            "organisations",
            "Organization - Name,Organization - Address,Organization - City,"
            "Organization - Country,Organization - Phone,Organization - Website,"
            "Organization - Labels",
            7,
            "Organization - Name",
        ),
        (  # another object's columns keep their prefix: the deal's organisation, a lookup
            "opportunities",
            "Organization - Name,Deal - Title,Deal - Value",
            3,
            "Deal - Title",
        ),
        (  # and never land on the contact's own address or phone
            "contacts",
            "Person - First name,Person - Email,Organization - Name,Organization - Address,"
            "Organization - Phone",
            3,
            "Person - Email",
        ),
        # a plain `Name` is the object's name (sample_data/organisations.csv's was unmatched:
        # "required and not mapped: ORGANISATION_NAME", and every row would have been new)
        ("organisations", "Name,Website,Phone", 3, "Name"),
        ("opportunities", "Name,Value", 2, "Name"),
    ],
)
@pytest.mark.slow
def test_mapping_draft_knows_other_crms_headers(
    make_sandbox, tmp_path: Path, obj: str, headers: str, mapped: int, match: str
) -> None:
    """Salesforce accounts and contacts reports, Zoho deals: most headers find their field,
    and the draft proposes how rows find their records."""
    import yaml

    file = write(
        tmp_path, "export.csv", headers + "\n" + ",".join("x" for _ in headers.split(",")) + "\n"
    )
    result = run(make_sandbox(), "mapping", "draft", str(file), "--object", obj)
    assert result.exit_code == 0, result.output
    draft = yaml.safe_load(result.stdout)
    assert len(draft["columns"]) == mapped, draft["columns"]
    assert draft["match"]["column"] == match


def test_mapping_draft_reads_outlook_and_google_layouts(make_sandbox, tmp_path: Path) -> None:
    """Outlook's `Title` beside `Job Title` is Mr./Mme (was drafted as the job title, which
    then went unmapped); Google separates labels with ` ::: ` and has `Organization Title`."""
    import yaml

    sb = make_sandbox()
    outlook = write(
        tmp_path,
        "outlook.csv",
        '"Title","First Name","Last Name","Job Title","E-mail Address","Business Phone"\n'
        '"Mme","Céline","Roux","Einkäuferin","celine@example.fr","+33 1 23 45 67 89"\n',
    )
    draft = yaml.safe_load(run(sb, "mapping", "draft", str(outlook), "--object", "contacts").stdout)
    assert draft["columns"] == {
        "Title": "SALUTATION",
        "First Name": "FIRST_NAME",
        "Last Name": "LAST_NAME",
        "Job Title": "TITLE",
        "E-mail Address": "EMAIL_ADDRESS",
        "Business Phone": "PHONE",
    }
    google = write(
        tmp_path,
        "google.csv",
        "First Name,Last Name,Organization Title,E-mail 1 - Value,Labels\n"
        "Ada,Lovelace,Analyst,ada@example.org,* myContacts ::: Customers\n",
    )
    draft = yaml.safe_load(run(sb, "mapping", "draft", str(google), "--object", "contacts").stdout)
    assert draft["columns"]["Organization Title"] == "TITLE"
    assert draft["columns"]["Labels"] == {"field": "TAGS", "split": " ::: "}


def test_a_report_footer_is_left_out_with_a_note(make_sandbox, tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "report.csv",
        '"First Name","Email"\n"Ada","ada@f.example"\n\n\n'
        '"Confidential Information - Do Not Distribute"\n'
        '"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."\n'
        '"Generated By:  Jane Doe  12/3/2026 7:00 AM"\n"Northwind"\n',
    )
    result = run(
        make_sandbox(),
        "validate",
        str(file),
        "--mapping",
        str(write(tmp_path, "m.yaml", MAPPING.replace("Name", "First Name"))),
    )
    assert result.exit_code == 0, result.output
    assert "lines 5-8: a report's footer (Copyright, Generated By …), not data; left out" in (
        result.stderr
    )
    assert "report.csv: 1 row read" in result.stdout


def test_a_record_limit_stops_creates_after_one_402_and_updates_go_on(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox(record_limit={"Contacts": 222})  # 220 seeded: room for two more
    rows = "".join(f"New{n},new{n}@limit.example\n" for n in range(5))
    file = write(
        tmp_path,
        "p.csv",
        "Name,Email\n" + rows + "Samira,samir.ivanova.2001@example.com\n",
    )
    result = run(sb, "import", str(file), "--mapping", str(write(tmp_path, "m.yaml", MAPPING)))
    assert result.exit_code == 69, result.output
    assert "p.csv -> contacts: 2 created, 1 updated, 0 unchanged" in result.stdout
    assert "Stopped creating: POST Contacts, HTTP 402: Record limit reached" in result.stderr
    assert "3 rows left to create (in NAME.unprocessed.csv); updates went on." in result.stderr
    refused = sum(n for (m, _, status), n in sb.stats.items() if m == "POST" and status == 402)
    assert refused == 1  # the first 402 stopped every create after it
    left = (tmp_path / "p.unprocessed.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(left) == 1 + 3


def test_a_delete_insightly_refuses_with_417_is_a_conflict_in_the_undo_report(
    make_sandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@u417.example\nBob,bob@u417.example\n")
    assert (
        run(
            sb, "import", str(file), "--mapping", str(write(tmp_path, "m.yaml", MAPPING)), "--quiet"
        ).exit_code
        == 0
    )
    created = sorted(
        rid
        for rid, r in sb.account.collections["Contacts"].records.items()
        if str(r.get("EMAIL_ADDRESS", "")).endswith("@u417.example")
    )
    sb.config = dataclasses.replace(sb.config, undeletable=frozenset(created[:1]))  # a 417
    undone = run(sb, "undo", str(tmp_path / "p.csv.checkpoint.sqlite"))
    assert undone.exit_code == 1, undone.output
    assert (
        "1 created records deleted, 0 records restored, 1 left alone as conflicts" in undone.stdout
    )
    report = (tmp_path / "p.undo.csv").read_text(encoding="utf-8-sig")
    assert f",conflict,{created[0]},(record),,created by the import,Delete failed" in report
    assert created[0] in sb.account.collections["Contacts"].records


def test_import_says_why_rows_were_rejected_and_names_the_account(
    make_sandbox, tmp_path: Path
) -> None:
    file = write(tmp_path, "p.csv", "Name,Email\nAda,ada@why.example\nBob,not-an-email\n")
    result = run(
        make_sandbox(), "import", str(file), "--mapping", str(write(tmp_path, "m.yaml", MAPPING))
    )
    assert result.exit_code == 1
    assert "  account: northwind-sandbox" in result.stdout
    lines = result.stderr.splitlines()
    at = lines.index("Rejected rows, by column (every one is in NAME.rejects.csv):")
    assert lines[at + 1].split() == ["column", "kind", "count", "example"]
    assert lines[at + 2].startswith("  Email ") and "line 3: 'not-an-email'" in lines[at + 2]


@pytest.mark.slow
def test_undo_reads_many_records_by_listing_and_says_so_first(make_sandbox, tmp_path: Path) -> None:
    """30 created contacts in an account of 250: the preview reads them all with one listing
    page, where a GET each cost 30 requests (a 1,539-row undo preview spent 1,540); the undo
    itself reads each just before deleting it."""
    sb = make_sandbox()
    rows = "".join(f"P{n},p{n}@undo-list.example\n" for n in range(30))
    file = write(tmp_path, "p.csv", "Name,Email\n" + rows)
    mapping = write(tmp_path, "m.yaml", MAPPING)
    assert run(sb, "import", str(file), "--mapping", str(mapping), "--quiet").exit_code == 0
    checkpoint = str(tmp_path / "p.csv.checkpoint.sqlite")
    preview = run(sb, "undo", checkpoint, "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert (
        "Undo reads 30 records by listing contacts (about 1 request(s) of up to 500, instead of "
        "a GET each); no write (dry run).\n" in preview.stderr
    )
    # the account, its field definitions, the count, one page
    assert preview.stdout.startswith(
        "p.csv.checkpoint.sqlite: would delete 30 created records and restore 0, 0 left alone "
        "as conflicts, 0 already gone, 0 failed; 4 requests (dry run: nothing changed)"
    )
    undone = run(sb, "undo", checkpoint)
    assert undone.exit_code == 0, undone.output
    assert (
        "Undo reads 30 record(s), one GET each, just before undoing each; then up to 30 write(s)."
        in undone.stderr
    )
    assert "30 created records deleted" in undone.stdout and "; 62 requests" in undone.stdout
    emails = {r["EMAIL_ADDRESS"] for r in sb.account.collections["Contacts"].records.values()}
    assert not {e for e in emails if str(e).endswith("@undo-list.example")}


def test_an_undo_that_goes_on_says_what_the_earlier_runs_did(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    rows = "".join(f"P{i},p{i}@undo-on.example\n" for i in range(6))
    file = write(tmp_path, "q.csv", "Name,Email\n" + rows)
    assert (
        run(sb, "import", str(file), "--mapping", str(write(tmp_path, "m.yaml", MAPPING))).exit_code
        == 0
    )
    checkpoint = str(tmp_path / "q.csv.checkpoint.sqlite")
    first = run(sb, "undo", checkpoint, "--max-requests", "6")
    assert first.exit_code == 75, first.output
    done = int(first.stdout.split(" created records deleted")[0].rsplit(" ", 1)[-1])
    assert 0 < done < 6
    second = run(sb, "undo", checkpoint)
    assert second.exit_code == 0, second.output
    assert f"{6 - done} created records deleted" in second.stdout
    assert (
        f"(earlier runs: {done} deleted, 0 restored, 0 conflicts, 0 gone, 0 as before already)"
        in second.stdout
    )


def test_examples_writes_the_readme_files_and_keeps_a_users_edit(tmp_path: Path) -> None:
    first = run(None, "examples", str(tmp_path / "demo"))
    assert first.exit_code == 0, first.output
    mapping = tmp_path / "demo" / "mappings" / "contacts.yaml"
    assert mapping.read_text(encoding="utf-8").startswith("# ")
    assert (tmp_path / "demo" / "sample_data" / "migration" / "deals.csv").is_file()
    assert (tmp_path / "demo" / "examples" / "migration.mk").is_file()
    assert not (tmp_path / "demo" / "sample_data" / "sandbox").exists()
    written = len(first.stdout.splitlines())
    mapping.write_text("object: leads\n", encoding="utf-8")
    again = run(None, "examples", str(tmp_path / "demo"))
    assert again.exit_code == 0 and again.stdout == ""
    assert f"kept (already there): {mapping}" in again.stderr
    assert f"0 file(s) written to {tmp_path / 'demo'}, {written} kept as they were" in again.stderr
    assert mapping.read_text(encoding="utf-8") == "object: leads\n"
    forced = run(None, "examples", str(tmp_path / "demo"), "--force")
    assert forced.exit_code == 0 and len(forced.stdout.splitlines()) == written
    assert mapping.read_text(encoding="utf-8") != "object: leads\n"


def test_a_drafted_line_holding_a_header_with_a_line_break_is_valid_once_uncommented(
    make_sandbox, tmp_path: Path
) -> None:
    """A header typed with Alt+Enter in Excel broke the draft's comment in two: the second
    half became a key of its own ('Revenue: unknown key')."""
    file = write(
        tmp_path,
        "nl.csv",
        '"First\nName","Email\nAddress","Annual\nRevenue",yes,Notes\u2028(internal)\n'
        "A,nl@x.example,5,1,n\n",
    )
    sb = make_sandbox()
    result = run(sb, "mapping", "draft", str(file), "--object", "contacts")
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n")[-4:-1] == [  # U+2028 is a line break to YAML too
        '#   "Annual\\nRevenue": FIELD_NAME',
        "#   'yes': FIELD_NAME",
        '#   "Notes\\u2028(internal)": FIELD_NAME',
    ]
    mapping = tmp_path / "nl.yaml"
    mapping.write_text(
        result.stdout.replace(
            '#   "Annual\\nRevenue": FIELD_NAME', '  "Annual\\nRevenue": BACKGROUND'
        )
    )
    checked = run(sb, "validate", str(file), "--mapping", str(mapping))
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith(
        "nl.csv: 1 row read (utf-8, ',' delimited): 1 valid, 0 rejected"
    )


def test_validate_writes_the_rejects_of_a_semicolon_file_with_semicolons(
    make_sandbox, tmp_path: Path
) -> None:
    file = write(tmp_path, "eu.csv", "FIRST_NAME;EMAIL_ADDRESS;Lifetime_Value__c\nB;bad;1,234\n")
    result = run(make_sandbox(), "validate", str(file), "--object", "contacts")
    assert result.exit_code == 1, result.output
    assert (tmp_path / "eu.rejects.csv").read_text(encoding="utf-8-sig").splitlines() == [
        "line;errors;FIRST_NAME;EMAIL_ADDRESS;Lifetime_Value__c",
        "2;EMAIL_ADDRESS: 'bad' is not a plausible email address;B;bad;1,234",
    ]


def test_an_import_says_which_columns_it_leaves_out_before_the_plan(make_sandbox, tmp_path):
    data = write(tmp_path, "p.csv", "FIRST_NAME,EMAIL_ADDRESS,Shoe size\nAda,ada@x.example,38\n")
    result = run(make_sandbox(), "import", str(data), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        "Note: column 'Shoe size' is not a field of contacts; ignored",
        "Plan: 1 to create, 0 to update, 0 unchanged (no request), 0 rejected, 0 duplicate, "
        "0 skipped, 0 failed",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "{tmp}/nodir"], "Error: --seed {tmp}/nodir: no such folder"),
        (
            ["--seed", "{tmp}"],  # an empty folder: a KeyError, exit 70, before
            "Error: --seed {tmp}: a seed folder needs instance.json and custom_fields.json "
            "(sample_data/sandbox has the form)",
        ),
        (["--deny", "Leadz"], "Error: --deny Leadz: no such collection; did you mean Leads?"),
        (  # an account reopened from its state file is checked too
            ["--state", "{tmp}/kept.sqlite", "--deny", "Leadz"],
            "Error: --deny Leadz: no such collection; did you mean Leads?",
        ),
        (  # was `checkpoint database: unable to open database file`
            ["--state", "{tmp}/no/such/folder/state.sqlite"],
            "Error: --state {tmp}/no/such/folder/state.sqlite: cannot keep the sandbox's state "
            "there (unable to open database file)",
        ),
        (
            ["--state", "{tmp}/notes.txt"],
            "Error: --state {tmp}/notes.txt: cannot keep the sandbox's state there (file is "
            "not a database)",
        ),
    ],
)
def test_the_sandbox_names_what_is_wrong_with_its_options(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Each refused before it serves, naming the option: a missing --seed folder said
    `cannot listen on 127.0.0.1:…: None`, pick another --port."""
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    if "{tmp}/kept.sqlite" in args:  # a state file an earlier sandbox left
        from insightly_etl.sandbox import SandboxConfig
        from insightly_etl.sandbox.app import load_account

        load_account(SandboxConfig(state=tmp_path / "kept.sqlite"))
    given = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = cli_runner().invoke(main, ["sandbox", "--port", "0", *given])
    assert result.exit_code == 2, result.output
    assert message.replace("{tmp}", str(tmp_path)) in result.stderr.splitlines()


def test_a_servers_control_characters_never_reach_the_terminal(
    make_sandbox, tmp_path: Path
) -> None:
    """An account name holding a clear-screen, an OSC 52 clipboard write and a line break
    printed them raw, and a summary line of its own ("Exported 0 object types…")."""
    name = "acme\x1b[2J\x1b]52;c;ZWNobw==\x07\nExported 0 object types: nothing changed"
    sb = make_sandbox(subdomain=name)
    result = run(sb, "export", "contacts", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    both = result.stdout + result.stderr  # click 8.1's output is stdout alone
    assert "\x1b" not in both and "\x07" not in both
    shown = "acme\ufffd[2J\ufffd]52;c;ZWNobw==\ufffd Exported 0 object types: nothing changed"
    assert f"  account: {shown}" in both.splitlines()
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["account"] == shown


def test_a_date_in_the_other_order_than_the_files_is_said_as_such(
    make_sandbox, tmp_path: Path
) -> None:
    """12/25/1970 in a day-first file was "not a date in ISO form … or a spreadsheet's
    (12/31/2026 2:30 PM, …)", the very form it has."""
    rows = "Ada,a@y.example,25/12/1970\nBob,b@y.example,12/25/1970\nCy,c@y.example,31/02/1980\n"
    file = write(tmp_path, "b.csv", "Name,Email,Born\n" + rows)
    mapping = write(tmp_path, "m.yaml", MAPPING + "  Born: DATE_OF_BIRTH\n")
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(mapping))
    assert result.exit_code == 1, result.output
    rejects = (tmp_path / "b.rejects.csv").read_text(encoding="utf-8-sig")
    assert (
        "'25/12/1970' is a date only with the day first, and the file's dates do not settle one "
        "order for all of them (some show each); give --date-order dmy|mdy (or the mapping's "
        "date_order:) and fix the dates written the other way"
    ) in rejects
    args = ("validate", str(file), "--mapping", str(mapping), "--date-order", "dmy")
    result = run(make_sandbox(), *args)
    assert result.exit_code == 1, result.output
    rejects = (tmp_path / "b.rejects.csv").read_text(encoding="utf-8-sig")
    assert (
        "'12/25/1970' reads only month first, and the file's dates put the day first (a day "
        "after the 12th shows it): fix the date, or give --date-order dmy|mdy (or the "
        "mapping's date_order:) if the file's other dates are the wrong ones"
    ) in rejects
    assert "'31/02/1980' is no day, read either way round (a typo?)" in rejects
    assert "'25/12/1970'" not in rejects  # a day, read day first


def test_a_huge_cell_is_cut_short_in_its_message(make_sandbox, tmp_path: Path) -> None:
    """A 5,001-character number was printed whole in validate's summary."""
    huge = "9" * 5000 + "x"
    file = write(tmp_path, "h.csv", f"Name,Email,Value,Born\nAda,a@y.example,{huge},{huge}\n")
    mapping = write(
        tmp_path, "m.yaml", MAPPING + "  Value: Lifetime_Value__c\n  Born: DATE_OF_BIRTH\n"
    )
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(mapping))
    assert result.exit_code == 1, result.output
    assert f"line 2: '{'9' * 59}… (5,001 characters) is not a number with" in result.stdout
    assert f"line 2: '{'9' * 59}… (5,001 characters) is not a date" in result.stdout
    assert huge not in (tmp_path / "h.rejects.csv").read_text().split(",", 4)[1]  # its message
    assert max(len(line) for line in result.stdout.splitlines()) < 400


def test_every_problem_of_a_mapping_is_said_in_one_run(make_sandbox, tmp_path: Path) -> None:
    """A read-only field, then on the next run an unknown one, then a column not in the file:
    three runs to learn three things."""
    file = write(tmp_path, "p.csv", "Name,Email,Created,Source\nAda,a@y.example,2026-01-01,Web\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        MAPPING
        + "  Created: DATE_CREATED_UTC\n  Source: Lead_Source\n  Zip: ADDRESS_MAIL_POSTCODE\n",
    )
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(mapping))
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == f"Error: {mapping}: column 'Zip' is not in p.csv"
    assert lines[1].startswith(f"  and: {mapping}: columns.Created: DATE_CREATED_UTC is read-only")
    assert lines[2].startswith(f"  and: {mapping}: columns.Source: Lead_Source is not a field")
    assert lines[3] == "Hint: The file's columns: Name, Email, Created, Source."


@pytest.mark.parametrize("key", ["SeCrEtKey-1234567890abcdef", "Hunter2!s3cret"])
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--pod", "{key}"], "Error: invalid pod"),
        (["--api-url", "{key}"], "Error: invalid API URL"),
        (["--api-key-file", "{key}"], "Error: cannot read the API key file"),
    ],
)
def test_a_key_pasted_into_another_setting_is_never_printed(
    key: str, option: list[str], message: str, tmp_path: Path
) -> None:
    """The key set in INSIGHTLY_API_KEY and pasted as the pod, the URL or the key file's
    path was printed in the error (`invalid pod 'secretkey-1234567890abcdef'`): the other
    settings were checked before the key was known to be one."""
    args = [a.format(key=key) for a in option]
    result = run(
        None, *args, "export", "users", "--out", str(tmp_path / "o"), env={"INSIGHTLY_API_KEY": key}
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message)
    for shown in (key, key.lower(), key.upper()):
        assert shown not in result.output


def test_a_key_read_from_its_file_and_pasted_as_the_pod_is_never_printed(tmp_path: Path) -> None:
    """Only the keys given directly were known before the pod was checked."""
    key_file = write(tmp_path, "key", "Hunter2!s3cret\n")
    key_file.chmod(0o600)
    result = run(
        None,
        "--api-key-file",
        str(key_file),
        "--pod",
        "Hunter2!s3cret",
        "export",
        "users",
        "--out",
        str(tmp_path / "o"),
        env={},
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: invalid pod '***'")
    assert "hunter2" not in result.output.lower()


def test_a_url_that_is_not_the_api_says_so_with_exit_2(make_sandbox, tmp_path: Path) -> None:
    """A base URL with a wrong path (every request 404) was "Error: GET Users/Me, HTTP 404:
    Not Found", exit 1, naming neither the URL nor what to fix."""
    env = {**ENV, "INSIGHTLY_API_URL": "http://127.0.0.1/x/v3.1/"}
    result = run(make_sandbox(), "export", "users", "--out", str(tmp_path / "o"), env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        "Error: http://127.0.0.1/x/v3.1/ answered GET Instance with HTTP 404 (Not Found (a "
        "page that is not the API's)): it is not Insightly's API URL",
        "Hint: Insightly's is https://api.POD.insightly.com/v3.1/ (the pod is shown under User "
        "Settings → API, next to the key); a sandbox's ends in /v3.1/.",
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_url_typed_before_or_after_the_command_wins_over_the_environment_s(
    make_sandbox, tmp_path: Path, where: str
) -> None:
    """`INSIGHTLY_API_URL=PRODUCTION insightly-etl --api-url SANDBOX export …` reached the
    environment's URL: the command's own copy of the option, filled from the environment,
    took the place of the one typed before the command."""
    env = {**ENV, "INSIGHTLY_API_URL": "http://127.0.0.1/elsewhere/v3.1/"}
    typed = ["--api-url", "http://127.0.0.1/v3.1/"]
    command = ["export", "users", "--out", str(tmp_path / "o"), "-q"]
    args = [*typed, *command] if where == "before" else [*command, *typed]
    result = run(make_sandbox(), *args, env=env)
    assert result.exit_code == 0, result.output


def test_a_pod_typed_wins_over_a_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSIGHTLY_API_KEY", "k")
    monkeypatch.setenv("INSIGHTLY_API_URL", "http://127.0.0.1:8765/v3.1/")
    typed = Context(pod="eu1", api_url="http://127.0.0.1:8765/v3.1/", typed={"pod"})
    assert typed.settings().base_url == "https://api.eu1.insightly.com/v3.1/"
    both = Context(pod="eu1", api_url="http://127.0.0.1:8765/v3.1/")  # both from the environment
    assert both.settings().base_url == "http://127.0.0.1:8765/v3.1/"


def test_a_full_checkpoint_disk_says_where_to_free_space(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite answers SQLITE_FULL for the checkpoint's disk, and a dry run's copy of it is in
    TMPDIR: both are named. (The disk is outside the process: SQLite's own page limit stands
    in for it.)"""
    import sqlite3

    from insightly_etl.load.checkpoint import store

    connect = sqlite3.connect

    def small(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 12")
        return db

    monkeypatch.setattr(store.sqlite3, "connect", small)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rows = "".join(f"Person {i},person{i}@example.com\n" for i in range(3000))
    people = write(tmp_path, "people.csv", "Name,Email\n" + rows)
    mapping = write(tmp_path, "people.yaml", MAPPING)
    result = run(make_sandbox(), "import", str(people), "--mapping", str(mapping), "--quiet")
    assert result.exit_code == 74, result.output
    assert result.stderr == (
        "Error: checkpoint database: database or disk is full\n"
        "Hint: Free some space on the checkpoint's disk (for a dry run, in the temporary "
        f"folder, {tmp_path}, TMPDIR: its copy of the checkpoint is there), then run again: "
        "what the checkpoint holds is as its last transaction left it.\n"
    )
