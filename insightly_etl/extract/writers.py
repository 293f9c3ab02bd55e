"""Export's table writers, Parquet and CSV, page by page into files that appear whole or not
at all (see `insightly_etl.files`); CSV cells that a spreadsheet would run as formulas are
escaped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from insightly_etl.files import (  # re-exported: the extract side's one import for files
    csv_schema,
    escape_column,
    partial_path,
    remove_partials,
    to_csv_column,
    write_json_atomic,
)

__all__ = ["open_writer", "partial_path", "remove_partials", "write_json_atomic"]

ROW_GROUP_ROWS = 50_000  # buffer small pages into row groups readers like


class TableWriter(Protocol):
    path: Path
    rows: int

    def write(self, batch: pa.RecordBatch) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class ParquetTableWriter:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._tmp = partial_path(path)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_batches(self._buffer, schema=self.schema))
            self._buffer, self._buffered = [], 0

    def commit(self) -> None:
        self._flush()
        self._writer.close()
        _publish(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


class CsvTableWriter:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.out_schema = csv_schema(schema)
        self.rows = 0
        self._tmp = partial_path(path)
        self._writer = pacsv.CSVWriter(self._tmp, self.out_schema)

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [escape_column(to_csv_column(batch.column(i))) for i in range(batch.num_columns)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.out_schema))
        self.rows += batch.num_rows

    def commit(self) -> None:
        self._writer.close()
        _publish(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> None:
    """Rename into place; if that fails (a directory in the way, a read-only target), the
    partial file goes too: nothing half-made is left behind."""
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def open_writer(path: Path, schema: pa.Schema, fmt: str) -> TableWriter:
    return ParquetTableWriter(path, schema) if fmt == "parquet" else CsvTableWriter(path, schema)
