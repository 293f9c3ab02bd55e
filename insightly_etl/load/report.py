"""What validation tells the user: a summary grouped by column and kind, and the rejects file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from insightly_etl.files import write_csv
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


def rejects_frame(result: ValidationResult) -> pd.DataFrame:
    """The original rows that were rejected, with their line and every error of the row."""
    table = result.table
    unit = table.unit
    rows = result.rejected_rows
    messages = (
        result.errors.groupby("row")["message"].agg(lambda m: "; ".join(m))
        if len(result.errors)
        else pd.Series(dtype=object)
    )
    part = table.frame.iloc[rows].astype(object).copy()
    part.insert(0, "errors", [messages.get(r, "") for r in rows])
    part.insert(0, unit, [table.lines[r] for r in rows])
    frames = [part]
    if table.bad_rows:
        sep = table.delimiter or ","
        bad = pd.DataFrame(
            {
                unit: [b.line for b in table.bad_rows],
                "errors": [b.message for b in table.bad_rows],
                "raw": [sep.join(b.fields) for b in table.bad_rows],
            }
        )
        frames.append(bad)
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else part
    out[unit] = out[unit].astype("Int64")  # an empty part must not make line numbers 3.0
    return out.sort_values(unit, kind="stable").reset_index(drop=True)


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
    write_csv(frame, path)
    return len(frame)
