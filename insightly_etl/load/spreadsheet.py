"""What spreadsheet programs do to a file they open and save, and how to tell it from an edit.

An export opened in Excel or LibreOffice and saved again comes back changed where nobody typed:
digit strings lose their leading zeros (`02108` -> `2108`), long ones turn into scientific
notation (`1.23457E+12`), numbers gain thousands separators, date-times are rewritten in the
locale's form (`9/19/2026 3:28 PM`, `19.09.2026 15:28`) without their seconds, yes/no values
become `TRUE`/`WAHR`/`VRAI`, and a save in a single-byte code page replaces every character it
cannot hold with `?` or a look-alike (`Łódź` -> `?ód?` or `Lodz`). Such a difference is an
*artefact*: the planner keeps the record's value and counts it instead of sending it.

Dates in locale forms are read here too: the day/month order of slash dates is taken from the
file itself (a first part above 12 means day first, a second part above 12 month first, an
AM/PM marker month first); a file that gives no evidence leaves `03/04/2026` unread, never
guessed.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal, DecimalException
from enum import StrEnum
from typing import Any

import pandas as pd
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from insightly_etl.files import CELL_CHARACTERS, cell_length, in_a_cell
from insightly_etl.load.fields import BOOLEAN, DATE, DATETIME, INTEGER, NUMBER, FieldSpec

_SLASH = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})(?:[\s,]|$)")
# a cell that is a date and nothing else (free text that mentions one is no evidence)
_WHOLE_DATE = re.compile(
    r"^\s*\d{1,2}/\d{1,2}/(?:\d{2}|\d{4})(?:,?\s+\d{1,2}:\d\d(?::\d\d)?(?:\s*[AaPp]\.?[Mm]\.?)?)?\s*$"
)

# the forms Excel and LibreOffice write in common locales, most specific first
_MONTH_FIRST = [
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%m/%d/%y %I:%M:%S %p",
    "%m/%d/%y %I:%M %p",
    "%m/%d/%y %H:%M:%S",
    "%m/%d/%y %H:%M",
    "%m/%d/%y",
]
# Salesforce Lightning's reports put a comma before the time: `12/31/2024, 10:00 AM`
_MONTH_FIRST += [f.replace("%Y ", "%Y, ") for f in _MONTH_FIRST if "%Y " in f]
_DAY_FIRST = [f.replace("%m/%d", "%d/%m") for f in _MONTH_FIRST]
_ALWAYS = [
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d.%m.%y %H:%M:%S",
    "%d.%m.%y %H:%M",
    "%d.%m.%y",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    # English month names say which part is the month: `Dec 31, 2024 10:00 AM` (Salesforce)
    "%b %d, %Y %I:%M %p",
    "%b %d, %Y, %I:%M %p",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d-%b-%Y",  # Excel's d-mmm-yyyy, as reports write it: `5-Mar-1990`
    "%d %b %Y",
    "%d %B %Y",
]


DAY_FIRST_SAMPLE = 20_000  # the first rows day_first reads: a sample is evidence enough


def day_first_of(order: str | None, frame: pd.DataFrame) -> bool | None:
    """The mapping's (or --date-order's) dmy/mdy, else what the file shows."""
    if order is not None:
        return order == "dmy"
    return day_first(frame)


def a_day(year: int, month: int, day: int) -> bool:
    """Whether the day exists (a two-digit year as any year: 29/02/00 may be 2000)."""
    try:
        date(year if year >= 100 else 2000, month, day)
    except ValueError:
        return False
    return True


def day_first(frame: pd.DataFrame) -> bool | None:
    """Whether the file's slash dates put the day first (True), the month (False), or the file
    does not say (None). Every column is evidence: an export's DATE_CREATED_UTC settles the
    order for the birthday column beside it."""
    day = month = False
    for column in frame.columns:
        values = frame[column].iloc[:DAY_FIRST_SAMPLE].dropna().astype(str)
        sample = values[values.str.contains("/", regex=False)]
        for text in sample.head(5000):
            m = _SLASH.match(text)
            if not m or not _WHOLE_DATE.match(text):
                continue
            first, second, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
            # evidence only from a day that exists read that way: 31/02/1980 is a date in
            # neither order (a typo), as 13/31 is
            day |= first > 12 and a_day(year, second, first)
            month |= second > 12 and a_day(year, first, second)
            if day and month:
                return None  # the file mixes both orders: no column can be trusted
    if day != month:
        return day
    return None


def locale_formats(first_is_day: bool | None) -> list[str]:
    """The locale forms to try for dates that are not ISO, in order."""
    if first_is_day is None:
        return list(_ALWAYS)
    return [*(_DAY_FIRST if first_is_day else _MONTH_FIRST), *_ALWAYS]


def parse_locale(texts: pd.Series, first_is_day: bool | None) -> pd.Series:
    """Naive timestamps (NaT where none of the forms fits), for the values ISO did not read.
    A slash date whose order the file does not settle is left unread."""
    out = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[s]")
    todo = texts.notna() & (texts.astype(str).str.strip() != "")
    stripped = texts.where(todo).astype("string").str.strip()
    for form in locale_formats(first_is_day):
        if not todo.any():
            break
        parsed = pd.to_datetime(stripped[todo], format=form, errors="coerce")
        if "%y" in form:  # Excel's window, not Python's: 65 is 1965, 29 is 2029
            parsed = parsed.where(parsed.dt.year < 2030, parsed - pd.DateOffset(years=100))
        hit = parsed.notna()
        if hit.any():
            out.loc[hit[hit].index] = parsed[hit].astype("datetime64[s]")
            todo.loc[hit[hit].index] = False
    return out


def slash_parts(text: str) -> tuple[int, int] | None:
    """The first two numbers of a cell that is a slash date (and a time) and nothing else."""
    if _WHOLE_DATE.match(text) is None:
        return None
    m = _SLASH.match(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def slash_readings(text: str) -> tuple[bool, bool] | None:
    """Of a cell that is a slash date: whether it is a day read day first, and read month
    first (`31/02/1980`: neither); None for any other cell."""
    if _WHOLE_DATE.match(text) is None or (m := _SLASH.match(text)) is None:
        return None
    first, second, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return a_day(year, second, first), a_day(year, first, second)


def ambiguous_slash(text: str) -> bool:
    """`03/04/2026`: a day and a month that could be either."""
    m = _SLASH.match(text)
    return m is not None and int(m.group(1)) <= 12 and int(m.group(2)) <= 12


def has_seconds(text: str) -> bool:
    """Whether a written time shows seconds (`15:28:42`), so it can be compared to the second."""
    return bool(re.search(r"\d:\d\d:\d\d", text))


def read_instant(text: Any, first_is_day: bool | None) -> tuple[datetime | None, bool]:
    """A copy's timestamp as (the UTC instant or None, whether it carries seconds). Text
    without a zone is UTC (the column is DATE_UPDATED_UTC)."""
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return None, True
    raw = str(text).strip()
    if not raw:
        return None, True
    try:
        stamp = pd.Timestamp(raw) if re.match(r"^\d{4}-\d\d-\d\d", raw) else None
    except (ValueError, OverflowError):  # year 0, month 13: no moment at all
        return None, has_seconds(raw)
    if stamp is None or stamp is pd.NaT:
        parsed = parse_locale(pd.Series([raw], dtype="string"), first_is_day).iloc[0]
        if parsed is pd.NaT or pd.isna(parsed):
            return None, has_seconds(raw)
        stamp = pd.Timestamp(parsed)
    try:
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(UTC)
        return stamp.tz_convert(UTC).to_pydatetime(), has_seconds(raw)
    except (ValueError, OverflowError):
        return None, has_seconds(raw)


# ---------------------------------------------------------------- artefacts

# best-fit letters Windows and LibreOffice put for characters a code page lacks, beyond
# the ones Unicode decomposes (é -> e)
_BEST_FIT = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ø": "O", "ø": "o", "Ħ": "H", "ħ": "h"}
_DIGITS = re.compile(r"^[0-9]+$")
_PLAIN = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_GROUPED = re.compile(r"^[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$")
LOST = re.compile(r"\w\?|\?\w")  # a `?` touching a letter: `?ukasz`, `Wi?niewski`
# Excel's General format shows at most 11 digits: a longer digit string becomes 1.23457E+11
GENERAL_DIGITS = 11
SCIENTIFIC = re.compile(r"^[+-]?\d(?:[.,]\d+)?[Ee][+-]?\d+$")
# a spreadsheet keeps 15 significant digits of a number: a longer digit string stored as one
# comes back with zeros after the 15th, or as the binary double's digits
KEPT_DIGITS = 15


def _fold(ch: str) -> str:
    if ch in _BEST_FIT:
        return _BEST_FIT[ch]
    base = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in base if not unicodedata.combining(c)) or ch


def _encodable(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def single_byte(encoding: str | None) -> bool:
    """A code page of one byte a character (cp1252 …): what it cannot hold, a save loses."""
    return bool(encoding) and not str(encoding).lower().startswith(("utf", "ascii"))


def replaced_by_encoding(new: str, old: str, encoding: str | None) -> bool:
    """`?ód?` for `Łódź`: every difference is a character the file's encoding cannot hold,
    written as `?` (whatever the file's encoding: an ASCII or UTF-8 file may be the copy of a
    lossy save) or, in a single-byte file, as its best-fit letter (`Lodz`)."""
    if len(new) != len(old) or new == old:
        return False
    lossy = single_byte(encoding)
    for n, o in zip(new, old, strict=True):
        if n == o:
            continue
        if n == "?" and o != "?" and ord(o) > 127:
            continue
        if lossy and not _encodable(o, str(encoding)) and n == _fold(o):
            continue
        return False
    return True


def _plain_decimal(text: str) -> Decimal | None:
    """`1234.50`, with `,` groups `1,234.50`, or in scientific notation (`1.00E+05`, a decimal
    comma's `1,23E+11`) as a Decimal; None for anything else (a sign, a decimal comma without
    an exponent, spaces: forms a re-save may not have made)."""
    if _GROUPED.match(text):
        text = text.replace(",", "")
    elif SCIENTIFIC.match(text):
        return Decimal(text.replace(",", "."))
    if not _PLAIN.match(text):
        return None
    return Decimal(text)


def _significant(value: Decimal) -> int:
    """Digits a number shows, trailing zeros not counted: 3 for 9.01E+15."""
    digits = "".join(map(str, value.as_tuple().digits)).rstrip("0")
    return max(1, len(digits))


def _rounded(value: Decimal, digits: int) -> str:
    return f"{value:.{digits - 1}E}"


def _shown_shorter(shown: Decimal, value: Decimal) -> bool:
    """Whether `shown` is `value` rounded to the fewer significant digits (two at least) a
    cell shows of it: 9.01E+15 of 9007199254740993."""
    digits = _significant(shown)
    return 2 <= digits < _significant(value) and _rounded(shown, digits) == _rounded(value, digits)


def _kept_as_number(old: str) -> set[str]:
    """The digit strings a spreadsheet gives back for the long digit string `old` it stored
    as a number: 15 digits and zeros (Excel cuts, as Microsoft documents; Calc rounds), or a
    double's exact digits (a workbook read back)."""
    number = old.lstrip("0")
    value = Decimal(number)
    cut = Decimal(number[:KEPT_DIGITS]).scaleb(len(number) - KEPT_DIGITS)
    fifteen = Decimal(_rounded(value, KEPT_DIGITS))
    return {f"{v:f}" for v in (cut, fifteen, *(Decimal(float(v)) for v in (fifteen, value)))}


def _as_cell(text: str) -> str:
    """A text as a cell holds it: line breaks as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


SERIAL_EPOCH = date(1899, 12, 30)  # day 0 of a spreadsheet's day numbers (1900 date system)


def year_as_day(value: object) -> int | None:
    """The year a person typed into a cell formatted as a date, which the spreadsheet kept as
    that day number and shows as a day of 1905 (`1990` becomes 1905-06-12); None for a date
    no year 1900-2100 turns into."""
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
    number = (day - SERIAL_EPOCH).days
    return number if 1900 <= number <= 2100 else None


class Cut(StrEnum):
    """A text longer than a cell holds, as a file that went through a spreadsheet has it (our
    XLSX export cuts it there, and so do Excel and Calc opening a CSV)."""

    CUT = "cut"  # just its first CELL_CHARACTERS characters
    EDITED = "edited"  # those, with an edit before the end (the cell full, or ending as cut)


def cut_to_a_cell(new: str, old: str) -> Cut | None:
    """How `new` is `old` cut where a cell ends (sent, it would lose the rest), or None."""
    if cell_length(old) <= CELL_CHARACTERS or cell_length(new) > CELL_CHARACTERS:
        return None
    cuts = {in_a_cell(old), _as_cell(in_a_cell(old)), in_a_cell(_as_cell(old))}
    if new in cuts:
        return Cut.CUT
    full = cell_length(new) >= CELL_CHARACTERS - 1  # the last unit may be half an emoji
    if full or any(new.endswith(cut[-100:]) for cut in cuts):
        return Cut.EDITED
    return None


# what our exports write as U+FFFD: the control characters XML, so a workbook, cannot hold
# (openpyxl's own list, which the XLSX writer replaces); a NUL among them (a CSV with one is
# binary data to its readers)
_UNWRITABLE = ILLEGAL_CHARACTERS_RE


def _controls_replaced(new: str, old: str) -> bool:
    return (
        len(new) == len(old)
        and new != old
        and all(
            n == o or (n == "\ufffd" and _UNWRITABLE.match(o))
            for n, o in zip(new, old, strict=True)
        )
    )


def text_artefact(new: str, old: str, encoding: str | None) -> str | None:
    """Why a text value differs only as a spreadsheet re-saves it, or None. Each rule goes
    one way, the way a program changes a value: zeros are dropped, never added; digits are
    grouped or shown shorter, never changed."""
    digits = _DIGITS.match(old) is not None
    number = old.lstrip("0") or "0"  # `0000` is the number 0
    if digits and _DIGITS.match(new) and len(new) < len(old) and number == new:
        return "leading zeros dropped"
    if digits and _GROUPED.match(new) and new.replace(",", "") == number:
        return "digits grouped as a number"
    if digits and len(old.lstrip("0")) > KEPT_DIGITS and new in _kept_as_number(old):
        return f"digits after the {KEPT_DIGITS}th lost (stored as a number)"
    if new in ("TRUE", "FALSE") and old.upper() == new:
        return "yes/no text shown as TRUE/FALSE"  # Calc reads `true` in a CSV as a yes/no
    if _controls_replaced(new, old):
        return "control characters a file cannot hold, written as U+FFFD"
    if cut_to_a_cell(new, old) is Cut.CUT:
        return f"cut at the {CELL_CHARACTERS:,} characters a cell holds"
    if "\r" in old and new == _as_cell(old):
        # a cell keeps a line break as LF (Alt+Enter); XML, so every workbook, reads CR LF so
        return "line breaks written as LF, not CR LF"
    a, b = _plain_decimal(new), _plain_decimal(old)
    if a is not None and b is not None and not (digits and _DIGITS.match(new)):
        try:
            if a == b:
                return "number re-formatted"  # 12.50 -> 12.5, 1234.5 -> 1,234.5, 1E5 -> 1.00E+05
            # only what a program shows shorter: a digit string past General's 11 digits, or
            # a number it already showed in scientific notation
            if (
                SCIENTIFIC.match(new)
                and ((digits and len(old) > GENERAL_DIGITS) or SCIENTIFIC.match(old))
                and _shown_shorter(a, b)
            ):
                return "long number shown in scientific notation"
        except (DecimalException, ValueError):  # 1E1000000: no number a cell shows
            return None
    if replaced_by_encoding(new, old, encoding):
        if encoding:
            return f"characters {encoding} cannot hold, replaced"
        return "characters replaced by '?' (a save that lost them)"
    if encoding and _lost_only(new, old):
        return f"'?' inside a word: a character {encoding} cannot hold, lost"
    return None


def _lost_only(new: str, old: str) -> bool:
    """`Jo?? Kim` for `Jo😀 Kim` (a `?` for each half of the emoji): the text as it was, but
    each run of `?` standing for characters a code page cannot hold."""
    if not LOST.search(new) or LOST.search(old):
        return False
    lost = r"[^\x00-\x7f]+"
    pattern = lost.join(re.escape(part) for part in re.split(r"\?+", new))
    return re.fullmatch(pattern, old) is not None


def long_number_shown(text: str) -> bool:
    """`4.91511E+12`, `1.23456789012346E+019`: a digit string of more than GENERAL_DIGITS
    digits typed into a cell a spreadsheet read as a number, and saved as it shows it (the
    digits after the shown ones lost): no text a person writes."""
    if not SCIENTIFIC.match(text):
        return False
    exponent = int(re.split("[Ee]", text)[1])
    return exponent >= GENERAL_DIGITS


def zeros_lost_in_typing(new: str, old: str) -> bool:
    """`1003` where Insightly has `01002`: digits typed into a cell a spreadsheet reads as a
    number lose their leading zeros as the cells it opened do (`01002` -> `1002`, an
    artefact): the person meant `01003`."""
    return (
        _DIGITS.match(old) is not None
        and old.startswith("0")
        and _DIGITS.match(new) is not None
        and not new.startswith("0")
        and len(new) < len(old)
    )


def lost_and_edited(new: str, old: str) -> bool:
    """A cell whose characters a code page lost (a `?` inside a word, where Insightly has
    none), that a person edited as well: an edit, but one that sent would write the `?`."""
    return bool(LOST.search(new)) and not LOST.search(old) and not _lost_only(new, old)


def number_artefact(new: float, old: float) -> str | None:
    """A number of more than GENERAL_DIGITS digits, shown (and saved) in scientific notation
    with fewer: `9.01E+15` for 9007199254740993. A person types a number, not its rounding."""
    if abs(old) < 10**GENERAL_DIGITS or new == old:
        return None
    a, b = Decimal(repr(float(new))), Decimal(repr(old) if isinstance(old, float) else old)
    if _significant(a) <= 6 and _shown_shorter(a, b):  # General shows six at most: 1.23457E+12
        return "long number shown in scientific notation"
    return None


def artefact(
    spec: FieldSpec, new: Any, old: Any, encoding: str | None, *, scientific: bool = False
) -> str | None:
    """Why `new` (the file's validated value) differs from `old` (the record's) only as a
    spreadsheet program re-saves values, or None when it is an edit. `scientific`: the file
    wrote the cell in scientific notation (a number field's value is compared as a number,
    so only then may it be a long number shown shorter)."""
    if new is None or old is None or old == "":
        return None
    if spec.kind == DATETIME:
        n, o = str(new).replace("T", " ")[:19], str(old).replace("T", " ")[:19]
        if len(n) == len(o) == 19 and n[:16] == o[:16] and n[17:] == "00":
            return "seconds dropped"
        return None
    if (
        spec.kind in (NUMBER, INTEGER)
        and scientific
        and isinstance(old, int | float)
        and not isinstance(old, bool)
    ):
        return number_artefact(float(new), old)  # an equal value is no change at all
    if spec.kind in (NUMBER, INTEGER, BOOLEAN, DATE):
        return None  # compared by value already: an equal value is no change at all
    if isinstance(new, str) and isinstance(old, str):
        return text_artefact(new, old, encoding)
    return None
