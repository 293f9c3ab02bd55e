"""Reading spreadsheets as text: CSV/TSV (as Excel, Google Sheets, LibreOffice and other CRMs
write them), XLSX and Parquet.

Every cell is read as text — no type guessing, so `00501` and `NA` survive; types come only from
the target field. Each row keeps the line (CSV), sheet row (XLSX) or row number (Parquet) it
came from, so every message can point at it. A CSV row with more or fewer fields than the
header is set aside as a bad row with its line number — never shifted into other columns.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from insightly_etl.errors import InputError

DELIMITERS = (",", ";", "\t", "|")


@dataclass
class BadRow:
    line: int
    fields: list[str]
    message: str


@dataclass
class SourceTable:
    path: Path
    frame: pd.DataFrame  # one text column per header, "" for an empty cell
    lines: list[int]  # where each row of `frame` starts in the file
    unit: str = "line"  # line (CSV), row (XLSX sheet row, Parquet row number)
    encoding: str | None = None
    delimiter: str | None = None
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


def read_table(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
) -> SourceTable:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, sheet=sheet)
    if suffix == ".parquet":
        return read_parquet(path)
    return read_csv(path, encoding=encoding, delimiter=delimiter)


# ---------------------------------------------------------------- CSV


def detect_encoding(raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252, else Latin-1."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        raw.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"  # every byte decodes


def detect_delimiter(text: str) -> str:
    """The candidate that splits the first lines into the most, and most consistent, fields."""
    sample = text[:65536]
    best, best_score = ",", (0, 0)
    for candidate in DELIMITERS:
        try:
            counts = [
                len(r) for r in csv.reader(io.StringIO(sample, newline=""), delimiter=candidate)
            ][:50]
        except csv.Error:
            continue
        if len(counts) > 1 and len(text) > len(sample):
            counts = counts[:-1]  # the last sampled line may be cut
        counts = [c for c in counts if c > 0]
        if not counts:
            continue
        width, agreeing = Counter(counts).most_common(1)[0]
        score = (agreeing if width > 1 else 0, width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def read_csv(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None
) -> SourceTable:
    raw = path.read_bytes()
    enc = encoding or detect_encoding(raw)
    try:
        text = raw.decode(enc)
    except (UnicodeDecodeError, LookupError) as exc:
        raise InputError(
            f"{path}: cannot decode as {enc}: {exc}", hint="Pass --encoding (e.g. utf-8, cp1252)."
        ) from None
    text = text.removeprefix("\ufeff")
    sep = delimiter or detect_delimiter(text)
    if sep == "\\t":
        sep = "\t"
    # strict: an unterminated quote is an error, not a field that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    header: list[str] | None = None
    header_line = 0
    bad: list[BadRow] = []
    last_line = 0
    try:
        for record in reader:
            start = last_line + 1
            last_line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank lines and rows of empty cells carry nothing
            if header is None:
                header, header_line = record, start
                continue
            rows.append(record)
            lines.append(start)
    except csv.Error as exc:
        raise InputError(
            f"{path}, line {last_line + 1}: {exc} (an unterminated quote?)",
            hint="Every quoted field must end with a closing quote; check the line above too.",
        ) from None
    if header is None:
        raise InputError(f"{path}: the file is empty (no header row)")
    names, keep = _header(path, header, header_line, rows)
    width = len(header)
    good_rows: list[list[str]] = []
    good_lines: list[int] = []
    for record, line in zip(rows, lines, strict=True):
        if len(record) != width and not _only_trailing_empties(record, width):
            bad.append(BadRow(line, record, f"{len(record)} fields, but the header has {width}"))
            continue
        record = (record + [""] * width)[:width]
        good_rows.append([record[i] for i in keep])
        good_lines.append(line)
    columns = list(zip(*good_rows, strict=True)) if good_rows else [() for _ in names]
    frame = pd.DataFrame(
        {name: pd.array(col, dtype="string") for name, col in zip(names, columns, strict=True)}
    )
    if not good_rows:
        frame = pd.DataFrame({name: pd.array([], dtype="string") for name in names})
    return SourceTable(path, frame, good_lines, "line", enc, sep, bad)


def _only_trailing_empties(record: list[str], width: int) -> bool:
    """Spreadsheets pad or trim trailing empty cells; that is no shift."""
    if len(record) > width:
        return not any(c.strip() for c in record[width:])
    return False


def _header(
    path: Path, header: list[str], line: int, rows: list[list[str]]
) -> tuple[list[str], list[int]]:
    names = [h.strip() for h in header]
    keep = list(range(len(names)))
    # trailing columns with no name and no data (spreadsheets leave them) are dropped
    while (
        keep
        and names[keep[-1]] == ""
        and all(len(r) <= keep[-1] or not r[keep[-1]].strip() for r in rows)
    ):
        keep.pop()
    seen: dict[str, int] = {}
    for i in keep:
        name = names[i]
        if name == "":
            raise InputError(f"{path}, line {line}: column {i + 1} has no name in the header row")
        if name in seen:
            raise InputError(
                f"{path}, line {line}: duplicate column name {name!r} at positions {seen[name] + 1} and {i + 1}",
                hint="Rename one of the columns so each header is unique.",
            )
        seen[name] = i
    return [names[i] for i in keep], keep


# ---------------------------------------------------------------- XLSX


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return (
            value.strftime("%Y-%m-%d")
            if value.time() == time(0)
            else value.strftime("%Y-%m-%d %H:%M:%S")
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_xlsx(path: Path, *, sheet: str | None = None) -> SourceTable:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise InputError(
                f"{path}: no sheet named {sheet!r}", hint=f"Sheets: {', '.join(book.sheetnames)}."
            )
        ws = book[sheet] if sheet else book.worksheets[0]
        rows: list[list[str]] = []
        lines: list[int] = []
        header: list[str] | None = None
        header_line = 0
        for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in values]
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header, header_line = cells, number
                continue
            rows.append(cells)
            lines.append(number)
    finally:
        book.close()
    if header is None:
        raise InputError(f"{path}: the sheet is empty (no header row)")
    names, keep = _header(path, header, header_line, rows)
    width = len(header)
    padded = [[(r + [""] * width)[i] for i in keep] for r in rows]
    frame = pd.DataFrame(
        {n: pd.array([r[j] for r in padded], dtype="string") for j, n in enumerate(names)}
    )
    return SourceTable(path, frame, lines, "row")


# ---------------------------------------------------------------- Parquet


def read_parquet(path: Path) -> SourceTable:
    """Typed already; shown to validation as the same text `export --format csv` writes."""
    from insightly_etl.extract.writers import to_csv_column

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    data = {}
    for name in table.column_names:
        column = to_csv_column(table[name])
        text = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
        data[name] = pd.array(text.to_pylist(), dtype="string").fillna("")
    frame = pd.DataFrame(data)
    return SourceTable(path, frame, list(range(1, table.num_rows + 1)), "row")
