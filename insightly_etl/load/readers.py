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
import re
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from openpyxl.utils import get_column_letter

from insightly_etl.errors import InputError
from insightly_etl.files import CELL_CHARACTERS, to_csv_column, unescape_frame
from insightly_etl.moments import as_text

DELIMITERS = (",", ";", "\t", "|")


def _as_1252(byte: int) -> set[str]:
    """A byte as Windows-1252 reads it; the five it leaves undefined (0x81, 0x8D, 0x8F, 0x90,
    0x9D) as programs read them: as their own numbers (U+0081 …, Python, Latin-1) or, in
    LibreOffice Calc, in the Private Use Area (U+F181 …)."""
    try:
        return {bytes([byte]).decode("cp1252")}
    except UnicodeDecodeError:
        return {chr(byte), chr(_PRIVATE_USE + byte)}


_PRIVATE_USE = 0xF100  # LibreOffice's reading of a byte Windows-1252 leaves undefined: + byte


# UTF-8 text read as Windows-1252 (or Latin-1): each character's lead byte as a letter of
# U+00C2 … U+00F4, then its continuation bytes (0x80 … 0xBF) as the marks they read as. "Ã©"
# for é, "â€" for the typographic quotes, "ï»¿" for the byte-order mark, and every other
# script: "Ð”Ð¼" for Дм, "Î©" for Ω, "Å\x81" for Ł, "Ø§" for ا, "ä¸\xad" for 中 (the first
# pattern knew Latin accents only: a Russian name re-saved so was sent as "Ð”Ð¼Ð¸Ñ‚Ñ€Ð¸Ð¹")
_CONTINUATION = "[" + "".join(sorted(set().union(*map(_as_1252, range(0x80, 0xC0))))) + "]"
_MOJIBAKE = re.compile(
    f"[\u00c2-\u00df]{_CONTINUATION}|[\u00e0-\u00ef]{_CONTINUATION}{{2}}"
    f"|[\u00f0-\u00f4]{_CONTINUATION}{{3}}"
)
# decode(): the Latin accents alone, as UTF-8 bytes beside another code page's read as
# Windows-1252 ("AmÃ©lie"): the whole class above would take a Thai (cp874) file's own bytes
# for UTF-8 and refuse it as mixed
_UTF8_ACCENTS = re.compile("Ã[\u0080-\u00bf\u0152\u0160\u0178\u017d\u2013-\u203a]|â€|ï»¿")


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
    # a workbook's cell types (Cell), by column, beside the text: validation reads a typed
    # cell as what it is, not by a mapping's text rules
    cells: dict[str, pd.Series] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what reading left out, and why
    garbled: Garbled | None = None  # cells of UTF-8 text read in another character set
    sheet: str | None = None  # the worksheet read, of a workbook that has others
    # a file import read in blocks (source.py): `frame` holds only the columns planning reads
    # again, `header` is the file's, and `reread` gives its blocks again for their cells
    header: list[str] | None = None
    reread: Callable[[], Generator[SourceTable, None, None]] | None = None

    @property
    def named(self) -> str:
        """The file, and the sheet read when its workbook has others: where a column is."""
        return self.path.name + (f", sheet {self.sheet!r}" if self.sheet else "")

    @property
    def columns(self) -> list[str]:
        if self.header is not None:
            return list(self.header)
        return [str(c) for c in self.frame.columns]

    @property
    def results_sep(self) -> str:
        """The delimiter of results files that carry its cells: its own, so a fixed copy reads
        as it did (a `;` file's `1,234` is one and a quarter, in a `,` file a thousand)."""
        return self.delimiter or ","


def read_table(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
) -> SourceTable:
    if path.exists() and not path.is_file():  # a pipe, a device: read once, and never again
        raise InputError(
            f"{path}: a pipe or a device, not a saved file",
            hint="Save what it gives to a file and give that file (an import reads its file "
            "more than once).",
        )
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    delimiter = _delimiter(delimiter)
    with path.open("rb") as f:
        magic = f.read(8)
    if magic.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: the Excel 97-2003 format
        raise InputError(
            f"{path}: an Excel 97-2003 workbook (.xls), which is not read",
            hint="Save it as .xlsx (Excel Workbook) or CSV UTF-8 and use that file.",
        )
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path)  # typed: nothing in it was formula-escaped
    if suffix in (".xlsx", ".xlsm") and magic and not magic.startswith(b"PK") and _texty(magic):
        raise InputError(  # "File is not a zip file" said nothing a person could act on
            f"{path}: named {path.suffix} but holds text, not a workbook (a CSV renamed?)",
            hint=f"Rename it to {path.stem}.csv, or save it from the spreadsheet as .xlsx.",
        )
    if suffix in (".xlsx", ".xlsm") or magic.startswith(b"PK\x03\x04"):
        table = _drop_report_footer(read_xlsx(path, sheet=sheet))
        _look_at_cells(table, named=encoding is not None)  # no bytes to tell by: each cell
    else:
        table = _drop_report_footer(read_csv(path, encoding=encoding, delimiter=delimiter))
    unescape_frame(table.frame)  # `'=1+2`, as our own CSVs write it, is the text `=1+2`
    return table


def _texty(head: bytes) -> bool:
    """Whether a file's first bytes read as text (a byte-order mark, or no control bytes)."""
    if head.startswith((codecs.BOM_UTF8, *_UTF16_BOMS)):
        return True
    return all(b >= 0x20 or b in b"\t\r\n" for b in head)


# _MOJIBAKE's starts as a UTF-8 file holds them (a letter U+00C2 … U+00F4, then the first
# byte of a continuation's mark), and a byte-order mark: a file without any is read without
# looking at each cell
_GARBLED_BYTES = re.compile(rb"\xc3[\x82-\xb4][\xc2\xc5\xc6\xcb\xe2\xef]")


def _look_again(data: bytes) -> bool:
    # two scans: one regex with both would have no literal start to search for, 9x slower
    return codecs.BOM_UTF8 in data or _GARBLED_BYTES.search(data) is not None


def _needs_a_look(raw: bytes) -> bool:
    """Whether a UTF-8 file holds bytes of UTF-8 text read as Windows-1252, or a byte-order
    mark after its start: a scan of its bytes, far cheaper than a regex over every cell
    (other encodings: looked at)."""
    if b"\x00" in raw[:4096]:
        return True  # UTF-16 or UTF-32: its bytes are not UTF-8's
    return _look_again(raw.removeprefix(codecs.BOM_UTF8))  # not the file's own mark


def _look_at_cells(table: SourceTable, *, named: bool) -> None:
    """Byte-order marks inside the text (a file pasted together from several saves) are no
    part of any value: taken out. Text garbled by a wrong reading is found (find_garbled),
    unless the person named the encoding (then the text is as it reads)."""
    names = [_unmarked(str(c)) for c in table.frame.columns]
    first = str(table.frame.columns[0]) if names else ""
    if _QUOTED_MARK.match(first):
        table.notes.append(
            f"the first column's name held a byte-order mark and quotes as text ({first!r}: "
            "the file was opened without choosing UTF-8, and saved again); read as "
            f"{names[0]!r}"
        )
    table.frame.columns = names
    for name in table.columns:
        column = table.frame[name]
        if column.str.contains("\ufeff", regex=False).fillna(False).any():
            table.frame[name] = column.str.replace("\ufeff", "", regex=False)
    if not named:
        find_garbled(table)


def _ungarbled(text: str) -> str | None:
    """`Ñandú` for `Ã‘andÃº`: UTF-8 text that was read as Windows-1252 and saved again, as it
    was before; None when the text is not that. Character by character: the five bytes
    Windows-1252 leaves undefined come back as U+0081 … U+009D, their own numbers, or as
    LibreOffice reads them, U+F181 … U+F19D."""
    raw = bytearray()
    for ch in text:
        try:
            raw += ch.encode("cp1252")
        except UnicodeEncodeError:
            code = ord(ch)
            if code > 0xFF:
                code -= _PRIVATE_USE
                if not 0x80 <= code <= 0x9F:
                    return None
            raw.append(code)
    try:
        fixed = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return fixed if fixed != text else None


@dataclass(frozen=True)
class Garbled:
    """Cells of UTF-8 text read in another character set (find_garbled)."""

    cells: list[tuple[int, str, str, str]]  # line, column, text, its true reading
    file_reads_right: bool  # other accented cells read right: the cells came so


def find_garbled(table: SourceTable) -> None:
    """A file whose UTF-8 text was opened as Windows-1252 and saved (a spreadsheet asked for
    the wrong character set) holds `Ã©` for é in every accented word: sending it would write
    that into Insightly. Such cells are kept on the table (`garbled`) for validation, which
    refuses them in the columns it sends (garbled_error); where other accented cells of the
    file read right, the file was read right and they came so from where it was made (an
    account that already holds them): a note. A garbled header refuses the file at once."""
    columns = table.columns
    for name in columns:  # the header: its first cell may hold the mark as text (ï»¿)
        if _MOJIBAKE.search(name) and (fixed := _ungarbled(name)) is not None:
            raise garbled_error(table, 1, name, name, fixed)
    found: list[tuple[int, str, str, str]] = []
    for name in columns:
        column = table.frame[name]
        hits = column.str.contains(_MOJIBAKE.pattern, regex=True).fillna(False)
        for at in np.flatnonzero(hits.to_numpy(dtype=bool)):
            text = str(column.iloc[at])
            if (fixed := _ungarbled(text)) is not None:
                found.append((table.lines[at], name, text, fixed))
    if not found:
        return
    right = False
    for name in columns:
        column = table.frame[name]
        accented = column.str.contains("[^\x00-\x7f]", regex=True).fillna(False)
        texts = (str(t) for t in column[accented.to_numpy(dtype=bool)])
        # a replacement character is damage of its own, no sign of a right reading
        if any(_ungarbled(t) is None and "\ufffd" not in t for t in texts):
            right = True
            break
    table.garbled = Garbled(sorted(found), right)


def garbled_note(table: SourceTable, cells: list[tuple[int, str, str, str]]) -> str:
    line, name, text, fixed = cells[0]
    return (
        f"{len(cells):,} cell(s) hold UTF-8 text read in another character set, as they came "
        f"({table.unit} {line}, column {name!r}: {text[:40]!r} for {fixed[:40]!r}); other "
        "accented cells read right, so they are taken as they are"
    )


def garbled_error(table: SourceTable, line: int, column: str, text: str, fixed: str) -> InputError:
    return InputError(
        f"{table.path}, {table.unit} {line}, column {column!r}: {text[:60]!r} is UTF-8 text "
        f"read in another character set ({fixed[:60]!r}): the file was opened with the wrong "
        "character set and saved",
        hint="Open the original file again choosing UTF-8 (Unicode) as its character set, and "
        "save it; if Insightly holds the text so already, --encoding utf-8 takes it as it reads.",
    )


class NotPlain(Exception):
    """A part of a file read in blocks (iter_table) that only reading it whole reads right."""


BLOCK_BYTES = 16 << 20  # iter_table: how much of a CSV is read and parsed at once
TAIL_BYTES = 64 << 10  # and the end of the file that stays with the block before it


def larger_than_a_block(path: Path) -> bool:
    """Whether reading the file takes a while: more than one block of a CSV (a bar is shown)."""
    return path.is_file() and path.stat().st_size > BLOCK_BYTES


def iter_table(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
) -> Iterator[SourceTable]:
    """The file in blocks of rows, for work that need not hold it whole (validate of millions
    of rows): each block a SourceTable with the file's line numbers. A UTF-8 CSV larger than
    one block is cut at line ends outside quotes; every other file is one block, as
    read_table reads it. A block that is not plain (not UTF-8, a ragged row, a line break in a
    value: anything that needs the exact reader or another encoding) raises NotPlain, and the
    caller reads the file whole with read_table instead. A Parquet file comes a batch of rows
    at a time."""
    plain = (
        path.is_file()
        and path.stat().st_size > BLOCK_BYTES
        and path.suffix.lower() not in (".parquet", ".xlsx", ".xlsm")
        and (encoding is None or encoding.lower().replace("_", "-") in ("utf-8", "utf8"))
    )
    if path.is_file() and path.suffix.lower() == ".parquet":
        yield from iter_parquet(path)
        return
    if not plain:
        yield read_table(path, encoding=encoding, delimiter=delimiter, sheet=sheet)
        return
    sep = _delimiter(delimiter)
    with path.open("rb") as f:
        head = f.read(1 << 20)
        if head.startswith((*_UTF16_BOMS, b"PK\x03\x04", b"\xd0\xcf")) or _SEP_LINE.match(head):
            raise NotPlain
        if b"\x00" in head or _utf16_without_bom(head):
            raise NotPlain
        bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        text = head[bom:].decode("utf-8", errors="ignore")
        sep = sep or detect_delimiter(text)
        record, header_lines = _first_record(text, sep)
        if record is None:
            raise NotPlain
        f.seek(bom)
        header = b"".join(f.readline() for _ in range(header_lines))
        size, before, pending = path.stat().st_size, header_lines, b""
        given = False
        while True:
            chunk = f.read(BLOCK_BYTES)
            if size - f.tell() < TAIL_BYTES:  # a short end (a report's footer?) comes along
                chunk += f.read()
            last = not chunk or f.tell() >= size
            data = pending + chunk
            cut = len(data) if last else _cut(data)
            if cut is None:  # no line end outside quotes yet
                pending = data
                continue
            block, pending = data[:cut], data[cut:]
            if block and not block.isspace():  # not a copy of the block, as strip() is
                fast = (
                    None if b"\x00" in block else _read_csv_arrow(path, text, header + block, sep)
                )
                if fast is None:  # read whole, a NUL byte is refused as read_csv refuses it
                    raise NotPlain
                frame, lines = fast
                shift = before - header_lines
                table = SourceTable(
                    path,
                    frame,
                    [line + shift for line in lines],
                    "line",
                    "utf-8-sig" if bom else "utf-8",
                    sep,
                )
                if last:
                    table = _drop_report_footer(table)
                if _look_again(block.removeprefix(codecs.BOM_UTF8)):
                    raise NotPlain  # decided on the whole file, as import reads it
                unescape_frame(table.frame)
                given = True
                yield table
            before += _line_ends(block)
            if last and not given:  # no row at all (blank lines): as reading it whole says
                raise NotPlain
            if last:
                return


def _line_ends(data: bytes) -> int:
    """Physical lines `data` ends, as _data_lines counts them (LF, CRLF, a lone CR)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _cut(data: bytes) -> int | None:
    """Where `data` (starting at a record) may be cut: just after its last line feed outside
    quotes, counting quotes as RFC 4180 does. None: no such line end. From the end back, a
    line feed at a time: the quotes before one are the quotes before the next less those
    between (the first tried is nearly always outside)."""
    end = data.rfind(b"\n")
    odd = end >= 0 and data.count(b'"', 0, end) % 2 == 1
    while odd:
        before = data.rfind(b"\n", 0, end)
        if before < 0:
            return None
        odd ^= data.count(b'"', before, end) % 2 == 1
        end = before
    return end + 1 if end >= 0 else None


# ---------------------------------------------------------------- CSV

# the lines a Salesforce report (and others) adds under its rows: not data. Each as the report
# writes it (a year after the copyright), and two different ones at least: an organisation
# named "Confidential Information Partners" or "Copyright (c) Clearance GmbH" is a row. The
# copyright line Salesforce writes whatever the report's language is enough alone (a German
# report's other lines are German).
_FOOTER = re.compile(
    r"^\s*(?:(Copyright (?:\(c\)|©) \d{4})|(Confidential Information - Do Not Distribute)"
    r"|(Generated By:))",
    re.I,
)
_SALESFORCE = re.compile(r"^\s*Copyright (?:\(c\)|©) \d{4}-\d{4} salesforce\.com", re.I)


def _footer_kind(cell: object) -> int | None:
    """Which of the footer's lines a first cell is (1, 2, 3), or None."""
    found = _FOOTER.match(str(cell))
    return found.lastindex if found else None


def _is_footer(cells: list[object]) -> bool:
    """Whether the trailing one-cell lines `cells` are a report's footer."""
    kinds = {kind for cell in cells if (kind := _footer_kind(cell))}
    return len(kinds) >= 2 or any(_SALESFORCE.match(str(cell)) for cell in cells)


def _drop_report_footer(table: SourceTable) -> SourceTable:
    """A report's footer (`Copyright (c) … salesforce.com`, `Generated By: …`, the company's
    name), one cell a line under the rows — short lines, or padded to the header's width by a
    spreadsheet — is left out with a note instead of read as rows or rejected."""
    frame = table.frame
    single = frame.iloc[:, 1:].eq("").all(axis=1).to_numpy() if frame.shape[1] > 1 else None
    tail = len(frame)
    while single is not None and tail > 0 and single[tail - 1]:
        tail -= 1  # the trailing rows with their first cell only
    first_cells = frame.iloc[tail:, 0].tolist() if len(frame.columns) else []
    in_frame = [i for i, cell in enumerate(first_cells) if _footer_kind(cell)]
    marked = [b for b in table.bad_rows if b.fields and _footer_kind(b.fields[0])]
    if not _is_footer([first_cells[i] for i in in_frame] + [b.fields[0] for b in marked]):
        return table  # one such line alone: a row (a name that starts so), not a footer
    in_bad = [b.line for b in marked]
    starts = [table.lines[tail + in_frame[0]]] if in_frame else []
    start = _with_its_title(table, tail, min(starts + in_bad))
    rest = [b for b in table.bad_rows if b.line >= start]
    if any(sum(1 for f in b.fields if f.strip()) > 1 for b in rest):
        return table  # data after the footer: not a footer after all
    keep = [i for i, line in enumerate(table.lines) if line < start]
    if len(keep) < tail:  # rows with more than a first cell after the footer: data
        return table
    last = max([b.line for b in rest] + [line for line in table.lines if line >= start])
    table.frame = frame.iloc[keep].reset_index(drop=True)
    table.lines = [table.lines[i] for i in keep]
    table.cells = {k: v.iloc[keep].reset_index(drop=True) for k, v in table.cells.items()}
    table.bad_rows = [b for b in table.bad_rows if b.line < start]
    table.notes.append(
        f"{table.unit}s {start}-{last}: a report's footer (Copyright, Generated By …), not data; "
        "left out"
    )
    return table


def _with_its_title(table: SourceTable, tail: int, start: int) -> int:
    """Where a footer starting at line `start` begins with the report's name above it
    (Salesforce: two empty lines, `"Contacts & Accounts"`, then `Copyright …`): a line of one
    cell right above it, after an empty line, with nothing else between."""
    one_cell = {b.line for b in table.bad_rows if sum(1 for f in b.fields if f.strip()) <= 1}
    one_cell |= {line for line in table.lines[tail:] if line < start}
    above = [line for line in one_cell if line < start]
    if not above:
        return start
    title = max(above)
    data = set(table.lines) | {b.line for b in table.bad_rows}
    if any(title < line < start for line in data) or title - 1 in data:
        return start  # a row between, or no empty line before it: data, not a title
    return title


_DELIMITER_NAMES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def _delimiter(given: str | None) -> str | None:
    """`--delimiter`: one character, or `\\t` / tab / comma / semicolon / pipe."""
    if given is None:
        return None
    value = _DELIMITER_NAMES.get(given.strip().lower(), given)
    if len(value) != 1:
        raise InputError(
            f"--delimiter {given!r}: expected one character",
            hint="e.g. ';', '|', or '\\t' (or tab) for a tab.",
        )
    return value


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


# Excel's own hint, `sep=;` alone on the first line: the delimiter, and no row of the data
_SEP_LINE = re.compile(rb"(\xef\xbb\xbf)?sep=([^\r\n])(\r?\n)")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# a UTF-8 file's mark read as text by a program that was not told it is UTF-8, the quotes
# around the first name with it, and the file saved again: `"\ufeff""CONTACT_ID"""`
_QUOTED_MARK = re.compile(r'\ufeff"(.*)"\Z', re.S)


def _unmarked(name: str) -> str:
    """A column's name without the byte-order marks in it (and the quotes a mark read as
    text kept)."""
    if quoted := _QUOTED_MARK.match(name):
        return quoted.group(1).replace('""', '"')
    return name.replace("\ufeff", "")


_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)  # UTF-32 LE's starts like UTF-16 LE's


def read_csv(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None
) -> SourceTable:
    raw = path.read_bytes()
    named = encoding is not None  # a person who names it says the text is as it reads
    if encoding is None and raw.startswith(_UTF32_BOMS):
        encoding = "utf-32"
    if (hint := _SEP_LINE.match(raw)) is None:
        table = _read_csv(path, raw, encoding, delimiter)
    else:  # the hint line left empty, not taken out: every line keeps its number, in errors too
        sep = delimiter or hint.group(2).decode("latin-1")
        blanked = (hint.group(1) or b"") + hint.group(3) + raw[hint.end() :]
        table = _read_csv(path, blanked, encoding, sep)
    if _needs_a_look(raw):
        _look_at_cells(table, named=named)
    if not named and table.encoding in _PAGE_NAMES:  # a guess, from the letters: said
        table.notes.append(
            f"{path.name} is not UTF-8: read as {_PAGE_NAMES[table.encoding]}; if its "
            "letters read wrong, name the encoding with --encoding"
        )
    return table


def _read_csv(path: Path, raw: bytes, encoding: str | None, delimiter: str | None) -> SourceTable:
    if encoding is None and not raw.startswith(_UTF16_BOMS):
        encoding = _utf16_without_bom(raw)
    if encoding is None and b"\x00" in raw and not raw.startswith(_UTF16_BOMS):
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise InputError(
            f"{path}, line {line}: a NUL byte; this is binary data, not a CSV",
            hint="Export the sheet again as CSV (UTF-8), or name its encoding with --encoding.",
        )
    tried_utf8 = False
    if encoding is None and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # The usual file is UTF-8: Arrow takes its bytes as they are and checks the UTF-8
        # itself, so only a sample is decoded here, for the delimiter and the header.
        bom = raw.startswith(codecs.BOM_UTF8)
        body = raw[len(codecs.BOM_UTF8) :] if bom else raw
        sample = body[: 1 << 20].decode("utf-8", errors="ignore")
        sep = delimiter or detect_delimiter(sample)
        fast = _read_csv_arrow(path, sample, body, sep)
        if fast is not None:
            return SourceTable(path, fast[0], fast[1], "line", "utf-8-sig" if bom else "utf-8", sep)
        tried_utf8 = True
    text, enc = decode(path, raw, encoding)
    sep = delimiter or detect_delimiter(text)
    if not (tried_utf8 and enc in ("utf-8", "utf-8-sig")):
        fast = _read_csv_arrow(path, text, text.encode("utf-8"), sep)
        if fast is not None:
            return SourceTable(path, fast[0], fast[1], "line", enc, sep)
    return _read_csv_exact(path, text, enc, sep)


def _utf16_without_bom(raw: bytes) -> str | None:
    """UTF-16 saved without a byte-order mark (some Windows tools): text whose every other
    byte is NUL. Read as such instead of as garbled headers."""
    sample = raw[:4096]
    if len(sample) < 4 or sample.count(b"\x00") < len(sample) // 3:
        return None
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    if odd > len(sample) // 3:
        return "utf-16-le"
    return "utf-16-be" if even > len(sample) // 3 else None


def decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    """The text and its encoding: the one given, else UTF-8 (with or without BOM), UTF-16 with
    a BOM, Windows-1252, and Latin-1 (which decodes any bytes) — the first that fits."""
    if encoding:
        candidates = [encoding]
    elif raw.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252", "latin-1"]
    utf8_error: UnicodeDecodeError | None = None
    for enc in candidates:
        try:
            text = raw.decode(enc).removeprefix("\ufeff")
            if utf8_error is not None and _UTF8_ACCENTS.search(text):
                # valid UTF-8 accents elsewhere in the file: a Windows-1252 reading would
                # garble them ("Amélie" -> "AmÃ©lie"), so neither reading is right
                line = raw[: utf8_error.start].count(b"\n") + 1
                raise InputError(
                    f"{path}, line {line}: the file mixes UTF-8 and another encoding (byte "
                    f"{raw[utf8_error.start : utf8_error.start + 1]!r} is not UTF-8, while other "
                    "lines are)",
                    hint="Fix that line, or save the whole file as CSV UTF-8; --encoding forces one reading.",
                )
            if enc in ("cp1252", "latin-1") and not encoding:
                return _single_byte(path, raw, enc, text)
            return text, enc
        except UnicodeDecodeError as exc:
            if enc == "utf-8":
                utf8_error = exc
            if enc == "utf-8-sig" and not encoding:  # the byte-order mark says UTF-8
                at = exc.start + len(codecs.BOM_UTF8)  # the codec counts after the mark
                line = raw[:at].count(b"\n") + 1
                raise InputError(
                    f"{path}, line {line}: the file starts with a UTF-8 "
                    f"byte-order mark, but byte {raw[at : at + 1]!r} there is not UTF-8 (a "
                    "line added in another encoding?)",
                    hint="Fix that line, or save the whole file as CSV UTF-8; --encoding forces one reading.",
                ) from None
            if enc == "utf-16" and not encoding:
                raise InputError(
                    f"{path}: the file starts with a UTF-16 byte-order mark, but is not UTF-16 "
                    "throughout",
                    hint="Save it again as CSV UTF-8 (or Unicode Text); --encoding forces one reading.",
                ) from None
            if encoding:
                raise InputError(
                    f"{path}: cannot decode as {enc}: {exc}",
                    hint="Leave out --encoding to have it detected, or name the one the file "
                    "was saved in (cp1252 Western, cp1250 Central European, cp1251 Cyrillic, "
                    "cp1254 Turkish, cp932 Japanese).",
                ) from None
        except LookupError:
            raise InputError(
                f"{path}: unknown encoding {enc!r}",
                hint="Use a Python codec name such as utf-8 or cp1252.",
            ) from None
    raise AssertionError("latin-1 decodes any bytes")


# code pages a file that is not UTF-8 may be in, besides Windows-1252: those Excel and
# LibreOffice save "CSV" in where Windows speaks the language (Central European,
# Turkish, Cyrillic, Greek, Hebrew, Arabic, Thai, Japanese), and Excel for Mac's; each
# decodes most bytes, so the text itself must say which
_OTHER_PAGES = {
    "cp1250": "Windows-1250 (Central European)",
    "cp1254": "Windows-1254 (Turkish)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "cp1253": "Windows-1253 (Greek)",
    "cp1255": "Windows-1255 (Hebrew)",
    "cp1256": "Windows-1256 (Arabic)",
    "cp874": "Windows-874 (Thai)",
    "cp932": "Shift-JIS (Japanese)",
    "mac_roman": "Mac Roman (Excel for Mac's CSV)",
}
# the scripts of those pages that are not Latin, by their Unicode blocks: a word of such a
# page is written in one script alone (a Latin word with a Cyrillic letter in it, `Mьller`,
# is a German `Müller` read as Windows-1251)
_SCRIPTS = {
    "Cyrillic": (0x0400, 0x052F),
    "Greek": (0x0370, 0x03FF),
    "Hebrew": (0x0590, 0x05FF),
    "Arabic": (0x0600, 0x06FF),
    "Thai": (0x0E00, 0x0E7F),
}
_PAGE_NAMES = {"cp1252": "Windows-1252 (Western European)", "latin-1": "Latin-1", **_OTHER_PAGES}

# the accented letters of the languages written in these code pages: a reading whose letters
# do not all belong to one of them is not the file's (a French file read as Windows-1250 mixes
# French ç and ô with Czech č: no language has all three)
# by the code page their countries' Windows saves in
_WESTERN = [
    set("àâæçéèêëîïôœùûüÿ"),  # French
    set("äöüß"),  # German
    set("áéíñóúü"),  # Spanish
    set("áâãàçéêíóôõú"),  # Portuguese
    set("àèéìíîòóùú"),  # Italian
    set("àçèéíïòóúü·"),  # Catalan
    set("åæøé"),  # Danish, Norwegian
    set("åäöé"),  # Swedish, Finnish
    set("áðéíóúýþæö"),  # Icelandic
    set("ëéèïöü"),  # Dutch
]
_CENTRAL = [
    set("ąćęłńóśźż"),  # Polish
    set("áčďéěíňóřšťúůýž"),  # Czech
    set("äáčďéíĺľňóôŕšťúýž"),  # Slovak
    set("áéíóöőúüű"),  # Hungarian
    set("čćđšž"),  # Croatian, Slovenian, Bosnian
    set("ăâîșțşţ"),  # Romanian
]
_TURKISH = [set("çğıöşüâîûi̇")]
_ALPHABETS = [*_WESTERN, *_CENTRAL, *_TURKISH]
# letters a code page has that are rare even in the languages that use them: a reading that
# needs them (Slovak ŕ for Italian à, Icelandic þ for Turkish ş) is the less likely one
_RARE = set("ŕĺľďťňţđÿœþð")
_SAMPLE_LINES = 5000  # lines with non-ASCII bytes that the choice of code page is made on
_JAPANESE = re.compile("[\u3040-\u30ff\u4e00-\u9fff\uff66-\uff9f]")


def _reads_as_japanese(text: str) -> bool:
    """Japanese characters that stand beside each other, as in words (`山田太郎`), not alone
    between Latin letters (`Jo縊` is a Portuguese `João` read as Shift-JIS)."""
    found = [m.start() for m in _JAPANESE.finditer(text)]
    if len(found) < 2:
        return False
    near = sum(
        1 for i in found if _JAPANESE.match(text[i - 1 : i]) or _JAPANESE.match(text[i + 1 : i + 2])
    )
    return near >= 0.8 * len(found)


def _in_word(text: str, i: int) -> bool:
    return any(_letter(c) for c in text[i - 1 : i] + text[i + 1 : i + 2])


def _weight(text: str, i: int) -> float:
    """How much a character at a position where two readings differ speaks for its reading:
    a letter inside a word (less if rare, or if a Latin letter in a word of three or more
    with no ASCII letter: `Àííà` is a Russian `Анна` read as Windows-1252), a currency sign
    before a number."""
    ch = text[i]
    if _letter(ch):
        if not _in_word(text, i):
            return 0.3
        if ch.lower() in _RARE:
            return 0.2
        if ch.isupper() and text[i - 1 : i].islower():  # `AmÈlie`: a French é in Mac Roman
            return 0.1
        if _script(ch) is None and _unlatin_word(text, i):
            return 0.3
        return 1.0
    if ch in "£€¥$" and text[i + 1 : i + 2].isdigit():
        return 1.0
    return 0.0


def _script(ch: str) -> str | None:
    """The non-Latin script (of _SCRIPTS) a character is written in, if any."""
    return next((name for name, (lo, hi) in _SCRIPTS.items() if lo <= ord(ch) <= hi), None)


def _camel(text: str) -> bool:
    """Many of its non-ASCII capitals stand after a small letter, inside a word: `AmÈlie` is
    a French `Amélie` of Windows-1252 read as Mac Roman, not a name."""
    capitals = inside = 0
    for i, ch in enumerate(text):
        if ord(ch) > 127 and ch.isupper():
            capitals += 1
            inside += text[i - 1 : i].islower()
    return inside > 0.2 * capitals if capitals else False


def _accented(text: str) -> set[str]:
    """Its letters beyond ASCII, in small letters."""
    return {c for c in text.lower() if ord(c) > 127 and _letter(c)}


def _fits_a_language(text: str) -> bool:
    """Its accented letters all belong to one Latin-script language; or its non-ASCII
    letters are all of one other script, in words of that script alone."""
    letters = _accented(text)
    if not letters:
        return True
    if _camel(text):
        return False
    if any(letters <= alphabet for alphabet in _ALPHABETS):
        return True
    scripts = {_script(c) for c in letters}
    if len(scripts) != 1 or None in scripts:
        return False
    return not any(_mixed(word) for word in _words(text))


def _words(text: str) -> list[str]:
    return "".join(c if _letter(c) else " " for c in text).split()


# a list of people from several countries of one region (`Győr`, `Růžena`) spells no one
# language, but its letters are all the region's
_REGIONS = [set().union(*region) for region in (_WESTERN, _CENTRAL, _TURKISH)]


def _fits_a_region(text: str) -> bool:
    letters = _accented(text)
    return not _camel(text) and any(letters <= region for region in _REGIONS)


def _by_region(pages: list[str], readings: dict[str, str], fallback: str) -> list[str]:
    """When no reading spells one language: the pages whose letters are of one region's
    languages, if the fallback (Windows-1252) is not one of them; else none (the fallback
    stays the choice, as it always was)."""
    fit = [e for e in pages if e != "cp932" and _fits_a_region(readings[e])]
    return [] if fallback in fit else fit


def _mixed(word: str) -> bool:
    """A word with ASCII letters and letters of another script in it."""
    return any(c.isascii() for c in word) and any(_script(c) for c in word)


def _letter(ch: str) -> bool:
    """A letter, or a mark written on one (Thai and Hebrew vowels, Arabic harakat)."""
    return ch.isalpha() or unicodedata.category(ch).startswith("M")


# each script's letters from the most to the least frequent in its main languages (Russian
# and Ukrainian; Greek; Hebrew; Arabic; Thai), accents taken off: the bytes of a Cyrillic
# file read as Greek are Greek letters too, but rarer ones (`Иван` -> `Θβΰν`)
_BY_FREQUENCY = {
    "Cyrillic": "оеаинтсрвлкмдпуяіыьгзбчйхжшюцщєїэфґъё",
    "Greek": "αοιετσνηυρπκμλςωδγχθφβξζψ",
    "Hebrew": "יוהלארמתבנשעםדכקחפסןגזצטךףץ",
    "Arabic": "اليمونرتبةعهدفكسقحجشطصزخضثذغظىءئؤأإآ",
    "Thai": "านรกอเงมยลวดทสตคปบหแไจพขใชโศถผซฝฉญฐธภษฮ",
}


def _common_share(text: str) -> float:
    """How common a text's non-Latin letters are in their script, from 1 (all the most
    common letter) down (rare ones, or none of the script)."""
    scores = []
    for c in unicodedata.normalize("NFD", text.lower()):
        if c.isalpha() and (script := _script(c)):
            order = _BY_FREQUENCY[script]
            rank = order.find(c)
            scores.append(1 - rank / len(order) if rank >= 0 else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def _one_script(pages: list[str], readings: dict[str, str]) -> list[str]:
    """Of readings in non-Latin scripts, which all read bytes as words of their own script,
    the one whose letters are the script's common ones, when it clearly is: the others
    are dropped (the Latin readings stay, for _single_byte's weighing)."""
    scripted = [e for e in pages if any(_script(c) for c in readings[e])]
    if len(scripted) < 2:
        return pages
    shares = {e: _common_share(readings[e]) for e in scripted}
    best, second = sorted(shares.values(), reverse=True)[:2]
    if best - second < 0.08:
        return pages  # too close to call: refused, naming both
    return [e for e in pages if e not in scripted or shares[e] == best]


def _unlatin_word(text: str, i: int) -> bool:
    """The word around position `i` has three letters or more, none of them ASCII."""
    start = end = i
    while start > 0 and _letter(text[start - 1]):
        start -= 1
    while end < len(text) and _letter(text[end]):
        end += 1
    word = text[start:end]
    return len(word) >= 3 and not any(c.isascii() for c in word)


def _plausible(text: str) -> float:
    """The share of non-ASCII characters that are letters beside another letter, as in words:
    near 1 for the right code page, lower when accents turn into symbols (Ł -> £, ł -> ³)."""
    hits = total = 0
    for i, ch in enumerate(text):
        if ord(ch) < 128:
            continue
        total += 1
        hits += _letter(ch) and _in_word(text, i)
    return hits / total if total else 1.0


def _sample(raw: bytes) -> bytes:
    """The lines that hold non-ASCII bytes (the only ones code pages read differently), up to
    a few thousand: enough to choose, fast on any size."""
    lines = [line for line in raw.split(b"\n", 200_000) if any(b > 127 for b in line)]
    return b"\n".join(lines[:_SAMPLE_LINES])


def _single_byte(path: Path, raw: bytes, fallback: str, text: str) -> tuple[str, str]:
    """A file that is not UTF-8: Windows-1252 (or Latin-1) unless its letters read better in
    another code page. Two readings that are both plausible and differ are refused, naming
    the first word they read differently: a wrong guess would send wrong letters."""
    sample = _sample(raw)
    readings = {fallback: sample.decode(fallback)}
    for enc in _OTHER_PAGES:
        try:
            reading = sample.decode(enc)
        except UnicodeDecodeError:
            continue
        if enc == "cp932" and not _reads_as_japanese(reading):
            continue  # Shift-JIS only where there is Japanese to read
        readings[enc] = reading
    scores = {enc: _plausible(t) for enc, t in readings.items()}
    best = max(scores.values())
    likely = [e for e, score in scores.items() if score >= best - 0.05]
    # Japanese has no accented letters to check; the European pages must spell one language
    fitting = [e for e in likely if e == "cp932" or _fits_a_language(readings[e])]
    fitting = fitting or _by_region(likely, readings, fallback)
    likely = _one_script(fitting, readings) if fitting else likely[:1]
    distinct = {readings[e]: e for e in reversed(likely)}  # one page per reading, first wins
    likely = [e for e in likely if distinct.get(readings[e]) == e]
    if len(likely) > 1:  # where the readings (of one length) differ, whose letters fit best
        alike = [e for e in likely if len(readings[e]) == len(readings[likely[0]])]
        differ = [
            i
            for i, chars in enumerate(zip(*(readings[e] for e in alike), strict=True))
            if len(set(chars)) > 1
        ]
        weights = {e: 0.0 for e in likely}
        for e in alike:
            weights[e] = sum(_weight(readings[e], i) for i in differ)
        ranked = sorted(likely, key=lambda e: -weights[e])
        if weights[ranked[0]] >= 2 * weights[ranked[1]] and weights[ranked[0]] > 0:
            likely = ranked[:1]
    if len(likely) > 1:
        raise _undecided(path, likely[:4], readings)
    enc = likely[0]
    whole = text if enc == fallback else raw.decode(enc)
    return whole.removeprefix("\ufeff"), enc


def _undecided(path: Path, pages: list[str], readings: dict[str, str]) -> InputError:
    """Refusal of a file that reads as words in each of `pages`, naming the first word
    they read differently, as each reads it."""
    a = pages[0]
    shortest = min(len(readings[e]) for e in pages)
    at = next((i for i in range(shortest) if len({readings[e][i] for e in pages}) > 1), shortest)
    left = re.search(r"[^\s,;|\t\"]*$", readings[a][:at])
    begin = left.start() if left else at
    shown = {e: re.match(r"[^\s,;|\t\"]*", readings[e][begin:]) for e in pages}
    words = {e: m.group(0) if m else "" for e, m in shown.items()}
    said = [f"{words[e]!r} in {_PAGE_NAMES[e]}" for e in pages]
    return InputError(
        f"{path}: not UTF-8, and it reads as {', '.join(said[:-1])} or {said[-1]}",
        hint="Name its encoding: "
        + ", ".join(f"--encoding {e} reads {words[e]!r}" for e in pages)
        + "; or save the file as CSV UTF-8.",
    )


def _read_csv_arrow(
    path: Path, head: str, data: bytes, sep: str
) -> tuple[pd.DataFrame, list[int]] | None:
    """Arrow's parser for the usual file (`head`: the decoded start of it, `data`: all of it in
    UTF-8). None, and the exact reader takes over, when the bytes are not UTF-8, a row is
    ragged, a value holds a line break — anything that would make a line number uncertain."""
    header_record, header_lines = _first_record(head, sep)
    if header_record is None:
        return None
    names = [f"c{i}" for i in range(len(header_record))]
    ragged: list[int] = []

    def on_invalid(row: Any) -> str:
        ragged.append(1)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=header_lines, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(delimiter=sep, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, ValueError):  # not UTF-8, an unterminated quote, …
        return None
    if ragged:
        return None
    lines, lengths = _data_lines(data, header_lines)
    if len(lines) != table.num_rows:
        # a quoted line break adds a physical line: only the exact reader knows the numbers
        return None
    # rows of empty cells (",,,") carry nothing; only short lines can be such rows
    short = np.flatnonzero(lengths <= 4 * len(names))
    if len(short):
        cells = table.take(pa.array(short)).to_pylist()
        blank = [
            i
            for i, row in zip(short, cells, strict=True)
            if not any(str(v).strip() for v in row.values())
        ]
        if blank:
            keep = np.setdiff1d(np.arange(table.num_rows), blank)
            table = table.take(pa.array(keep))
            lines = lines[keep]
    unnamed = any(not name.strip() for name in header_record)
    probe = _arrow_column_has_data(table) if unnamed else []
    header_names, kept = _header(path, header_record, header_lines, probe)
    frame = pd.DataFrame(
        {
            name: pd.array(table.column(i).combine_chunks(), dtype=pd.StringDtype("pyarrow"))
            for name, i in zip(header_names, kept, strict=True)
        }
    )
    return frame, lines.tolist()


def _arrow_column_has_data(table: pa.Table) -> list[list[str]]:
    """For _header's check of unnamed columns: one stand-in row holding each column's first
    non-empty value (or "")."""
    probe = []
    for column in table.columns:
        filled = pc.filter(column, pc.not_equal(pc.utf8_trim_whitespace(column), ""))
        probe.append(filled[0].as_py() if len(filled) else "")
    return [probe]


def _first_record(text: str, sep: str) -> tuple[list[str] | None, int]:
    """The header record and how many physical lines it (and blank lines before it) took."""
    reader = csv.reader(io.StringIO(text[: 1 << 20], newline=""), delimiter=sep, strict=True)
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                return record, reader.line_num
    except csv.Error:
        return None, 0
    return None, 0


def _data_lines(data: bytes, header_lines: int) -> tuple[np.ndarray, np.ndarray]:
    """1-based numbers and lengths of the non-empty physical lines after the header
    (line ends CRLF, LF or CR)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if b"\r" not in data:
        ends = np.flatnonzero(arr == 10)
    else:
        lf = arr == 10
        cr_alone = arr == 13
        cr_alone[:-1] &= ~lf[1:]
        ends = np.flatnonzero(lf | cr_alone)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(arr)]))
    length = stops - starts
    # the CR of a CRLF line is not content
    has_cr = np.zeros(len(stops), dtype=bool)
    inside = (stops > starts) & (stops < len(arr))
    has_cr[inside] = arr[stops[inside] - 1] == 13
    length = length - has_cr
    numbers = np.arange(1, len(starts) + 1)
    keep = (length > 0) & (numbers > header_lines)
    return numbers[keep], length[keep]


def _read_csv_exact(path: Path, text: str, enc: str, sep: str) -> SourceTable:
    """The csv module, row by row: exact line numbers for quoted line breaks and ragged rows."""
    # strict: an unterminated quote is an error, not a field that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    # no limit of the csv module's own (131,072 characters): a long cell is the row's to be
    # rejected by the field's length, as the block reader reads it, not the file's (a quote
    # never closed is an error at the end of the text, strict)
    limit = csv.field_size_limit(max(len(text), csv.field_size_limit()))
    try:
        return _exact_rows(path, reader, enc, sep)
    finally:
        csv.field_size_limit(limit)


def _exact_rows(path: Path, reader: Any, enc: str, sep: str) -> SourceTable:
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
            f"{path}, line {last_line + 1}: a row starting here never ends: {exc} (an unterminated quote?)",
            hint="Every quoted field must end with a closing quote.",
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
    # columns with no name and no data are dropped: spreadsheets leave them after the last,
    # and people leave one between groups of columns as a spacer
    keep = [
        i
        for i, name in enumerate(names)
        if name != "" or any(len(r) > i and r[i].strip() for r in rows)
    ]
    seen: dict[str, int] = {}
    for i in keep:
        name = names[i]
        if name == "":
            raise InputError(
                f"{path}, line {line}: column {i + 1} has no name in the header row, and "
                "values under it",
                hint="Give it a name, or delete the column.",
            )
        if name in seen:
            raise InputError(
                f"{path}, line {line}: duplicate column name {name!r} at positions {seen[name] + 1} and {i + 1}",
                hint="Rename one of the columns so each header is unique.",
            )
        seen[name] = i
    return [names[i] for i in keep], keep


# ---------------------------------------------------------------- XLSX


class Cell(StrEnum):
    """A workbook cell's type, kept beside its text (SourceTable.cells)."""

    TEXT = ""
    NUMBER = "n"
    PERCENT = "%"  # a number shown as a percent
    DATE = "d"  # a date or time shown so that it cannot be misread (yyyy-mm-dd, a month's name)
    MONTH_FIRST = "md"  # a date shown month first in figures (mm/dd/yy)
    DAY_FIRST = "dm"  # a date shown day first in figures (dd.mm.yyyy, dd/mm/yy)


def _cell_type(cell: Any) -> Cell:
    value = getattr(cell, "value", None)
    if isinstance(value, date | time):
        shown = re.sub(r'\\.|"[^"]*"|\[[^]]*\]', "", str(getattr(cell, "number_format", "") or ""))
        shown = shown.lower()
        day, month = shown.find("d"), shown.find("m")
        if day < 0 or month < 0 or "mmm" in shown or shown.lstrip().startswith("y"):
            return Cell.DATE
        return Cell.DAY_FIRST if day < month else Cell.MONTH_FIRST
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Cell.PERCENT if "%" in str(getattr(cell, "number_format", "") or "") else Cell.NUMBER
    return Cell.TEXT


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # as the sheet shows it, and its CSV save writes it
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and not value.is_integer() and "e" in repr(value):
        return format(Decimal(repr(value)), "f")  # 1e-05 -> 0.00001: a number, not a formula
    if isinstance(value, datetime):
        return as_text(value, "%Y-%m-%d") if value.time() == time(0) else as_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# A sheet part this much larger than its compressed bytes is a zip bomb, not a spreadsheet (real
# sheets compress 5-30x); and Excel itself stores at most 32,767 characters in a cell.
XLSX_MAX_RATIO = 200
XLSX_RATIO_FLOOR = 50 << 20  # parts smaller than this may compress as they like
_FORMULA_TAG = re.compile(rb"<(?:[^\s<>:/]+:)?f[\s>/]")


# A cell holds at most 32,767 characters (up to 4 bytes each in UTF-8): XML text longer than
# this between two tags is no spreadsheet cell, and parsing it would hold it all in memory.
XLSX_MAX_TEXT_RUN = 4 * CELL_CHARACTERS + 1024


def _longest_text_run(stream: Any) -> int:
    """The longest run of bytes without a '<' in a stream, read 1 MB at a time."""
    longest = carry = 0
    while block := stream.read(1 << 20):
        pieces = block.split(b"<")
        if len(pieces) == 1:
            carry += len(block)
        else:
            longest = max(longest, carry + len(pieces[0]), *(len(p) for p in pieces[1:-1]))
            carry = len(pieces[-1])
        if max(longest, carry) > XLSX_MAX_TEXT_RUN:
            return max(longest, carry)
    return max(longest, carry)


def _check_xlsx_parts(path: Path) -> int:
    """Refuse a workbook whose parts expand beyond reason, or hold a text no cell can, before
    any of it is parsed (bounded memory: the parts are streamed). How many bytes its XML
    parts hold (_TextBudget)."""
    xml = 0
    try:
        with zipfile.ZipFile(path) as z:
            if "mimetype" in z.namelist() and z.getinfo("mimetype").file_size < 200:
                kind = z.read("mimetype").decode("ascii", "replace")
                if "opendocument" in kind:  # LibreOffice's own format (.ods)
                    raise InputError(
                        f"{path}: an OpenDocument spreadsheet (.ods), which is not read",
                        hint="In LibreOffice: File > Save As, type Excel 2007-365 (.xlsx) or "
                        "Text CSV (UTF-8), and use that file.",
                    )
            for info in z.infolist():
                if info.file_size > XLSX_RATIO_FLOOR and info.file_size > XLSX_MAX_RATIO * max(
                    info.compress_size, 1
                ):
                    raise InputError(
                        f"{path}: part {info.filename} expands from {info.compress_size:,} to "
                        f"{info.file_size:,} bytes; refused as a zip bomb, not a spreadsheet",
                        hint="Open it in a spreadsheet program and save it again, or export it as CSV.",
                    )
                if info.filename.endswith(".xml"):
                    xml += info.file_size
                if info.filename.endswith(".xml") and info.file_size > XLSX_MAX_TEXT_RUN:
                    with z.open(info) as part:
                        run = _longest_text_run(part)
                    if run > XLSX_MAX_TEXT_RUN:
                        raise InputError(
                            f"{path}: part {info.filename} holds a text of more than "
                            f"{XLSX_MAX_TEXT_RUN:,} bytes, more than a spreadsheet cell can "
                            f"hold ({CELL_CHARACTERS:,} characters); refused before reading it",
                            hint="Open it in a spreadsheet program and save it again, or export it as CSV.",
                        )
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    return xml


# A cell may name a shared string of 32,767 characters, and every cell the same one: a 52 KB
# workbook read as 640 million characters (2.9 GB, and a rejects file of 642 MB). A real
# workbook's text is of the order of its XML's bytes: a hundred times that (and 64 million
# characters) is more than any holds.
XLSX_TEXT_PER_BYTE = 100
XLSX_TEXT_FLOOR = 64_000_000


class _TextBudget:
    def __init__(self, path: Path, sheet: str, xml_bytes: int) -> None:
        self.path, self.sheet, self.xml_bytes = path, sheet, xml_bytes
        self.most = max(XLSX_TEXT_FLOOR, XLSX_TEXT_PER_BYTE * xml_bytes)
        self.read = 0

    def spend(self, number: int, cells: list[str]) -> None:
        self.read += sum(len(c) for c in cells)
        if self.read > self.most:
            raise InputError(
                f"{self.path}, sheet {self.sheet!r}: {self.read:,} characters of text by row "
                f"{number}, from a workbook of {self.xml_bytes:,} bytes of XML: its cells repeat "
                "long texts far beyond what a spreadsheet of this size holds; refused before it "
                "takes the machine's memory",
                hint="Open it in a spreadsheet program and check its long texts, or export it "
                "as CSV.",
            )


def _has_formulas(path: Path) -> bool:
    """Might any part hold a formula (`<f>`, any namespace prefix)? Read in blocks, without
    parsing; every XML part is looked at (a sheet may live anywhere the workbook's rels say),
    and a part not in UTF-8 (UTF-16 XML) counts as a maybe. A maybe costs a second, exact
    pass; a miss would read formulas as empty cells."""
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".xml") or info.filename.endswith("sharedStrings.xml"):
                continue
            with z.open(info) as f:
                tail = b""
                first = True
                while block := f.read(1 << 20):
                    if first and (block[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in block[:64]):
                        return True
                    first = False
                    if _FORMULA_TAG.search(tail + block):
                        return True
                    tail = block[-64:]
    return False


def _uncached_formulas(path: Path, sheet: str) -> list[str]:
    """Cells holding a formula whose result the file does not carry (never calculated, e.g. a
    workbook written by a program, not saved by Excel): read as values they would be empty."""
    import openpyxl

    if not _has_formulas(path):
        return []
    found: list[str] = []
    # a file object, not the path: openpyxl refuses a path by its extension (an XLSX named .csv)
    with path.open("rb") as a, path.open("rb") as b:
        values = openpyxl.load_workbook(a, read_only=True, data_only=True)
        formulas = openpyxl.load_workbook(b, read_only=True, data_only=False)
        v_ws, f_ws = values[sheet], formulas[sheet]
        v_ws.reset_dimensions()
        f_ws.reset_dimensions()
        for v_row, f_row in zip(v_ws.iter_rows(), f_ws.iter_rows(), strict=False):
            for v_cell, f_cell in zip(v_row, f_row, strict=False):
                if f_cell.data_type == "f" and v_cell.value is None:
                    found.append(f"{f_cell.coordinate} ({f_cell.value})")
    return found


_PAST_THE_HEADER = 64  # read_xlsx: columns kept past the header's last name


def _far_right(tail: tuple[Any, ...]) -> bool:
    """Whether cells far right of the header hold anything. openpyxl fills a row's gaps with
    one shared empty cell: only the others are looked at (a styled empty cell at the row's
    end, column XFD, is one, and holds nothing)."""
    from openpyxl.cell.read_only import EMPTY_CELL

    present = [c for c in tail if c is not EMPTY_CELL]  # `is`: a cell's == reads its parent
    return any(_cell_text(getattr(c, "value", None)).strip() for c in present)


def _cells_of(path: Path, sheet: str, number: int, row_cells: tuple[Any, ...]) -> list[str]:
    """A row's cells as text; one longer than a cell holds is refused, naming it."""
    cells = [_cell_text(getattr(c, "value", None)) for c in row_cells]
    for column, text in enumerate(cells, start=1):
        if len(text) > CELL_CHARACTERS:
            raise InputError(
                f"{path}, sheet {sheet!r}, cell {get_column_letter(column)}{number}: "
                f"{len(text):,} characters, more than a spreadsheet cell can hold "
                f"({CELL_CHARACTERS:,})"
            )
    return cells


def _rows(path: Path, ws: Any, min_row: int = 1) -> Generator[tuple[Any, ...], None, None]:
    """The sheet's rows from `min_row`; a cell openpyxl cannot make sense of is the file's
    fault, not ours."""
    rows = ws.iter_rows(min_row=min_row)
    number = min_row - 1
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except (ValueError, TypeError, KeyError, IndexError) as exc:  # IndexError: a cell
            # naming a shared string the workbook does not have
            raise InputError(
                f"{path}: a damaged cell after row {number} ({exc})",
                hint="Open it in a spreadsheet program and save it again, or export it as CSV.",
            ) from None
        except (ElementTree.ParseError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            # a cut or damaged sheet, or XML with entities (refused by the parser, unexpanded)
            raise InputError(
                f"{path}: not a readable XLSX workbook: its sheet's XML breaks after row "
                f"{number} ({exc})",
                hint="Open it in a spreadsheet program and save it again, or export it as CSV.",
            ) from None
        number += 1
        yield values


def read_xlsx(path: Path, *, sheet: str | None = None) -> SourceTable:
    import openpyxl

    xml_bytes = _check_xlsx_parts(path)
    source = path.open("rb")  # not the path: openpyxl refuses one by its extension
    try:
        book = openpyxl.load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        source.close()
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise InputError(
                f"{path}: no sheet named {sheet!r}", hint=f"Sheets: {', '.join(book.sheetnames)}."
            )
        ws = book[sheet] if sheet else _first_shown(book.worksheets)
        sheet_name = ws.title
        hidden = {w.title for w in book.worksheets if _hidden(w)}
        sheets = [w.title for w in book.worksheets]
        # The <dimension> tag is written by whatever made the file and may be stale: trusting
        # it loses rows and columns silently, or (A1:XFD1048576) pads millions of empty cells.
        ws.reset_dimensions()
        rows: list[list[str]] = []
        kinds: list[list[str]] = []
        lines: list[int] = []
        header: list[str] | None = None
        header_line = 0
        # openpyxl pads each row to its last cell: an empty styled cell in column XFD makes
        # 16,384 of every row (a 69 KB workbook took 1.8 GB). The rows under the header are
        # read as far as a few columns past its last name, and kept without their trailing
        # empties; cells further right are only looked at for data (_far_right).
        reading = _rows(path, ws)
        for number, row_cells in enumerate(reading, start=1):
            cells = _cells_of(path, sheet_name, number, row_cells)
            if any(c.strip() for c in cells):
                header, header_line = cells, number
                break
        reading.close()
        if header is not None:
            named = max(i for i, h in enumerate(header) if h.strip()) + 1
            header = header[: named + _PAST_THE_HEADER]
            cap = named + _PAST_THE_HEADER
            below = _rows(path, ws, min_row=header_line + 1)
            budget = _TextBudget(path, sheet_name, xml_bytes)
            for number, row_cells in enumerate(below, start=header_line + 1):
                head = row_cells[:cap]
                if len(row_cells) > cap and _far_right(row_cells[cap:]):
                    head = row_cells  # refused below, naming its cells: read it all
                cells = _cells_of(path, sheet_name, number, head)
                budget.spend(number, cells)
                if not any(c.strip() for c in cells):
                    continue
                used = len(cells)
                while used and not cells[used - 1]:
                    used -= 1
                rows.append(cells[:used])
                kinds.append([_cell_type(c) for c in row_cells[:used]])
                lines.append(number)
    finally:
        book.close()
        source.close()
    if header is None:
        others = [n for n in book.sheetnames if n != sheet_name]
        raise InputError(
            f"{path}: sheet {sheet_name!r} is empty (no header row)",
            hint=f"Other sheets: {', '.join(others)}; choose one with --sheet NAME."
            if others
            else None,
        )
    uncached = _uncached_formulas(path, sheet_name)
    if uncached:
        shown = ", ".join(uncached[:5]) + (
            f" and {len(uncached) - 5} more" if len(uncached) > 5 else ""
        )
        raise InputError(
            f"{path}, sheet {sheet_name!r}: {len(uncached)} formula cell(s) without a calculated "
            f"value, which would read as empty: {shown}",
            hint="Open the workbook in Excel or LibreOffice and save it (that calculates the formulas), or paste them as values.",
        )
    names, keep = _header(path, header, header_line, rows)
    width = len(header)
    bad: list[BadRow] = []
    good_rows: list[list[str]] = []
    good_kinds: list[list[str]] = []
    good_lines: list[int] = []
    for number, r, k in zip(lines, rows, kinds, strict=True):
        beyond = [
            f"{get_column_letter(i + 1)}{number}" for i in range(width, len(r)) if r[i].strip()
        ]
        if beyond:
            bad.append(
                BadRow(
                    number,
                    r,
                    f"row {number} has data in {', '.join(beyond[:5])}, beyond the header's "
                    f"{width} column(s)",
                )
            )
            continue
        good_rows.append(r)
        good_kinds.append(k)
        good_lines.append(number)
    padded = [[(r + [""] * width)[i] for i in keep] for r in good_rows]
    frame = pd.DataFrame(
        {n: pd.array([r[j] for r in padded], dtype="string") for j, n in enumerate(names)}
    )
    typed = [[(k + [""] * width)[i] for i in keep] for k in good_kinds]
    types = {
        n: pd.Series([k[j] for k in typed], dtype="string")
        for j, n in enumerate(names)
        if any(k[j] for k in typed)
    }
    table = SourceTable(path, frame, good_lines, "row", bad_rows=bad, cells=types)
    if len(sheets) > 1:
        table.sheet = sheet_name
    if sheet is None and len(sheets) > 1:  # worksheets: a chart is no sheet to read
        others = [n for n in sheets if n != sheet_name]
        shown = ", ".join(
            repr(n[:40]) + (" (hidden)" if n in hidden else "") for n in others[:5]
        ) + (" …" if len(others) > 5 else "")
        table.notes.append(
            f"sheet {sheet_name!r} read, the first one shown; the workbook has {len(others)} "
            f"other(s) ({shown}): choose one with --sheet NAME"
        )
    return table


def _hidden(sheet: Any) -> bool:
    return getattr(sheet, "sheet_state", "visible") != "visible"  # hidden, veryHidden


def _first_shown(sheets: list[Any]) -> Any:
    """The first sheet a person sees: one hidden before it (an old copy, a lookup table) is
    not the data they mean, and was read without a word."""
    return next((ws for ws in sheets if not _hidden(ws)), sheets[0])  # Excel shows one


# ---------------------------------------------------------------- Parquet


def read_parquet(path: Path) -> SourceTable:
    """Typed already; shown to validation as the same text `export --format csv` writes."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    return _parquet_rows(path, table, 0)


PARQUET_ROWS = 100_000  # iter_parquet: the rows of a batch


def iter_parquet(path: Path) -> Iterator[SourceTable]:
    """read_parquet a batch of rows at a time (validate of a file of millions of rows: a few
    kilobytes of Parquet may hold gigabytes of text)."""
    try:
        file = pq.ParquetFile(path)
        done = 0
        for batch in file.iter_batches(batch_size=PARQUET_ROWS):
            yield _parquet_rows(path, pa.Table.from_batches([batch]), done)
            done += batch.num_rows
        if not done:
            yield _parquet_rows(path, file.schema_arrow.empty_table(), 0)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None


def _parquet_rows(path: Path, table: pa.Table, before: int) -> SourceTable:
    """Rows of a Parquet file as text, in Arrow (no Python string a cell); `before`: the
    rows of the file before them."""
    data = {}
    for name in table.column_names:
        dtype = table.schema.field(name).type
        if (
            pa.types.is_binary(dtype)
            or pa.types.is_large_binary(dtype)
            or pa.types.is_fixed_size_binary(dtype)
            or pa.types.is_map(dtype)
            or pa.types.is_union(dtype)
        ):
            raise InputError(
                f"{path}: column {name!r} holds {dtype}, which no Insightly field takes",
                hint="Drop or convert that column (to text or numbers) before importing.",
            )
        try:
            column = to_csv_column(table[name])
            text = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
            text = pc.fill_null(text.combine_chunks(), "")
            text.validate(full=True)  # text that is no UTF-8 (Parquet does not check it)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            # a list of large strings, a list view, bytes that are no UTF-8 text …
            raise InputError(
                f"{path}: column {name!r} holds {dtype}, which is not read as text ({exc})",
                hint="Drop or convert that column (to text or numbers) before importing.",
            ) from None
        data[name] = pd.array(text, dtype=pd.StringDtype("pyarrow"))
    frame = pd.DataFrame(data)
    lines = list(range(before + 1, before + table.num_rows + 1))
    return SourceTable(path, frame, lines, "row")
