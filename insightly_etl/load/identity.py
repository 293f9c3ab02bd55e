"""Rows that would give a record the e-mail (contacts, leads) or the name (organisations)
that another record already has: `--on-duplicate-email warn|skip|error`.

It matters when rows are matched by something else (an external id such as a Salesforce id),
or not matched at all. Records of another system may share an e-mail while Insightly's people
expect one contact per address: such a row would make a second contact with the address, and
every later import matched by e-mail then finds two records and fails on them.

Values are compared as a person would (`match_text`: NFC, trimmed, zero-width characters
removed, case-folded). Validation sees the rows that share a value among themselves; the plan
also sees the records the account already has.

Rows are one record when their match keys are (key_column: each part as the key compares,
case-blind for e-mails and `compare: casefold`, a record id however a program wrote it): the
planner, `validate` and this check read keys through the same functions here.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.api.registry import get_object
from insightly_etl.load.validate import (
    ABSENT,
    INVISIBLE,
    TEXT_DTYPE,
    ValidationResult,
    arrow_text,
)

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


def compared(values: pd.Series, casefold: bool = True) -> pd.Series:
    """`match_text` for a whole column at once (NA stays NA, and so does a text that is
    nothing once tidied): in Arrow for ASCII text (its lower case is its case fold; it has no
    zero-width characters and nothing to normalise), in Python for the rest."""
    # in Arrow as it is held (no Python string a row): a million e-mails are 30 MB there
    array = arrow_text(values.astype(TEXT_DTYPE))
    others = pc.invert(pc.fill_null(pc.string_is_ascii(array), True))
    # Python's \s on ASCII is [\t-\r\x1c-\x20]; RE2's \s leaves out \v and \x1c-\x1f
    simple = pc.utf8_trim(pc.replace_substring_regex(array, "[\t-\r\x1c-\x20]+", " "), " ")
    if casefold:
        simple = pc.utf8_lower(simple)
    if pc.any(others).as_py():  # only these as Python strings
        tidied = [match_text(t, casefold) for t in array.filter(others).to_pylist()]
        simple = pc.replace_with_mask(simple, others, pa.array(tidied, simple.type))
    simple = pc.if_else(pc.equal(simple, ""), None, simple)
    return pd.Series(pd.array(simple, dtype=TEXT_DTYPE), index=values.index)


def _keys(result: ValidationResult, rows: list[int]) -> pd.Series:
    """Each row's record, as the duplicate check and the plan see it: its match key as
    compared (key_column), or (with no key) the row itself."""
    own = pd.Series(rows, dtype="int64").astype("string")  # each row a record of its own
    if result.mapping.match is None:
        return own
    keys = key_column(result).iloc[rows].reset_index(drop=True)
    # a key with an empty part finds no record: each such row makes one of its own
    return keys.fillna(own.radd("\x00row "))


def written_values(result: ValidationResult, name: str, rows: list[int]) -> pd.Series:
    """These rows' values of field `name` as text (NA: none, or cleared)."""
    written = result.values[name].iloc[rows].astype("string")
    cleared = result.cleared.get(name)
    if cleared is not None:
        written = written.mask(pd.Series(cleared[rows], index=written.index))
    return written


def _later_holders(frame: pd.DataFrame) -> pd.DataFrame:
    """Of rows (row, text, written, key) that share a text, those of another record than the
    first row with it, with `first_row`."""
    first = frame.drop_duplicates("text").set_index("text")
    frame = frame.assign(
        first_row=frame["text"].map(first["row"]), first_key=frame["text"].map(first["key"])
    )
    return frame[(frame["row"] != frame["first_row"]) & (frame["key"] != frame["first_key"])]


def shared_in_file(
    result: ValidationResult, rows: list[int], written: pd.Series, text: pd.Series
) -> dict[int, tuple[str, int]]:
    """row -> (value as written, the first row with it): rows that write a value an earlier
    row of another record writes too (rows with the same match key are one record, and are
    the duplicate check's business). `written`, `text`: the rows' values of the identity
    field as written and as compared (written_values, compared). Vectorised: a file may have
    millions of rows."""
    if not rows:
        return {}
    shared = (text.duplicated(keep=False) & text.notna()).to_numpy()
    if not shared.any():  # the usual case: nothing more to compute
        return {}
    picked = [r for r, hit in zip(rows, shared, strict=True) if hit]
    frame = pd.DataFrame(
        {"row": picked, "text": text[shared].to_numpy(), "written": written[shared].to_numpy()}
    )
    frame["key"] = _keys(result, picked).to_numpy()
    hits = _later_holders(frame)
    return {
        int(r): (str(w), int(f))
        for r, w, f in zip(hits["row"], hits["written"], hits["first_row"], strict=True)
    }


def identity_rows(result: ValidationResult, offset: int = 0) -> pa.Table | None:
    """For `validate` of a file in blocks: each valid row that writes the identity field, as
    (row + offset, line, text, written, key), in Arrow (millions of rows, no Python string
    each); None when nothing is watched. Every block's go to in_file_warnings together."""
    name = identity_field(result)
    if name is None:
        return None
    rejected = set(result.rejected_rows.tolist())
    rows = [r for r in range(result.rows) if r not in rejected]
    written = written_values(result, name, rows).reset_index(drop=True)
    text = compared(written)
    kept = pa.array(text.notna().to_numpy())
    numbers = np.asarray(rows, dtype=np.int64)
    key = numbers if result.mapping.match is None else _keys(result, rows).to_numpy(na_value=None)
    # as Arrow holds them (no Python string a row)
    as_compared = arrow_text(text).cast(pa.string())
    as_written = arrow_text(written).cast(pa.string())
    table = pa.table(
        {
            "row": numbers + offset,
            "line": np.asarray(result.table.lines, dtype=np.int64)[numbers],
            "text": as_compared,
            # as written only where that is not the text compared (most e-mails are)
            "written": pc.if_else(pc.equal(as_written, as_compared), None, as_written),
            "key": pa.array(key),
        }
    )
    return table.filter(kept)


def shared_rows(texts: pa.ChunkedArray) -> np.ndarray:
    """Which of millions of texts another row has too (nulls never share). Sorted, a text
    equal to its neighbour's is shared: a sort costs a third of the memory a hash table of
    millions of texts does, and only the rows that share become Python objects after."""
    order = pc.sort_indices(texts)
    text = texts.take(order).combine_chunks()
    same = pc.fill_null(pc.equal(text[1:], text[:-1]), False).to_numpy(zero_copy_only=False)
    del text
    shared_sorted = np.zeros(len(texts), dtype=bool)
    shared_sorted[1:] |= same
    shared_sorted[:-1] |= same
    shared = np.zeros(len(texts), dtype=bool)
    shared[order.to_numpy()] = shared_sorted
    return shared


def in_file_warnings(
    result: ValidationResult, rows: list[pa.Table], examples: int = 3
) -> list[str]:
    """For `validate`: the rows of the file that share an identity value (`rows`: every
    block's identity_rows; `result`: one block's, for the field's name)."""
    name = identity_field(result)
    if name is None or not rows:
        return []
    every = pa.concat_tables(rows)
    if not every.num_rows:
        return []
    shared = shared_rows(every.column("text"))
    if not shared.any():
        return []
    frame = every.filter(pa.array(shared)).to_pandas()
    frame["written"] = frame["written"].fillna(frame["text"])
    hits = _later_holders(frame)
    if not len(hits):
        return []
    line_of = dict(zip(frame["row"], frame["line"], strict=True))
    written_of = dict(zip(frame["row"], frame["written"], strict=True))
    by_first: dict[int, list[int]] = defaultdict(list)
    for r, first in zip(hits["row"], hits["first_row"], strict=True):
        by_first[int(first)].append(int(r))
    shown = [
        f"{line_of[first]} and {', '.join(str(line_of[r]) for r in later[:examples])}"
        + (f" and {len(later) - examples:,} more" if len(later) > examples else "")
        + f" ({str(written_of[first])!r})"  # as the first of them writes it
        for first, later in list(by_first.items())[:examples]
    ]
    return [
        f"{len(hits):,} row(s) give {name} a value an earlier row of another record gives: "
        f"{result.table.unit}s "
        + "; ".join(shown)
        + (" …" if len(by_first) > examples else "")
        + " (--on-duplicate-email warn|skip|error says what import does)"
    ]


# ---------------------------------------------------------------- keys: which rows are one record


def key_folds(result: ValidationResult) -> list[bool]:
    """Per match field: whether its text compares case-blind."""
    match = result.mapping.match
    if match is None:
        return []
    specs = result.specs
    return [
        match.compare == "casefold" or (f in specs and specs[f].is_email) for _, f in match.pairs
    ]


def row_keys(result: ValidationResult, *, fold: bool = True) -> list[tuple[str, ...] | None]:
    """The match key of every row as compared (None: the row has an empty key part);
    `fold=False`: as written, only tidied (what a search sends)."""
    if result.mapping.match is None:
        return [None] * result.rows
    columns = [part.to_numpy(dtype=object, na_value=None) for part in _key_parts(result, fold)]
    return [
        None if any(p is None for p in parts) else parts for parts in zip(*columns, strict=True)
    ]


def key_column(result: ValidationResult, *, fold: bool = True) -> pd.Series:
    """`row_keys` as one text a row, its parts joined by U+001F (NA: no whole key), for
    the files of millions of rows `validate` reads."""
    first, *others = _key_parts(result, fold)
    return first.str.cat(others, sep="\x1f") if others else first


def _key_parts(result: ValidationResult, fold: bool) -> list[pd.Series]:
    """Each part of every row's match key as compared, a column at a time (a million
    rows' keys took 10 s one cell at a time)."""
    match = result.mapping.match
    assert match is not None
    # a column may feed several fields: the key is the value of the match field's own rule
    rules = {(r.column, r.field): r for r in result.rules}
    folds = key_folds(result) if fold else [False] * len(match.pairs)
    parts = []
    for (column, fname), casefold in zip(match.pairs, folds, strict=True):
        if (column, fname) in rules:
            cells = key_texts(result, fname)
        else:
            cells = result.table.frame[column].astype(str).astype("string")
            if fname == get_object(result.mapping.object).id_field:
                cells = _as_record_ids(cells)
        parts.append(compared(cells, casefold))
    return parts


# a record id as programs write a whole number: 2001.0 (pandas, a float column), 2,006 or
# 2.006 (a spreadsheet's thousands), each the id 2001 or 2006
_FLOAT_ID = r"^\s*(\d+)\.0+\s*$"
_GROUPED_ID = r"^\s*\d{1,3}(?:([,.' \u00a0])\d{3})(?:\1\d{3})*\s*$"


def _as_record_ids(cells: pd.Series) -> pd.Series:
    """Ids written as a program writes whole numbers, read as the ids they are; anything
    else stays as written (planning fails a row whose id is no whole number)."""
    cells = cells.str.replace(_FLOAT_ID, r"\1", regex=True)
    grouped = cells.str.match(_GROUPED_ID).fillna(False).astype(bool)
    if grouped.any():
        cells = cells.mask(grouped, cells.str.replace(r"\D", "", regex=True))
    return cells


def key_texts(result: ValidationResult, name: str) -> pd.Series:
    """`key_text` of every row's value of field `name` (NA: none, or cleared)."""
    values = result.values[name]
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == "Int64":
        text = values.astype("string")
    else:  # a number, a yes/no, a date: as one cell at a time gives it
        plain = (None if v is pd.NA else v for v in values.tolist())
        text = pd.Series([key_text(v) for v in plain], index=values.index, dtype="string")
    cleared = result.cleared.get(name)
    return text if cleared is None else text.mask(pd.Series(cleared, index=text.index))


def key_text(value: Any) -> str | None:
    if value is ABSENT or value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
