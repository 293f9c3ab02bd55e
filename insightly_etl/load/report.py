"""What validation tells the user: a summary grouped by column and kind, and the rejects file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from insightly_etl.files import write_csv
from insightly_etl.load.readers import SourceTable
from insightly_etl.load.validate import ValidationResult


@dataclass(frozen=True)
class ErrorGroup:
    column: str
    kind: str
    count: int
    example_line: int
    example: str


def error_groups(result: ValidationResult) -> list[ErrorGroup]:
    groups = []
    errors = result.errors
    if len(errors):
        for (column, kind), part in errors.groupby(["column", "kind"], sort=True):
            first = part.iloc[0]
            groups.append(
                ErrorGroup(
                    str(column), str(kind), len(part), int(first["line"]), str(first["message"])
                )
            )
    if result.table.bad_rows:
        first_bad = result.table.bad_rows[0]
        groups.append(
            ErrorGroup(
                "(row)", "shape", len(result.table.bad_rows), first_bad.line, first_bad.message
            )
        )
    return sorted(groups, key=lambda g: (-g.count, g.column, g.kind))


def row_messages(errors: pd.DataFrame) -> pd.Series:
    """Row -> its errors, each after its column (`Email: 'x' is not a plausible email
    address; Title: …`): two columns' `#N/A` read as one message twice without them."""
    if not len(errors):
        return pd.Series(dtype=object)
    said = errors["column"].astype(str) + ": " + errors["message"].astype(str)
    return said.groupby(errors["row"]).agg("; ".join)


def rejects_frame(result: ValidationResult) -> pd.DataFrame:
    """The original rows that were rejected, with their line and every error of the row."""
    table = result.table
    rows = result.rejected_rows
    messages = row_messages(result.errors)
    index = pd.DataFrame(
        {
            table.unit: [table.lines[r] for r in rows],
            "errors": [messages.get(r, "") for r in rows],
            ROW: list(rows),
        }
    )
    return pd.concat(list(with_cells(table, index, why="errors")), ignore_index=True)


ROW = "\0row"  # an index entry's row of the file's frame; never a column of a results file
_BLOCK = 20_000  # rows per block: a million rows as Python text would be a gigabyte


def with_cells(
    table: SourceTable, index: pd.DataFrame, *, why: str | None = None, **shape: str
) -> Iterator[pd.DataFrame]:
    """A results file a block at a time: `index`'s columns (the line, what happened), then
    the file's own cells of each entry's `ROW`. With `why`, the rows of the wrong shape too
    (they have no cells): their message in column `why`, the `shape` values, and their text
    in a last column `raw`. Sorted by line; one block at least, for the header.

    The file's columns keep their names, so a fixed file imports again with the same
    mapping; one of ours that a column of the file already has (a `state` of US addresses)
    takes a leading `_` until it is free."""
    if why and table.bad_rows:
        sep = table.results_sep
        bad = table.bad_rows
        rows = {table.unit: [b.line for b in bad], why: [b.message for b in bad], **shape}
        rows |= {"raw": [sep.join(b.fields) for b in bad], ROW: -1}
        index = pd.concat([index, pd.DataFrame(rows)], ignore_index=True)
    index = index.sort_values(table.unit, kind="stable", ignore_index=True)
    index[table.unit] = index[table.unit].astype("Int64")  # not 3.0 beside an empty part
    taken = set(table.columns)
    names = {}
    for name in [c for c in index.columns if c != ROW]:
        own = name
        while own in taken:
            own = "_" + own
        names[name] = own
        taken.add(own)
    ours = [c for c in index.columns if c not in (ROW, "raw")]
    for offset, frame, entries in _by_block(table, index):
        for first in range(0, max(len(entries), 1), _BLOCK):
            part = entries.iloc[first : first + _BLOCK]
            rows = part[ROW].to_numpy(dtype=np.int64)
            good = rows >= 0
            cells = frame.iloc[rows[good] - offset].astype(object)
            cells.index = np.flatnonzero(good)
            cells = cells.reindex(range(len(rows)))  # empty for a row of the wrong shape
            own = part[ours].reset_index(drop=True).rename(columns=names)
            block = pd.concat([own, cells], axis=1)
            if "raw" in part:
                block[names["raw"]] = part["raw"].to_numpy()
            yield block


def _by_block(
    table: SourceTable, index: pd.DataFrame
) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(the block's first row, its cells, the index's entries of its rows), in order: the
    table's frame whole, or a file read in blocks (source.py) read again, a block at a time,
    up to the last row an entry needs; none read when no entry needs the file (the header)."""
    if table.reread is None or not len(index):
        frame = table.frame if table.reread is None else pd.DataFrame(columns=table.columns)
        yield 0, frame, index
        return
    rows = index[ROW].to_numpy(dtype=np.int64)
    offset, given = 0, 0
    with contextlib.closing(table.reread()) as blocks:
        for block in blocks:
            size = len(block.frame)
            inside = (rows >= offset) & (rows < offset + size)
            if inside.any():
                yield offset, block.frame, index[inside]
                given += int(inside.sum())
            offset += size
            if given == len(index):
                return
    raise RuntimeError(f"{len(index) - given:,} results entries name no row of the file: a bug")


def default_rejects_path(source: Path) -> Path:
    return source.with_name(source.stem + ".rejects.csv")  # as import names it: NAME.rejects.csv


def write_rejects(result: ValidationResult, path: Path) -> int:
    """UTF-8 with a BOM, so Excel shows accents right; our reader drops the BOM again. With no
    row rejected, an earlier run's file at `path` (fixed since) is removed, so it is never
    taken for fresh results. How many rows were written: 0 when none."""
    frame = rejects_frame(result)
    if not len(frame):
        path.unlink(missing_ok=True)
        return 0
    write_csv(frame, path, sep=result.table.results_sep)
    return len(frame)
