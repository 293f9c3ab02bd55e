"""The files an import leaves, joined to the input by line number (never by position):
NAME.success.csv (line, action, record id), NAME.errors.csv (its line, state, the HTTP status
when Insightly answered one, the message, and the original row), NAME.unprocessed.csv (rows not yet attempted when a run
stopped early) and NAME.rejects.csv (rows refused by validation)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from insightly_etl.files import write_csv
from insightly_etl.load.checkpoint import Checkpoint
from insightly_etl.load.readers import SourceTable
from insightly_etl.load.report import ROW, with_cells, write_rejects
from insightly_etl.load.source import FileChanged, without_cells
from insightly_etl.load.states import LEFT, PAST, RowState, StepState
from insightly_etl.load.validate import ValidationResult

# rows not written, and why; an unknown one may have been: `reconcile` settles it
NOT_WRITTEN = (
    RowState.FAILED,
    RowState.REJECTED,
    RowState.DUPLICATE,
    RowState.SKIPPED,
    RowState.UNKNOWN,
)


def write_results(
    directory: Path,
    name: str,
    table: SourceTable,
    validation: ValidationResult,
    checkpoint: Checkpoint,
    *,
    stopped: bool,
    dry_run: bool,
    warnings: list[str],
) -> list[Path]:
    """The files of a run. A dry run sends nothing, so it leaves the last real run's list of
    rows not yet attempted (NAME.unprocessed.csv) as it was. A file read in blocks that
    changed since it was read: the files carry line numbers without its cells, and
    `warnings` says so."""
    try:
        return _write(directory, name, table, validation, checkpoint, stopped, dry_run)
    except FileChanged as exc:
        warnings.append(f"{exc}: the results files give each row's line, not the file's cells")
        bare = replace(validation, table=without_cells(validation.table))
        return _write(directory, name, without_cells(table), bare, checkpoint, stopped, dry_run)


def _write(
    directory: Path,
    name: str,
    table: SourceTable,
    validation: ValidationResult,
    checkpoint: Checkpoint,
    stopped: bool,
    dry_run: bool,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rows = checkpoint.rows
    unit = table.unit
    written = []
    done = rows.listed([RowState.DONE], ["line", "action", "record_id"])
    success = pd.DataFrame(
        {
            unit: done["line"],
            "action": done["action"].map(lambda a: PAST.get(a, a) or None),
            "record_id": done["record_id"],
        }
    )
    del done
    written.append(write_csv(success, directory / f"{name}.success.csv"))
    # every row not written, and why: skipped rows (by an option) too
    bad = rows.listed(NOT_WRITTEN, ["row", "line", "state", "status", "message"], not_applied=True)
    # a row whose record is written but a step of it (pipeline, state, link) failed
    steps = [s for s in checkpoint.steps.states().values() if s.state == StepState.FAILED]
    lines = {r: e.line for r, e in rows.of(s.row for s in steps).items()}
    steps = [s for s in steps if s.row in lines]
    index = pd.DataFrame(
        {
            unit: [*bad["line"], *(lines[s.row] for s in steps)],
            "state": ["not applied" if state == RowState.DONE else state for state in bad["state"]]
            + ["step failed"] * len(steps),
            # the HTTP status Insightly answered; empty when the row was decided here (the
            # message says why)
            "status": pd.array([*bad["status"], *(s.status for s in steps)], dtype="Int64"),
            "message": [*bad["message"]] + [f"{s.step}: {s.message or ''}" for s in steps],
            ROW: [*bad["row"], *(s.row for s in steps)],
        }
    )
    errors = with_cells(table, index, why="message", state=str(RowState.REJECTED))
    sep = table.results_sep
    written.append(write_csv(errors, directory / f"{name}.errors.csv", sep=sep))
    unprocessed_path = directory / f"{name}.unprocessed.csv"
    # read only for a stopped real run (a dry run's million rows are all left)
    left = rows.listed(LEFT, ["row", "line"]) if stopped and not dry_run else None
    if left is not None and len(left):
        index = pd.DataFrame({unit: left["line"], ROW: left["row"]})
        written.append(write_csv(with_cells(table, index), unprocessed_path, sep=sep))
    elif unprocessed_path.exists() and not dry_run:
        unprocessed_path.unlink()  # an earlier run's list, now done
    rejects_path = directory / f"{name}.rejects.csv"
    if write_rejects(validation, rejects_path):
        written.append(rejects_path)
    return written
