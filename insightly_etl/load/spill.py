"""The validated values of a file read in blocks, kept on disk rather than in memory.

A million rows of 15 columns hold some 250 MB of typed values from validation to the last
write. `SpilledValues` takes each block's values as validation makes them, writes them in
Arrow's IPC format to a temporary file with no name (in TMPDIR, readable by this user only,
gone when the process ends, however it ends), `BATCH_ROWS` rows a batch, and reads back one
batch — the rows planning and sending read next — at a time, or one column of every row.
A file of one block keeps its values in memory, as a DataFrame: `rows_of` reads either.
"""

from __future__ import annotations

import contextlib
import errno
import tempfile
import weakref
from collections.abc import Iterator
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from insightly_etl.errors import TemporaryFolderError

BATCH_ROWS = 4096  # rows a batch: ValidationResult.cell converts so many at once
_CODEC = "lz4" if pa.Codec.is_available("lz4") else None  # a third of the size


class SpilledValues:
    """Typed values, one column per field, rows numbered from 0: `add` a block at a time,
    `finish`, then read. Reads as much of a DataFrame as its readers use: `columns`, `len`,
    iteration over the names, `values[name]` (one column, whole)."""

    def __init__(self) -> None:
        with _as_temporary_folder_error():  # it outlives any `with`: closed with the object
            self._file = tempfile.TemporaryFile(prefix="insightly-etl-values-")  # noqa: SIM115
        weakref.finalize(self, _close, self._file)  # no ResourceWarning when let go of
        self._sink = pa.PythonFile(self._file, mode="w")
        self._writer: ipc.RecordBatchFileWriter | None = None
        self._pending: pa.Table | None = None  # rows short of a whole batch
        self._reader: ipc.RecordBatchFileReader | None = None
        self._rows = 0
        self._schema = pa.schema([])
        # each column's pandas type, by its Arrow type: as the first block gave them (the
        # file's pandas metadata would read a pyarrow string column back as a Python one on
        # pandas 2.2)
        self._dtypes: dict[pa.DataType, object] = {}
        self._size = BATCH_ROWS
        self._batch: tuple[int, pd.DataFrame] = (-1, pd.DataFrame())  # the last read
        self.columns = pd.Index([], dtype=object)

    def add(self, values: pd.DataFrame) -> None:
        """The next rows' values (the same columns, of the same types, every time)."""
        with _as_temporary_folder_error():
            self._add(values)

    def _add(self, values: pd.DataFrame) -> None:
        if self._reader is not None:
            raise ValueError("values added after they were finished")
        if self._writer is None:
            table = pa.Table.from_pandas(values, preserve_index=False)
            options = ipc.IpcWriteOptions(compression=_CODEC)
            self._writer = ipc.new_file(self._sink, table.schema, options=options)
            self._schema, self.columns = table.schema, values.columns
            for name, dtype in values.dtypes.items():
                kind = table.schema.field(name).type
                if self._dtypes.setdefault(kind, dtype) != dtype:
                    raise ValueError(f"{name}: {dtype} is {kind} in Arrow, as another column")
        elif not values.columns.equals(self.columns):
            raise ValueError(f"columns {list(values.columns)}, not {list(self.columns)}")
        else:
            table = pa.Table.from_pandas(values, schema=self._schema, preserve_index=False)
        self._rows += len(values)
        if self._pending is not None:
            table = pa.concat_tables([self._pending, table])
        whole = len(table) - len(table) % self._size
        for start in range(0, whole, self._size):
            self._write(table.slice(start, self._size))
        self._pending = table.slice(whole) if whole < len(table) else None

    def _write(self, table: pa.Table) -> None:
        assert self._writer is not None
        self._writer.write_batch(table.combine_chunks().to_batches()[0])

    def finish(self) -> SpilledValues:
        """Every row added: from now on, read."""
        if self._writer is None:
            raise ValueError("no values were added")
        with _as_temporary_folder_error():
            if self._pending is not None:
                self._write(self._pending)
                self._pending = None
            self._writer.close()
            self._file.flush()  # the footer's last bytes: a full disk says so here
            self._reader = ipc.open_file(pa.PythonFile(self._file, mode="r"))
        return self

    def __len__(self) -> int:
        return self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __getitem__(self, name: str) -> pd.Series:
        """One column of every row (read alone: its buffers only)."""
        self._finished()
        options = ipc.IpcReadOptions(included_fields=[self.columns.get_loc(name)])
        table = ipc.open_file(pa.PythonFile(self._file, mode="r"), options=options).read_all()
        return table.to_pandas(types_mapper=self._dtypes.get)[name]

    def read_rows(self, start: int, stop: int) -> pd.DataFrame:
        """Rows start…stop-1, numbered from 0."""
        reader = self._finished()
        stop = min(stop, self._rows)
        if stop <= start:
            return reader.schema.empty_table().to_pandas(types_mapper=self._dtypes.get)
        first, last = start // self._size, (stop - 1) // self._size
        pieces = [self._read(b) for b in range(first, last + 1)]
        frame = pieces[0] if len(pieces) == 1 else pd.concat(pieces)
        at = first * self._size
        return frame.iloc[start - at : stop - at].reset_index(drop=True)

    def _finished(self) -> ipc.RecordBatchFileReader:
        if self._reader is None:
            raise ValueError("values read before they were finished")
        return self._reader

    def _read(self, batch: int) -> pd.DataFrame:
        if self._batch[0] != batch:
            read = self._finished().get_batch(batch)
            self._batch = (batch, read.to_pandas(types_mapper=self._dtypes.get))
        return self._batch[1]


def _close(file: IO[bytes]) -> None:
    """Closed, what it still holds thrown away: a full disk was said already, and the
    values are of no use to anyone else."""
    with contextlib.suppress(OSError):
        file.close()


@contextlib.contextmanager
def _as_temporary_folder_error() -> Iterator[None]:
    """A temporary folder that cannot take the values, said as such: a bare `No space left
    on device` names no file."""
    try:
        yield
    except OSError as exc:
        folder = tempfile.gettempdir()
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise TemporaryFolderError(
            f"{folder} (the temporary folder, TMPDIR): cannot hold the file's validated "
            f"values: {exc.strerror or exc}",
            hint=(
                f"{'Free some space there' if full else 'Make it writable'}, or set TMPDIR "
                "to a folder with room (about 6 bytes a cell of the file, and for a dry run "
                "300 bytes a row: its copy of the checkpoint is there too), then run again: "
                "this run sent nothing."
            ),
        ) from exc


def rows_of(values: pd.DataFrame | SpilledValues, start: int, stop: int) -> pd.DataFrame:
    """Rows start…stop-1 of values held or spilled."""
    if isinstance(values, SpilledValues):
        return values.read_rows(start, stop)
    return values.iloc[start:stop]
