"""Rows that would give a record the e-mail (contacts, leads) or the name (organisations)
that another record already has: `--on-duplicate-email warn|skip|error`.

It matters when rows are matched by something else (an external id such as a Salesforce id),
or not matched at all. Records of another system may share an e-mail while Insightly's people
expect one contact per address: such a row would make a second contact with the address, and
every later import matched by e-mail then finds two records and fails on them.

Values are compared as a person would (`match_text`: NFC, trimmed, zero-width characters
removed, case-folded). Validation sees the rows that share a value among themselves; the plan
also sees the records the account already has.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.api.registry import get_object
from insightly_etl.load.validate import ABSENT, INVISIBLE, ValidationResult

_INVISIBLE = re.compile(INVISIBLE)
_SPACES = re.compile(r"\s+")


def match_text(value: str, casefold: bool) -> str:
    """A key as a person compares it: `  Bjorn.Ulvaeus@ABBA.example\u200b ` is
    `bjorn.ulvaeus@abba.example` — Unicode NFC, no zero-width characters, trimmed, inner
    spaces collapsed, and (e-mails always, other text unless `compare: exact`) case-folded."""
    text = _SPACES.sub(" ", _INVISIBLE.sub("", unicodedata.normalize("NFC", value))).strip()
    return text.casefold() if casefold else text


def duplicate_action(name: str) -> str:
    """How NAME.plan.csv calls a row whose `name` another record has."""
    return "duplicate-name" if name == "ORGANISATION_NAME" else "duplicate-email"


def identity_field(result: ValidationResult) -> str | None:
    """The field to watch, when the file writes it and rows are not matched by it alone."""
    name = get_object(result.mapping.object).identity  # one record per value, by custom
    if name is None or name not in result.values.columns:
        return None
    match = result.mapping.match
    if match is not None and [f for _, f in match.pairs] == [name]:
        return None  # matched by it: a row with a taken value updates that record
    return name


def identity_text(value: Any) -> str | None:
    if value is ABSENT or value is None or value is pd.NA or value == "":
        return None
    return match_text(str(value), True) or None


def _compared(values: pd.Series) -> pd.Series:
    """`match_text(…, casefold=True)` for a whole column at once (NA stays NA): in Arrow for
    ASCII text (its lower case is its case fold; it has no zero-width characters and nothing
    to normalise), in Python for the rest."""
    array = pa.array(values.astype("string").to_numpy(dtype=object, na_value=None), pa.string())
    ascii_ = pc.fill_null(pc.string_is_ascii(array), True)
    # Python's \s on ASCII is [\t-\r\x1c-\x20]; RE2's \s leaves out \v and \x1c-\x1f
    spaced = pc.replace_substring_regex(array, "[\t-\r\x1c-\x20]+", " ")
    simple = pc.utf8_lower(pc.utf8_trim(spaced, " "))
    out = simple.to_pandas(types_mapper=pd.ArrowDtype).astype("string")
    others = ~ascii_.to_numpy(zero_copy_only=False)
    if others.any():
        texts = array.to_pylist()
        out[others] = [match_text(texts[i], True) for i in others.nonzero()[0]]
    out.index = values.index
    return out.mask(out == "")


def shared_in_file(result: ValidationResult, rows: list[int]) -> dict[int, tuple[str, int]]:
    """row -> (value as written, the first row with it): rows that write a value an earlier
    row of another record writes too (rows with the same match key are one record, and are
    the duplicate check's business). Vectorised: a file may have millions of rows."""
    name = identity_field(result)
    if name is None or not rows:
        return {}
    written = result.values[name].iloc[rows].astype("string")
    cleared = result.cleared.get(name)
    if cleared is not None:
        written = written.mask(pd.Series(cleared[rows], index=written.index))
    text = _compared(written)
    shared = (text.duplicated(keep=False) & text.notna()).to_numpy()
    if not shared.any():  # the usual case: nothing more to compute
        return {}
    picked = [r for r, hit in zip(rows, shared, strict=True) if hit]
    frame = pd.DataFrame(
        {"row": picked, "text": text[shared].to_numpy(), "written": written[shared].to_numpy()}
    )
    match = result.mapping.match
    if match is not None:
        parts = [
            _compared(result.table.frame[c].iloc[picked]).fillna("").to_numpy()
            for c, _ in match.pairs
        ]
        frame["key"] = pd.Series(parts[0]).str.cat([pd.Series(p) for p in parts[1:]], sep="\x1f")
    else:
        frame["key"] = frame["row"].astype("string")  # each row is a record of its own
    first = frame.drop_duplicates("text").set_index("text")
    frame["first_row"] = frame["text"].map(first["row"])
    frame["first_key"] = frame["text"].map(first["key"])
    hits = frame[(frame["row"] != frame["first_row"]) & (frame["key"] != frame["first_key"])]
    return {
        int(r): (str(w), int(f))
        for r, w, f in zip(hits["row"], hits["written"], hits["first_row"], strict=True)
    }


def in_file_warnings(result: ValidationResult, examples: int = 3) -> list[str]:
    """For `validate`: the rows of the file that share an identity value."""
    name = identity_field(result)
    rejected = set(result.rejected_rows.tolist())
    shared = shared_in_file(result, [r for r in range(result.rows) if r not in rejected])
    if name is None or not shared:
        return []
    lines = result.table.lines
    by_first: dict[int, list[int]] = defaultdict(list)
    for r, (_, first) in shared.items():
        by_first[first].append(r)
    shown = [
        f"{lines[first]} and {', '.join(str(lines[r]) for r in rows[:examples])}"
        + (f" and {len(rows) - examples:,} more" if len(rows) > examples else "")
        + f" ({str(result.cell(first, name))!r})"  # as the first of them writes it
        for first, rows in list(by_first.items())[:examples]
    ]
    return [
        f"{len(shared):,} row(s) give {name} a value an earlier row of another record gives: "
        f"{result.table.unit}s "
        + "; ".join(shown)
        + (" …" if len(by_first) > examples else "")
        + " (--on-duplicate-email warn|skip|error says what import does)"
    ]
