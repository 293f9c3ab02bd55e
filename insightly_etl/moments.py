"""Moments as the API writes and reads them: its text forms, and reading any ISO 8601 form.

Pure datetime code, below the API client and the files alike, so the client can read a stamp
without loading pandas or pyarrow (the files module's)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Insightly's date-time text, always UTC
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the form query strings take (updated_after_utc)

_ISO_DAY = re.compile(r"\d{4}-\d\d-\d\d")  # how every date the API writes begins


def iso_instant(value: Any) -> datetime | None:
    """Any ISO 8601 form of a moment (`…T…`, `Z`, `+02:00`, fractions) as naive UTC; a moment
    without a zone is UTC, as the API's own are. None: not such text (a week date such as
    `2026-W44-1`, which Python's parser reads, is not one the API writes), or no UTC moment
    (`0001-01-01T00:00:00+01:00`)."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if not _ISO_DAY.match(text):
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    try:
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    except OverflowError:
        return None


def as_text(moment: datetime, form: str = DATETIME_FORMAT) -> str:
    """A moment in one of the API's forms, its year always in four digits (glibc writes
    year 1, .NET's DateTime.MinValue, as `1-01-01`, which no reader takes back)."""
    return moment.strftime(form.replace("%Y", f"{moment.year:04d}"))


def second_before(mark: datetime) -> datetime:
    """What records changed since `mark` are strictly after: the API's times are whole
    seconds, so a second earlier, and none is missed (year 1's first second: itself)."""
    try:
        return mark - timedelta(seconds=1)
    except OverflowError:
        return mark


def changed_after(mark: datetime) -> str:
    """`updated_after_utc` for the records changed since `mark`."""
    return as_text(second_before(mark), ISO_FORMAT)
