"""The file an import reads, a block of rows at a time (readers.iter_table), so a million rows
are never held whole as text: read once before any request, for each row's line and
fingerprint (the checkpoint's); once more to validate, keeping of each block only its typed
values and the few columns of text planning reads again (plan.reread_columns); and once more
for the cells of the results files (report.with_cells). A file of one block — most files, and
every file only the exact reader reads right (not UTF-8, a ragged row, a workbook) — is read
once and kept whole, as before.

A file that changes between two readings is not mixed with what was read first: before any
write the run stops (exit 2); the results files of a run that wrote are written without the
file's cells, and the run says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa

from insightly_etl.errors import InputError
from insightly_etl.load.account import AccountFacts
from insightly_etl.load.checkpoint import row_digests
from insightly_etl.load.mapping import Mapping
from insightly_etl.load.plan import reread_columns
from insightly_etl.load.readers import NotPlain, SourceTable, iter_table, read_table
from insightly_etl.load.validate import (
    ValidationResult,
    blank_cells,
    concat_results,
    validate_blocks,
    validate_table,
)


class FileChanged(InputError):
    """The file read again is not the file read first."""


@dataclass
class SourceFile:
    path: Path
    # every row's line; the whole file when it is one block, else the header and no rows
    table: SourceTable
    digests: list[str]  # each row's fingerprint (checkpoint/pairing.py)
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    _stat: tuple[int, int] = field(default=(0, 0), repr=False)

    @classmethod
    def read(
        cls,
        path: Path,
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
        sheet: str | None = None,
    ) -> SourceFile:
        options = {"encoding": encoding, "delimiter": delimiter, "sheet": sheet}
        try:
            return cls._in_blocks(path, options)
        except NotPlain:  # a block only the exact reader reads right: the file whole
            whole = read_table(path, **options)
            return cls(path, whole, _fingerprints(whole), **options, _stat=_stat_of(path))

    @classmethod
    def _in_blocks(cls, path: Path, options: dict[str, str | None]) -> SourceFile:
        stat = _stat_of(path)
        blocks = iter_table(path, **options)
        table = next(blocks)
        digests = _fingerprints(table)
        more = False
        for block in blocks:
            if not more:  # a second block: the file is not kept, its lines are
                more = True
                table = replace(table, frame=table.frame.iloc[:0], header=table.columns)
            digests += _fingerprints(block)
            table.lines += block.lines
            table.notes += [n for n in block.notes if n not in table.notes]
        source = cls(path, table, digests, **options, _stat=stat)
        if more:
            table.reread = source.blocks
        return source

    def take_digests(self) -> list[str]:
        """The rows' fingerprints, once: the checkpoint keeps them (a million rows' are 180 MB
        that planning needs room for)."""
        digests, self.digests = self.digests, []
        return digests

    @property
    def whole(self) -> bool:
        """Whether the file is in memory, as one block."""
        return self.table.reread is None

    def blocks(self) -> Iterator[SourceTable]:
        """The file's blocks, read again and checked to be the rows read first."""
        if self.whole:
            yield self.table
            return
        self._unchanged()
        lines, at = self.table.lines, 0
        try:
            for block in iter_table(
                self.path, encoding=self.encoding, delimiter=self.delimiter, sheet=self.sheet
            ):
                if block.lines != lines[at : at + len(block.lines)]:
                    raise self._changed()
                at += len(block.lines)
                yield block
        except (NotPlain, OSError):
            raise self._changed() from None
        if at != len(lines):
            raise self._changed()
        self._unchanged()

    def validate(self, mapping: Mapping, facts: AccountFacts) -> ValidationResult:
        """validate_table of the whole file, a block at a time: of each block only its typed
        values are kept, and the columns planning reads again."""
        if self.whole:
            return validate_table(self.table, mapping, facts)
        parts: list[ValidationResult] = []
        kept: list[str] | None = None
        for result in validate_blocks(self.blocks(), mapping, lambda: facts):
            kept = reread_columns(result) if kept is None else kept
            parts.append(
                replace(result, table=replace(result.table, frame=result.table.frame[kept]))
            )
        frame = pd.concat([p.table.frame for p in parts], ignore_index=True)
        result = concat_results(parts, replace(self.table, frame=frame))
        del parts
        pa.default_memory_pool().release_unused()  # the blocks' text, for planning to use
        return result

    def _unchanged(self) -> None:
        if _stat_of(self.path) != self._stat:
            raise self._changed()

    def _changed(self) -> FileChanged:
        return FileChanged(
            f"{self.path}: changed while it was imported (it is read again, a block at a time, "
            "after it was first read)",
            hint="Import a copy that nothing else writes to, or run the import again.",
        )


def without_cells(table: SourceTable) -> SourceTable:
    """The table with none of the file's columns: results files of line numbers alone."""
    return replace(table, frame=pd.DataFrame(index=range(len(table.lines))), header=[], reread=None)


def _fingerprints(table: SourceTable) -> list[str]:
    return row_digests(table.frame, blank=blank_cells)


def _stat_of(path: Path) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)
