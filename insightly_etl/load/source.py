"""The file an import reads, a block of rows at a time (readers.iter_table: a UTF-8 CSV 16 MB
at a time, a Parquet file 100,000 rows at a time), so a million rows are never held whole as
text: read once before any request, for each row's line and fingerprint (the checkpoint's);
again to validate, keeping of each block only its typed values and the few columns of text
planning reads (plan.planning_columns); and again for the cells of each results file that
has rows (report.with_cells, up to the last row it needs). A file of one block — most files,
and every file only the exact reader reads right (not UTF-8, a ragged row, a workbook) — is
read once and kept whole, as before.

Each block read again must be the block read first, cell for cell (a hash of its rows): a
file changed in between is not mixed with what was read first. Found while validating, the
run stops before any write (exit 2); found by a results file, the results files are written
without the file's cells, said. A file read whole is read once: nothing to mix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa

from insightly_etl.errors import InputError
from insightly_etl.load.account import AccountFacts
from insightly_etl.load.checkpoint import Digests, row_digests
from insightly_etl.load.mapping import Mapping
from insightly_etl.load.plan import planning_columns
from insightly_etl.load.readers import (
    NotPlain,
    SourceTable,
    iter_table,
    larger_than_a_block,
    read_table,
)
from insightly_etl.load.spill import SpilledValues
from insightly_etl.load.validate import (
    ValidationResult,
    blank_cells,
    concat_results,
    validate_blocks,
    validate_table,
)
from insightly_etl.progress import Progress, shown


class FileChanged(InputError):
    """The file read again is not the file read first."""


@dataclass
class SourceFile:
    """A file to import: its rows' lines and fingerprints, and its blocks to read again."""

    path: Path
    # every row's line; the whole file when it is one block, else its header and no row
    table: SourceTable
    digests: Sequence[str]  # each row's fingerprint (checkpoint/pairing.py), until taken
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    hashes: list[bytes] = field(default_factory=list, repr=False)  # each block's, read first
    _taken: bool = field(default=False, repr=False)

    @classmethod
    def read(
        cls,
        path: Path,
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
        sheet: str | None = None,
        progress: Progress | None = None,
    ) -> SourceFile:
        """`progress`: the rows read, for a file of more than one block."""
        source = cls(path, SourceTable(path, pd.DataFrame(), []), [], encoding, delimiter, sheet)
        big = larger_than_a_block(path)
        try:
            with shown(progress, f"read {path.name}", when=big) as advance:
                source._first_reading(advance)
        except NotPlain:  # a block only the exact reader reads right: the file whole
            source.table = read_table(path, encoding=encoding, delimiter=delimiter, sheet=sheet)
            source.digests, source.hashes = _fingerprints(source.table), []
        return source

    def _first_reading(self, advance: Callable[[int], None]) -> None:
        blocks = iter_table(
            self.path, encoding=self.encoding, delimiter=self.delimiter, sheet=self.sheet
        )
        table = next(blocks)
        digests, hashes = [_fingerprints(table)], [_hash(table)]
        advance(len(table.lines))
        for block in blocks:
            if len(hashes) == 1:  # a second block: the file is not kept, its lines are
                empty = pd.DataFrame(columns=table.columns)  # iloc[:0] kept the block's buffers
                table = replace(table, frame=empty, header=table.columns)
            digests.append(_fingerprints(block))
            hashes.append(_hash(block))
            table.lines += block.lines
            table.notes += [n for n in block.notes if n not in table.notes]
            advance(len(block.lines))
        self.table, self.digests = table, Digests.joined(digests)
        if len(hashes) > 1:
            self.hashes, table.reread = hashes, self.read_blocks

    def take_digests(self) -> Sequence[str]:
        """The rows' fingerprints, once: the checkpoint keeps them (a million rows' are 180 MB
        that planning needs room for)."""
        if self._taken:
            raise RuntimeError(f"{self.path}: its fingerprints were given to a checkpoint")
        digests, self.digests, self._taken = self.digests, [], True
        return digests

    @property
    def whole(self) -> bool:
        """Whether the file is in memory, as one block."""
        return self.table.reread is None

    def read_blocks(self) -> Generator[SourceTable, None, None]:
        """The file's blocks, read again, each checked to be the block read first."""
        if self.whole:
            yield self.table
            return
        lines, at = self.table.lines, 0
        try:
            blocks = iter_table(
                self.path, encoding=self.encoding, delimiter=self.delimiter, sheet=self.sheet
            )
            for n, block in enumerate(blocks):
                if n >= len(self.hashes) or _hash(block) != self.hashes[n]:
                    raise self._changed()
                if block.lines != lines[at : at + len(block.lines)]:
                    raise self._changed()
                at += len(block.lines)
                yield block
        except FileChanged:
            raise
        except (NotPlain, OSError, InputError):  # a file no longer read as it was, or gone
            raise self._changed() from None
        if at != len(lines):
            raise self._changed()

    def validate(
        self, mapping: Mapping, facts: AccountFacts, progress: Progress | None = None
    ) -> ValidationResult:
        """validate_table of the whole file, a block at a time: of each block its typed values
        are kept, on disk (spill.py), and in memory the columns planning reads. `progress`:
        rows, a block at a time."""
        if self.whole:
            return validate_table(self.table, mapping, facts)
        parts: list[ValidationResult] = []
        kept: list[str] | None = None
        spilled: SpilledValues | None = None
        label = f"validate {self.path.name}"
        with shown(progress, label, len(self.table.lines)) as advance:
            for result in validate_blocks(self.read_blocks(), mapping, lambda: facts):
                if kept is None:
                    kept = planning_columns(result)
                    spilled = SpilledValues() if len(result.values.columns) else None
                values = result.values
                if spilled is not None:  # the block's rows, without their values
                    assert isinstance(values, pd.DataFrame)
                    spilled.add(values)
                    values = values[[]]
                table = replace(result.table, frame=result.table.frame[kept])
                parts.append(replace(result, table=table, values=values))
                advance(result.rows)
        frame = pd.concat([p.table.frame for p in parts], ignore_index=True)
        table = replace(self.table, frame=frame)
        result = concat_results(parts, table, None if spilled is None else spilled.finish())
        del parts
        pa.default_memory_pool().release_unused()  # the blocks' text, for planning to use
        return result

    def _changed(self) -> FileChanged:
        return FileChanged(
            f"{self.path}: changed while it was imported (it is read again, a block at a time, "
            "after it was first read)",
            hint="Import a copy that nothing else writes to, or run the import again.",
        )


def without_cells(table: SourceTable) -> SourceTable:
    """The table with none of the file's columns: results files of line numbers alone."""
    return replace(table, frame=pd.DataFrame(index=range(len(table.lines))), header=[], reread=None)


def _fingerprints(table: SourceTable) -> Digests:
    return row_digests(table.frame, blank=blank_cells)


def _hash(table: SourceTable) -> bytes:
    """The block's header and cells, in order (a second a million rows)."""
    digest = hashlib.blake2b("\0".join(table.columns).encode(), digest_size=16)
    digest.update(pd.util.hash_pandas_object(table.frame, index=False).to_numpy().tobytes())
    return digest.digest()
