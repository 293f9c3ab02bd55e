"""Files that appear whole or not at all: written under a temporary name beside the target and
renamed into place when complete (os.replace is atomic on one filesystem). An interrupted run
leaves only `.NAME.partial` files, which the next run removes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from insightly_etl.extract.schema import TIMESTAMP

PARTIAL_SUFFIX = ".partial"
ROW_GROUP_ROWS = 50_000  # buffer small pages into row groups readers like


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def remove_partials(directory: Path) -> None:
    for leftover in directory.glob(f".*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def write_json_atomic(path: Path, value: Any) -> None:
    tmp = partial_path(path)
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def csv_schema(schema: pa.Schema) -> pa.Schema:
    """The same column names; lists and timestamps become text."""
    return pa.schema(
        [
            pa.field(f.name, pa.string() if _needs_text(f.type) else f.type, metadata=f.metadata)
            for f in schema
        ]
    )


def _needs_text(dtype: pa.DataType) -> bool:
    return pa.types.is_list(dtype) or pa.types.is_struct(dtype) or dtype == TIMESTAMP


def to_csv_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Lists of strings as `;`-joined text (MULTISELECT, TAGS), lists of structs as JSON,
    timestamps as `yyyy-MM-dd HH:mm:ss` — what Insightly writes, and what import reads back."""
    dtype = column.type
    if dtype == TIMESTAMP:
        # whole seconds, as the API writes them (%S on milliseconds would add ".000")
        seconds = column.cast(pa.timestamp("s", tz="UTC"), safe=False)
        return pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_list(dtype) and pa.types.is_string(dtype.value_type):
        return pc.binary_join(column, ";")
    if _needs_text(dtype):
        return pa.array(
            [
                None if v is None else json.dumps(v, ensure_ascii=False, default=_json_value)
                for v in column.to_pylist()
            ],
            type=pa.string(),
        )
    return column


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class CsvTableWriter:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.out_schema = csv_schema(schema)
        self.rows = 0
        self._tmp = partial_path(path)
        self._writer = pacsv.CSVWriter(self._tmp, self.out_schema)

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [to_csv_column(batch.column(i)) for i in range(batch.num_columns)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.out_schema))
        self.rows += batch.num_rows

    def commit(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def open_writer(path: Path, schema: pa.Schema, fmt: str) -> TableWriter:
    return ParquetTableWriter(path, schema) if fmt == "parquet" else CsvTableWriter(path, schema)
