"""Hostile spreadsheets: each is read correctly or refused with its line number."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from insightly_etl.errors import InputError
from insightly_etl.load.readers import read_table

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
            "Active": "true",
        },
        {
            "First Name": "Alan",
            "Birthday": "1912-06-23",
            "Last Webinar": "",
            "Zip": "02108",
            "Score": "3.5",
            "Active": "false",
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
