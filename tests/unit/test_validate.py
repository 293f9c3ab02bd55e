"""Every validation rule, with the exact message a user sees."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from insightly_etl.errors import InputError
from insightly_etl.load.account import AccountFacts
from insightly_etl.load.mapping import parse_mapping
from insightly_etl.load.readers import read_table
from insightly_etl.load.validate import (
    ABSENT,
    ValidationResult,
    update_only_text,
    validate_table,
)
from insightly_etl.sandbox.synth import custom_field_definitions
from tests.unit.test_readers import garble

DEFS = custom_field_definitions()
ORGS = {("organisations", "ORGANISATION_NAME"): {"Acme Ltd": [7], "Twin Co": [8, 9]}}


def run(
    tmp_path: Path, csv_text: str, mapping: dict, lookups: dict | None = None, obj: str = "Contacts"
) -> ValidationResult:
    path = tmp_path / "in.csv"
    path.write_text(csv_text, encoding="utf-8")
    facts = AccountFacts(DEFS.get(obj, []), lookups or {})
    return validate_table(read_table(path), parse_mapping(mapping, source="m.yaml"), facts)


def contacts(columns: dict, **extra) -> dict:
    return {"object": "contacts", "columns": {"Name": "FIRST_NAME", **columns}, **extra}


def messages(result: ValidationResult) -> list[tuple[int, str]]:
    return list(zip(result.errors["line"].tolist(), result.errors["message"].tolist(), strict=True))


def values(result: ValidationResult, field: str) -> list:
    return result.column(field)


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            contacts({"Tier": "Customer_Tier"}),
            "m.yaml: columns.Tier: Customer_Tier is not a field of contacts; did you mean Customer_Tier__c?",
        ),
        (
            contacts({"Tier": "Customer Tier"}),
            "m.yaml: columns.Tier: Customer Tier is not a field of contacts; did you mean Customer_Tier__c?",
        ),
        (
            contacts({"Tier": "DATE_CREATED_UTC"}),
            "m.yaml: columns.Tier: DATE_CREATED_UTC is read-only (set by Insightly)",
        ),
        (
            contacts({"Tier": "Member_No__c"}),
            "m.yaml: columns.Tier: Member_No__c is read-only (computed by Insightly)",
        ),
        (contacts({"Nope": "LAST_NAME"}), "m.yaml: column 'Nope' is not in in.csv"),
        (
            contacts({"tier ": "Customer_Tier__c"}),
            "m.yaml: column 'tier' is not in in.csv; did you mean 'Tier'?",
        ),
        (
            {"object": "contacts", "columns": {"Tier": "LAST_NAME"}},
            "m.yaml: contacts need FIRST_NAME, which the mapping neither maps nor defaults",
        ),
        (
            contacts({}, defaults={"Customer_Tier__c": "gold"}),
            "m.yaml: defaults.Customer_Tier__c: 'gold' is not an option of Customer_Tier__c; did you mean 'Gold'?",
        ),
        (
            contacts({"Tier": {"field": "FIRST_NAME"}}),
            "m.yaml: columns.Tier: FIRST_NAME is already mapped from column 'Name'",
        ),
    ],
)
def test_mapping_errors_name_file_key_and_fix(tmp_path: Path, mapping: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        run(tmp_path, "Name,Tier\nAda,Gold\n", mapping)
    assert str(info.value) == message


def test_a_column_missing_from_a_workbook_of_several_sheets_names_the_sheet_read(
    tmp_path: Path,
) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Contacts"
    book.active.append(["Name", "Tier"])
    book.active.append(["Ada", "Gold"])
    book.create_sheet("Postcodes").append(["Zip"])
    path = tmp_path / "people.xlsx"
    book.save(path)
    mapping = parse_mapping(contacts({"Zip": "ADDRESS_MAIL_POSTCODE"}), source="m.yaml")
    with pytest.raises(InputError) as info:
        validate_table(read_table(path), mapping, AccountFacts(DEFS["Contacts"], {}))
    assert str(info.value) == "m.yaml: column 'Zip' is not in people.xlsx, sheet 'Contacts'"
    book.remove(book["Postcodes"])  # one sheet: the file says where
    book.save(path)
    with pytest.raises(InputError) as info:
        validate_table(read_table(path), mapping, AccountFacts(DEFS["Contacts"], {}))
    assert str(info.value) == "m.yaml: column 'Zip' is not in people.xlsx"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"object": "contacts", "colums": {}}, "m.yaml: colums: unknown key"),
        ({"object": "widgets"}, "m.yaml: object: unknown object type 'widgets'"),
        (
            contacts({"Tier": {"field": "X", "transform": ["shout"]}}),
            "m.yaml: columns.Tier.transform: unknown transform 'shout'",
        ),
        (
            contacts({"Tier": {"field": "X", "blank": "erase"}}),
            "m.yaml: columns.Tier.blank: must be one of skip, clear, not 'erase'",
        ),
        (
            contacts({}, timezone="Mars/Olympus"),
            "m.yaml: timezone: unknown time zone 'Mars/Olympus'",
        ),
        (contacts({}, decimal=";"), "m.yaml: decimal: must be '.' or ',', not ';'"),
        (
            contacts({"Tier": {"field": "X", "date_format": "dd/mm/yyyy"}}),
            "m.yaml: columns.Tier.date_format: expected a strftime pattern like '%d/%m/%Y', not 'dd/mm/yyyy'",
        ),
        (  # an internal error (exit 70) when the first date was read
            contacts({"Tier": {"field": "X", "date_format": "%Q%%"}}),
            "m.yaml: columns.Tier.date_format: 'Q' is a bad directive in format '%Q%%'; "
            "expected a strftime pattern like '%d/%m/%Y' (%d day, %m month, %Y year, %H:%M:%S "
            "time)",
        ),
        (
            contacts({"Tier": {"field": "X", "date_format": "%d.%m.%Y %"}}),
            "m.yaml: columns.Tier.date_format: stray % in format '%d.%m.%Y %'; expected a "
            "strftime pattern like '%d/%m/%Y' (%d day, %m month, %Y year, %H:%M:%S time)",
        ),
        (
            {"columns": {}},
            "m.yaml: object: missing: name the object type to import (or pass --object)",
        ),
    ],
)
def test_mapping_file_structure_errors(mapping: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_mapping(mapping, source="m.yaml")
    assert str(info.value) == message


# ---------------------------------------------------------------- values


def test_integers(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Owner\nA,2\nB,two\nC,2.5\nD,-3\nE,+4\n",
        contacts({"Owner": "OWNER_USER_ID"}),
    )
    assert values(r, "OWNER_USER_ID")[0] == 2 and values(r, "OWNER_USER_ID")[4] == 4
    assert messages(r) == [
        (3, "'two' is not a whole number"),
        (4, "'2.5' is not a whole number"),
        (5, "'-3' is no record's id (ids count from 1)"),
    ]


@pytest.mark.parametrize(
    ("decimal", "cells", "parsed", "bad"),
    [
        (
            ".",
            ["1234.50", "1,234.50", "-0.5", "1 234,50", "1,2345"],
            [1234.5, 1234.5, -0.5],
            ["1 234,50", "1,2345"],
        ),
        (
            ",",
            ["1234,50", "1.234,50", "1 234,50", "1,234.50"],
            [1234.5, 1234.5, 1234.5],
            ["1,234.50"],
        ),
    ],
)
def test_numbers_follow_the_mappings_decimal_mark(
    tmp_path: Path, decimal: str, cells: list[str], parsed: list[float], bad: list[str]
) -> None:
    text = "Name,Value\n" + "".join(f'A,"{c}"\n' for c in cells)
    r = run(tmp_path, text, contacts({"Value": "Lifetime_Value__c"}, decimal=decimal))
    assert [v for v in values(r, "Lifetime_Value__c") if v is not ABSENT] == parsed
    assert [m for _, m in messages(r)] == [
        f"'{b}' is not a number with '{decimal}' as the decimal mark" for b in bad
    ]


def test_booleans(tmp_path: Path) -> None:
    cells = ["true", "FALSE", "yes", "No", "1", "0", "checked", "Unchecked", "maybe"]
    r = run(
        tmp_path,
        "Name,News\n" + "".join(f"A,{c}\n" for c in cells),
        contacts({"News": "Newsletter__c"}),
    )
    assert values(r, "Newsletter__c")[:8] == [True, False, True, False, True, False, True, False]
    assert messages(r) == [
        (10, "'maybe' is not a yes/no value (true/false, yes/no, 1/0, checked/unchecked)")
    ]


def test_dates_by_format_or_iso_to_insightly_form(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Born,Webinar\nA,31/12/1990,2026-03-04 14:30\nB,12/31/1990,2026-03-04T14:30:00Z\nC,01/02/2003,04.03.2026\nD,1990-12-30,2026-03-04 x\n",
        contacts(
            {
                "Born": {"field": "DATE_OF_BIRTH", "date_format": "%d/%m/%Y"},
                "Webinar": "Last_Webinar__c",
            }
        ),
    )
    # an ISO day beside a date_format is taken too: a workbook's date cells come as ISO
    assert values(r, "DATE_OF_BIRTH") == [
        "1990-12-31 00:00:00",
        ABSENT,
        "2003-02-01 00:00:00",
        "1990-12-30 00:00:00",
    ]
    # a German spreadsheet's 04.03.2026 is the 4th of March
    assert values(r, "Last_Webinar__c") == [
        "2026-03-04 14:30:00",
        "2026-03-04 14:30:00",
        "2026-03-04 00:00:00",
        ABSENT,
    ]
    assert messages(r) == [
        (3, "'12/31/1990' is not a date in the format %d/%m/%Y"),
        (
            5,
            "'2026-03-04 x' is not a date-time in ISO form (2026-12-31 or 2026-12-31 14:30:00) "
            "or a spreadsheet's (12/31/2026 2:30 PM, 31.12.2026 14:30)",
        ),
    ]


def test_digits_alone_are_no_date(tmp_path: Path) -> None:
    """`9277` was read as the year 9277 (it is a spreadsheet's day number for 1925-05-25, a
    date cell formatted as a number), `1990` as the 1st of January."""
    r = run(
        tmp_path,
        "Name,Born\nA,9277\nB,1990\nC,0200\nD,1990-05-01\n",
        contacts({"Born": "DATE_OF_BIRTH"}),
    )
    assert values(r, "DATE_OF_BIRTH") == [ABSENT, ABSENT, ABSENT, "1990-05-01 00:00:00"]
    tail = (
        "; write the whole date in ISO form (2026-12-31 or 2026-12-31 14:30:00) or a "
        "spreadsheet's (12/31/2026 2:30 PM, 31.12.2026 14:30)"
    )
    assert messages(r) == [
        (
            2,
            "'9277' is a number, not a date: a year alone, or the day number a spreadsheet "
            "keeps 1925-05-25 as" + tail,
        ),
        (
            3,
            "'1990' is a number, not a date: a year alone, or the day number a spreadsheet "
            "keeps 1905-06-12 as" + tail,
        ),
        (
            4,
            "'0200' is a number, not a date: a year alone, or the day number a spreadsheet "
            "keeps 1900-07-18 as" + tail,
        ),
    ]


def test_calendar_days_are_never_shifted_by_time_zones(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Born,First\nA,1990-12-31,2026-01-15T00:00:00+13:00\n",
        contacts(
            {"Born": "DATE_OF_BIRTH", "First": "First_Purchase__c"}, timezone="Pacific/Auckland"
        ),
    )
    assert values(r, "DATE_OF_BIRTH") == ["1990-12-31 00:00:00"]
    assert values(r, "First_Purchase__c") == ["2026-01-15 00:00:00"]


def test_date_times_without_zone_are_in_the_mappings_zone(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Webinar\nA,2026-07-01 12:00\nB,2026-01-15 12:00\nC,2026-07-01T12:00:00+02:00\n",
        contacts({"Webinar": "Last_Webinar__c"}, timezone="Europe/Berlin"),
    )
    assert values(r, "Last_Webinar__c") == [
        "2026-07-01 10:00:00",
        "2026-01-15 11:00:00",
        "2026-07-01 10:00:00",
    ]


def test_dropdowns_are_exact_with_a_suggestion(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Tier\nA,Gold\nB,gold\nC,Diamond\nD,silver\n",
        contacts({"Tier": {"field": "Customer_Tier__c", "values": {"silver": "Silver"}}}),
    )
    assert (
        values(r, "Customer_Tier__c")[0] == "Gold" and values(r, "Customer_Tier__c")[3] == "Silver"
    )
    assert messages(r) == [
        (3, "'gold' is not an option of Customer_Tier__c; did you mean 'Gold'?"),
        (
            4,
            "'Diamond' is not an option of Customer_Tier__c (options: Bronze, Silver, Gold, Platinum)",
        ),
    ]


def test_multiselect_split_checked_and_joined_with_semicolons(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        'Name,Likes\nA,"Music, Travel"\nB,"Music, Knitting"\n',
        contacts({"Likes": {"field": "Interests__c", "split": ","}}),
    )
    assert values(r, "Interests__c")[0] == "Music;Travel"
    assert messages(r) == [
        (
            3,
            "'Knitting' is not an option of Interests__c (options: Music, Sports, Technology, Travel, Food, Finance)",
        )
    ]


def test_emails_urls_and_lengths(tmp_path: Path) -> None:
    long = "x" * 256
    r = run(
        tmp_path,
        f"Name,Mail,Web,Title\nA,a@b.co,https://acme.example,ok\nB,not-an-email,no spaces allowed,{long}\n",
        contacts({"Mail": "EMAIL_ADDRESS", "Web": "SOCIAL_LINKEDIN", "Title": "TITLE"}),
    )
    assert messages(r) == [
        (3, "'not-an-email' is not a plausible email address"),
        (3, "'no spaces allowed' is not a plausible web address"),
        (3, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is 256 characters long; TITLE allows 255"),
    ]


def test_blank_cells_mean_no_value_unless_the_column_clears(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Phone,Title\nA,,\n",
        contacts({"Phone": "PHONE", "Title": {"field": "TITLE", "blank": "clear"}}),
    )
    assert values(r, "PHONE") == [ABSENT]
    assert values(r, "TITLE") == [None]
    assert messages(r) == []


def test_required_blank_is_a_row_error(tmp_path: Path) -> None:
    r = run(tmp_path, "Name,Last\n,Lovelace\n", contacts({"Last": "LAST_NAME"}))
    assert messages(r) == [(2, "FIRST_NAME is required")]


def test_leading_zeros_survive_into_text_fields(tmp_path: Path) -> None:
    r = run(tmp_path, "Name,Zip\nA,00501\n", contacts({"Zip": "ADDRESS_MAIL_POSTCODE"}))
    assert values(r, "ADDRESS_MAIL_POSTCODE") == ["00501"]


def test_lookups_resolve_names_to_ids(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Company\nA,Acme Ltd\nB,ACME LTD\nC,Twin Co\nD,Nobody\n",
        contacts({"Company": {"field": "ORGANISATION_ID", "lookup": {"object": "organisations"}}}),
        ORGS,
    )
    assert values(r, "ORGANISATION_ID")[0] == 7
    assert messages(r) == [
        (3, "no organisations record with ORGANISATION_NAME 'ACME LTD'; did you mean 'Acme Ltd'?"),
        (4, "'Twin Co' matches 2 organisations records (ids 8, 9); make it unique"),
        (5, "no organisations record with ORGANISATION_NAME 'Nobody'"),
    ]


def test_defaults_fill_blank_cells_and_missing_columns(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Tier\nA,\nB,Gold\n",
        contacts(
            {"Tier": "Customer_Tier__c"},
            defaults={"Customer_Tier__c": "Bronze", "BACKGROUND": "Trade fair"},
        ),
    )
    assert values(r, "Customer_Tier__c") == ["Bronze", "Gold"]
    assert values(r, "BACKGROUND") == ["Trade fair", "Trade fair"]


def test_identity_mapping_for_a_file_with_api_field_names(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "CONTACT_ID,FIRST_NAME,DATE_CREATED_UTC,Customer_Tier__c,Interests__c,Whatever,DATE_UPDATED_UTC,Else\n5,Ada,2020-01-01 00:00:00,Gold,Music;Travel,x,,y\n"
    )
    r = validate_table(
        read_table(path),
        parse_mapping({"object": "contacts"}, source="(none)"),
        AccountFacts(DEFS["Contacts"]),
    )
    assert list(r.values.columns) == ["FIRST_NAME", "Customer_Tier__c", "Interests__c"]
    assert values(r, "Interests__c") == ["Music;Travel"]
    assert r.notes == [  # a note a kind
        "2 columns ('DATE_CREATED_UTC', 'DATE_UPDATED_UTC') are read-only (set by Insightly); "
        "ignored",
        "2 columns ('Whatever', 'Else') are not fields of contacts; ignored",
    ]


def test_impossible_dates_are_rejected_not_rolled_over(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Born,First\nA,31/02/1990,2026-02-30\nB,1/2/1990,2026-2-3\n",
        contacts(
            {
                "Born": {"field": "DATE_OF_BIRTH", "date_format": "%d/%m/%Y"},
                "First": "First_Purchase__c",
            }
        ),
    )
    assert values(r, "DATE_OF_BIRTH") == [ABSENT, "1990-02-01 00:00:00"]
    assert messages(r)[:2] == [
        (
            2,
            "'31/02/1990' is written in the format %d/%m/%Y, but is no day (day is out of "
            "range for month)",
        ),
        (2, "'2026-02-30' is written in ISO form, but is no day (day is out of range for month)"),
    ]
    zoned = run(
        tmp_path, "Name,First\nA,2026-02-30T10:00:00Z\n", contacts({"First": "First_Purchase__c"})
    )
    assert messages(zoned) == [
        (
            2,
            "'2026-02-30T10:00:00Z' is written in ISO form, but is no day (day is out of range "
            "for month)",
        )
    ]


def test_multiselect_drops_empty_parts_and_spaces(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        'Name,Likes\nA,"Music,, Travel ,"\nB,";Music;"\n',
        contacts({"Likes": {"field": "Interests__c", "split": ","}}),
    )
    assert values(r, "Interests__c") == ["Music;Travel", ABSENT]
    assert messages(r) == [(3, "';Music;' is not an option of Interests__c; did you mean 'Music'?")]


def test_with_a_match_key_rows_lacking_a_create_field_are_warned_not_rejected(
    tmp_path: Path,
) -> None:
    text = "Name,Email\nAda,ada@x.example\n,bob@x.example\n,cy@x.example\n,dee@x.example\n"
    mapping = contacts(
        {"Email": "EMAIL_ADDRESS"}, match={"column": "Email", "field": "EMAIL_ADDRESS"}
    )
    result = run(tmp_path, text, mapping)
    assert messages(result) == []
    assert update_only_text(result, result.update_only_rows()) == [
        "3 row(s) have no FIRST_NAME, so they can only update an existing contact (a new one "
        "needs it): line 3, 4, 5"
    ]
    assert update_only_text(result, result.update_only_rows(2), 2)[0].endswith("line 3, 4 …")


def test_a_whole_number_too_large_for_64_bits_is_an_error_on_its_row_not_a_crash(
    tmp_path: Path,
) -> None:
    r = run(
        tmp_path,
        "Name,Owner\nA,12345678901234567890\nB,7\nC,+000123\n",
        contacts({"Owner": "OWNER_USER_ID"}),
    )
    assert messages(r) == [(2, "'12345678901234567890' is too large a whole number")]
    assert values(r, "OWNER_USER_ID")[1:] == [7, 123]


# ---------------------------------------------------------------- as people type, as programs save

CORPUS = Path(__file__).resolve().parents[1] / "data" / "spreadsheets"


def test_a_workbooks_typed_cells_are_read_as_what_they_are() -> None:
    """typed.xlsx, saved by LibreOffice: number cells are never re-read by the mapping's
    decimal comma, a percent cell showing 40% is 40 in a PERCENT field, date cells are dates
    whatever date_format says, and the format still reads the column's text dates."""
    mapping = contacts(
        {
            "Value": "Lifetime_Value__c",
            "Share": "Discount__c",
            "Born": {"field": "DATE_OF_BIRTH", "date_format": "%d.%m.%Y"},
            "Mixed": {"field": "First_Purchase__c", "date_format": "%d.%m.%Y"},
        },
        decimal=",",
    )
    r = validate_table(
        read_table(CORPUS / "typed.xlsx"),
        parse_mapping(mapping, source="m.yaml"),
        AccountFacts(DEFS["Contacts"], {}),
    )
    assert messages(r) == []
    assert values(r, "Lifetime_Value__c") == [1.234, 18466.7]
    assert values(r, "Discount__c") == [40.0, 7.5]
    assert values(r, "DATE_OF_BIRTH") == ["1980-09-19 00:00:00", "1975-12-31 00:00:00"]
    assert values(r, "First_Purchase__c") == ["1980-09-19 00:00:00", "1975-12-31 00:00:00"]


def test_date_cells_a_program_may_have_swapped_are_refused() -> None:
    """dayfirst_us.xlsx: day-first birthdays opened by LibreOffice in en-US. It made date
    cells of those it could read month first (`02/03/1979` became the third of February) and
    left the rest as text (`14/07/1985`). Bruno's birthday was sent swapped; `05/05` reads
    the same both ways."""
    mapping = {
        "object": "contacts",
        "columns": {
            "First": "FIRST_NAME",
            "Last": "LAST_NAME",
            "Email": "EMAIL_ADDRESS",
            "Born": {"field": "DATE_OF_BIRTH", "date_format": "%d/%m/%Y"},
        },
    }
    r = validate_table(
        read_table(CORPUS / "dayfirst_us.xlsx"),
        parse_mapping(mapping, source="m.yaml"),
        AccountFacts(DEFS["Contacts"], {}),
    )
    assert messages(r) == [
        (
            3,
            "'1979-02-03' is a date cell whose day and month could be either way round, and "
            "this column's text dates are written day first ('14/07/1985'): the program that "
            "saved the workbook may have read it the other way round; type it in as text, as "
            "the file had it",
        )
    ]
    assert values(r, "DATE_OF_BIRTH") == [
        "1985-07-14 00:00:00",
        ABSENT,
        "1990-11-30 00:00:00",
        "1980-05-05 00:00:00",
    ]


def test_ambiguous_date_cells_against_the_mapping_s_order_are_refused(tmp_path: Path) -> None:
    """Every birthday ambiguous (no day above 12 to tell by), saved by an en-US program as
    mm/dd/yy cells, under a mapping that reads the column day first: all four were sent
    swapped."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Name", "Born"])
    for name, born in (("Ada", datetime(1979, 2, 3)), ("Bob", datetime(1980, 5, 5))):
        sheet.append([name, born])
        sheet.cell(sheet.max_row, 2).number_format = "mm/dd/yy"
    book.save(tmp_path / "all.xlsx")
    mapping = contacts({"Born": {"field": "DATE_OF_BIRTH", "date_format": "%d/%m/%Y"}})
    r = validate_table(
        read_table(tmp_path / "all.xlsx"),
        parse_mapping(mapping, source="m.yaml"),
        AccountFacts(DEFS["Contacts"], {}),
    )
    assert messages(r) == [
        (
            2,
            "'1979-02-03' is a date cell whose day and month could be either way round, and "
            "the mapping reads this column day first (date_format %d/%m/%Y): the program that "
            "saved the workbook may have read it the other way round; type it in as text, as "
            "the file had it",
        )
    ]
    assert values(r, "DATE_OF_BIRTH")[1] == "1980-05-05 00:00:00"


def test_a_text_date_that_fits_the_cells_order_casts_no_doubt_on_them(tmp_path: Path) -> None:
    """m/d/yyyy date cells and a person's `7/14/1990` typed as text beside them (review: both
    correct dates were refused as possibly swapped)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Name", "Born"])
    for name, born in (("Ada", datetime(1980, 2, 3)), ("Bob", datetime(1981, 4, 5))):
        sheet.append([name, born])
    sheet.append(["Cy", "7/14/1990"])
    for cell in ("B2", "B3"):
        sheet[cell].number_format = "m/d/yyyy"
    book.save(tmp_path / "us.xlsx")
    mapping = contacts({"Born": {"field": "DATE_OF_BIRTH", "date_format": "%m/%d/%Y"}})
    r = validate_table(
        read_table(tmp_path / "us.xlsx"),
        parse_mapping(mapping, source="m.yaml"),
        AccountFacts(DEFS["Contacts"], {}),
    )
    assert messages(r) == []
    assert values(r, "DATE_OF_BIRTH") == [
        "1980-02-03 00:00:00",
        "1981-04-05 00:00:00",
        "1990-07-14 00:00:00",
    ]


def test_date_cells_shown_year_first_are_no_doubt_beside_a_typed_day_first_text(
    tmp_path: Path,
) -> None:
    """Our own XLSX export writes `yyyy-mm-dd` date cells: a day-first date a person types
    into one cell (left as text by an en-US program) casts no doubt on them."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Name", "Born"])
    for name, born in (("Ada", datetime(1980, 2, 3)), ("Bob", "25/12/1990")):
        sheet.append([name, born])
    sheet["B2"].number_format = "yyyy-mm-dd"
    book.save(tmp_path / "export.xlsx")
    mapping = contacts({"Born": {"field": "DATE_OF_BIRTH", "date_format": "%d/%m/%Y"}})
    r = validate_table(
        read_table(tmp_path / "export.xlsx"),
        parse_mapping(mapping, source="m.yaml"),
        AccountFacts(DEFS["Contacts"], {}),
    )
    assert messages(r) == []
    assert values(r, "DATE_OF_BIRTH") == ["1980-02-03 00:00:00", "1990-12-25 00:00:00"]


@pytest.mark.parametrize(
    ("cell", "parsed"),
    [
        ("$45,351.80", 45351.8),
        ("236.888,70 €", 236888.7),
        ("€187.543,64", 187543.64),
        ("CHF 99", 99.0),
        ("1 250,5 EUR", 1250.5),
        ("18466,7", 18466.7),  # reads only with a decimal comma
        ("1,234", 1234.0),  # reads both ways: the default '.'
        ("-$5.25", -5.25),
        ("$-5.25", -5.25),
        ("5 $ 5", None),  # a symbol inside the number is no amount
        ("2.5e+10", 2.5e10),  # as our own CSV export writes a large number
        ("1.00E+05", 1e5),  # as a spreadsheet shows one
        ("-1e-7", -1e-7),
        ("1,23E+11", 1.23e11),  # a decimal comma's spreadsheet
        ("1,234e5", 123400.0),  # only a decimal comma reads it: 1.234 × 10⁵
        ("e5", None),
        ("1e400", None),  # no number a field holds (it would be sent as inf)
        ("-1E999999", None),
        ("1e", None),
    ],
)
def test_amounts_as_people_type_them(tmp_path: Path, cell: str, parsed: float | None) -> None:
    r = run(tmp_path, f'Name,Value\nA,"{cell}"\n', contacts({"Value": "Lifetime_Value__c"}))
    assert values(r, "Lifetime_Value__c") == [parsed if parsed is not None else ABSENT]
    if parsed is None:
        assert messages(r) == [(2, f"{cell!r} is not a number with '.' as the decimal mark")]


def test_a_column_of_both_decimal_marks_reads_each_value_the_only_way_it_reads(
    tmp_path: Path,
) -> None:
    """An export re-saved by a German spreadsheet keeps `17182.44` (text to it) beside the
    `18000,5` a person typed: one typed value rejected every untouched one."""
    r = run(
        tmp_path,
        'Name,Value\nA,17182.44\nB,"18000,5"\nC,2.500\nD,2500\nE,"1.234,5"\n',
        contacts({"Value": "Lifetime_Value__c"}),
    )
    assert values(r, "Lifetime_Value__c") == [17182.44, 18000.5, ABSENT, 2500.0, 1234.5]
    assert messages(r) == [
        (
            4,
            "'2.500' reads with either decimal mark, and this column has numbers written with "
            "each: write it without a thousands separator, or give the column decimal: '.' or ','",
        )
    ]


def test_a_number_cell_in_a_column_of_both_marks_is_the_number_it_is(tmp_path: Path) -> None:
    """A workbook's number cell is never re-read by a text rule: 2.125, a number cell beside
    a typed `18000,5`, was refused as reading with either mark."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["Name", "Value"], ["A", 17182.44], ["B", "18000,5"], ["C", 2.125]):
        sheet.append(row)
    book.save(tmp_path / "mixed.xlsx")
    r = validate_table(
        read_table(tmp_path / "mixed.xlsx"),
        parse_mapping(contacts({"Value": "Lifetime_Value__c"}), source="m.yaml"),
        AccountFacts(DEFS["Contacts"], {}),
    )
    assert messages(r) == []
    assert values(r, "Lifetime_Value__c") == [17182.44, 18000.5, 2.125]


def test_a_column_of_both_marks_says_its_own_mark_of_a_value_no_mark_reads(
    tmp_path: Path,
) -> None:
    r = run(
        tmp_path,
        'Name,Value\nA,"18000,5"\nB,17182.44\nC,abc\n',
        contacts({"Value": "Lifetime_Value__c"}),
    )
    assert messages(r) == [(4, "'abc' is not a number with '.' as the decimal mark")]


def test_a_declared_decimal_mark_is_the_only_reading(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        'Name,Value\nA,"18466,7"\nB,"$1,250.50"\n',
        contacts({"Value": "Lifetime_Value__c"}, decimal="."),
    )
    assert values(r, "Lifetime_Value__c") == [ABSENT, 1250.5]
    assert messages(r) == [(2, "'18466,7' is not a number with '.' as the decimal mark")]


def test_percent_for_probability_and_percent_fields(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,Deal,Chance\nA,Big,60%\nB,Small,35\n",
        {
            "object": "opportunities",
            "columns": {"Deal": "OPPORTUNITY_NAME", "Chance": "PROBABILITY"},
        },
        obj="Opportunities",
    )
    assert values(r, "PROBABILITY") == [60, 35]
    assert messages(r) == []


@pytest.mark.parametrize(
    ("cells", "first", "message"),
    [
        (["9/19/1980", "03/04/1990"], "1980-09-19 00:00:00", None),  # 19 > 12: month first
        (["19/09/1980", "03/04/1990"], "1980-09-19 00:00:00", None),  # day first
        (["19.09.1980", "03.04.1990"], "1980-09-19 00:00:00", None),  # dots: always day first
        (
            ["03/04/1990", "05/06/1991"],
            None,
            "'03/04/1990' could be day/month or month/day, and the file's dates do not settle "
            "which comes first (none shows it, or some show each); give --date-order dmy|mdy (or "
            "the mapping's date_order:, or the column a date_format)",
        ),
        # a typo in neither order is no evidence: the file still shows month first
        (["12/31/2024", "13/31/2024", "03/04/1990"], "2024-12-31 00:00:00", None),
    ],
)
def test_slash_dates_in_the_order_the_file_shows(
    tmp_path: Path, cells: list[str], first: str | None, message: str | None
) -> None:
    text = "Name,Born\n" + "".join(f"A,{c}\n" for c in cells)
    r = run(tmp_path, text, contacts({"Born": "DATE_OF_BIRTH"}))
    assert values(r, "DATE_OF_BIRTH")[0] == (first if first else ABSENT)
    if message:
        assert messages(r)[0] == (2, message)
    elif len(cells) == 3:  # only the typo is refused, as not a date
        assert [line for line, _ in messages(r)] == [3]
        assert values(r, "DATE_OF_BIRTH")[2] == "1990-03-04 00:00:00"
    else:
        assert messages(r) == []
        second = values(r, "DATE_OF_BIRTH")[1]
        assert second in ("1990-03-04 00:00:00", "1990-04-03 00:00:00")
        day_first = not cells[0].startswith("9/")
        assert second == ("1990-04-03 00:00:00" if day_first else "1990-03-04 00:00:00")


def test_spreadsheet_yes_and_no_words(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,News\nA,WAHR\nB,FALSCH\nC,VRAI\nD,FAUX\nE,TRUE\n",
        contacts({"News": "Newsletter__c"}),
    )
    assert values(r, "Newsletter__c") == [True, False, True, False, True]


@pytest.mark.parametrize(
    ("yes", "no"),
    [
        ("VERDADERO", "FALSO"),  # Spanish
        ("VERDADEIRO", "FALSO"),  # Portuguese
        ("VERO", "FALSO"),  # Italian
        ("WAAR", "ONWAAR"),  # Dutch
        ("PRAWDA", "FAŁSZ"),  # Polish
        ("ИСТИНА", "ЛОЖЬ"),  # Russian
        ("SANT", "FALSKT"),  # Swedish
        ("SAND", "FALSK"),  # Danish
        ("SANN", "USANN"),  # Norwegian
        ("TOSI", "EPÄTOSI"),  # Finnish
        ("PRAVDA", "NEPRAVDA"),  # Czech
        ("IGAZ", "HAMIS"),  # Hungarian
        ("DOĞRU", "YANLIŞ"),  # Turkish
        ("ΑΛΗΘΕΣ", "ΨΕΥΔΕΣ"),  # Greek
    ],
)
def test_yes_and_no_as_spreadsheets_in_other_languages_write_them(
    tmp_path: Path, yes: str, no: str
) -> None:
    r = run(tmp_path, f"Name,News\nA,{yes}\nB,{no}\n", contacts({"News": "Newsletter__c"}))
    assert messages(r) == []
    assert values(r, "Newsletter__c") == [True, False]


def test_one_decimal_mark_for_a_whole_column(tmp_path: Path) -> None:
    """`2.500 €` beside `1.234,50 €` is 2500: the column reads with commas."""
    r = run(
        tmp_path,
        'Name,Value\nA,"1.234,50 €"\nB,2.500 €\nC,"$1,234.50"\n',
        contacts({"Value": "Lifetime_Value__c"}),
    )
    # A reads only with a comma, C only with a point: each so; B reads either way (2.5 or
    # 2500), which such a column cannot tell: refused, not guessed
    assert values(r, "Lifetime_Value__c") == [1234.5, ABSENT, 1234.5]
    assert [m for _, m in messages(r)] == [
        "'2.500 €' reads with either decimal mark, and this column has numbers written with "
        "each: write it without a thousands separator, or give the column decimal: '.' or ','"
    ]
    r = run(
        tmp_path,
        'Name,Value\nA,"1.234,50 €"\nB,2.500 €\n',
        contacts({"Value": "Lifetime_Value__c"}),
    )
    assert values(r, "Lifetime_Value__c") == [1234.5, 2500.0]


@pytest.mark.parametrize("cell", ["12,50\u00a0%", "12,5 %", "12,5\u202f%"])
def test_percent_with_a_no_break_space(tmp_path: Path, cell: str) -> None:
    r = run(tmp_path, f'Name,Share\nA,"{cell}"\n', contacts({"Share": "Discount__c"}))
    assert values(r, "Discount__c") == [12.5]


def test_a_spreadsheets_whole_number_with_decimals(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Deal,Chance\nBig,25.00%\nSmall,30.0\n",
        {
            "object": "opportunities",
            "columns": {"Deal": "OPPORTUNITY_NAME", "Chance": "PROBABILITY"},
        },
        obj="Opportunities",
    )
    assert values(r, "PROBABILITY") == [25, 30]


def test_three_capitals_are_a_currency_only_when_they_are_one(tmp_path: Path) -> None:
    r = run(tmp_path, "Name,Value\nA,ABC 5\nB,EUR 5\n", contacts({"Value": "Lifetime_Value__c"}))
    assert values(r, "Lifetime_Value__c") == [ABSENT, 5.0]


@pytest.mark.parametrize(("missing", "expected"), [("skip", [7, ABSENT]), (9, [7, 9])])
def test_a_lookup_that_finds_nothing_may_skip_or_fall_back(
    tmp_path: Path, missing: str | int, expected: list
) -> None:
    r = run(
        tmp_path,
        "Name,Company\nA,Acme Ltd\nB,Gone Corp\n",
        contacts(
            {
                "Company": {
                    "field": "ORGANISATION_ID",
                    "lookup": {"object": "organisations", "missing": missing},
                }
            }
        ),
        lookups=ORGS,
    )
    assert values(r, "ORGANISATION_ID") == expected
    assert messages(r) == []


@pytest.mark.parametrize("missing", [True, "maybe", 0])
def test_a_lookups_missing_must_be_reject_skip_or_an_id(tmp_path: Path, missing: object) -> None:
    with pytest.raises(InputError) as caught:
        parse_mapping(
            contacts(
                {
                    "Company": {
                        "field": "ORGANISATION_ID",
                        "lookup": {"object": "organisations", "missing": missing},
                    }
                }
            ),
            source="m.yaml",
        )
    assert caught.value.message == (
        "m.yaml: columns.Company.lookup.missing: must be reject, skip or a record id to use "
        f"instead, not {missing!r}"
    )


def test_a_date_of_zeros_is_no_date_and_a_given_order_is_never_asked_for_again(
    tmp_path: Path,
) -> None:
    """Outlook writes `0/0/00` for no birthday: it was refused as "day/month or month/day,
    give --date-order", also once the order was given."""
    r = run(
        tmp_path,
        "Name,Born\nA,0/0/00\nB,12/28/1969\nC,0000-00-00\nD,00/05/1970\n",
        contacts({"Born": "DATE_OF_BIRTH"}, date_order="mdy"),
    )
    assert values(r, "DATE_OF_BIRTH") == [ABSENT, "1969-12-28 00:00:00", ABSENT, ABSENT]
    assert messages(r) == [  # not "could be day/month or month/day: give --date-order"
        (5, "'00/05/1970' is no day, read either way round (a typo?)")
    ]
    assert r.notes[-1] == (
        "column 'Born': cells like '0/0/00', a program's way of writing no date (Outlook's), "
        "are read as empty"
    )


def test_local_times_a_clock_change_skips_or_doubles_are_named(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        "Name,At\nA,2026-03-29 02:30:00\nB,2026-10-25 02:30:00\nC,2026-10-25 12:00:00\n",
        contacts({"At": "Last_Webinar__c"}, timezone="Europe/Berlin"),
    )
    assert messages(r) == [
        (2, "'2026-03-29 02:30:00' does not exist in Europe/Berlin: the clocks go forward over it"),
        (
            3,
            "'2026-10-25 02:30:00' happens twice in Europe/Berlin (the clocks go back over it); "
            "write it with its offset: 2026-10-25 02:30:00+02:00 the first time, "
            "2026-10-25 02:30:00+01:00 the second",
        ),
    ]
    assert values(r, "Last_Webinar__c")[2] == "2026-10-25 11:00:00"


def test_the_offsets_a_doubled_local_time_is_told_to_take_are_its_zones(tmp_path: Path) -> None:
    """New York's were said to be +01:00 or +02:00 (Berlin's): five hours off, if followed."""
    mapping = contacts({"At": "Last_Webinar__c"}, timezone="America/New_York")
    r = run(tmp_path, "Name,At\nA,2024-11-03 01:30\n", mapping)
    assert messages(r) == [
        (
            2,
            "'2024-11-03 01:30' happens twice in America/New_York (the clocks go back over it); "
            "write it with its offset: 2024-11-03 01:30:00-04:00 the first time, "
            "2024-11-03 01:30:00-05:00 the second",
        )
    ]
    fixed = run(tmp_path, "Name,At\nA,2024-11-03 01:30:00-05:00\n", mapping)
    assert messages(fixed) == []
    assert values(fixed, "Last_Webinar__c")[0] == "2024-11-03 06:30:00"


@pytest.mark.parametrize(
    ("order", "read"), [("dmy", "1990-04-03 00:00:00"), ("mdy", "1990-03-04 00:00:00")]
)
def test_a_mappings_date_order_settles_slash_dates(tmp_path: Path, order: str, read: str) -> None:
    r = run(
        tmp_path, "Name,Born\nA,03/04/1990\n", contacts({"Born": "DATE_OF_BIRTH"}, date_order=order)
    )
    assert values(r, "DATE_OF_BIRTH") == [read]
    assert messages(r) == []


def test_cells_read_in_blocks_are_the_same_in_any_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cell() converts a block of rows at a time: blocks of two, read forwards and backwards,
    give each cell's typed value, None for a cleared one and ABSENT for an empty one."""
    from insightly_etl.load import spill

    monkeypatch.setattr(spill, "BATCH_ROWS", 2)
    r = run(
        tmp_path,
        "Name,Title,Value,News\nA,,1.5,yes\nB,CEO,,no\nC,,2,\nD,Ops,3.25,yes\nE,,,no\n",
        contacts(
            {
                "Title": {"field": "TITLE", "blank": "clear"},
                "Value": "Lifetime_Value__c",
                "News": "Newsletter__c",
            }
        ),
    )
    expected = {
        "FIRST_NAME": ["A", "B", "C", "D", "E"],
        "TITLE": [None, "CEO", None, "Ops", None],
        "Lifetime_Value__c": [1.5, ABSENT, 2.0, 3.25, ABSENT],
        "Newsletter__c": [True, False, ABSENT, True, False],
    }
    for name, column in expected.items():
        assert values(r, name) == column
        assert [r.cell(i, name) for i in reversed(range(5))] == column[::-1]
    assert (
        type(r.cell(3, "Lifetime_Value__c")) is float and type(r.cell(0, "Newsletter__c")) is bool
    )


def test_a_mapping_key_copied_with_the_headers_spaces_is_that_column(tmp_path: Path) -> None:
    """Headers are read trimmed; a key written ' Email ' was 'not in the file'."""
    r = run(
        tmp_path,
        " Name , Email \nAda,ada@example.com\n",
        {
            "object": "contacts",
            "columns": {" Name ": "FIRST_NAME", " Email ": "EMAIL_ADDRESS"},
            "match": {"column": " Email ", "field": "EMAIL_ADDRESS"},
        },
    )
    assert messages(r) == []
    assert values(r, "EMAIL_ADDRESS") == ["ada@example.com"]


def test_salesforce_lightning_date_times(tmp_path: Path) -> None:
    """A comma before the time (`12/31/2024, 10:00 AM`) and English month names (`Dec 31,
    2024 10:00 AM`) were 'not a date-time'; the comma form is evidence of the order too."""
    r = run(
        tmp_path,
        'Name,Webinar\nA,"12/31/2024, 10:00 AM"\nB,"1/2/2024, 3:04 PM"\nC,"Dec 31, 2024 10:00 AM"\n',
        contacts({"Webinar": "Last_Webinar__c"}),
    )
    assert messages(r) == []
    assert values(r, "Last_Webinar__c") == [
        "2024-12-31 10:00:00",
        "2024-01-02 15:04:00",
        "2024-12-31 10:00:00",
    ]


def test_garbled_text_is_refused_in_a_column_sent_and_left_alone_in_one_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(garble("Name,City,Shoe size\nZoë,Paris,38\nAna,Lyon,café\n"))
    mapping = parse_mapping(contacts({"City": "ADDRESS_MAIL_CITY"}), source="m.yaml")
    facts = AccountFacts(DEFS["Contacts"], {})
    with pytest.raises(InputError) as info:
        validate_table(read_table(path), mapping, facts)
    assert str(info.value) == (
        f"{path}, line 2, column 'Name': 'ZoÃ«' is UTF-8 text read in another character set "
        "('Zoë'): the file was opened with the wrong character set and saved"
    )
    path.write_text("Name,City,Shoe size\nZoe,Paris,38\n", encoding="utf-8")
    path.write_bytes(path.read_bytes() + garble("Ana,Lyon,café\n"))  # in a column not sent
    assert validate_table(read_table(path), mapping, facts).rows == 2


@pytest.mark.parametrize(
    "name",
    ["Дмитрий", "Ωμέγα", "Łukasz", "القاهرة", "王小明", "Ørjan “Ø” Aas"],
)
def test_garbled_text_of_every_script_is_refused(tmp_path: Path, name: str) -> None:
    """A file of Russian (Greek, Polish, Arabic, Chinese) names opened as Windows-1252 and
    saved: refused like garbled accents, not sent as `Ð”Ð¼Ð¸Ñ‚Ñ€Ð¸Ð¹` (only Latin accents
    were found). Text that only looks alike reads as it is."""
    path = tmp_path / "in.csv"
    path.write_bytes(garble(f"Name,City\n{name},Paris\n"))
    mapping = parse_mapping(contacts({"City": "ADDRESS_MAIL_CITY"}), source="m.yaml")
    facts = AccountFacts(DEFS["Contacts"], {})
    with pytest.raises(InputError) as info:
        validate_table(read_table(path), mapping, facts)
    text = garble(name).decode()
    assert str(info.value) == (
        f"{path}, line 2, column 'Name': {text[:60]!r} is UTF-8 text read in another character "
        f"set ({name!r}): the file was opened with the wrong character set and saved"
    )
    alike = "Ærø, Dvořák, Straße, São Paulo, naïve, Ørjan"
    path.write_text(f'Name,City\n"{alike}",Paris\n', encoding="utf-8")
    assert values(validate_table(read_table(path), mapping, facts), "FIRST_NAME") == [alike]


def test_a_file_calc_opened_as_windows_1252_is_refused_whatever_its_scripts() -> None:
    """LibreOffice Calc's own save (tests/data/spreadsheets/garbled_us.csv): it reads the
    bytes Windows-1252 leaves undefined as U+F181 … (Arabic's ف), and each name's script
    is found garbled; none is sent as it reads."""
    path = Path(__file__).parents[1] / "data/spreadsheets/garbled_us.csv"
    mapping = parse_mapping(
        {"object": "contacts", "columns": {"First": "FIRST_NAME", "Last": "LAST_NAME"}},
        source="m.yaml",
    )
    table = read_table(path)
    assert table.garbled is not None and not table.garbled.file_reads_right
    assert [(line, column, fixed) for line, column, _, fixed in table.garbled.cells] == [
        (2, "City", "Łódź"),
        (2, "First", "Дмитрий"),
        (2, "Last", "Ωμέγα"),
        (3, "City", "Zoë"),
        (3, "First", "فاطمة"),
        (3, "Last", "王"),
    ]
    with pytest.raises(InputError) as info:
        validate_table(table, mapping, AccountFacts(DEFS["Contacts"], {}))
    assert str(info.value).startswith(
        f"{path}, line 2, column 'First': 'Ð”Ð¼Ð¸Ñ‚Ñ€Ð¸Ð¹' is UTF-8 text read in another "
        "character set ('Дмитрий')"
    )


def test_garbled_cells_of_a_file_that_reads_right_are_sent_as_they_came(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes("Name,City\nZoë,Paris\n".encode() + garble("Ana,Ñandú\n"))
    mapping = parse_mapping(contacts({"City": "ADDRESS_MAIL_CITY"}), source="m.yaml")
    r = validate_table(read_table(path), mapping, AccountFacts(DEFS["Contacts"], {}))
    assert values(r, "ADDRESS_MAIL_CITY") == ["Paris", "Ã‘andÃº"]
    assert r.notes == [
        "1 cell(s) hold UTF-8 text read in another character set, as they came (line 3, "
        "column 'City': 'Ã‘andÃº' for 'Ñandú'); other accented cells read right, so they are "
        "taken as they are"
    ]


@pytest.mark.parametrize("declared", [None, "."])
def test_a_semicolon_file_reads_a_decimal_comma_mapped_or_not(
    tmp_path: Path, declared: str | None
) -> None:
    """German Excel's `1.500` is 1500. Read through a mapping it was 1.5 (exit 0, no word),
    where --object read 1500; a mark the mapping declares is still the only reading."""
    given = {"decimal": declared} if declared else {}
    by_mapping = run(
        tmp_path,
        "Name;Value\nKlaus;1.500\nPetra;2.750\n",
        contacts({"Value": "Lifetime_Value__c"}, **given),
    )
    by_name = run(
        tmp_path,
        "FIRST_NAME;Lifetime_Value__c\nKlaus;1.500\nPetra;2.750\n",
        {"object": "contacts", **given},
    )
    wanted = [1.5, 2.75] if declared == "." else [1500.0, 2750.0]
    assert values(by_mapping, "Lifetime_Value__c") == values(by_name, "Lifetime_Value__c") == wanted


def test_a_workbook_s_number_cells_in_a_text_field_are_said() -> None:
    """us.xlsx: our CSV opened by LibreOffice in en-US and saved as a workbook made number
    cells of the postcodes, `00501` now 501. A record found keeps Insightly's (an artefact);
    a new one was made with 501 without a word."""
    r = validate_table(
        read_table(CORPUS / "us.xlsx"),
        parse_mapping({"object": "contacts"}, source="m.yaml"),
        AccountFacts(DEFS["Contacts"], {}),
    )
    assert [n for n in r.notes if "numbers in the workbook" in n] == [
        "column 'ADDRESS_MAIL_POSTCODE' (ADDRESS_MAIL_POSTCODE): 28 cell(s) are numbers in the "
        "workbook ('501', row 2), sent as their digits: a leading zero the spreadsheet dropped is "
        "not among them (format the column as Text and type them again)"
    ]


def test_a_formatted_date_column_says_an_impossible_day_and_a_day_number_for_what_they_are(
    tmp_path: Path,
) -> None:
    """`02/30/1980` matches %m/%d/%Y but is no day; `29221` is a spreadsheet's day number. Both
    were "not a date in the format %m/%d/%Y", which the first plainly is written in."""
    r = run(
        tmp_path,
        "Name,Born\nA,02/30/1980\nB,29221\nC,13/01/1980\nD,12/31/1980\n",
        contacts({"Born": {"field": "DATE_OF_BIRTH", "date_format": "%m/%d/%Y"}}),
    )
    assert messages(r) == [
        (
            2,
            "'02/30/1980' is written in the format %m/%d/%Y, but is no day (day is out of range "
            "for month)",
        ),
        (
            3,
            "'29221' is a number, not a date: a year alone, or the day number a spreadsheet keeps "
            "1980-01-01 as; write the whole date in the format %m/%d/%Y",
        ),
        (4, "'13/01/1980' is not a date in the format %m/%d/%Y"),
    ]
    by_year = run(
        tmp_path,
        "Name,Year\nA,1990\n",
        contacts({"Year": {"field": "DATE_OF_BIRTH", "date_format": "%Y"}}),
    )
    assert messages(by_year) == [] and values(by_year, "DATE_OF_BIRTH") == ["1990-01-01 00:00:00"]


@pytest.mark.parametrize(
    ("cell", "refused"),
    [
        ("#N/A", True),
        ("#n/a", True),
        (" #REF! ", True),
        ("#NV", True),  # German Excel's #N/A, in its CSV save
        ("#WERT!", True),
        ("Fehler:502", True),  # German LibreOffice
        ("#VALEUR!", True),
        ("#N/D", True),
        ("#¿NOMBRE?", True),
        ("Err:502", True),
        ("#NAME", False),  # look-alikes are data
        ("Err:5021", False),
        ("N/A", False),
        ("#1 customer", False),
    ],
)
def test_a_formula_s_error_value_in_any_language_is_refused(
    tmp_path: Path, cell: str, refused: bool
) -> None:
    r = run(tmp_path, f"Name,Title\nAda,{cell}\n", contacts({"Title": "TITLE"}))
    expected = [
        (
            2,
            f"{cell!r} is a spreadsheet's error value (a formula failed there), not data: fix "
            "the formula or empty the cell",
        )
    ]
    assert messages(r) == (expected if refused else [])


def test_a_record_id_field_refuses_ids_no_record_has(tmp_path: Path) -> None:
    """ORGANISATION_ID -1 passed as a whole number and was planned as an update."""
    r = run(
        tmp_path,
        "Name,Org,Owner\nA,-1,0\nB,7,+3\n",
        contacts({"Org": "ORGANISATION_ID", "Owner": "OWNER_USER_ID"}),
    )
    assert messages(r) == [
        (2, "'-1' is no record's id (ids count from 1)"),
        (2, "'0' is no record's id (ids count from 1)"),
    ]
    assert values(r, "ORGANISATION_ID")[1] == 7 and values(r, "OWNER_USER_ID")[1] == 3


def test_a_workbook_whose_rows_are_one_cell_each_is_said_to_be_one(tmp_path: Path) -> None:
    """A semicolon CSV opened in a spreadsheet without its delimiter and saved as a workbook:
    every mapped column was "not in the file; did you mean 'Name;Website;…'?", one by one."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Name;Website;Phone"])
    book.active.append(["Acme;acme.example;+49 711 000"])
    path = tmp_path / "orgs.xlsx"
    book.save(path)
    mapping = {
        "object": "organisations",
        "columns": {"Name": "ORGANISATION_NAME", "Phone": "PHONE"},
    }
    with pytest.raises(InputError) as info:
        validate_table(
            read_table(path), parse_mapping(mapping, source="m.yaml"), AccountFacts([], {})
        )
    assert str(info.value) == (
        f"{path}: each row is one cell ('Name;Website;Phone'): its columns are run together "
        "with ';', as when a program opens a CSV without its delimiter and saves it"
    )
    assert info.value.hint == (
        "Import the CSV itself, or open it again choosing ';' as the separator (LibreOffice: "
        "the Text Import dialog; Excel: Data > From Text/CSV) and save it."
    )
