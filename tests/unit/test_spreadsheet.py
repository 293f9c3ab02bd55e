"""What a spreadsheet does to a value, told from what a person does (load/spreadsheet.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from insightly_etl.load.spreadsheet import (
    day_first,
    lost_and_edited,
    number_artefact,
    parse_locale,
    text_artefact,
)

LOST15 = "digits after the 15th lost (stored as a number)"


@pytest.mark.parametrize(
    ("old", "new", "encoding", "why"),
    [
        ("02108", "2108", None, "leading zeros dropped"),
        ("00501", "501", "cp1252", "leading zeros dropped"),
        ("0000", "0", None, "leading zeros dropped"),
        ("1234567", "1,234,567", None, "digits grouped as a number"),
        ("123456789012", "1.23457E+11", None, "long number shown in scientific notation"),
        ("12.50", "12.5", None, "number re-formatted"),
        ("1234.5", "1,234.5", None, "number re-formatted"),
        ("true", "TRUE", None, "yes/no text shown as TRUE/FALSE"),
        (
            "Line one\r\nLine two",
            "Line one\nLine two",
            None,
            "line breaks written as LF, not CR LF",
        ),
        ("a\rb\r\nc", "a\nb\nc", "cp1252", "line breaks written as LF, not CR LF"),
        ("1E5", "1.00E+05", None, "number re-formatted"),  # LibreOffice's CSV of a text `1E5`
        ("1E5", "100000", None, "number re-formatted"),  # the same, saved as a workbook
        ("2E-7", "2.00E-07", None, "number re-formatted"),
        ("1,23E+11", "123000000000", None, "number re-formatted"),
        ("9007199254740993", "9.01E+15", None, "long number shown in scientific notation"),
        ("12345678901234567890", "12345678901234500000", None, LOST15),  # Excel cuts
        ("12345678901234567890", "12345678901234600000", None, LOST15),  # Calc rounds
        ("12345678901234567890", "12345678901234599936", None, LOST15),  # Calc, as a workbook
        ("1234567890123456789", "1234567890123456768", None, LOST15),  # openpyxl: the double
        ("Łódź", "?ód?", "cp1252", "characters cp1252 cannot hold, replaced"),
        ("Łódź", "?ód?", None, "characters replaced by '?' (a save that lost them)"),
        ("Łódź", "Lódz", "cp1252", "characters cp1252 cannot hold, replaced"),  # best-fit
        (
            "Jo😀 Kim",
            "Jo?? Kim",
            "cp1252",
            "'?' inside a word: a character cp1252 cannot hold, lost",
        ),
        ("Zoë👍x", "Zoë??x", "cp1252", "'?' inside a word: a character cp1252 cannot hold, lost"),
    ],
)
def test_what_a_save_does(old: str, new: str, encoding: str | None, why: str) -> None:
    assert text_artefact(new, old, encoding) == why


@pytest.mark.parametrize(
    ("old", "new", "encoding"),
    [
        ("2108", "02108", None),  # a zero put back: a person's edit
        ("0", "00", None),
        ("+49 151 12345678", "+49 151 12345679", None),  # one digit of a phone number
        ("4006381333931", "4006381333932", None),  # an EAN
        ("123456789012", "9E+99", None),
        ("123", "1.23", None),
        ("15", "1,5", None),
        ("100", "1.00", None),
        ("4915112345678", "+4915112345678", None),
        ("0049301234567", "+49301234567", None),
        ("1.2.3", "12.3", None),
        ("1,234", "1.234", None),
        ("Zoë", "Zoe", None),  # a UTF-8 file can hold ë: taking it off is an edit
        ("Łódź", "Lodz", "cp1252"),  # ó fits in cp1252: no program wrote o for it
        ("Toronto", "Why?Not", None),
        ("123456789012345678", "123456789012345679", None),  # a long id's last digit
        ("12345678901234567890", "12345678901234567000", None),  # 17 digits kept: typed
        ("1E5", "1.01E+05", None),
        ("Toronto", "?ód?", "cp1252"),  # Łódź typed, and lost: lost_and_edited fails the row
        ("Łukasz", "?ukasz Jan", "cp1252"),  # an edit of a cell that lost a letter: likewise
        ("TRUE", "FALSE", None),
        ("Line one\r\nLine two", "Line one\nLine 2", None),  # edited as well
        ("Line one\nLine two", "Line one\r\nLine two", None),  # no program adds a CR
        ("1234.5", "1.2E+03", None),  # short enough to be shown whole: typed
        ("12345", "1.2E+04", None),
        ("1E1000000", "2E1000000", None),  # no number a cell shows: no crash either
        ("123456789012", "1.3E+11", None),  # rounded wrong: 1.23… is 1.2
    ],
)
def test_what_a_person_does(old: str, new: str, encoding: str | None) -> None:
    assert text_artefact(new, old, encoding) is None


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (9007199254740993, 9.01e15, "long number shown in scientific notation"),
        (123456789012.5, 1.23457e11, "long number shown in scientific notation"),
        (9007199254740993, 9.0e15, None),  # one digit: a number a person may type
        (9007199254740993, 9.02e15, None),  # rounded wrong
        (1234567.0, 1.23e6, None),  # short enough to be shown whole: an edit
        (250.0, 300.0, None),
    ],
)
def test_a_long_number_a_spreadsheet_showed_shorter(
    old: float, new: float, why: str | None
) -> None:
    assert number_artefact(new, old) == why


def test_the_date_order_comes_from_cells_that_are_dates() -> None:
    frame = pd.DataFrame(
        {
            "Updated": ["05/03/2026 10:00", "06/03/2026 09:00"],
            "Notes": ["10/13/2026 call back at 3pm", "see 1/13/2"],  # free text: no evidence
        }
    )
    assert day_first(frame) is None
    frame["Born"] = ["25/12/1980", "01/02/1990"]
    assert day_first(frame) is True
    assert day_first(pd.DataFrame({"At": ["5/03/2026 10:00 AM"]})) is None  # AM/PM is no order


def test_an_impossible_date_is_no_evidence_of_the_order() -> None:
    """31/02/1980 (a typo) was taken for day-first: every month-first date of the file was
    then refused, 12/25/1970 as "not a spreadsheet's (12/31/2026 …)" form."""
    born = ["31/02/1980", "12/25/1970", "03/05/1979"]
    assert day_first(pd.DataFrame({"Born": born})) is False
    assert day_first(pd.DataFrame({"Born": ["31/02/1980", "29/02/00", "03/05/1979"]})) is True


def test_a_reports_day_month_name_and_year_is_a_date() -> None:
    """`5-Mar-1990`, Excel's d-mmm-yyyy, as report exports write it, was no date."""
    texts = pd.Series(["5-Mar-1990", "15-Dec-2024"], dtype="string")
    assert parse_locale(texts, None).tolist() == [
        pd.Timestamp(1990, 3, 5),
        pd.Timestamp(2024, 12, 15),
    ]


def test_two_digit_years_as_excel_reads_them() -> None:
    parsed = parse_locale(pd.Series(["01/06/65", "01/06/29", "01/06/30"], dtype="string"), False)
    assert [d.year for d in parsed] == [1965, 2029, 1930]


@pytest.mark.parametrize("casefold", [True, False])
def test_the_column_comparison_is_match_text_for_every_value(casefold: bool) -> None:
    """The in-file e-mail check and the match keys compare a column in Arrow, the account
    check value by value in Python: both must say the same of every value (RE2's \\s is
    not Python's), case-folded or (`compare: exact`) not."""
    import pandas as pd

    from insightly_etl.load.identity import compared, match_text

    values = [
        " Ada@Example.COM ",
        "a\x0bb",
        "a\x1fb",
        "a\t\n\r b",
        "\u200ejoao@x.com\u200f",
        "Bjo\u0308rn@ABBA.example",
        "ÅSA@x.se",
        "ß@x.de",
        "",
        "   ",
        None,
    ]
    series = pd.Series(values, dtype="string")
    expected = [
        None if v is None or not match_text(v, casefold) else match_text(v, casefold)
        for v in values
    ]
    got = [None if pd.isna(v) else v for v in compared(series, casefold).tolist()]
    assert got == expected


@pytest.mark.parametrize(
    ("old", "new", "edited"),
    [
        ("Łukasz", "?ukasz Jan", True),
        ("Toronto", "?ód?", True),
        ("Łukasz", "?ukasz", False),  # the loss alone: an artefact
        ("Jo😀 Kim", "Jo?? Kim", False),
        ("Łukasz", "Lukasz Jan", False),  # no '?': an edit like any other
        ("Why?Not", "Why?Not now", False),  # Insightly holds the '?' itself
    ],
)
def test_an_edit_of_a_cell_a_code_page_lost_letters_of(old: str, new: str, edited: bool) -> None:
    assert lost_and_edited(new, old) is edited


def test_a_text_cut_where_a_cell_ends_is_told_as_excel_counts_a_cell() -> None:
    """An emoji is two of a cell's 32,767 units: 20,000 of them come back as 16,383."""
    from insightly_etl.load.spreadsheet import Cut, cut_to_a_cell

    old = "\U0001f600" * 20_000 + "END"
    kept = "\U0001f600" * 16_383
    assert cut_to_a_cell(kept, old) is Cut.CUT
    assert cut_to_a_cell(kept[:-1] + "\U0001f601", old) is Cut.EDITED  # full, its end edited
    assert cut_to_a_cell("\U0001f600" * 10, old) is None  # a new text, not a cut one
    assert cut_to_a_cell(old, old) is None
