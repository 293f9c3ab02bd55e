"""Export's table writers, Parquet, CSV and XLSX, page by page into files that appear whole
or not at all (see `insightly_etl.files`); cells that a spreadsheet would run as formulas are
escaped (CSV) or written as text (XLSX)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import WorkbookAlreadySaved

from insightly_etl.errors import InputError
from insightly_etl.files import (  # re-exported: the extract side's one import for files
    ESCAPED_FORMULA,
    csv_schema,
    escape_column,
    in_a_cell,
    naming,
    open_partial,
    partial_path,
    publish,
    remove_partials,
    to_csv_column,
    write_atomic,
    write_json_atomic,
)

__all__ = [
    "CSV_DIALECTS",
    "open_writer",
    "partial_path",
    "remove_partials",
    "write_atomic",
    "write_json_atomic",
]

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
    def warnings(self, name: str) -> list[str]:
        """What the file of object `name` does not hold as the records have it."""
        ...


@contextlib.contextmanager
def _or_discarded(tmp: Path, path: Path, *closers: Any) -> Iterator[None]:
    """Closing a partial file: on failure it is discarded (_discard), and an error of the
    disk's that names no file (a full one, as pyarrow reports it) names the file written."""
    try:
        yield
    except BaseException as exc:
        _discard(tmp, *closers)
        if isinstance(exc, OSError):
            raise naming(exc, path) from exc
        raise


def _discard(tmp: Path, *closers: Any) -> None:
    """A writer's partial file, gone whatever closing it does: on a full disk closing
    flushes, fails again, and the file was left behind, holding the space the folder's
    manifest then had no room for (the stop went unrecorded)."""
    try:
        for close in closers:
            with contextlib.suppress(OSError):
                close()
    finally:
        tmp.unlink(missing_ok=True)


class ParquetTableWriter:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._tmp, self._file = open_partial(path)
        self._writer = pq.ParquetWriter(self._file, schema, compression="zstd")
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

    def warnings(self, name: str) -> list[str]:
        return []  # holds every value as the records have it

    def commit(self) -> None:
        publish(self.close_partial(), self.path)

    def close_partial(self) -> Path:
        """Everything written, closed in its partial file, which is not published: the caller
        takes it from there (a Delta table's next version)."""
        with _or_discarded(self._tmp, self.path, self._writer.close, self._file.close):
            self._flush()
            self._writer.close()
            self._file.close()
        return self._tmp

    def abort(self) -> None:
        _discard(self._tmp, self._writer.close, self._file.close)

    def leave_out(self, key: str, ids: set[int], copy_to: TableWriter | None = None) -> int:
        """Take the rows whose `key` is one of `ids` out of what was written, and go on
        writing after them: records read, then deleted before the export ended. The rows
        kept are copied through a new partial file a row group at a time (memory stays
        flat); `copy_to` gets them too (a CSV or XLSX file, which cannot be taken rows out
        of, written again from this one). How many rows went."""
        self._flush()
        self._writer.close()
        self._file.close()
        # a partial name too: a run killed while it copies leaves nothing the next one keeps
        aside = partial_path(self.path.with_name(f"{self.path.name}.was"))
        os.replace(self._tmp, aside)  # the name only: nothing under it is followed
        gone = pa.array(sorted(ids), self.schema.field(key).type)
        try:
            self._tmp, self._file = open_partial(self.path)
            self._writer = pq.ParquetWriter(self._file, self.schema, compression="zstd")
            had, self.rows = self.rows, 0
            for batch in pq.ParquetFile(aside).iter_batches(batch_size=ROW_GROUP_ROWS):
                kept = batch.filter(pc.invert(pc.is_in(batch.column(key), value_set=gone)))
                if kept.num_rows:
                    kept = pa.RecordBatch.from_arrays(kept.columns, schema=self.schema)
                    self.write(kept)
                    if copy_to is not None:
                        copy_to.write(kept)
        finally:
            aside.unlink(missing_ok=True)
        return had - self.rows


def _read_delta(path: Path, columns: list[str] | None) -> pa.Table:
    deltalake = _deltalake()
    try:
        dataset = deltalake.DeltaTable(str(path)).to_pyarrow_dataset()
        if columns is not None:
            columns = [c for c in columns if c in dataset.schema.names]
        return dataset.to_table(columns=columns)
    except (deltalake.exceptions.DeltaError, pa.ArrowException, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"{path} cannot be read as a Delta table ({first[:160]})",
            hint="It is not the table an earlier export wrote: move it away, then run a full "
            "export (without --incremental).",
        ) from None


def table_file(stem: str, ext: str, layout: str) -> str:
    """Where a table lies in the export folder: `contacts.parquet` (flat), or
    `contacts/part-00000.parquet` (lake: one folder per table, as Spark, Trino and DuckDB's
    `read_parquet('contacts/*.parquet')` read a table)."""
    return f"{stem}/part-00000.{ext}" if layout == "lake" else f"{stem}.{ext}"


def _deltalake() -> Any:
    """The `deltalake` package (delta-rs), an optional extra: imported only for Delta tables."""
    try:
        import deltalake
    except ImportError:
        raise InputError(
            "--table-format delta needs the deltalake package",
            hint="pip install 'insightly-etl[delta]'",
        ) from None
    return deltalake


def deltalake_available() -> None:
    """Refused at once (exit 2, how to install it) when the deltalake package is missing."""
    _deltalake()


def is_delta_table(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


UNCHANGED_UP_TO = 200_000  # DeltaTableWriter compares tables of up to this many rows


class DeltaTableWriter:
    """A full export's Delta table: the batches gather in a partial Parquet file beside it,
    then become one table version that replaces the rows (and the schema: a custom field's
    type may have changed) with `mode="overwrite"`. Nothing is committed on abort."""

    def __init__(self, path: Path, schema: pa.Schema, *, compare: bool = False) -> None:
        self.path, self.schema, self.rows = path, schema, 0
        self.compare = compare  # a list every run reads in full: no version when unchanged
        self._stage = ParquetTableWriter(path.with_name(f"{path.name}.parquet"), schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._stage.write(batch)
        self.rows += batch.num_rows

    def warnings(self, name: str) -> list[str]:
        return []  # holds every value as the records have it

    def commit(self) -> None:
        staged = self._stage.close_partial()
        deltalake = _deltalake()
        try:
            if self._unchanged(staged):
                return  # a run with no change adds no version
            batches = pq.ParquetFile(staged).iter_batches(batch_size=ROW_GROUP_ROWS)
            deltalake.write_deltalake(
                str(self.path),
                pa.RecordBatchReader.from_batches(self.schema, batches),
                mode="overwrite",
                schema_mode="overwrite",
            )
        except deltalake.exceptions.DeltaError as exc:
            raise _damaged_delta(self.path, exc) from None
        finally:
            staged.unlink(missing_ok=True)

    def _unchanged(self, staged: Path) -> bool:
        """Whether the table holds these very rows already: the lists an incremental run
        reads in full (pipelines, countries) mostly do. Compared only for those, and only up
        to UNCHANGED_UP_TO rows, which fit in memory twice; a larger one is written."""
        if not self.compare or self.rows > UNCHANGED_UP_TO or not is_delta_table(self.path):
            return False
        now = pq.read_table(staged)
        before = _deltalake().DeltaTable(str(self.path)).to_pyarrow_table()
        if before.column_names != now.column_names or before.num_rows != now.num_rows:
            return False
        try:  # Delta keeps microseconds and no field metadata: compared in this schema
            before = before.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return False  # a column's type changed
        key = self.schema.names[0]  # the record id
        return bool(now.sort_by(key).equals(before.sort_by(key)))

    def abort(self) -> None:
        self._stage.abort()

    def leave_out(self, key: str, ids: set[int], copy_to: TableWriter | None = None) -> int:
        gone = self._stage.leave_out(key, ids, copy_to)
        self.rows -= gone
        return gone


def merge_delta(
    path: Path, changed: pa.Table, gone: set[int], id_field: str, merged: pa.Table
) -> None:
    """An incremental run as one Delta table version: a MERGE on the record id that upserts
    the changed records and deletes the deleted ones; columns added since (new custom fields)
    join the table's schema. A MERGE cannot change a column's type: when one changed, the
    version is an overwrite with the merged snapshot instead, as the Parquet path rewrites its
    file."""
    deltalake = _deltalake()
    if not changed.num_rows and not gone:
        return  # no change: no version
    deletes = pa.Table.from_pylist([{id_field: i} for i in sorted(gone)], changed.schema)
    source = pa.concat_tables([changed, deletes]).append_column(
        "_op", pa.array(["upsert"] * changed.num_rows + ["delete"] * len(gone), pa.string())
    )
    columns = {f"`{c}`": f"s.`{c}`" for c in changed.column_names}
    try:
        (
            deltalake.DeltaTable(str(path))
            .merge(
                source,
                predicate=f"t.`{id_field}` = s.`{id_field}`",
                source_alias="s",
                target_alias="t",
                merge_schema=True,
            )
            .when_matched_delete(predicate="s._op = 'delete'")
            .when_matched_update(updates=columns, predicate="s._op = 'upsert'")
            .when_not_matched_insert(updates=columns, predicate="s._op = 'upsert'")
            .execute()
        )
    except deltalake.exceptions.DeltaError:  # a type changed: the whole snapshot, one version
        try:
            deltalake.write_deltalake(str(path), merged, mode="overwrite", schema_mode="overwrite")
        except deltalake.exceptions.DeltaError as exc:
            raise _damaged_delta(path, exc) from None


def _damaged_delta(path: Path, exc: Exception) -> InputError:
    """delta-rs's message runs over many lines (a Rust backtrace): its first line is enough."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InputError(
        f"{path} is not a Delta table this tool can write ({first[:160]})",
        hint="Its log (_delta_log) is damaged or another writer's: move the table away (keep "
        "it if you need its history), then run a full export.",
    )


_NOT_EARLIER = (
    "It is not the file an earlier export wrote: move it away, then run a full export "
    "(without --incremental)."
)


def read_earlier(
    path: Path,
    columns: list[str] | None = None,
    *,
    key: str | None = None,
    of: str | None = None,
) -> pa.Table:
    """A Parquet file (or Delta table) an earlier run wrote into the export folder. One that
    is not (overwritten, truncated by a full disk, put there by hand, another object's file
    under this one's name: no `key` column, or rows without one) is the user's to move
    away: a one-line error naming it, never a traceback or a request for record `None`."""
    if path.is_dir():
        table = _read_delta(path, columns)
    else:
        try:
            schema = pq.read_schema(path)
            if columns is not None:
                columns = [c for c in columns if c in schema.names]
            table = pq.read_table(path, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(
                f"{path} cannot be read as Parquet ({str(exc)[:120]})", hint=_NOT_EARLIER
            ) from None
        written = (schema.metadata or {}).get(b"insightly_object")
        if of is not None and written is not None and written.decode(errors="replace") != of:
            raise InputError(  # a custom object's file under another's name: both RECORD_ID
                f"{path} is not an export of this object: it holds "
                f"{written.decode(errors='replace')[:60]} records",
                hint=_NOT_EARLIER,
            )
    if key is not None and (why := _not_ids(table, key)):
        raise InputError(f"{path} is not an export of this object: {why}", hint=_NOT_EARLIER)
    return table


def _not_ids(table: pa.Table, key: str) -> str | None:
    """Why `key` is not a column of record ids as an export writes them (each row a record
    once, by a positive whole number), or None. A file with every row twice, or ids negated,
    was merged as it was: its copies kept, and records looked for by ids no record has."""
    if key not in table.column_names:
        return f"it has no {key} column"
    ids = table[key]
    if ids.null_count:
        return f"{ids.null_count:,} of its rows have no {key}"
    if not len(ids):
        return None
    if not pa.types.is_integer(ids.type):
        return f"its {key} column holds {ids.type}, not record ids"
    if (smallest := pc.min(ids).as_py()) < 1:
        return f"it has {key} {smallest}, and records' ids are positive"
    if (twice := len(ids) - pc.count_distinct(ids).as_py()) > 0:
        return f"{twice:,} of its rows repeat another row's {key}"
    return None


def _has_eol_option() -> bool:
    try:
        pacsv.WriteOptions(eol="\r\n")
    except TypeError:
        return False
    return True


_EOL_OPTION = _has_eol_option()  # pyarrow's CSV writer takes `eol` in its newer releases


class _EndOfLine:
    """A file that writes each end of a CSV row (an LF outside quotes) as `eol`, leaving line
    breaks inside a quoted cell as they are. Quotes inside a cell come doubled, so the count of
    quotes so far says whether a byte is inside one, across however the writes are cut."""

    def __init__(self, file: BinaryIO, eol: bytes) -> None:
        self.file, self.eol, self.inside = file, eol, False
        self.closed = False

    def write(self, data: bytes) -> int:
        parts = bytes(data).split(b'"')
        out = []
        for n, part in enumerate(parts):
            if n:
                self.inside = not self.inside
            out.append(part if self.inside else part.replace(b"\n", self.eol))
        self.file.write(b'"'.join(out))
        return len(data)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.closed = True  # the writer's own file is closed by its owner


class CsvTableWriter:
    def __init__(self, path: Path, schema: pa.Schema, dialect: CsvDialect) -> None:
        self.path = path
        self.schema = schema
        self.dialect = dialect
        self._comma = [pa.types.is_floating(f.type) and dialect.decimal == "," for f in schema]
        self.out_schema = csv_schema(schema, text=self._comma)
        self.rows = 0
        self._tmp, self._file = open_partial(path)
        if dialect.bom:
            self._file.write("\ufeff".encode())
        sink: Any = self._file
        if _EOL_OPTION:
            options = pacsv.WriteOptions(delimiter=dialect.delimiter, eol=dialect.eol)
        else:  # pyarrow before `eol`: rows end in LF, turned into the dialect's end of line
            options = pacsv.WriteOptions(delimiter=dialect.delimiter)
            sink = _EndOfLine(self._file, dialect.eol.encode()) if dialect.eol != "\n" else sink
        self._writer = pacsv.CSVWriter(sink, self.out_schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        columns = []
        for i in range(batch.num_columns):
            column = to_csv_column(batch.column(i))
            if self._comma[i]:  # a number, never escaped: `'-1234,5` would be a text
                columns.append(pc.replace_substring(pc.cast(column, pa.string()), ".", ","))
            else:
                columns.append(escape_column(column))
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.out_schema))
        self.rows += batch.num_rows

    def warnings(self, name: str) -> list[str]:
        return []  # holds every value as the records have it

    def commit(self) -> None:
        with _or_discarded(self._tmp, self.path, self._writer.close, self._file.close):
            self._writer.close()
            self._file.close()
        publish(self._tmp, self.path)

    def abort(self) -> None:
        _discard(self._tmp, self._writer.close, self._file.close)


EXCEL_ROWS = 1_048_576  # a sheet's rows, the header included
EXCEL_FIRST_YEAR = 1900  # a date before it is no date to Excel (shown as #####)
TEXT_FORMAT = "@"  # a cell's Text format: what is typed into it is kept as typed


class XlsxTableWriter:
    """One sheet named after the object, streamed (openpyxl's write-only mode: rows go to disk,
    memory stays flat). Days are dates and instants date-times (UTC: Excel has no zones), ids
    and numbers numbers, lists `;`-joined, nested items JSON, every text a text — never a
    formula. Text longer than a cell holds is cut there, and control characters XML cannot
    hold become U+FFFD, each counted and said (`warnings`); a table longer than a sheet is refused
    before it is written."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self.cut: dict[str, int] = {}  # column -> texts cut at CELL_CHARACTERS characters
        self.replaced: dict[str, int] = {}  # column -> texts whose control characters went
        self._tmp = partial_path(path)  # opened when saved (open_partial)
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(title=_sheet_title(path.stem))
        for i, f in enumerate(schema, start=1):  # before the first row: the sheet's <cols>
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or _is_list(f):
                # Text, as the column's cells are: `01234` typed into one, empty or not, stays
                # `01234` (General made it the number 1234, and the postcode lost its zero)
                self._sheet.column_dimensions[get_column_letter(i)].number_format = TEXT_FORMAT
        self._sheet.append([self._text(name, name) for name in schema.names])
        self._formats = [_number_format(f.type) for f in schema]

    def write(self, batch: pa.RecordBatch) -> None:
        if self.rows + batch.num_rows >= EXCEL_ROWS:
            raise InputError(
                f"{self.path.name}: more than {EXCEL_ROWS - 1:,} rows do not fit a spreadsheet",
                hint="Export this object as --format parquet or csv.",
            )
        names = self.schema.names
        for record in batch.to_pylist():
            self._sheet.append(
                [
                    self._cell(names[i], record[names[i]], self._formats[i])
                    for i in range(len(names))
                ]
            )
        self.rows += batch.num_rows

    def _cell(self, column: str, value: Any, number_format: str | None) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, datetime):
            value = value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(value, date) and value.year < EXCEL_FIRST_YEAR:
            # no date a workbook can show (.NET's 0001-01-01 for none): its text, not #####;
            # a day column's as a day
            if isinstance(value, datetime) and number_format != "yyyy-mm-dd":
                return self._text(column, value.isoformat(sep=" ", timespec="seconds"))
            day = value.date() if isinstance(value, datetime) else value
            return self._text(column, day.isoformat())
        if isinstance(value, date):
            cell = WriteOnlyCell(self._sheet, value)
            cell.number_format = number_format or "yyyy-mm-dd"
            return cell
        if isinstance(value, list):
            if all(isinstance(v, str) for v in value):
                value = ";".join(value)
            else:
                value = json.dumps(value, ensure_ascii=False, default=str)
        return self._text(column, str(value))

    def _text(self, column: str, text: str) -> WriteOnlyCell:
        text, replaced = ILLEGAL_CHARACTERS_RE.subn("\ufffd", text)  # ones XML cannot hold
        if replaced:
            self.replaced[column] = self.replaced.get(column, 0) + 1
        if _READ_AS_ESCAPED.match(text):  # `'+x` is read back as `+x` (files.unescape_frame,
            # for a CSV of ours saved as a workbook): one more quote, and it reads as itself
            text = "'" + text
        if (kept := in_a_cell(text)) != text:
            self.cut[column] = self.cut.get(column, 0) + 1
            text = kept
        cell = WriteOnlyCell(self._sheet, text)
        cell.data_type = "s"  # "=1+1" stays text: openpyxl would otherwise write a formula
        cell.number_format = TEXT_FORMAT
        return cell

    def warnings(self, name: str) -> list[str]:
        """What the sheet of object `name` does not hold as the record has it, by column."""
        cut = (
            f"{name}.{column}: {count} text(s) longer than a spreadsheet cell holds (32,767 "
            "characters as Excel counts them, an emoji two) were cut there; Parquet and CSV "
            "keep them whole"
            for column, count in sorted(self.cut.items())
        )
        replaced = (
            f"{name}.{column}: {count} text(s) held control characters a spreadsheet cannot "
            "hold (below U+0020, other than tab and line breaks), each written as U+FFFD (�); "
            "Parquet and CSV keep them"
            for column, count in sorted(self.replaced.items())
        )
        return [*cut, *replaced]

    def commit(self) -> None:
        self._tmp, file = open_partial(self.path)
        with _or_discarded(self._tmp, self.path, file.close), file:
            self._book.save(file)
        publish(self._tmp, self.path)

    def abort(self) -> None:
        _discard(self._tmp, self._end_sheet)

    def _end_sheet(self) -> None:
        with contextlib.suppress(WorkbookAlreadySaved):  # aborted before: once is enough
            self._sheet.close()  # ends its temporary file; nothing is saved


_READ_AS_ESCAPED = re.compile(ESCAPED_FORMULA)


def _sheet_title(name: str) -> str:
    """Excel's rules: at most 31 characters, none of [ ] : * ? / or a backslash."""
    return "".join("_" if c in "[]:*?/\\" else c for c in name)[:31] or "export"


def _is_list(f: pa.Field) -> bool:
    return pa.types.is_list(f.type) or pa.types.is_large_list(f.type)


def _number_format(dtype: pa.DataType) -> str | None:
    if pa.types.is_date(dtype):
        return "yyyy-mm-dd"
    if pa.types.is_timestamp(dtype):
        return "yyyy-mm-dd hh:mm:ss"
    return None


def open_writer(
    path: Path, schema: pa.Schema, fmt: str, dialect: str = "excel", *, stamped: bool = True
) -> TableWriter:
    """`stamped`: the object has DATE_UPDATED_UTC (an incremental run reads its changes);
    a Delta table of one without it is compared with the rows it holds before a version."""
    if fmt == "delta":
        return DeltaTableWriter(path, schema, compare=not stamped)
    if fmt == "parquet":
        return ParquetTableWriter(path, schema)
    if fmt == "xlsx":
        return XlsxTableWriter(path, schema)
    return CsvTableWriter(path, schema, CSV_DIALECTS[dialect])
