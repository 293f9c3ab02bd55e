"""Regenerate the spreadsheet corpus: exports of the corpus account (tests/spreadsheets.py)
opened and saved by LibreOffice Calc, as people in the US and in Germany do, unchanged and with
a few edits. The files are committed; `make test` never runs this.

    apt-get install libreoffice-calc-nogui
    PYTHONPATH=. .venv/bin/python tests/data/spreadsheets/make_corpus.py [--numbers | --dates |
        --errors]

Each file is named LOCALE_ENCODING[_edited].csv or LOCALE[_edited].xlsx. LibreOffice runs
with LANG set to the locale, as a person's desktop would; it reads the CSV with "detect
special numbers" on (what Excel does), and saves "as shown". numbers_LOCALE.csv and
numbers_us.xlsx hold one contact whose texts look like numbers (`--numbers` makes only them);
dayfirst_us.xlsx day-first birthdays LibreOffice read month first (`--dates`); errors_us.*
formulas that failed (`--errors`); garbled_us.csv a UTF-8 file of names in several scripts
opened as Windows-1252 and saved as UTF-8 again (`--garbled`).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import openpyxl

from tests.conftest import cli_runner

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from insightly_etl.cli import main  # noqa: E402
from insightly_etl.cli.common import Context  # noqa: E402
from insightly_etl.sandbox import Sandbox  # noqa: E402
from tests.spreadsheets import (  # noqa: E402
    EDITS,
    EXTRA,
    KEY,
    NUMBERS,
    ROWS,
    corpus_sandbox,
    numbers_sandbox,
)

LOCALES = {"us": ("en_US.UTF-8", 1033, 44), "de": ("de_DE.UTF-8", 1031, 59)}
CHARSETS = {"utf8": 76, "cp1252": 1}  # LibreOffice's numbers for the two encodings


def export(out: Path, *args: str, sandbox: Sandbox | None = None) -> None:
    sandbox = sandbox or corpus_sandbox()
    result = cli_runner().invoke(
        main,
        ["export", "contacts", "--out", str(out), "--quiet", *args],
        obj=Context(transport=httpx.ASGITransport(app=sandbox.app)),
        env={"INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": "http://127.0.0.1/v3.1/"},
    )
    assert result.exit_code == 0, result.output


def keep(contact_id: str) -> bool:
    cid = int(contact_id)
    return cid < 2001 + ROWS or cid in {int(c["CONTACT_ID"]) for c in EXTRA}


def trim_csv(path: Path, delimiter: str, edited: bool) -> None:
    """Keep the corpus's rows (a person may delete rows), and make the person's edits."""
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header, body = rows[0], [r for r in rows[1:] if keep(r[0])]
    if edited:
        for r in body:
            for name, value in EDITS.get(int(r[0]), {}).items():
                r[header.index(name)] = value
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows([header, *body])
    path.write_text(out.getvalue(), encoding="utf-8-sig")


def trim_xlsx(path: Path, edited: bool) -> None:
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    for row in range(sheet.max_row, 1, -1):
        if not keep(str(sheet.cell(row, 1).value)):
            sheet.delete_rows(row)
    if edited:
        for row in range(2, sheet.max_row + 1):
            for name, value in EDITS.get(int(sheet.cell(row, 1).value), {}).items():
                sheet.cell(row, header.index(name) + 1).value = value
    book.save(path)


def soffice(source: Path, target: Path, locale: str, infilter: str | None, convert: str) -> None:
    lang, _, _ = LOCALES[locale]
    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryDirectory() as outdir:
        command = [
            "soffice",
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            *([f"--infilter={infilter}"] if infilter else []),
            "--convert-to",
            convert,
            "--outdir",
            outdir,
            str(source),
        ]
        env = {**os.environ, "LANG": lang, "LC_ALL": lang}
        subprocess.run(command, check=True, env=env, capture_output=True, timeout=120)
        (made,) = Path(outdir).iterdir()
        shutil.move(made, target)


# typed.xlsx: what a person typed in LibreOffice (en-US) and saved as a workbook: a number
# cell, a percent cell, date cells, and a German date that en-US leaves as text
TYPED = (
    "Name,Value,Share,Born,Mixed\r\n"
    "Ada,1.234,40%,9/19/1980,9/19/1980\r\n"
    "Bob,18466.7,7.5%,12/31/1975,31.12.1975\r\n"
)


# dayfirst_us.xlsx: a CSV of day-first birthdays opened by LibreOffice in en-US and saved as a
# workbook: the cells it could read month first became (swapped) date cells, the rest text
DAY_FIRST = (
    "First,Last,Email,Born\r\n"
    "Ada,Lovelace,ada@dates.example,14/07/1985\r\n"
    "Bruno,Diaz,bruno@dates.example,02/03/1979\r\n"
    "Cleo,Ng,cleo@dates.example,30/11/1990\r\n"
    "Dan,Ito,dan@dates.example,05/05/1980\r\n"
)


def day_first(work: Path) -> None:
    source = work / "dayfirst" / "dayfirst.csv"
    source.parent.mkdir()
    source.write_text(DAY_FIRST, encoding="utf-8")
    soffice(source, HERE / "dayfirst_us.xlsx", "us", "CSV:44,34,76,1,,1033,false,true", "xlsx")
    print("wrote dayfirst_us.xlsx")


def numbers(work: Path) -> None:
    """numbers_LOCALE.csv and numbers_us.xlsx: the export of the NUMBERS contact alone,
    opened and saved unchanged (US: also saved as a workbook)."""
    for locale, (_, language, sep) in LOCALES.items():
        dialect = ["--csv-dialect", "excel-eu"] if locale == "de" else []
        out = work / f"numbers-{locale}"
        export(out, "--format", "csv", *dialect, sandbox=numbers_sandbox())
        source = out / "contacts.csv"
        text = source.read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=chr(sep)))
        mine = [rows[0], *(r for r in rows[1:] if int(r[0]) == NUMBERS["CONTACT_ID"])]
        buffer = io.StringIO(newline="")
        csv.writer(buffer, delimiter=chr(sep), lineterminator="\r\n").writerows(mine)
        source.write_text(buffer.getvalue(), encoding="utf-8-sig")
        infilter = f"CSV:{sep},34,76,1,,{language},false,true"
        convert = f"csv:Text - txt - csv (StarCalc):{sep},34,76,1,,{language},false,true,true"
        soffice(source, HERE / f"numbers_{locale}.csv", locale, infilter, convert)
        if locale == "us":
            soffice(source, HERE / "numbers_us.xlsx", "us", infilter, "xlsx")
        print("wrote", f"numbers_{locale}.csv")


def formula_errors(work: Path) -> None:
    """errors_us.xlsx and errors_us.csv: a workbook whose formulas fail for one contact (a
    VLOOKUP that finds nothing, a division by zero), computed and saved by LibreOffice: error
    cells in the workbook, their texts (`#N/A`) in its CSV save."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    sheet.append(["Email", "Phone", "Title"])
    sheet.append(["łukasz.2901@example.pl", "=VLOOKUP(A2,Phones!A:B,2,0)", "=1/0"])
    sheet.append(["jiří.2902@example.pl", "=VLOOKUP(A3,Phones!A:B,2,0)", "Ředitel"])
    book.create_sheet("Phones").append(["jiří.2902@example.pl", "+420 377 000 000"])
    source = work / "errors" / "errors.xlsx"
    source.parent.mkdir()
    book.save(source)
    soffice(source, HERE / "errors_us.xlsx", "us", None, "xlsx")
    soffice(source, HERE / "errors_us.csv", "us", None, "csv:Text - txt - csv (StarCalc):44,34,76")
    print("wrote errors_us.xlsx, errors_us.csv")


# garbled_us.csv: names in several scripts (Arabic's ف is 0xD9 0x81: a byte Windows-1252
# leaves undefined, which Calc reads as U+F181), opened choosing Windows-1252 and saved as UTF-8
GARBLED = "First,Last,City\r\nДмитрий,Ωμέγα,Łódź\r\nفاطمة,王,Zoë\r\n"


def garbled(work: Path) -> None:
    source = work / "garbled" / "garbled.csv"
    source.parent.mkdir()
    source.write_text(GARBLED, encoding="utf-8")
    convert = "csv:Text - txt - csv (StarCalc):44,34,76,1,,1033,false,true,true"
    soffice(source, HERE / "garbled_us.csv", "us", "CSV:44,34,1,1,,1033,false,true", convert)
    print("wrote garbled_us.csv")


def main_() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "--dates" in sys.argv:  # only this one: the rest of the corpus stays as it is
            day_first(work)
            return
        if "--errors" in sys.argv:
            formula_errors(work)
            return
        if "--garbled" in sys.argv:
            garbled(work)
            return
        garbled(work)
        numbers(work)
        if "--numbers" in sys.argv:  # only these: the rest of the corpus stays as it is
            return
        day_first(work)
        typed = work / "typed" / "typed.csv"
        typed.parent.mkdir()
        typed.write_text(TYPED, encoding="utf-8")
        soffice(typed, HERE / "typed.xlsx", "us", "CSV:44,34,76,1,,1033,false,true", "xlsx")
        export(work / "excel", "--format", "csv")
        export(work / "excel-eu", "--format", "csv", "--csv-dialect", "excel-eu")
        export(work / "xlsx", "--format", "xlsx")
        for edited in (False, True):
            tail = "_edited" if edited else ""
            for locale, (_, language, sep) in LOCALES.items():
                dialect = "excel" if locale == "us" else "excel-eu"
                source = work / f"{locale}{tail}" / "contacts.csv"
                source.parent.mkdir()
                shutil.copy(work / dialect / "contacts.csv", source)
                trim_csv(source, chr(sep), edited)
                infilter = f"CSV:{sep},34,76,1,,{language},false,true"
                for charset, number in CHARSETS.items():
                    convert = (
                        f"csv:Text - txt - csv (StarCalc):{sep},34,{number},1,,{language},"
                        "false,true,true"
                    )
                    target = HERE / f"{locale}_{charset}{tail}.csv"
                    soffice(source, target, locale, infilter, convert)
                    print("wrote", target.name)
            # US: the CSV opened and saved as a workbook; Germany: our workbook opened and saved
            book = work / f"book{tail}" / "contacts.xlsx"
            book.parent.mkdir()
            shutil.copy(work / "xlsx" / "contacts.xlsx", book)
            trim_xlsx(book, edited)
            us_csv = work / f"us{tail}" / "contacts.csv"
            soffice(
                us_csv, HERE / f"us{tail}.xlsx", "us", "CSV:44,34,76,1,,1033,false,true", "xlsx"
            )
            soffice(book, HERE / f"de{tail}.xlsx", "de", None, "xlsx")
            print("wrote", f"us{tail}.xlsx", f"de{tail}.xlsx")


if __name__ == "__main__":
    main_()
