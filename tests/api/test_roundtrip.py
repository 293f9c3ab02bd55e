"""Export, open in a spreadsheet program, save, import back: only what a person changed is
sent. The files were saved by LibreOffice Calc (tests/data/spreadsheets/make_corpus.py) in
the US and German locales, as CSV in UTF-8 and Windows-1252 and as XLSX, unchanged and with
the person's edits of tests/spreadsheets.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from insightly_etl.cli import main
from insightly_etl.cli.common import Context
from insightly_etl.sandbox import Sandbox
from tests.spreadsheets import EDITS, KEY, corpus_sandbox

CORPUS = Path(__file__).resolve().parents[1] / "data" / "spreadsheets"
ENV = {"INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": "http://127.0.0.1/v3.1/"}
POSTCODES = "  ADDRESS_MAIL_POSTCODE: 12 leading zeros dropped"
LOST = [  # what a Windows-1252 save did to the Polish, Czech and Vietnamese contacts
    "  ADDRESS_MAIL_CITY: 3 characters cp1252 cannot hold, replaced",
    POSTCODES,
    "  EMAIL_ADDRESS: 3 characters cp1252 cannot hold, replaced",
    "  FIRST_NAME: 3 characters cp1252 cannot hold, replaced",
    "  LAST_NAME: 3 characters cp1252 cannot hold, replaced",
    "  TITLE: 2 characters cp1252 cannot hold, replaced",
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
    return CliRunner().invoke(main, list(args), obj=obj, env=ENV)


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
