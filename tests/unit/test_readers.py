"""Hostile spreadsheets: each is read correctly or refused with its line number."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from insightly_etl.errors import InputError
from insightly_etl.load.readers import Garbled, read_table

DATA = Path(__file__).resolve().parents[1] / "data"


def rows(path: Path, **kw) -> list[dict[str, str]]:
    return read_table(path, **kw).frame.to_dict("records")


def test_utf8_bom_never_sticks_to_the_first_header() -> None:
    t = read_table(DATA / "bom_utf8.csv")
    assert t.columns == ["First Name", "Email"]
    assert t.encoding == "utf-8-sig"
    assert rows(DATA / "bom_utf8.csv")[0] == {"First Name": "Zoë", "Email": "zoe@example.com"}


def test_windows_1252_with_semicolons_is_detected() -> None:
    t = read_table(DATA / "cp1252_semicolons.csv")
    assert (t.encoding, t.delimiter) == ("cp1252", ";")
    assert t.frame.to_dict("records") == [
        {"Vorname": "Jürgen", "Nachname": "Müller", "Stadt": "Köln", "Umsatz": "1.234,50"},
        {"Vorname": "Cécile", "Nachname": "Dubois", "Stadt": "Besançon", "Umsatz": "€ 99"},
    ]


def test_explicit_encoding_and_delimiter_override_detection() -> None:
    t = read_table(DATA / "cp1252_semicolons.csv", encoding="latin-1", delimiter=",")
    assert t.columns == ["Vorname;Nachname;Stadt;Umsatz"]


def test_tabs_and_pipes() -> None:
    assert read_table(DATA / "tabs.tsv").delimiter == "\t"
    assert rows(DATA / "tabs.tsv")[0] == {
        "First Name": "Ada",
        "Last Name": "Lovelace",
        "Zip": "00501",
    }
    assert read_table(DATA / "pipes.csv").delimiter == "|"
    assert rows(DATA / "pipes.csv") == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "4", "b": "5", "c": "6"},
    ]


def test_crlf_lf_and_cr_line_endings_mixed() -> None:
    t = read_table(DATA / "mixed_line_endings.csv")
    assert t.frame.to_dict("records") == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": "4"},
        {"a": "5", "b": "6"},
    ]
    assert t.lines == [2, 3, 4]


def test_quoted_newlines_keep_their_text_and_the_next_rows_their_line_numbers() -> None:
    t = read_table(DATA / "quoted_newlines.csv")
    assert t.frame["Notes"].tolist() == ["line one\r\nline two", 'say "hi"', "plain"]
    assert t.lines == [2, 4, 5]


def test_ragged_rows_are_set_aside_with_their_line_numbers_never_shifted() -> None:
    t = read_table(DATA / "ragged.csv")
    assert t.frame.to_dict("records") == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "10", "b": "11", "c": "12"},
        {"a": "13", "b": "14", "c": "15"},  # a trailing empty cell is no shift
    ]
    assert t.lines == [2, 5, 6]
    assert [(b.line, b.message) for b in t.bad_rows] == [
        (3, "2 fields, but the header has 3"),
        (4, "4 fields, but the header has 3"),
    ]


def test_an_unterminated_quote_is_refused_with_its_line() -> None:
    with pytest.raises(InputError) as info:
        read_table(DATA / "unterminated_quote.csv")
    assert str(info.value).endswith(
        "unterminated_quote.csv, line 3: a row starting here never ends: unexpected end of data (an unterminated quote?)"
    )


def test_duplicate_headers_name_both_positions() -> None:
    with pytest.raises(InputError) as info:
        read_table(DATA / "duplicate_headers.csv")
    assert (
        str(info.value)
        == f"{DATA / 'duplicate_headers.csv'}, line 1: duplicate column name 'Email' at positions 1 and 4"
    )


def test_a_named_column_is_needed_for_data() -> None:
    with pytest.raises(InputError, match="column 2 has no name"):
        read_table(DATA / "empty_header_name.csv")


def test_every_cell_is_text_leading_zeros_and_na_survive() -> None:
    assert rows(DATA / "leading_zeros.csv") == [
        {"Zip": "00501", "Code": "007", "Missing": "NA", "Null": "null"},
        {"Zip": "02108", "Code": "0", "Missing": "N/A", "Null": "NULL"},
    ]


def test_trailing_empty_rows_and_columns_are_dropped() -> None:
    t = read_table(DATA / "trailing_empties.csv")
    assert t.columns == ["a", "b"]
    assert t.frame.to_dict("records") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    assert t.bad_rows == []


def test_xlsx_first_sheet_as_text_with_iso_dates() -> None:
    t = read_table(DATA / "excel_dates.xlsx")
    assert t.columns == ["First Name", "Birthday", "Last Webinar", "Zip", "Score", "Active"]
    assert t.frame.to_dict("records") == [
        {
            "First Name": "Ada",
            "Birthday": "1815-12-10",
            "Last Webinar": "2026-03-04 14:30:00",
            "Zip": "00501",
            "Score": "12",
            "Active": "TRUE",
        },
        {
            "First Name": "Alan",
            "Birthday": "1912-06-23",
            "Last Webinar": "",
            "Zip": "02108",
            "Score": "3.5",
            "Active": "FALSE",
        },
    ]
    assert t.lines == [2, 3] and t.unit == "row"


def test_xlsx_named_sheet_and_unknown_sheet() -> None:
    assert read_table(DATA / "excel_dates.xlsx", sheet="Other").frame.to_dict("records") == [
        {"x": "1"}
    ]
    with pytest.raises(InputError, match="no sheet named 'Nope'"):
        read_table(DATA / "excel_dates.xlsx", sheet="Nope")


def test_parquet_is_shown_as_export_csv_text(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    table = pa.table(
        {
            "N": pa.array([1, None], pa.int64()),
            "T": pa.array([1_700_000_000_000, None], pa.timestamp("ms", tz="UTC")),
            "L": pa.array([["a", "b"], None], pa.list_(pa.string())),
            "B": pa.array([True, False]),
        }
    )
    pq.write_table(table, path)
    assert rows(path) == [
        {"N": "1", "T": "2023-11-14 22:13:20", "L": "a;b", "B": "true"},
        {"N": "", "T": "", "L": "", "B": "false"},
    ]


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.csv")


def test_a_pipe_is_refused_as_one_not_as_a_missing_file(tmp_path: Path) -> None:
    """`import <(curl …)` said "no such file" of a path that is there."""
    fifo = tmp_path / "people.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as refused:
        read_table(fifo)
    assert str(refused.value) == f"{fifo}: a pipe or a device, not a saved file"
    assert refused.value.hint == (
        "Save what it gives to a file and give that file (an import reads its file more than once)."
    )


# ---------------------------------------------------------------- hostile workbooks


def workbook(
    path: Path, rows: list[list[object]], *, sheets: dict[str, list[list[object]]] | None = None
) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Data"
    for r in rows:
        ws.append(r)
    for name, extra in (sheets or {}).items():
        other = book.create_sheet(name)
        for r in extra:
            other.append(r)
    book.save(path)
    return path


def rewrite_part(path: Path, part: str, edit) -> None:  # type: ignore[no-untyped-def]
    """Edit one XML part of a workbook, as a buggy program that wrote it would have."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    parts[part] = edit(parts[part])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)


def set_dimension(path: Path, ref: str) -> None:
    import re

    rewrite_part(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: re.sub(rb'<dimension ref="[^"]*"', f'<dimension ref="{ref}"'.encode(), xml),
    )


TEN = [["Name", "Email", "Tier"]] + [[f"p{i}", f"p{i}@x.example", "Gold"] for i in range(10)]


@pytest.mark.parametrize("ref", ["A1:C2", "A1:A11", "A1:XFD1048576"])
def test_a_stale_dimension_tag_loses_no_row_or_column_and_pads_nothing(
    tmp_path: Path, ref: str
) -> None:
    path = workbook(tmp_path / "stale.xlsx", TEN)
    set_dimension(path, ref)
    t = read_table(path)
    assert t.columns == ["Name", "Email", "Tier"]
    assert len(t.frame) == 10 and t.lines == list(range(2, 12))
    assert t.frame.iloc[9].tolist() == ["p9", "p9@x.example", "Gold"]


def test_data_beyond_the_header_is_a_bad_row_naming_its_cells(tmp_path: Path) -> None:
    far = ["c", "c@x.example", *[""] * 98, "far"]  # column CW, past what is read of a row
    path = workbook(
        tmp_path / "wide.xlsx",
        [["Name", "Email"], ["a", "a@x.example"], ["b", "b@x.example", "", "stray"], far],
    )
    t = read_table(path)
    assert t.frame.to_dict("records") == [{"Name": "a", "Email": "a@x.example"}]
    assert [(b.line, b.message) for b in t.bad_rows] == [
        (3, "row 3 has data in D3, beyond the header's 2 column(s)"),
        (4, "row 4 has data in CW4, beyond the header's 2 column(s)"),
    ]


def test_a_formula_without_a_calculated_value_is_refused_with_its_cell(tmp_path: Path) -> None:
    path = workbook(tmp_path / "f.xlsx", [["Name", "Total"], ["a", "=1+2"], ["b", 5]])
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == (
        f"{path}, sheet 'Data': 1 formula cell(s) without a calculated value, which would read "
        "as empty: B2 (=1+2)"
    )
    assert caught.value.hint is not None and "save it" in caught.value.hint


def test_a_formula_with_its_cached_value_reads_as_that_value(tmp_path: Path) -> None:
    path = workbook(tmp_path / "f.xlsx", [["Name", "Total"], ["a", "=1+2"]])
    rewrite_part(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(b"<f>1+2</f><v />", b"<f>1+2</f><v>3</v>"),
    )
    assert rows(path) == [{"Name": "a", "Total": "3"}]


@pytest.mark.slow
def test_a_zip_bomb_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = workbook(tmp_path / "bomb.xlsx", [["Name"], ["a"]])
    rewrite_part(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(b"</sheetData>", b"</sheetData><!--" + b" " * (60 << 20) + b"-->"),
    )
    assert path.stat().st_size < 200_000
    with pytest.raises(
        InputError, match=r"part xl/worksheets/sheet1.xml expands from .* refused as a zip bomb"
    ):
        read_table(path)


def test_an_overlong_cell_is_refused_with_its_coordinates(tmp_path: Path) -> None:
    path = workbook(tmp_path / "long.xlsx", [["Name", "Notes"], ["a", "LONG"]])
    rewrite_part(path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(b"LONG", b"x" * 40_000))
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == (
        f"{path}, sheet 'Data', cell B2: 40,000 characters, more than a spreadsheet cell can hold (32,767)"
    )


def test_an_empty_first_sheet_names_the_other_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path / "two.xlsx", [], sheets={"People": [["Name"], ["a"]]})
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == f"{path}: sheet 'Data' is empty (no header row)"
    assert caught.value.hint == "Other sheets: People; choose one with --sheet NAME."


def test_a_workbook_saved_as_xls_or_named_csv_is_recognised(tmp_path: Path) -> None:
    named_csv = workbook(tmp_path / "book.csv", TEN)
    assert len(read_table(named_csv).frame) == 10
    legacy = tmp_path / "old.xls"
    legacy.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    with pytest.raises(InputError, match=r"an Excel 97-2003 workbook \(.xls\), which is not read"):
        read_table(legacy)


def test_utf16_without_a_bom_is_read_as_utf16(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("First Name,Email\nZoë,zoe@x.example\n".encode("utf-16-le"))
    t = read_table(path)
    assert (t.columns, t.encoding) == (["First Name", "Email"], "utf-16-le")
    assert rows(path) == [{"First Name": "Zoë", "Email": "zoe@x.example"}]


def test_a_nul_byte_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"First Name,Email\nAda,ada@x.example\nBob,b\x00b@x.example\n")
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == f"{path}, line 3: a NUL byte; this is binary data, not a CSV"


@pytest.mark.parametrize(
    "column",
    [
        pa.array([b"\x00\x01"], pa.binary()),
        pa.array([[("k", "v")]], pa.map_(pa.string(), pa.string())),
    ],
    ids=["binary", "map"],
)
def test_parquet_columns_no_field_takes_are_refused_by_name(
    tmp_path: Path, column: pa.Array
) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"Name": ["a"], "Blob": column}), path)
    with pytest.raises(InputError) as caught:
        read_table(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: column 'Blob' holds {str(column.type)[:3]}")
    assert message.endswith(", which no Insightly field takes")


@pytest.mark.parametrize("given", ["\\t", "tab", "\t"])
def test_a_tab_delimiter_can_be_named(given: str) -> None:
    t = read_table(DATA / "tabs.tsv", delimiter=given)
    assert t.delimiter == "\t"


def test_a_delimiter_of_two_characters_is_refused() -> None:
    with pytest.raises(InputError, match=r"--delimiter ';;': expected one character"):
        read_table(DATA / "tabs.tsv", delimiter=";;")


@pytest.mark.parametrize(
    "name",
    ["formula_elsewhere", "formula_prefix", "formula_utf16"],
    ids=["sheet-outside-worksheets", "hyphenated-prefix", "utf16-xml"],
)
def test_formulas_without_a_value_are_found_wherever_and_however_the_sheet_is_written(
    name: str,
) -> None:
    with pytest.raises(InputError, match=r"1 formula cell\(s\) without a calculated value"):
        read_table(DATA / f"{name}.xlsx")


def test_a_cell_openpyxl_cannot_read_is_an_input_error_not_a_crash() -> None:
    with pytest.raises(InputError, match=r"badnum.xlsx: a damaged cell after row 1"):
        read_table(DATA / "badnum.xlsx")


def test_a_file_mixing_utf8_and_windows_1252_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes("First Name,City\nAmélie,Köln\n".encode() + b"C\xe9cile,Lyon\n")
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == (
        f"{path}, line 3: the file mixes UTF-8 and another encoding (byte b'\\xe9' is not "
        "UTF-8, while other lines are)"
    )
    assert [r["First Name"] for r in rows(path, encoding="cp1252")] == ["AmÃ©lie", "Cécile"]


def test_a_text_no_cell_can_hold_is_refused_before_the_workbook_is_parsed(tmp_path: Path) -> None:
    path = workbook(tmp_path / "big.xlsx", [["Name", "Notes"], ["a", "BIG"]])
    rewrite_part(path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(b"BIG", b"x" * 300_000))
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == (
        f"{path}: part xl/worksheets/sheet1.xml holds a text of more than 132,092 bytes, more "
        "than a spreadsheet cell can hold (32,767 characters); refused before reading it"
    )


@pytest.mark.parametrize(
    ("text", "page", "read_as"),
    [
        ("Name;City\nŁukasz;Łódź\nMałgorzata;Gdańsk\n", "cp1250", "cp1250"),
        ("Jméno;Město\nJiří;Brno\nRůžena;Plzeň\n", "cp1250", "cp1250"),
        ("Nom;Ville\nHélène;Orléans\nJérôme;Besançon\nÈve;très à côté\n", "cp1252", "cp1252"),
        ("Name;City\nAna;Málaga\nNuñez;Coruña\nJosé;León\n", "cp1252", "cp1252"),
        ("Name;City\nMüller;Köln\nGroß;Düsseldorf\n", "cp1252", "cp1252"),
        ("Name,City\n山田太郎,東京\n佐藤花子,大阪\n", "cp932", "cp932"),
    ],
)
def test_a_file_that_is_not_utf8_is_read_in_the_code_page_that_spells_one_language(
    tmp_path: Path, text: str, page: str, read_as: str
) -> None:
    path = tmp_path / "saved.csv"
    path.write_bytes(text.encode(page))
    table = read_table(path)
    assert table.encoding == read_as
    assert table.frame.iloc[0].tolist() == text.splitlines()[1].replace(",", ";").split(";")


@pytest.mark.parametrize(
    ("text", "page"),
    [
        ("Name,City\nÁdám Szőke,Győr\nÉva Kürtős,Szűcs\n", "cp1250"),  # ő ű: Hungarian
        ("Name,City\nAyşe Yılmaz,İstanbul\nMehmet Öztürk,Muğla\n", "cp1254"),
        ("Item,Note\nBudget,£5000\n", "cp1252"),
        ("Name\nWeiß\n", "cp1252"),
        ("Name\nJoão Gonçalves\n", "cp1252"),
        # people of several countries of one region: no one language spells them all
        ("Name,City\nGyőző Kovács,Košice\nĐuro Horvat,Győr\n", "cp1250"),  # was Gyõzõ
        ("Name,City\nJoão Müller,Cañón\nSøren Ørsted,Zürich\n", "cp1252"),
        # Excel for Mac's "Comma Separated Values": Mac Roman, lines ended by CR
        ("Name,City\rAmélie Dupré,Curaçao\rFrançois Müller,Köln\rJosé Peña,Málaga\r", "mac_roman"),
        ("Name,City\nNiccolò Rossi,Señor\n", "cp1252"),  # not NiccolÚ, SeÒor in Mac Roman
        # code pages of other scripts: their words are of that script alone
        ("Name,City\nИван Петров,Москва\nАнна Смирнова,Санкт-Петербург\n", "cp1251"),
        ("Name\nАнна\n", "cp1251"),  # Àííà in Windows-1252: no Latin word is all accents
        ("Name,City\nОлег Сидоренко,Київ\n", "cp1251"),
        ("Name,City\nΓιώργος Παπαδόπουλος,Αθήνα\nΜαρία Κωνσταντίνου,Θεσσαλονίκη\n", "cp1253"),
        (
            "Name,City\nאבי כהן,תל אביב\nשרה לוי,ירושלים\nדוד מזרחי,חיפה\nרחל פרץ,באר שבע\n",
            "cp1255",
        ),
        ("Name,City\nمحمد علي,القاهرة\nفاطمة حسن,الرياض\n", "cp1256"),
        ("Name,City\nสมชาย ใจดี,กรุงเทพมหานคร\n", "cp874"),
        ("Name,City\nSøren Kierkegaard,København\nÅse,Tromsø\n", "cp1252"),
        ("Name,Note\nBjörk,Reykjavík\nÞór,Ísafjörður\n", "cp1252"),
    ],
)
def test_more_code_pages_people_save_in(tmp_path: Path, text: str, page: str) -> None:
    path = tmp_path / "saved.csv"
    path.write_bytes(text.encode(page))
    table = read_table(path)
    assert table.encoding == page
    assert table.frame.iloc[0].tolist() == text.splitlines()[1].split(",")


@pytest.mark.parametrize(
    ("text", "page", "message", "hint", "named"),
    [
        (
            "Name;City\nAna;Madrid\nNuñez;Coruña\n",
            "cp1252",
            "not UTF-8, and it reads as 'Nuñez' in Windows-1252 (Western European) or 'Nuńez' "
            "in Windows-1250 (Central European)",
            "Name its encoding: --encoding cp1252 reads 'Nuñez', --encoding cp1250 reads "
            "'Nuńez'; or save the file as CSV UTF-8.",
            ["Nuñez", "Coruña"],
        ),
        (  # a few words of Hebrew: their bytes read as Cyrillic and Greek words too
            "Name;City\nAna;Madrid\nאבי כהן;תל אביב\n",
            "cp1255",
            "not UTF-8, and it reads as 'абй' in Windows-1251 (Cyrillic), 'ΰαι' in Windows-1253 "
            "(Greek) or 'אבי' in Windows-1255 (Hebrew)",
            "Name its encoding: --encoding cp1251 reads 'абй', --encoding cp1253 reads 'ΰαι', "
            "--encoding cp1255 reads 'אבי'; or save the file as CSV UTF-8.",
            ["אבי כהן", "תל אביב"],
        ),
    ],
)
def test_code_pages_that_all_fit_are_refused_naming_each_reading_of_the_word(
    tmp_path: Path, text: str, page: str, message: str, hint: str, named: list[str]
) -> None:
    path = tmp_path / "short.csv"
    path.write_bytes(text.encode(page))
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert (caught.value.message, caught.value.hint) == (f"{path}: {message}", hint)
    assert read_table(path, encoding=page).frame.iloc[1].tolist() == named


def test_a_few_hungarian_words_that_also_read_as_portuguese_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "saved.csv"
    path.write_bytes("Name,City\nÁdám Szőke,Győr\n".encode("cp1250"))
    with pytest.raises(InputError, match="reads as 'Szõke' in Windows-1252"):
        read_table(path)


def test_a_file_marked_utf_8_with_a_line_in_another_encoding_names_that_line(
    tmp_path: Path,
) -> None:
    """A CSV UTF-8 file (with its byte-order mark) to which a line was added by a program
    writing Windows-1250: refused on that line, not a crash."""
    path = tmp_path / "people.csv"
    path.write_bytes(
        b"\xef\xbb\xbfFirst,Last\r\nAda,Lovelace\r\n" + "Łukasz,Nowak\r\n".encode("cp1250")
    )
    with pytest.raises(InputError) as err:
        read_table(path)
    assert err.value.message == (
        f"{path}, line 3: the file starts with a UTF-8 byte-order mark, but byte b'\\xa3' "
        "there is not UTF-8 (a line added in another encoding?)"
    )


def test_what_excel_writes_around_the_data_is_read_as_excel_means_it(tmp_path: Path) -> None:
    """Its `sep=;` hint line, a UTF-16 'Unicode Text' save with its byte-order mark (refused
    as 'a NUL byte'), and a spacer column with no name and no data between two groups."""
    hinted = tmp_path / "sep.csv"
    hinted.write_bytes(b"sep=;\r\nFIRST_NAME;EMAIL_ADDRESS\r\nA;a@x.example\r\n")
    table = read_table(hinted)
    assert (table.delimiter, table.columns, table.lines) == (
        ";",
        ["FIRST_NAME", "EMAIL_ADDRESS"],
        [3],
    )
    hinted.write_bytes(b"sep=;\nFIRST_NAME;FIRST_NAME\nA;b\n")
    with pytest.raises(InputError) as duplicated:  # the file's own line numbers in errors too
        read_table(hinted)
    assert str(duplicated.value).startswith(f"{hinted}, line 2: duplicate column name")
    wide = tmp_path / "u32.csv"
    wide.write_bytes("FIRST_NAME,CITY\nŁucja,Łódź\n".encode("utf-32"))
    assert read_table(wide).frame.to_dict("records") == [{"FIRST_NAME": "Łucja", "CITY": "Łódź"}]
    unicode_text = tmp_path / "u16.txt.csv"
    unicode_text.write_bytes("FIRST_NAME\tCITY\r\nŁucja\tŁódź\r\n".encode("utf-16"))
    table = read_table(unicode_text)
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert table.frame.to_dict("records") == [{"FIRST_NAME": "Łucja", "CITY": "Łódź"}]
    spacer = tmp_path / "gap.csv"
    spacer.write_text("FIRST_NAME,EMAIL_ADDRESS,,LAST_NAME\nA,a@x.example,,B\n")
    assert read_table(spacer).frame.to_dict("records") == [
        {"FIRST_NAME": "A", "EMAIL_ADDRESS": "a@x.example", "LAST_NAME": "B"}
    ]
    spacer.write_text("FIRST_NAME,,LAST_NAME\nA,x,B\n")
    with pytest.raises(InputError) as refused:
        read_table(spacer)
    assert str(refused.value) == (
        f"{spacer}, line 1: column 2 has no name in the header row, and values under it"
    )


def garble(text: str) -> bytes:
    """What a spreadsheet saves after opening UTF-8 text as Windows-1252: UTF-8 again, of the
    wrong characters (`Ñandú` -> `Ã‘andÃº`)."""
    return "".join(_cp1252(b) for b in text.encode("utf-8")).encode("utf-8")


def _cp1252(byte: int) -> str:
    """A byte as Windows-1252 reads it; the five it leaves undefined as their own numbers
    (U+0081 …), as Python's Latin-1 reads them (LibreOffice Calc reads them as U+F181 …:
    data/spreadsheets/garbled_us.csv)."""
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


def test_utf8_text_a_spreadsheet_opened_as_windows_1252_is_found(tmp_path: Path) -> None:
    """Kept on the table for validation to refuse in the columns it sends; a name with a
    byte Windows-1252 leaves undefined (Á) and a typographic quote is found too."""
    path = tmp_path / "saved.csv"
    path.write_bytes(garble("Name,City\nZoë,Paris\nÁlvaro “Al”,Ñandú\n"))
    assert read_table(path).garbled == Garbled(
        [
            (2, "Name", "ZoÃ«", "Zoë"),
            (3, "City", "Ã‘andÃº", "Ñandú"),
            (3, "Name", "Ã\x81lvaro â€œAlâ€\x9d", "Álvaro “Al”"),
        ],
        file_reads_right=False,
    )
    assert read_table(path, encoding="utf-8").garbled is None  # named: taken as it reads


def test_replacement_characters_are_no_sign_that_a_file_reads_right(tmp_path: Path) -> None:
    """A program that put U+FFFD for the bytes Windows-1252 leaves undefined: that cell is
    damaged too, not evidence that the rest of the file was read right."""
    path = tmp_path / "saved.csv"
    broken = "Name,City\nZoë,Á\n".encode().decode("cp1252", errors="replace").encode()
    path.write_bytes(broken)
    garbled = read_table(path).garbled
    assert garbled is not None and not garbled.file_reads_right
    assert garbled.cells == [(2, "Name", "ZoÃ«", "Zoë")]


def test_a_header_a_spreadsheet_opened_as_windows_1252_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "saved.csv"
    path.write_bytes(garble("\ufeffCONTACT_ID,Name\n1,Ada\n"))  # the mark, as header text
    with pytest.raises(InputError) as info:
        read_table(path)
    assert str(info.value) == (
        f"{path}, line 1, column 'ï»¿CONTACT_ID': 'ï»¿CONTACT_ID' is UTF-8 text read in "
        "another character set ('\\ufeffCONTACT_ID'): the file was opened with the wrong "
        "character set and saved"
    )


def test_text_that_only_looks_garbled_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"  # Portuguese capitals, and signs with no UTF-8 behind them
    path.write_text("Name,City\nSÃO PAULO,Ãgua\nÂ€,x\n", encoding="utf-8")
    assert read_table(path).frame["Name"].tolist() == ["SÃO PAULO", "Â€"]


def test_garbled_cells_beside_right_ones_came_so(tmp_path: Path) -> None:
    """An export of an account that already holds `Ã‘andÃº` (an earlier import's damage): the
    file itself reads right (`Zoë`)."""
    path = tmp_path / "export.csv"
    path.write_bytes("Name,City\nZoë,Paris\n".encode() + garble("Ana,Ñandú\n"))
    table = read_table(path)
    assert table.frame["City"].tolist() == ["Paris", "Ã‘andÃº"]
    assert table.garbled == Garbled([(3, "City", "Ã‘andÃº", "Ñandú")], file_reads_right=True)


def _workbook_with_sheet(tmp_path: Path, change) -> Path:
    """A workbook openpyxl wrote, its sheet's XML changed by `change`."""
    import zipfile

    import openpyxl

    base = tmp_path / "base.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["FIRST_NAME", "LAST_NAME"])
    for n in range(40):
        book.active.append([f"Ada{n}", "Lovelace"])
    book.save(base)
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(base) as source, zipfile.ZipFile(bad, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, change(data) if name == "xl/worksheets/sheet1.xml" else data)
    return bad


@pytest.mark.parametrize(
    "change",
    [
        lambda xml: xml[:700],  # cut short
        lambda xml: xml.replace(b"<t>Ada1<", b"<t>&x;<", 1),  # an entity nothing defines
    ],
    ids=["cut", "undefined entity"],
)
def test_a_damaged_or_hostile_sheet_is_an_input_error(tmp_path: Path, change) -> None:
    path = _workbook_with_sheet(tmp_path, change)
    with pytest.raises(InputError) as info:
        read_table(path)
    assert str(info.value).startswith(f"{path}: not a readable XLSX workbook")


def test_a_cell_naming_a_shared_string_the_workbook_lacks_is_an_input_error(
    tmp_path: Path,
) -> None:
    """It ended in "internal error: IndexError" (exit 70)."""
    cell = b'<c r="A3" t="inlineStr"><is><t>Ada1</t></is></c>'
    path = _workbook_with_sheet(
        tmp_path, lambda xml: xml.replace(cell, b'<c r="A3" t="s"><v>999</v></c>')
    )
    with pytest.raises(InputError) as info:
        read_table(path)
    assert str(info.value) == f"{path}: a damaged cell after row 2 (list index out of range)"


def test_byte_order_marks_inside_the_text_are_no_part_of_a_value(tmp_path: Path) -> None:
    """Two files saved with a mark each and pasted together; a mark alone in a cell."""
    path = tmp_path / "b.csv"
    path.write_bytes(
        b"\xef\xbb\xbfFIRST_NAME,LAST_NAME\nAda,Lovelace\n\xef\xbb\xbfBom5,\xef\xbb\xbf\n"
    )
    assert read_table(path).frame.to_dict("records") == [
        {"FIRST_NAME": "Ada", "LAST_NAME": "Lovelace"},
        {"FIRST_NAME": "Bom5", "LAST_NAME": ""},
    ]


def test_a_long_cell_is_read_whole_by_the_exact_reader_too(tmp_path: Path) -> None:
    """A line break in a quoted cell: the exact reader (the csv module, whose own limit is
    131,072 characters) reads it, and a long pasted note in it is a cell like any other (the
    field's length rejects its row), not a file refused whole."""
    path = tmp_path / "long.csv"
    note = "Zoë " + "x\n" * 100_000
    path.write_text(f'Name,Notes\nBob,"two\nlines"\nAda,"{note}"\n', encoding="utf-8")
    table = read_table(path)
    assert table.frame["Notes"].tolist() == ["two\nlines", note]
    assert table.lines == [2, 4]
    assert csv.field_size_limit() == 131_072  # the module's own, for every other reader


def test_a_styled_empty_cell_in_the_last_column_does_not_widen_every_row(tmp_path: Path) -> None:
    """Each row ending in an empty styled cell in column XFD: openpyxl pads every row to
    16,384 cells, and a 69 KB workbook of 5,000 rows took 1.8 GB and 48 s. Rows are read to a
    few columns past the header's last name, without their trailing empties."""
    import io
    import tracemalloc
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["FIRST_NAME", "LAST_NAME"])
    plain = io.BytesIO()
    book.save(plain)
    rows = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>x{r}</t></is></c>'
        f'<c r="B{r}" t="inlineStr"><is><t>y</t></is></c><c r="XFD{r}" s="0"/></row>'
        for r in range(2, 2002)
    )
    path = tmp_path / "wide.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                data = text.replace("</row>", "</row>" + rows, 1).encode()
            out.writestr(item, data)
    tracemalloc.start()
    try:
        table = read_table(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert list(table.frame.columns) == ["FIRST_NAME", "LAST_NAME"]
    assert len(table.frame) == 2000 and table.lines[:2] == [2, 3]
    assert table.frame["FIRST_NAME"].iloc[-1] == "x2001" and not table.bad_rows
    assert peak < 60 << 20, f"{peak / 2**20:.0f} MB"  # it was 700 MB


def test_an_opendocument_spreadsheet_says_how_to_save_it_readably(tmp_path: Path) -> None:
    """LibreOffice Calc's own format (made by it: `soffice --convert-to ods`) was "not a
    readable XLSX workbook (There is no item named '[Content_Types].xml' …)", with no hint."""
    path = tmp_path / "people.ods"
    path.write_bytes((Path(__file__).parents[1] / "data/spreadsheets/calc_saved.ods").read_bytes())
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == f"{path}: an OpenDocument spreadsheet (.ods), which is not read"
    assert caught.value.hint == (
        "In LibreOffice: File > Save As, type Excel 2007-365 (.xlsx) or Text CSV (UTF-8), and "
        "use that file."
    )


@pytest.mark.parametrize(
    "footer",
    [
        # a German report: only the copyright line is in English
        '"Kontakte"\n"Copyright (c) 2000-2026 salesforce.com, inc. Alle Rechte vorbehalten."\n'
        '"Vertrauliche Informationen - Nicht weitergeben"\n"Erstellt von: Ada 12.3.2026"\n',
        '"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."\n',
    ],
)
def test_salesforce_s_copyright_line_alone_makes_a_footer(tmp_path: Path, footer: str) -> None:
    path = tmp_path / "report.csv"
    path.write_text(f"Name,Phone\nAlpha,1\nBeta,2\n\n{footer}", encoding="utf-8")
    table = read_table(path)
    assert table.frame["Name"].tolist() == ["Alpha", "Beta"]
    assert table.notes[0].endswith(
        "a report's footer (Copyright, Generated By …), not data; left out"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Name,Phone\nAlpha Widgets,+1 555 0100\nBeta Tools,\nConfidential Information Partners,\n",
        "Name,Phone\nGamma Widgets,+1 555 0100\n\nDelta Holdings,\nCopyright (c) Clearance GmbH,\n",
        "Name\nGamma\n\nDelta Holdings\nGenerated By: the office\n",
    ],
)
def test_a_row_that_starts_like_a_report_footer_line_is_a_row(tmp_path: Path, text: str) -> None:
    """Organisations named so were left out as "a report's footer" (with the row above them,
    taken for the report's title): in no results file, exit 0. A footer is two of its lines
    at least, each as a report writes it."""
    path = tmp_path / "orgs.csv"
    path.write_text(text, encoding="utf-8")
    table = read_table(path)
    names = [line.split(",")[0] for line in text.splitlines()[1:] if line]
    assert table.frame.iloc[:, 0].tolist() == names
    assert not [n for n in table.notes if "footer" in n]


def test_a_workbook_s_hidden_first_sheet_is_not_the_one_read(tmp_path: Path) -> None:
    """An old copy hidden before the sheet a person sees was read, and its rows created,
    without a word; now the first sheet shown is read, and a note names the others."""
    import openpyxl

    book = openpyxl.Workbook()
    old = book.active
    old.title = "old"
    old.append(["FIRST_NAME"])
    old.append(["Hidden"])
    old.sheet_state = "hidden"
    shown = book.create_sheet("Contacts")
    shown.append(["FIRST_NAME"])
    shown.append(["Visible"])
    book.create_sheet("Lookup").append(["x"])
    path = tmp_path / "people.xlsx"
    book.save(path)
    table = read_table(path)
    assert table.frame["FIRST_NAME"].tolist() == ["Visible"]
    assert table.notes == [
        "sheet 'Contacts' read, the first one shown; the workbook has 2 other(s) ('old' "
        "(hidden), 'Lookup'): choose one with --sheet NAME"
    ]
    assert read_table(path, sheet="old").frame["FIRST_NAME"].tolist() == ["Hidden"]
    assert read_table(path, sheet="old").notes == []


def test_a_mark_and_quotes_a_program_kept_as_text_in_the_first_name_are_no_part_of_it(
    tmp_path: Path,
) -> None:
    """Our export (UTF-8 with a mark, names quoted) opened by LibreOffice without choosing
    UTF-8 and saved again: the first name became `\\ufeff"CONTACT_ID"`, and the import said
    the file had no CONTACT_ID column (exit 2) while the person saw one."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(b'"\xef\xbb\xbf""CONTACT_ID""",FIRST_NAME\n2001,Ada\n')
    table = read_table(path)
    assert table.columns == ["CONTACT_ID", "FIRST_NAME"]
    assert table.frame["CONTACT_ID"].tolist() == ["2001"]
    assert table.notes == [
        "the first column's name held a byte-order mark and quotes as text ('\\ufeff\"CONTACT_ID\"': "
        "the file was opened without choosing UTF-8, and saved again); read as 'CONTACT_ID'"
    ]


def test_a_workbook_whose_cells_repeat_one_long_shared_text_is_refused_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cell naming one shared string of 32,000 characters: a 52 KB workbook read as 640
    million characters took 2.9 GB and wrote a rejects file of 642 MB (an attacker's)."""
    import re
    import zipfile

    import insightly_etl.load.readers as readers

    monkeypatch.setattr(readers, "XLSX_TEXT_FLOOR", 1_000_000)
    long = "A" * 32_000
    strings = f"<si><t>Name</t></si><si><t>{long}</t></si>"
    rows = "".join(f'<row r="{r}"><c r="A{r}" t="s"><v>1</v></c></row>' for r in range(2, 202))

    def shared(xml: bytes) -> bytes:
        head = xml.split(b"<sheetData>")[0]
        return (
            head
            + b'<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row>'
            + (rows.encode() + b"</sheetData></worksheet>")
        )

    path = _workbook_with_sheet(tmp_path, shared)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for name in source.namelist():
            data = source.read(name)
            if name == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
                )
            if name == "xl/_rels/workbook.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/'
                    b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"'
                    b"/></Relationships>",
                )
            z.writestr(name, data)
        z.writestr(
            "xl/sharedStrings.xml",
            '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            + strings
            + "</sst>",
        )
    assert bomb.stat().st_size < 20_000
    with pytest.raises(InputError) as info:
        read_table(bomb)
    message = str(info.value)
    found = re.match(
        rf"{re.escape(str(bomb))}, sheet 'Sheet': ([\d,]+) characters of text by row (\d+), from a workbook of ([\d,]+) bytes of XML: ",
        message,
    )
    assert found is not None, message
    read, row, xml = (int(g.replace(",", "")) for g in found.groups())
    assert read == (row - 1) * 32_000 and read > 100 * xml and row < 201  # before the end
    assert message.endswith(
        "its cells repeat long texts far beyond what a spreadsheet of this size holds; refused "
        "before it takes the machine's memory"
    )


def test_a_csv_named_xlsx_is_said_to_be_one(tmp_path: Path) -> None:
    """It was "not a readable XLSX workbook (File is not a zip file)"."""
    path = tmp_path / "people.xlsx"
    path.write_text("First,Last\nAda,Lovelace\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_table(path)
    assert str(info.value) == f"{path}: named .xlsx but holds text, not a workbook (a CSV renamed?)"
    assert info.value.hint == "Rename it to people.csv, or save it from the spreadsheet as .xlsx."
