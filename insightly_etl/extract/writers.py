"""Export's table writers, Parquet and CSV, page by page into files that appear whole or not
at all (see `insightly_etl.files`); CSV cells that a spreadsheet would run as formulas are
escaped."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import pyarrow as pa
import pyarrow.compute as pc
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

__all__ = ["CSV_DIALECTS", "open_writer", "partial_path", "remove_partials", "write_json_atomic"]

ROW_GROUP_ROWS = 50_000  # buffer small pages into row groups readers like


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    eol: str
    bom: bool  # UTF-8 byte-order mark: Excel on Windows reads UTF-8 only with it ("ZoÃ«")
    decimal: str  # the decimal mark of numbers


CSV_DIALECTS = {
    # Excel with a point for decimals: commas, CRLF, a BOM
    "excel": CsvDialect(",", "\r\n", True, "."),
    # Excel in Germany, France, the Nordics …: semicolons and decimal commas, or every number
    # turns into text or a date
    "excel-eu": CsvDialect(";", "\r\n", True, ","),
    # for programs: commas, LF, no BOM, decimal points
    "plain": CsvDialect(",", "\n", False, "."),
}


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
    def __init__(self, path: Path, schema: pa.Schema, dialect: CsvDialect) -> None:
        self.path = path
        self.schema = schema
        self.dialect = dialect
        self._comma = [pa.types.is_floating(f.type) and dialect.decimal == "," for f in schema]
        self.out_schema = csv_schema(schema, text=self._comma)
        self.rows = 0
        self._tmp = partial_path(path)
        self._file: BinaryIO = self._tmp.open("wb")
        if dialect.bom:
            self._file.write("\ufeff".encode())
        options = pacsv.WriteOptions(delimiter=dialect.delimiter, eol=dialect.eol)
        self._writer = pacsv.CSVWriter(self._file, self.out_schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        columns = []
        for i in range(batch.num_columns):
            column = to_csv_column(batch.column(i))
            if self._comma[i]:
                column = pc.replace_substring(pc.cast(column, pa.string()), ".", ",")
            columns.append(escape_column(column))
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.out_schema))
        self.rows += batch.num_rows

    def commit(self) -> None:
        self._writer.close()
        self._file.close()
        _publish(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> None:
    """Rename into place; if that fails (a directory in the way, a read-only target), the
    partial file goes too: nothing half-made is left behind."""
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def open_writer(path: Path, schema: pa.Schema, fmt: str, dialect: str = "excel") -> TableWriter:
    if fmt == "parquet":
        return ParquetTableWriter(path, schema)
    return CsvTableWriter(path, schema, CSV_DIALECTS[dialect])
