"""Export, open in a spreadsheet program, save, import back: only what a person changed is
sent. The files were saved by LibreOffice Calc (tests/data/spreadsheets/make_corpus.py) in
the US and German locales, as CSV in UTF-8 and Windows-1252 and as XLSX, unchanged and with
the person's edits of tests/spreadsheets.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from insightly_etl.cli import main
from insightly_etl.cli.common import Context
from insightly_etl.sandbox import Sandbox
from tests.conftest import cli_runner
from tests.spreadsheets import EDITS, KEY, corpus_sandbox, numbers_sandbox

CORPUS = Path(__file__).resolve().parents[1] / "data" / "spreadsheets"
ENV = {"INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": "http://127.0.0.1/v3.1/"}
POSTCODES = "  ADDRESS_MAIL_POSTCODE: 12 (leading zeros dropped)"
LOST = [  # what a Windows-1252 save did to the Polish, Czech and Vietnamese contacts
    "  ADDRESS_MAIL_CITY: 3 (characters cp1252 cannot hold, replaced)",
    POSTCODES,
    "  EMAIL_ADDRESS: 3 (characters cp1252 cannot hold, replaced)",
    "  FIRST_NAME: 3 (characters cp1252 cannot hold, replaced)",
    "  LAST_NAME: 3 (characters cp1252 cannot hold, replaced)",
    "  TITLE: 2 (characters cp1252 cannot hold, replaced)",
]
# file -> the artefact lines of its plan (none: the workbook we wrote keeps postcodes as text)
FILES = {
    "us_utf8.csv": [POSTCODES],
    "us_cp1252.csv": LOST,
    "de_utf8.csv": [POSTCODES],
    "de_cp1252.csv": LOST,
    "us.xlsx": [POSTCODES],
    "de.xlsx": [],
}


def run(sb: Sandbox, *args: str) -> Result:
    obj = Context(transport=httpx.ASGITransport(app=sb.app))
    return cli_runner().invoke(main, list(args), obj=obj, env=ENV)


def artefact_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    if not any(line.startswith("Artefacts: ") for line in lines):
        return []
    start = next(i for i, line in enumerate(lines) if line.startswith("Artefacts: ")) + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        out.append(line)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("edited", [False, True], ids=["unchanged", "edited"])
@pytest.mark.parametrize("name", list(FILES))
def test_a_saved_export_plans_exactly_the_persons_edits(
    name: str, edited: bool, tmp_path: Path
) -> None:
    stem, suffix = name.split(".")
    source = CORPUS / (f"{stem}_edited.{suffix}" if edited else name)
    file = tmp_path / source.name
    shutil.copy(source, file)
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    updates = 3 if edited else 0
    assert (
        f"Plan: 0 to create, {updates} to update, {43 - updates} unchanged (no request), "
        "0 rejected, 0 duplicate, 0 skipped, 0 failed"
    ) in result.stderr
    assert artefact_lines(result.stderr) == FILES[name]
    plan = (tmp_path / f"{file.stem}.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    sent = [line for line in plan[1:] if ",update," in line]
    line_of = {2003: 4, 2010: 11, 2901: 42 if suffix == "xlsx" else 44}
    expected = {
        2003: ",Head of Procurement,",
        2010: "Holtsville,Cambridge,",
        2901: "Kierownik,Dyrektor,",
    }
    assert sent == (
        [
            f"{line_of[cid]},update,{cid},{field},{expected[cid]}"
            for cid, edits in EDITS.items()
            for field in edits
        ]
        if edited
        else []
    )
    kept = [line for line in plan[1:] if ",artefact," in line]
    assert len(kept) == sum(int(line.split(": ")[1].split()[0]) for line in FILES[name])


@pytest.mark.slow
def test_the_edits_are_sent_and_nothing_else_changes(tmp_path: Path) -> None:
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"].records
    before = {cid: dict(record) for cid, record in contacts.items()}
    file = tmp_path / "de_cp1252_edited.csv"
    shutil.copy(CORPUS / file.name, file)
    result = run(sb, "import", str(file), "--object", "contacts", "--quiet")
    assert result.exit_code == 0, result.output
    assert "de_cp1252_edited.csv -> contacts: 0 created, 3 updated, 40 unchanged" in result.stdout
    for cid, record in contacts.items():
        changed = {k for k in record if record[k] != before[cid].get(k)}
        assert changed <= ({*EDITS.get(cid, {}), "DATE_UPDATED_UTC"} if cid in EDITS else set())
        for name, value in EDITS.get(cid, {}).items():
            assert record[name] == value
    assert contacts[2001]["ADDRESS_MAIL_POSTCODE"] == "00501"
    assert contacts[2901]["ADDRESS_MAIL_CITY"] == "Łódź"


@pytest.mark.slow
def test_artefacts_send_sends_them(tmp_path: Path) -> None:
    """A column that says `artefacts: send` takes the file's value as an edit."""
    file = tmp_path / "us_utf8.csv"
    shutil.copy(CORPUS / file.name, file)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\nmatch: {column: CONTACT_ID, field: CONTACT_ID}\ncolumns:\n"
        "  ADDRESS_MAIL_POSTCODE: {field: ADDRESS_MAIL_POSTCODE, artefacts: send}\n"
        "  TITLE: TITLE\n",
        encoding="utf-8",
    )
    result = run(corpus_sandbox(), "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "0 to create, 12 to update, 31 unchanged" in result.stderr
    assert artefact_lines(result.stderr) == []
    assert "  line 2: update 2001 ADDRESS_MAIL_POSTCODE '00501' -> '501'" in result.stderr


# ---------------------------------------------------------------- a colleague's newer edit

# the file's copy of contact 2001 (Insightly's DATE_UPDATED_UTC: 2026-09-19 15:28:48), as
# spreadsheet programs write it
COPY_TIMES = {
    "iso": "2026-09-19 15:28:48",
    "iso T Z": "2026-09-19T15:28:48Z",
    "us excel": "9/19/2026 3:28 PM",
    "us excel seconds": "9/19/2026 3:28:48 PM",
    "uk": "19/09/2026 15:28",
    "german": "19.09.2026 15:28:48",
    "german short": "19.09.26 15:28",
}


def conflict_file(tmp_path: Path, copied: str) -> Path:
    file = tmp_path / "contacts.csv"
    file.write_text(
        f'CONTACT_ID,TITLE,DATE_UPDATED_UTC\n2001,My new title,"{copied}"\n', encoding="utf-8"
    )
    return file


@pytest.mark.slow
@pytest.mark.parametrize("form", list(COPY_TIMES))
def test_a_colleagues_later_edit_is_a_conflict_in_every_form(form: str, tmp_path: Path) -> None:
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"]  # a colleague, three minutes later:
    contacts.put({**contacts.records[2001], "DATE_UPDATED_UTC": "2026-09-19 15:31:10"})
    file = conflict_file(tmp_path, COPY_TIMES[form])
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output  # a row not written: see the errors file
    assert (
        "0 to update, 0 unchanged (no request), 0 rejected, 0 duplicate, 0 skipped, 1 failed"
        in (result.stderr)
    )
    errors = (tmp_path / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    shown = "2026-09-19 15:28:48" if ":48" in COPY_TIMES[form] else "2026-09-19 15:28"
    assert (
        f"conflict: record 2001 changed in Insightly at 2026-09-19 15:31:10 UTC, after this "
        f"file's copy ({shown} UTC); not overwritten (TITLE)"
    ) in errors


@pytest.mark.slow
@pytest.mark.parametrize("form", list(COPY_TIMES))
def test_a_record_unchanged_since_the_copy_is_updated_in_every_form(
    form: str, tmp_path: Path
) -> None:
    """Compared at the copy's precision: a copy without seconds is not older than its minute."""
    file = conflict_file(tmp_path, COPY_TIMES[form])
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Plan: 0 to create, 1 to update, 0 unchanged" in result.stderr
    assert "  line 2: update 2001 TITLE 'Office Manager' -> 'My new title'" in result.stderr


def test_months_ten_to_twelve_are_later_not_earlier(tmp_path: Path) -> None:
    """As text, '10/2/2026' sorts before '2026-09-30': compared as instants it is after."""
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2001], "DATE_UPDATED_UTC": "2026-09-30 08:00:00"})
    file = conflict_file(tmp_path, "10/2/2026 1:00 PM")
    with file.open("a", encoding="utf-8") as more:  # a US date that says month first
        more.write('2002,Buyer,"5/15/2023 7:42 AM"\n')
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "Plan: 0 to create, 1 to update, 1 unchanged" in result.stderr, result.output


def test_a_slash_copy_time_the_file_does_not_order_is_a_conflict(tmp_path: Path) -> None:
    """`10/2/2026` alone may be the 10th of February: never guessed."""
    file = conflict_file(tmp_path, "10/2/2026 1:00 PM")
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert (
        "0 to update, 0 unchanged (no request), 0 rejected, 0 duplicate, 0 skipped, 1 failed"
        in (result.stderr)
    )
    errors = (tmp_path / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert "conflict: this file's DATE_UPDATED_UTC '10/2/2026 1:00 PM' cannot be read" in errors


@pytest.mark.parametrize("written", ["0000-01-01 00:00:00", "2026-13-45 10:00:00"])
def test_an_impossible_copy_time_is_a_conflict_not_a_crash(written: str, tmp_path: Path) -> None:
    file = conflict_file(tmp_path, written)
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "1 failed" in result.stderr


def test_a_copy_time_that_cannot_be_read_is_a_conflict(tmp_path: Path) -> None:
    file = conflict_file(tmp_path, "last Tuesday")
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "1 failed" in result.stderr
    errors = (tmp_path / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "conflict: this file's DATE_UPDATED_UTC 'last Tuesday' cannot be read as one moment, so "
        "a change to record 2001 in Insightly since the copy cannot be ruled out; not "
        "overwritten (TITLE)"
    ) in errors


def test_a_row_whose_letters_the_code_page_lost_is_not_created(tmp_path: Path) -> None:
    """Matched by e-mail, `?ukasz.2901@example.pl` finds no record: created, it would be a
    second Łukasz. It is failed instead, with the reason."""
    file = tmp_path / "people.csv"
    file.write_bytes(
        "Name;Email\n?ukasz;?ukasz.2901@example.pl\nJürgen;juergen@example.de\n".encode("cp1252")
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\n"
        "columns: {Name: FIRST_NAME, Email: EMAIL_ADDRESS}\n",
        encoding="utf-8",
    )
    result = run(corpus_sandbox(), "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert (
        "Plan: 1 to create, 0 to update, 0 unchanged (no request), 0 rejected, 0 duplicate, 0 skipped, 1 failed"
        in result.stderr
    )
    errors = (tmp_path / "people.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "FIRST_NAME '?ukasz' has '?' inside a word, which is how a program saving in cp1252 "
        "writes a character it cannot hold; not created (it may be an existing record). Save "
        "the file as CSV UTF-8, or fix the cell"
    ) in errors


def test_a_csv_saved_in_a_cyrillic_code_page_arrives_in_cyrillic(tmp_path: Path) -> None:
    """Excel on a Russian Windows saves "CSV (Comma delimited)" in Windows-1251: read as
    Windows-1252, `Иван` would have been created as `Èâàí`."""
    file = tmp_path / "people.csv"
    file.write_bytes(
        "Имя;Фамилия;Email\nИван;Петров;ivan@example.ru\nМария;Иванова;maria@example.ru\n"
        "Олег;Сидоренко;oleg@example.ua\n".encode("cp1251")
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\n"
        "columns: {Имя: FIRST_NAME, Фамилия: LAST_NAME, Email: EMAIL_ADDRESS}\n",
        encoding="utf-8",
    )
    sb = corpus_sandbox()
    result = run(sb, "import", str(file), "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    assert "Plan: 3 to create, 0 to update" in result.stderr
    assert (
        "Note: people.csv is not UTF-8: read as Windows-1251 (Cyrillic); if its letters read "
        "wrong, name the encoding with --encoding\n"
    ) in result.stderr
    names = {
        r["EMAIL_ADDRESS"]: (r["FIRST_NAME"], r["LAST_NAME"])
        for r in sb.account.collections["Contacts"].records.values()
        if r["EMAIL_ADDRESS"].endswith((".ru", ".ua"))
    }
    assert names == {
        "ivan@example.ru": ("Иван", "Петров"),
        "maria@example.ru": ("Мария", "Иванова"),
        "oleg@example.ua": ("Олег", "Сидоренко"),
    }


def test_an_ascii_file_with_lost_letters_is_not_created_either(tmp_path: Path) -> None:
    file = tmp_path / "people.csv"
    file.write_text("FIRST_NAME,EMAIL_ADDRESS\nAnna,?ukasz.2901@example.pl\n", encoding="ascii")
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert "0 to create" in result.stderr and "1 failed" in result.stderr, result.output


@pytest.mark.slow
def test_emptied_cells_and_removed_tags_are_reported_not_sent(tmp_path: Path) -> None:
    import csv

    with (CORPUS / "us_utf8.csv").open(encoding="utf-8", newline="") as source:
        rows = list(csv.reader(source))
    header = rows[0]
    rows[1][header.index("TITLE")] = ""  # 2001 was an Office Manager
    rows[1][header.index("TAGS")] = "partner"  # was partner;reseller
    file = tmp_path / "contacts.csv"
    with file.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Plan: 0 to create, 0 to update, 43 unchanged" in result.stderr
    lines = result.stderr.splitlines()
    at = lines.index("Not sent: what the file takes out, the mapping leaves alone:")
    assert lines[at + 1 : at + 3] == [
        "  TAGS: 1 set members taken out, not sent (merge: replace sends them)",
        "  TITLE: 1 emptied cells not sent (blank: clear sends them)",
    ]


# ---------------------------------------------------------------- three-way merge


def edited_export(sb: Sandbox, tmp_path: Path, edits: dict[int, dict[str, str]]) -> Path:
    """`export contacts --format csv`, then a person's edits to the file as a program saves."""
    import csv

    out = tmp_path / "exports"
    assert run(sb, "export", "contacts", "--format", "csv", "--out", str(out), "-q").exit_code == 0
    file = out / "contacts.csv"
    with file.open(encoding="utf-8-sig", newline="") as source:
        rows = list(csv.reader(source))
    header = rows[0]
    for row in rows[1:]:
        for name, value in edits.get(int(row[0]), {}).items():
            row[header.index(name)] = value
    with file.open("w", encoding="utf-8-sig", newline="") as target:
        csv.writer(target, lineterminator="\r\n").writerows(rows)
    return file


def colleague(sb: Sandbox, cid: int, at: str = "2026-12-01 10:00:00", **fields: str) -> None:
    """An edit in Insightly by somebody else (put: the sandbox's cached answer goes too)."""
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[cid], **fields, "DATE_UPDATED_UTC": at})


@pytest.mark.slow
def test_only_the_persons_edits_are_sent_and_a_colleagues_stay(tmp_path: Path) -> None:
    sb = corpus_sandbox()
    file = edited_export(
        sb,
        tmp_path,
        {
            2001: {"ADDRESS_MAIL_CITY": "Springfield"},  # the colleague changed TITLE
            2002: {"ADDRESS_MAIL_CITY": "Salem", "TITLE": "Chief Buyer"},  # colleague: the city
            2003: {"TITLE": "Head of Procurement"},
        },
    )
    colleague(sb, 2001, TITLE="VP Sales")
    colleague(sb, 2002, ADDRESS_MAIL_CITY="Cambridge")
    assert (file.parent / "_base" / "contacts.parquet").is_file()
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output  # an edit of the person's was not applied
    assert (
        "Plan: 0 to create, 3 to update, 220 unchanged (no request), 0 rejected, 0 duplicate, "
        "0 skipped, 0 failed; 1 of them with a conflict kept, which end failed (see Conflicts)"
    ) in result.stderr.splitlines()
    assert (
        "Conflicts: 1 field(s) changed both in the file and in Insightly since the export; "
        "Insightly's value is kept" in result.stderr
    )
    assert "  ADDRESS_MAIL_CITY 1" in result.stderr.splitlines()
    plan = (file.parent / "contacts.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert plan[1:] == [
        "2,update,2001,ADDRESS_MAIL_CITY,Holtsville,Springfield,",
        "3,update,2002,TITLE,Buyer,Chief Buyer,",
        "3,conflict,2002,ADDRESS_MAIL_CITY,Cambridge,Salem,"
        "changed in Insightly since the export (it was 'Boston'); kept",
        "4,update,2003,TITLE,,Head of Procurement,",
    ]
    result = run(sb, "import", str(file), "--object", "contacts")
    assert result.exit_code == 1, result.output
    assert (
        "contacts: 0 created, 2 updated, 220 unchanged, 0 rejected, 0 duplicate, 0 skipped, "
        "1 failed" in result.stdout
    )
    contacts = sb.account.collections["Contacts"].records
    assert contacts[2001]["TITLE"] == "VP Sales"  # the person never touched it: the colleague's
    assert contacts[2001]["ADDRESS_MAIL_CITY"] == "Springfield"
    assert contacts[2002]["ADDRESS_MAIL_CITY"] == "Cambridge"  # the conflict: kept
    assert contacts[2003]["TITLE"] == "Head of Procurement"
    errors = (file.parent / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "conflict: ADDRESS_MAIL_CITY changed in Insightly since the export, and in the file: "
        "kept as Insightly has it (NAME.plan.csv says both); the row's other changes were sent "
        "(TITLE); run again with --on-conflict overwrite to send the file's"
    ) in errors
    assert contacts[2002]["TITLE"] == "Chief Buyer"
    # the conflict's row is not done: run again as the message says, and the file's is sent
    # (it was 'done', and the run again sent nothing, forgot the conflict and exited 0)
    overwrite = run(sb, "import", str(file), "--object", "contacts", "--on-conflict", "overwrite")
    assert overwrite.exit_code == 0, overwrite.output
    assert "export; the file's value is sent, as --on-conflict overwrite says" in overwrite.stderr
    assert (
        "contacts: 0 created, 3 updated, 220 unchanged, 0 rejected, 0 duplicate, "
        "0 skipped, 0 failed (this run" in overwrite.stdout
    )
    assert contacts[2002]["ADDRESS_MAIL_CITY"] == "Salem"  # both changed it: overwrite says so


@pytest.mark.slow
def test_without_a_base_the_whole_row_check_stays(tmp_path: Path) -> None:
    import shutil as sh

    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2001: {"ADDRESS_MAIL_CITY": "Springfield"}})
    colleague(sb, 2001, TITLE="VP Sales")
    sh.rmtree(file.parent / "_base")
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert (
        "0 to update, 222 unchanged (no request), 0 rejected, 0 duplicate, 0 skipped, 1 failed"
        in (result.stderr)
    )


@pytest.mark.slow
def test_a_base_named_with_base_and_a_row_from_another_export(tmp_path: Path) -> None:
    """--base names the export; a row whose DATE_UPDATED_UTC is not the base's is no copy of it
    and gets the whole-row check."""
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2001: {"ADDRESS_MAIL_CITY": "Springfield"}})
    moved = tmp_path / "base.parquet"
    (file.parent / "_base" / "contacts.parquet").rename(moved)
    colleague(sb, 2001, TITLE="VP Sales")
    merged = run(sb, "import", str(file), "--object", "contacts", "--dry-run", "--base", str(moved))
    assert "1 to update" in merged.stderr, merged.output
    text = file.read_text(encoding="utf-8-sig").replace(
        "2026-09-19 15:28:48", "2026-09-18 10:00:00"
    )
    file.write_text(text, encoding="utf-8-sig")
    other = run(sb, "import", str(file), "--object", "contacts", "--dry-run", "--base", str(moved))
    assert "0 to update" in other.stderr and "1 failed" in other.stderr, other.output


def test_date_order_on_the_command_line(tmp_path: Path) -> None:
    file = tmp_path / "contacts.csv"
    file.write_text("CONTACT_ID,DATE_OF_BIRTH\n2001,06/01/1965\n", encoding="utf-8")
    refused = run(corpus_sandbox(), "validate", str(file), "--object", "contacts")
    assert refused.exit_code == 1
    ordered = run(
        corpus_sandbox(),
        "import",
        str(file),
        "--object",
        "contacts",
        "--date-order",
        "dmy",
        "--dry-run",
    )
    assert "Plan: 0 to create, 0 to update, 1 unchanged" in ordered.stderr, ordered.output


# ---------------------------------------------------------------- from an adversarial review


def test_a_match_column_feeding_several_fields_keys_by_its_match_rule(tmp_path: Path) -> None:
    file = tmp_path / "p.csv"
    file.write_text("Email,First\nSamir.Ivanova.2001@Example.com,Sam\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n"
        "  Email:\n    - {field: EMAIL_ADDRESS, transform: [lower]}\n    - {field: Nickname__c}\n"
        "  First: FIRST_NAME\n",
        encoding="utf-8",
    )
    result = run(corpus_sandbox(), "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert "Plan: 0 to create, 1 to update" in result.stderr, result.output


def test_an_export_without_its_id_column_is_refused(tmp_path: Path) -> None:
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {})
    file.write_text(
        file.read_text(encoding="utf-8-sig").replace("CONTACT_ID,", "Contact ID,", 1),
        encoding="utf-8-sig",
    )
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 2, result.output
    assert (
        "this looks like an export of contacts (it has DATE_UPDATED_UTC) but has no CONTACT_ID "
        "column, so every row would create a new record" in result.stderr
    )


@pytest.mark.slow
@pytest.mark.parametrize("with_base", [True, False])
def test_tags_whose_names_hold_a_semicolon_come_back_unchanged(
    tmp_path: Path, with_base: bool
) -> None:
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"]
    tags = [{"TAG_NAME": "Partner; EMEA"}, {"TAG_NAME": "vip"}]
    contacts.put({**contacts.records[2001], "TAGS": tags})
    file = edited_export(sb, tmp_path, {})
    if not with_base:
        import shutil as sh

        sh.rmtree(file.parent / "_base")
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "Plan: 0 to create, 0 to update, 223 unchanged" in result.stderr, result.output
    assert "Not sent" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("padded", [True, False])
def test_a_report_footer_padded_by_a_spreadsheet_is_left_out(tmp_path: Path, padded: bool) -> None:
    pad = ",," if padded else ""
    file = tmp_path / "report.csv"
    file.write_text(
        "First Name,Last Name,Email\nAda,Lovelace,ada@footer.example\n"
        f"{pad.replace(',', ',', 2)}\n"
        f"Contacts & Accounts{pad}\n"  # the report's name, as Salesforce's footer starts
        f"Confidential Information - Do Not Distribute{pad}\n"
        f'"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."{pad}\n'
        f"Northwind{pad}\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\ncolumns:\n"
        "  First Name: FIRST_NAME\n  Last Name: LAST_NAME\n  Email: EMAIL_ADDRESS\n",
        encoding="utf-8",
    )
    result = run(corpus_sandbox(), "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert "Plan: 1 to create, 0 to update" in result.stderr, result.output
    assert "0 rejected" in result.stderr
    assert "Note: lines 4-7: a report's footer (Copyright, Generated By …), not data" in (
        result.stderr
    )


@pytest.mark.slow
def test_a_colleagues_edit_during_the_run_is_a_conflict_not_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insightly_etl.load import execute

    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2001: {"TITLE": "Boss"}})
    original = execute.Executor._refresh

    async def colleague_first(self: execute.Executor, batch: list) -> None:
        from datetime import UTC, datetime

        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        colleague(sb, 2001, at=now, TITLE="CEO")  # between the plan and the write
        await original(self, batch)

    monkeypatch.setattr(execute.Executor, "_refresh", colleague_first)
    result = run(sb, "import", str(file), "--object", "contacts", "--quiet")
    assert result.exit_code == 1, result.output
    assert "0 updated" in result.stdout and "1 failed" in result.stdout
    errors = (file.parent / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert "conflict: record 2001 changed in Insightly during this run (TITLE)" in errors
    assert sb.account.collections["Contacts"].records[2001]["TITLE"] == "CEO"


@pytest.mark.slow
def test_top_level_blank_clear_holds_for_a_mapping_without_columns(tmp_path: Path) -> None:
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2001: {"TITLE": ""}})
    mapping = tmp_path / "m.yaml"
    mapping.write_text("object: contacts\nblank: clear\n", encoding="utf-8")
    result = run(sb, "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert "  line 2: update 2001 TITLE 'Office Manager' -> ''" in result.stderr, result.output


def test_a_lookup_fallback_that_is_no_record_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "p.csv"
    file.write_text("Name,Owner\nAda,gone@example.com\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\ncolumns:\n  Name: FIRST_NAME\n"
        "  Owner: {field: OWNER_USER_ID, lookup: {object: users, by: EMAIL_ADDRESS, missing: 424242}}\n",
        encoding="utf-8",
    )
    result = run(corpus_sandbox(), "validate", str(file), "--mapping", str(mapping))
    assert result.exit_code == 1
    assert "and the fallback 424242 is no users record either" in result.output


@pytest.mark.slow
def test_a_base_that_is_the_file_itself_is_refused(tmp_path: Path) -> None:
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2001: {"TITLE": "Boss"}})
    result = run(sb, "import", str(file), "--object", "contacts", "--base", str(file), "--dry-run")
    assert result.exit_code == 2, result.output
    assert "the base is the file itself, so nothing would count as changed" in result.stderr


@pytest.mark.slow
def test_blank_clear_for_the_run(tmp_path: Path) -> None:
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2001: {"TITLE": ""}})
    kept = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "TITLE: 1 emptied cells not sent (blank: clear sends them)" in kept.stderr
    cleared = run(sb, "import", str(file), "--object", "contacts", "--dry-run", "--blank", "clear")
    assert "  line 2: update 2001 TITLE 'Office Manager' -> ''" in cleared.stderr, cleared.output
    assert "Plan: 0 to create, 1 to update, 222 unchanged" in cleared.stderr


@pytest.mark.slow
def test_our_excel_eu_export_imports_back_given_or_detected(tmp_path: Path) -> None:
    sb = corpus_sandbox()
    out = tmp_path / "eu"
    made = run(
        sb,
        "export",
        "contacts",
        "--format",
        "csv",
        "--csv-dialect",
        "excel-eu",
        "--out",
        str(out),
        "-q",
    )
    assert made.exit_code == 0, made.output
    file = out / "contacts.csv"
    for extra in ([], ["--csv-dialect", "excel-eu"]):
        result = run(sb, "import", str(file), "--object", "contacts", "--dry-run", *extra)
        assert "Plan: 0 to create, 0 to update, 223 unchanged (no request), 0 rejected" in (
            result.stderr
        ), result.output


@pytest.mark.slow
def test_with_a_base_artefacts_are_kept_and_said(tmp_path: Path) -> None:
    """A save that dropped a postcode's zeros, in a folder with its base: not sent, and
    counted as with no base."""
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2001: {"ADDRESS_MAIL_POSTCODE": "501"}})
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "Plan: 0 to create, 0 to update, 223 unchanged" in result.stderr, result.output
    assert artefact_lines(result.stderr) == ["  ADDRESS_MAIL_POSTCODE: 1 (leading zeros dropped)"]
    plan = (file.parent / "contacts.plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert plan[1:] == ["2,artefact,2001,ADDRESS_MAIL_POSTCODE,00501,501,leading zeros dropped"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_our_own_export_imports_back_unchanged_whatever_its_texts_start_with(
    fmt: str, tmp_path: Path
) -> None:
    """A text that starts with a quote before a formula character (`'+Quoted`) is itself in a
    workbook of ours: the reader takes one quote off such cells (a CSV of ours saved as a
    workbook has them escaped), so the writer adds one."""
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"]
    texts = {
        2001: ("'+Quoted", "''=x"),
        2002: ("+44 20 7946 0000", '=HYPERLINK("http://evil.example")'),
        2003: ("'plain", "-"),
    }
    for rid, (first, title) in texts.items():
        contacts.put({**contacts.records[rid], "FIRST_NAME": first, "TITLE": title})
    # a web form's or Outlook's line break: CR LF, which a workbook's XML reads as LF
    contacts.put({**contacts.records[2004], "BACKGROUND": "Line one\r\nLine two"})
    out = tmp_path / "export"
    exported = run(sb, "export", "contacts", "--out", str(out), "--format", fmt)
    assert exported.exit_code == 0, exported.output
    result = run(sb, "import", str(out / f"contacts.{fmt}"), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "0 to create, 0 to update" in result.stderr, result.stderr
    assert contacts.records[2004]["BACKGROUND"] == "Line one\r\nLine two"


LONG_NUMBER = "long number shown in scientific notation"
KEPT_15 = "digits after the 15th lost (stored as a number)"
# field -> why, in the plan, for each file Calc saved (make_corpus.py's numbers)
NUMBER_ARTEFACTS = {
    "numbers_us.csv": {
        "ADDRESS_MAIL_POSTCODE": LONG_NUMBER,  # 1.23456789012346E+019
        "TITLE": "number re-formatted",  # 1E5 -> 1.00E+05
        "Lifetime_Value__c": LONG_NUMBER,  # 9007199254740993 -> 9.01E+15
        "External_Id__c": LONG_NUMBER,
    },
    "numbers_de.csv": {
        "ADDRESS_MAIL_POSTCODE": LONG_NUMBER,  # 1,23456789012346E+019
        "TITLE": "number re-formatted",  # 1,00E+05
        "Lifetime_Value__c": LONG_NUMBER,  # 9,01E+15
        "External_Id__c": LONG_NUMBER,
    },
    "numbers_us.xlsx": {  # number cells; the yes/no cell reads TRUE, as it was
        "ADDRESS_MAIL_POSTCODE": KEPT_15,
        "TITLE": "number re-formatted",  # 100000
        "External_Id__c": KEPT_15,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NUMBER_ARTEFACTS))
def test_numbers_a_spreadsheet_rewrote_are_artefacts_not_edits(name: str, tmp_path: Path) -> None:
    """A text that looks like a number (`1E5`), digit strings longer than a spreadsheet keeps,
    and a number longer than a cell shows, in the files LibreOffice Calc saved unchanged."""
    import pandas as pd

    file = tmp_path / name
    shutil.copy(CORPUS / name, file)
    result = run(numbers_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Plan: 0 to create, 0 to update, 1 unchanged" in result.stderr, result.stderr
    plan = pd.read_csv(file.with_suffix(".plan.csv"), dtype=str, keep_default_na=False)
    assert dict(zip(plan["field"], plan["note"], strict=True)) == NUMBER_ARTEFACTS[name]
    assert set(plan["action"]) == {"artefact"}


@pytest.mark.parametrize("wrong", ["leads", "organisations"])
def test_an_export_of_another_object_is_named_as_such(wrong: str, tmp_path: Path) -> None:
    """organisations: a contacts export holds ORGANISATION_ID too, and each row matched the
    organisation it names; the contact's phone, owner and tags were written over it."""
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {})
    organisations = sb.account.collections["Organisations"].records
    before = {rid: dict(record) for rid, record in organisations.items()}
    for command in ("validate", "import"):
        result = run(sb, command, str(file), "--object", wrong)
        assert result.exit_code == 2, result.output
        assert (
            f"Error: {file}: this is an export of contacts (its first column is CONTACT_ID), "
            f"not of {wrong}" in result.stderr
        )
        assert "Hint: Import it with --object contacts." in result.stderr
    assert organisations == before


@pytest.mark.parametrize("with_base", [True, False])
def test_a_row_whose_id_moved_to_another_person_is_not_written(
    with_base: bool, tmp_path: Path
) -> None:
    """The ids of two rows swapped (one column sorted on its own): each row would overwrite
    the other person's record with its own name and e-mail. Neither is written."""
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2006: {"CONTACT_ID": "2007"}, 2007: {"CONTACT_ID": "2006"}})
    if not with_base:
        shutil.rmtree(file.parent / "_base")
    contacts = sb.account.collections["Contacts"]
    people = {
        i: (contacts.records[i]["FIRST_NAME"], contacts.records[i]["EMAIL_ADDRESS"])
        for i in (2006, 2007)
    }
    result = run(sb, "import", str(file), "--object", "contacts")
    assert result.exit_code == 1, result.output
    assert (
        "0 to update, 221 unchanged (no request), 0 rejected, 0 duplicate, 0 skipped, 2 failed"
        in result.stderr
    )
    assert {
        i: (contacts.records[i]["FIRST_NAME"], contacts.records[i]["EMAIL_ADDRESS"])
        for i in (2006, 2007)
    } == people
    errors = (file.parent / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        f"the row would give contact 2006 the EMAIL_ADDRESS of contact 2007 ({people[2007][1]!r}) "
        "and another name" in errors
    ), errors
    assert (
        "its CONTACT_ID looks moved from another row (one column sorted on its own?); not written"
        in errors
    )


def test_a_long_number_a_person_rounds_is_an_edit_not_an_artefact(tmp_path: Path) -> None:
    """`123000000000` typed over 123456789012 is sent; only a cell written in scientific
    notation (`1.23E+11`) may be a spreadsheet's rounding."""
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"]
    record = contacts.records[2006]
    custom = [c for c in record["CUSTOMFIELDS"] if c["FIELD_NAME"] != "Lifetime_Value__c"]
    custom.append({"FIELD_NAME": "Lifetime_Value__c", "FIELD_VALUE": 123456789012})
    contacts.put({**record, "CUSTOMFIELDS": custom})
    file = edited_export(sb, tmp_path, {2006: {"Lifetime_Value__c": "123000000000"}})
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "Plan: 0 to create, 1 to update" in result.stderr, result.stderr
    # exported again into a folder of its own: the first edit is not exported over
    file = edited_export(sb, tmp_path / "again", {2006: {"Lifetime_Value__c": "1.23E+11"}})
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "Plan: 0 to create, 0 to update" in result.stderr, result.stderr


def test_a_new_name_and_an_address_another_record_has_is_no_moved_id(tmp_path: Path) -> None:
    """She married and takes the address of her old duplicate: sent, with the warning."""
    sb = corpus_sandbox()
    taken = sb.account.collections["Contacts"].records[2007]["EMAIL_ADDRESS"]
    file = edited_export(sb, tmp_path, {2006: {"LAST_NAME": "Newname", "EMAIL_ADDRESS": taken}})
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "Plan: 0 to create, 1 to update" in result.stderr, result.stderr
    assert "1 row(s) give EMAIL_ADDRESS a value another record has" in result.stderr


def test_an_export_of_a_custom_object_imported_as_contacts_is_named_as_such(
    tmp_path: Path,
) -> None:
    sb = corpus_sandbox()
    out = tmp_path / "out"
    assert run(sb, "export", "Site__c", "--out", str(out), "--format", "csv").exit_code == 0
    result = run(sb, "import", str(out / "Site__c.csv"), "--object", "contacts", "--dry-run")
    assert result.exit_code == 2, result.output
    assert (
        "this is an export of a custom object (its first column is RECORD_ID), not of contacts"
        in result.stderr
    )
    assert "Hint: Import it with --object and the custom object's API name (Site__c)." in (
        result.stderr
    )


def test_a_text_longer_than_a_cell_is_never_cut_in_insightly(tmp_path: Path) -> None:
    """A note of 44,010 characters through a workbook, which keeps 32,767 of them: the cut
    alone is an artefact (it was sent, and cut the note in Insightly); an edit of the cut fails
    its row, naming the field, while another row's edit goes through."""
    import openpyxl

    sb = corpus_sandbox()
    notes = sb.account.collections["Notes"]
    first, second = sorted(notes.records)[:2]
    count = len(notes.records)
    body = "<p>Meeting\r\n" + "x" * 43_991 + "END</p>"  # 44,010
    notes.put({**notes.records[first], "BODY": body})
    out = tmp_path / "out"
    assert run(sb, "export", "notes", "--format", "xlsx", "--out", str(out)).exit_code == 0
    file = out / "notes.xlsx"
    result = run(sb, "import", str(file), "--object", "notes", "--dry-run")
    assert f"Plan: 0 to create, 0 to update, {count} unchanged" in result.stderr, result.output
    assert artefact_lines(result.stderr) == [
        "  BODY: 1 (cut at the 32,767 characters a cell holds)"
    ]
    sending = tmp_path / "send.yaml"  # artefacts sent as they are: not a cut one
    sending.write_text("object: notes\nartefacts: send\n", encoding="utf-8")
    result = run(sb, "import", str(file), "--mapping", str(sending), "--dry-run")
    assert f"0 to update, {count - 1} unchanged" in result.stderr and "1 failed" in result.stderr
    assert (
        "BODY: Insightly holds 44,010 characters, and a spreadsheet cell only the first 32,767: "
        "sent, even as `artefacts: send` says, it would lose the rest"
    ) in (out / "notes.errors.csv").read_text(encoding="utf-8-sig")
    book = openpyxl.load_workbook(file)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        cell = row[header.index("BODY")]
        if row[0].value == first:
            cell.value = "<p>Meeting moved" + cell.value[10:]  # the cut, edited at its start
        elif row[0].value == second:
            cell.value = "Agenda agreed"
    book.save(file)
    result = run(sb, "import", str(file), "--object", "notes")
    assert result.exit_code == 1, result.output
    assert f"notes.xlsx -> notes: 0 created, 1 updated, {count - 2} unchanged" in result.stdout
    assert notes.records[first]["BODY"] == body
    assert notes.records[second]["BODY"] == "Agenda agreed"
    errors = (out / "notes.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "BODY: Insightly holds 44,010 characters, and a spreadsheet cell only the first 32,767: "
        "the edit of that cut would lose the rest. Make it in Insightly, or in the CSV or "
        "Parquet export without opening it in a spreadsheet" in errors
    )


def retyped(file: Path, rid: int, name: str, value: str) -> None:
    """The file edited again, as a program saves it."""
    import csv

    with file.open(encoding="utf-8-sig", newline="") as source:
        rows = list(csv.reader(source))
    for row in rows[1:]:
        if row[0] == str(rid):
            row[rows[0].index(name)] = value
    with file.open("w", encoding="utf-8-sig", newline="") as target:
        csv.writer(target, lineterminator="\r\n").writerows(rows)


@pytest.mark.parametrize("beside_its_export", [True, False])
def test_a_typo_fixed_and_run_again_is_no_conflict_with_the_run_that_sent_it(
    beside_its_export: bool, tmp_path: Path
) -> None:
    """`Hed of Sales` sent, then corrected in the file and run again: Insightly's value is
    this import's own write, so the fix is sent (it was refused as a conflict: 'changed in
    Insightly since the export'). A colleague's edit after that write still is one."""
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"].records
    file = edited_export(sb, tmp_path, {2003: {"TITLE": "Hed of Sales"}})
    if not beside_its_export:  # no _base: the row's DATE_UPDATED_UTC is the copy's time
        file = Path(shutil.copy(file, tmp_path / "contacts.csv"))
    result = run(sb, "import", str(file), "--object", "contacts")
    assert result.exit_code == 0, result.output
    assert contacts[2003]["TITLE"] == "Hed of Sales"
    retyped(file, 2003, "TITLE", "Head of Sales")
    result = run(sb, "import", str(file), "--object", "contacts")
    assert result.exit_code == 0, result.output
    assert "contacts: 0 created, 1 updated" in result.stdout, result.output
    assert contacts[2003]["TITLE"] == "Head of Sales"
    sb.account.collections["Contacts"].put({**contacts[2003], "TITLE": "Chief of Sales"})
    retyped(file, 2003, "TITLE", "Head of Sales EMEA")
    result = run(sb, "import", str(file), "--object", "contacts")
    assert result.exit_code == 1, result.output
    assert contacts[2003]["TITLE"] == "Chief of Sales"


def test_a_two_digit_year_in_an_export_is_refused_not_given_a_century(tmp_path: Path) -> None:
    """LibreOffice saves a date typed into an empty cell as `05/25/25` (its en-US form): 1925
    typed was planned as 2025, 2031 as 1931. An export's dates have four-digit years, so such a
    cell was typed or re-saved: refused, saying why; a four-digit one is read as before."""
    sb = corpus_sandbox()
    file = edited_export(
        sb, tmp_path, {2003: {"DATE_OF_BIRTH": "05/25/25"}, 2004: {"DATE_OF_BIRTH": "5/25/1925"}}
    )
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "Plan: 0 to create, 1 to update" in result.stderr, result.output
    assert "1 rejected" in result.stderr
    rejects = (file.parent / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "DATE_OF_BIRTH: '05/25/25' has a two-digit year, in an export whose dates have four: a "
        "spreadsheet program wrote it so when the file was saved (a date typed as 1/15/2031 is "
        "saved as 01/15/31), and which century it means is not known; type it again in a cell "
        "formatted with a four-digit year (or as 2031-01-15) and save again" in rejects
    )


def test_an_xlsx_export_formats_its_text_columns_as_text(tmp_path: Path) -> None:
    """A postcode typed as `01234` into a General cell is saved as the number 1234 (and sent,
    its zero lost). Text columns, and each text cell, are formatted Text (`@`), so what is
    typed stays as typed, in an empty cell too; numbers and dates keep their formats."""
    import openpyxl

    sb = corpus_sandbox()
    assert run(sb, "export", "contacts", "--format", "xlsx", "--out", str(tmp_path)).exit_code == 0
    sheet = openpyxl.load_workbook(tmp_path / "contacts.xlsx").active
    header = [c.value for c in sheet[1]]

    def column(name: str) -> str:
        return openpyxl.utils.get_column_letter(header.index(name) + 1)

    postcode, born, rid = (
        column("ADDRESS_MAIL_POSTCODE"),
        column("DATE_OF_BIRTH"),
        column("CONTACT_ID"),
    )
    assert sheet.column_dimensions[postcode].number_format == "@"
    assert {c.number_format for c in sheet[postcode][1:] if c.value is not None} == {"@"}
    assert sheet.column_dimensions[born].number_format == "General"
    assert {c.number_format for c in sheet[rid][1:]} == {"General"}
    # and the file imports back unchanged
    result = run(sb, "import", str(tmp_path / "contacts.xlsx"), "--object", "contacts", "--dry-run")
    assert "0 to create, 0 to update" in result.stderr, result.output


def test_an_export_moved_without_its_copy_time_warns_that_every_difference_is_sent(
    tmp_path: Path,
) -> None:
    """Moved away from its `_base`, its DATE_* columns deleted: a colleague's edit made since
    the export was reverted without a word. Nothing can tell it from the person's: said."""
    import csv

    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2003: {"TITLE": "Head of Sales"}})
    with file.open(encoding="utf-8-sig", newline="") as source:
        rows = [dict(r) for r in csv.DictReader(source)]
    moved = tmp_path / "contacts.csv"
    columns = [c for c in rows[0] if not c.startswith("DATE_")]
    with moved.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    result = run(sb, "import", str(moved), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    assert (
        "Warning: contacts.csv has CONTACT_ID but no DATE_UPDATED_UTC column and no export's "
        "_base beside it: every cell that differs from Insightly now is sent as an edit, a "
        "colleague's change since the export too. Keep the column, or import from the export's "
        "folder (or give --base FILE)" in result.stderr
    ), result.stderr
    beside = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "no DATE_UPDATED_UTC" not in beside.stderr


def test_a_colleagues_edit_in_the_second_of_our_write_is_no_write_of_ours(tmp_path: Path) -> None:
    """DATE_UPDATED_UTC has whole seconds: a colleague's edit in the second of the import's
    write left the stamp it wrote, and the typo fix's run sent the file's old value over it.
    A change to a field the import did not write is a conflict, as before."""
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"].records
    file = edited_export(sb, tmp_path, {2003: {"TITLE": "Hed of Sales"}})
    file = Path(shutil.copy(file, tmp_path / "contacts.csv"))  # no _base beside it
    assert run(sb, "import", str(file), "--object", "contacts").exit_code == 0
    colleague = {**contacts[2003], "FIRST_NAME": "Colleague"}  # DATE_UPDATED_UTC as it was:
    sb.account.collections["Contacts"].put(colleague)  # an edit in the second of our write
    retyped(file, 2003, "TITLE", "Head of Sales")
    result = run(sb, "import", str(file), "--object", "contacts")
    assert result.exit_code == 1, result.output
    assert (contacts[2003]["FIRST_NAME"], contacts[2003]["TITLE"]) == ("Colleague", "Hed of Sales")
    errors = (tmp_path / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert "conflict: record 2003 changed in Insightly at" in errors


def test_a_year_typed_into_a_date_cell_is_not_sent_as_a_day_of_1905(tmp_path: Path) -> None:
    """`1990` typed over a birthday in LibreOffice: the cell keeps its date format, so the
    file says 1905-06-12 (day number 1990), which was planned and sent without a word."""
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2005: {"DATE_OF_BIRTH": "1905-06-12"}})
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "0 to update" in result.stderr and "1 failed" in result.stderr, result.output
    assert (
        "DATE_OF_BIRTH: 1905-06-12 is the day a spreadsheet makes of the number 1990 typed into a "
        "cell formatted as a date; type the whole date (or fix the cell's format)"
    ) in (file.parent / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    # a date of 1905 that is one: the column's `artefacts: send` sends it, as for a new record
    mapping = file.parent / "send.yaml"
    mapping.write_text(
        "object: contacts\nmatch: {column: CONTACT_ID, field: CONTACT_ID}\ncolumns:\n"
        "  DATE_OF_BIRTH: {field: DATE_OF_BIRTH, artefacts: send}\n"
    )
    sent = run(sb, "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert "1 to update" in sent.stderr and "0 failed" in sent.stderr, sent.output


def test_a_year_typed_into_a_date_cell_makes_no_new_record_born_in_1905(tmp_path: Path) -> None:
    """The same in a new person's row: created with a birthday of 1905-06-12; the column's
    `artefacts: send` sends a date of 1905 that is one."""
    sb = corpus_sandbox()
    file = tmp_path / "new.csv"
    file.write_text("FIRST_NAME,LAST_NAME,DATE_OF_BIRTH\nNew,Person,1905-06-12\n")
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "0 to create" in result.stderr and "1 failed" in result.stderr, result.output
    why = (
        "DATE_OF_BIRTH: 1905-06-12 is the day a spreadsheet makes of the number 1990 typed into a "
        "cell formatted as a date; type the whole date (or fix the cell's format)"
    )
    assert why in (tmp_path / "new.errors.csv").read_text(encoding="utf-8-sig")
    # said where the plan is read, not only in the file (it was a count, "1 failed")
    lines = result.stderr.splitlines()
    at = lines.index("Failed (every one is in NAME.errors.csv):")
    assert lines[at + 1] == f"  line 2: {why}"
    mapping = tmp_path / "send.yaml"
    mapping.write_text(
        "object: contacts\ncolumns:\n  FIRST_NAME: FIRST_NAME\n  LAST_NAME: LAST_NAME\n"
        "  DATE_OF_BIRTH: {field: DATE_OF_BIRTH, artefacts: send}\n"
    )
    sent = run(sb, "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert "1 to create" in sent.stderr and "0 failed" in sent.stderr, sent.output


def test_a_tag_holding_a_semicolon_is_not_reported_taken_out(tmp_path: Path) -> None:
    """`R&D; EMEA` is one tag in Insightly and two parts of the file's `a;b` text: adding
    `vip` beside it was reported as 'TAGS: 1 set members taken out, not sent'."""
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2003], "TAGS": [{"TAG_NAME": "R&D; EMEA"}]})
    file = edited_export(sb, tmp_path, {2003: {"TAGS": "R&D; EMEA;vip"}})
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert "0 to create, 1 to update" in result.stderr, result.output
    assert "Not sent:" not in result.stderr, result.stderr


@pytest.mark.slow
def test_undo_of_a_record_a_colleague_changed_since_says_the_fields_it_gave_back(
    tmp_path: Path,
) -> None:
    """A record whose one field a colleague changed after the import is a conflict, and its
    other field is given back: the summary counts that field (it said "0 records restored",
    as if nothing of it was undone)."""
    sb = corpus_sandbox()
    file = edited_export(sb, tmp_path, {2002: {"ADDRESS_MAIL_CITY": "Salem", "TITLE": "Chief"}})
    assert run(sb, "import", str(file), "--object", "contacts").exit_code == 0
    colleague(sb, 2002, "2026-12-09 10:00:00", ADDRESS_MAIL_CITY="Cambridge")
    checkpoint = str(file.parent / "contacts.csv.checkpoint.sqlite")
    dry = run(sb, "undo", checkpoint, "--dry-run")
    assert (
        "0 left alone as conflicts" not in dry.stdout
        and "restore 0, 1 left alone as conflicts (1 field(s) of them would be restored, "
        "changed by nobody since), 0 already gone"
        in dry.stdout
    ), dry.output
    undone = run(sb, "undo", checkpoint)
    assert undone.exit_code == 1, undone.output
    assert (
        "contacts.csv.checkpoint.sqlite: 0 created records deleted, 0 records restored, 1 left "
        "alone as conflicts (1 field(s) of them restored, changed by nobody since), 0 already "
        "gone, 0 failed; " in undone.stdout
    )
    contacts = sb.account.collections["Contacts"].records
    assert (contacts[2002]["TITLE"], contacts[2002]["ADDRESS_MAIL_CITY"]) == ("Buyer", "Cambridge")
    report = (file.parent / "contacts.undo.csv").read_text(encoding="utf-8-sig").splitlines()
    assert report[1:] == [
        "3,conflict,2002,ADDRESS_MAIL_CITY,Boston,Salem,Cambridge",
        "3,restore,2002,TITLE,Buyer,Chief,Chief",
    ]


@pytest.mark.slow
def test_an_edit_of_a_cell_whose_letters_a_code_page_lost_fails_its_row(tmp_path: Path) -> None:
    """LibreOffice saved the export as Windows-1252 (`?ukasz` for Łukasz), and the person
    typed ` Jan` after the name: it was kept as an artefact (`'?' inside a word`), the edit
    never sent, exit 0. Sent, it would write the `?`: the row fails, saying so."""
    file = tmp_path / "us_cp1252.csv"
    data = (CORPUS / "us_cp1252.csv").read_bytes()
    assert data.count(b",?ukasz,") == 1
    file.write_bytes(data.replace(b",?ukasz,", b",?ukasz Jan,"))
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output
    assert (
        "Plan: 0 to create, 0 to update, 42 unchanged (no request), 0 rejected, 0 duplicate, "
        "0 skipped, 1 failed" in result.stderr
    )
    errors = (tmp_path / "us_cp1252.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "FIRST_NAME: '?ukasz Jan' was edited in a file saved as cp1252, which lost characters "
        "of 'Łukasz' (a '?' for each): sent, it would write the '?'. Make the edit in "
        "Insightly, or in a file saved as CSV UTF-8 or XLSX"
    ) in errors


@pytest.mark.slow
def test_digits_a_spreadsheet_read_as_a_number_when_typed_are_not_sent(tmp_path: Path) -> None:
    """In a CSV export opened in a spreadsheet, cells are General: a postcode typed as 02109
    over 02108 is saved 2109 and was sent so (the cells it only opened lost their zeros too,
    and were kept, as artefacts); a long number typed into a text field is saved as the
    spreadsheet shows it, 1.23456789012346E+019, and was sent so. Each fails its row, saying
    why; the column's `artefacts: send` sends them as they are."""
    sb = corpus_sandbox()
    file = edited_export(
        sb,
        tmp_path,
        {
            2002: {"ADDRESS_MAIL_POSTCODE": "2109"},
            2001: {"BACKGROUND": "1.23456789012346E+019"},
        },
    )
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "0 to update" in result.stderr and "2 failed" in result.stderr, result.stderr
    errors = (file.parent / "contacts.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        "ADDRESS_MAIL_POSTCODE: '2109' where Insightly has '02108': a spreadsheet drops the "
        "leading zeros of digits typed into a cell it reads as a number; type it into a cell "
        "formatted as Text (or as '0…), or give the column `artefacts: send` to send it as it is"
    ) in errors
    assert (
        "BACKGROUND: '1.23456789012346E+019' is a long number as a spreadsheet shows it in "
        "scientific notation, the digits after the first few lost: type it into a cell "
        "formatted as Text (or take the original file); the column's `artefacts: send` sends "
        "it as it is"
    ) in errors
    mapping = file.parent / "send.yaml"
    mapping.write_text(
        "object: contacts\nartefacts: send\nmatch: {column: CONTACT_ID, field: CONTACT_ID}\n"
        "columns:\n  ADDRESS_MAIL_POSTCODE: ADDRESS_MAIL_POSTCODE\n  BACKGROUND: BACKGROUND\n"
    )
    sent = run(sb, "import", str(file), "--mapping", str(mapping), "--dry-run")
    assert sent.exit_code == 0, sent.output
    plan = (file.parent / "contacts.plan.csv").read_text(encoding="utf-8-sig")
    assert "3,update,2002,ADDRESS_MAIL_POSTCODE,02108,2109," in plan
    assert "2,update,2001,BACKGROUND,,1.23456789012346E+019," in plan


@pytest.mark.slow
def test_a_new_record_is_not_made_with_a_long_number_a_spreadsheet_cut_short(
    tmp_path: Path,
) -> None:
    """Another CRM's CSV opened in a spreadsheet: the phone 4915112345678 saved as
    4.91511E+12 made a contact with that phone."""
    sb = corpus_sandbox()
    file = tmp_path / "new.csv"
    file.write_text("FIRST_NAME,LAST_NAME,PHONE\nNew,Person,4.91511E+12\n", encoding="utf-8")
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "0 to create" in result.stderr and "1 failed" in result.stderr, result.stderr
    errors = (tmp_path / "new.errors.csv").read_text(encoding="utf-8-sig")
    assert "PHONE: '4.91511E+12' is a long number as a spreadsheet shows it" in errors


@pytest.mark.slow
def test_a_new_records_long_id_a_workbook_kept_15_digits_of_is_not_sent(tmp_path: Path) -> None:
    """Another CRM's CSV opened in LibreOffice Calc and saved as XLSX (made by it:
    `soffice --convert-to xlsx crm.csv`): ids 4915112345678901 and …902 are number cells of
    4915112345678900, and two contacts were made with one id. Each row fails, saying so."""
    file = tmp_path / "crm.xlsx"
    shutil.copy(CORPUS / "crm_opened_in_calc.xlsx", file)
    result = run(corpus_sandbox(), "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "0 to create" in result.stderr and "2 failed" in result.stderr, result.stderr
    errors = (tmp_path / "crm.errors.csv").read_text(encoding="utf-8-sig")
    assert (
        errors.count(
            "External_Id__c: '4915112345678900' is a number cell of 16 digits, and a spreadsheet "
            "keeps 15: the digits after them may be lost; format the column as Text and type them "
            "again, or take the original file; the column's `artefacts: send` sends it as it is"
        )
        == 2
    )


@pytest.mark.slow
def test_a_short_code_typed_into_a_text_cell_is_sent(tmp_path: Path) -> None:
    """`5` typed into the Text-formatted cell of a code Insightly holds as `007`: the cell
    says it is text, so no spreadsheet dropped zeros from it (it was refused as `1003` over
    `01002` typed into a General cell is)."""
    import openpyxl

    sb = corpus_sandbox()
    out = tmp_path / "exports"
    assert run(sb, "export", "contacts", "--format", "xlsx", "--out", str(out)).exit_code == 0
    contacts = sb.account.collections["Contacts"]
    contacts.put({**contacts.records[2002], "ADDRESS_MAIL_POSTCODE": "007"})
    assert run(sb, "export", "contacts", "--format", "xlsx", "--out", str(out)).exit_code == 0
    file = out / "contacts.xlsx"
    book = openpyxl.load_workbook(file)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    row = next(r for r in sheet.iter_rows(min_row=2) if r[0].value in (2002, "2002"))
    cell = row[header.index("ADDRESS_MAIL_POSTCODE")]
    assert cell.value == "007"
    cell.value = "5"  # a string, in the Text cell
    book.save(file)
    result = run(sb, "import", str(file), "--object", "contacts", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "0 to create, 1 to update" in result.stderr and "0 failed" in result.stderr
    plan = (out / "contacts.plan.csv").read_text(encoding="utf-8-sig")
    assert ",update,2002,ADDRESS_MAIL_POSTCODE,007,5," in plan


@pytest.mark.parametrize("name", ["errors_us.xlsx", "errors_us.csv"])
def test_a_formula_s_error_value_is_refused_never_written_over_a_field(
    name: str, tmp_path: Path
) -> None:
    """A VLOOKUP that found nothing shows #N/A, a division by zero #DIV/0! (LibreOffice computed
    and saved them: error cells in the workbook, their texts in its CSV). Both were sent as
    the contact's phone and title, over what Insightly had (exit 0)."""
    sb = corpus_sandbox()
    contacts = sb.account.collections["Contacts"]
    before = {cid: dict(contacts.records[cid]) for cid in (2901, 2902)}
    file = tmp_path / name
    shutil.copy(CORPUS / name, file)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\n"
        "columns:\n  Email: EMAIL_ADDRESS\n  Phone: PHONE\n  Title: TITLE\n",
        encoding="utf-8",
    )
    result = run(sb, "import", str(file), "--mapping", str(mapping))
    assert result.exit_code == 1, result.output
    assert "0 created, 1 updated, 0 unchanged, 1 rejected" in result.stdout
    assert contacts.records[2901] == before[2901]
    assert contacts.records[2902]["PHONE"] == "+420 377 000 000"
    unit = "row" if name.endswith("xlsx") else "line"
    rejects = (tmp_path / "errors_us.rejects.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rejects[0] == f"{unit},errors,Email,Phone,Title"
    assert rejects[1].startswith(
        "2,\"Phone: '#N/A' is a spreadsheet's error value (a formula failed there), not data: "
        "fix the formula or empty the cell; Title: '#DIV/0!' is a spreadsheet's error value (a "
        'formula failed there), not data: fix the formula or empty the cell",'
    )
