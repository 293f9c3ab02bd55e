"""The files the tool writes for people and other programs, in one home for export and import:

- **whole or not at all**: written under `.NAME.partial` beside the target and renamed into
  place when complete (`os.replace` is atomic on one filesystem); an interrupted run leaves only
  `.partial` files, which the next run removes;
- **safe to open in a spreadsheet**: a text cell starting with `=`, `+`, `-`, `@`, a tab or a
  carriage return is a formula to Excel, LibreOffice and Google Sheets, which they run when the
  file is opened (CSV injection). Every CSV we write prefixes such a cell with `'` (the OWASP
  rule); numbers stay numbers. Our readers drop one `'` again from any CSV or workbook they
  read (a user's too: a typed `'=x` is sent as `=x`), so an escaped file imports back as the
  values it holds. What is sent to the API is never escaped;
- **the CSV text of typed values**: date-times as `yyyy-MM-dd HH:mm:ss` (as Insightly writes
  them), lists of strings `;`-joined, lists of structs as JSON — what `export --format csv`
  writes and what import reads back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.config import REDACTED, known_secrets, redact
from insightly_etl.moments import DATETIME_FORMAT, as_text

if TYPE_CHECKING:  # pandas is imported where a frame is written or read (a third of a second
    import pandas as pd  # of every start, and an export writes none)

PARTIAL_SUFFIX = ".partial"
TIMESTAMP = pa.timestamp("ms", tz="UTC")  # whole seconds; Parquet has no seconds unit
DAY = pa.date32()  # a calendar day (a birthday, a due date): no time, no zone
# A cell a spreadsheet runs: starts with = + - @ tab CR — or is already one apostrophe-escaped
# (`'=1`), so that a value which really begins with `'=` survives the round trip (`''=1`).
FORMULA_START = r"^'*[=+\-@\t\r]"
# the escaping apostrophe and what it escaped, without a lookahead: RE2 (pyarrow's strings
# under pandas 2) has none
ESCAPED_FORMULA = r"^'('*[=+\-@\t\r])"
_RISKY = re.compile(FORMULA_START)


def utc_now() -> str:
    """Now, as Insightly writes date-times (UTC, whole seconds)."""
    return datetime.now(UTC).strftime(DATETIME_FORMAT)


# ---------------------------------------------------------------- whole or not at all


CELL_CHARACTERS = 32_767  # the most a spreadsheet cell holds (Excel, Calc; our XLSX export)


def cell_length(text: str) -> int:
    """A text's length as a spreadsheet counts it: in UTF-16 units, an emoji two (Excel's
    LEN; what its 32,767-character cell limit counts)."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def in_a_cell(text: str) -> str:
    """`text` as a spreadsheet cell holds it: the first CELL_CHARACTERS units (cell_length),
    never half an emoji."""
    if len(text) <= CELL_CHARACTERS // 2 or cell_length(text) <= CELL_CHARACTERS:
        return text
    units = text.encode("utf-16-le")[: 2 * CELL_CHARACTERS]
    if 0xD8 <= units[-1] <= 0xDB:  # the last unit is the first half of a pair: not kept
        units = units[:-2]
    return units.decode("utf-16-le")


def sha256_file(path: Path) -> str:
    """A file's bytes as a SHA-256 digest (hex): whether it is the one seen before."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def remove_partials(directory: Path) -> None:
    for leftover in directory.glob(f".*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def naming(exc: OSError, path: Path) -> OSError:
    """`exc`, naming `path` when it names no file (a full disk, as a write or pyarrow reports
    it): the error a person reads says which file could not be written."""
    if exc.filename is not None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def open_partial(path: Path) -> tuple[Path, BinaryIO]:
    """The partial file a file of ours is written to, made afresh (`O_EXCL`) and never
    through a link (`O_NOFOLLOW`): whatever is under its name — a leftover, or a symlink
    someone planted to have customer data written to its target — is removed, not followed."""
    tmp = partial_path(path)
    try:
        tmp.unlink(missing_ok=True)  # the name only: a link goes, its target is untouched
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        return tmp, os.fdopen(os.open(tmp, flags, 0o644), "wb")
    except OSError as exc:  # said of the file asked for, not of our partial name for it
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def publish(tmp: Path, path: Path) -> None:
    """The one way a file of ours appears: complete under its partial name, then renamed into
    place. If the rename fails (a directory in the way, a read-only target), the partial file
    goes too: nothing half-made is left behind."""
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes, *, into_special: bool = False) -> None:
    """`data` as the whole file, or no file. `into_special`: a path that is already something
    other than a regular file — /dev/stdout, a named pipe, /dev/null — is written to as it
    is, never replaced by a file (a report or summary asked to go there)."""
    if into_special:
        if path.exists() and not path.is_file():
            with open(path, "wb") as out:
                out.write(data)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp, file = open_partial(path)
    try:
        with file:
            file.write(data)
        publish(tmp, path)
    except OSError as exc:  # a full disk names no file: this one was being written
        raise naming(exc, path) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, value: Any, *, into_special: bool = False) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode(), into_special=into_special)


def write_csv(frames: pd.DataFrame | Iterable[pd.DataFrame], path: Path, *, sep: str = ",") -> Path:
    """A results file: formula-escaped, UTF-8 with a BOM (so Excel shows accents right; our
    reader drops it again), complete or absent. Several frames (of the same columns) are
    written one after the other, so a large file never has to be whole in memory. `sep`: the
    delimiter of the file whose cells it carries, so a fixed copy reads as that file did (a
    `;` file's `1,234` is one and a quarter, in a `,` file a thousand)."""
    import pandas as pd

    tmp, file = open_partial(path)
    chunks = [frames] if isinstance(frames, pd.DataFrame) else frames
    try:
        with file:
            for i, frame in enumerate(chunks):
                escape_frame(frame).to_csv(
                    file,
                    sep=sep,
                    index=False,
                    header=i == 0,
                    encoding="utf-8-sig" if i == 0 else "utf-8",
                    mode="wb",
                )
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------- formula escaping


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells and headers cannot run as formulas, and that holds no known
    API key; numbers and other types unchanged."""
    import pandas as pd

    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            out[name] = _safe_texts(column)
    out.columns = [escape_text(redact(str(c))) for c in out.columns]
    return out


def _safe_texts(column: pd.Series) -> pd.Series:
    """The column's text cells redacted and escaped in Arrow, a column at a time (a Python
    call per cell took seconds on a plan of a million lines); other cells as they are."""
    import numpy as np
    import pandas as pd

    values = column.to_numpy(dtype=object, na_value=None, copy=True)
    texts = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    if not texts.any():
        return column
    safe = pa.array(values[texts], type=pa.large_string())
    for secret in known_secrets():
        safe = pc.replace_substring(safe, secret, REDACTED)
    values[texts] = escape_column(safe).to_numpy(zero_copy_only=False)
    return pd.Series(values, index=column.index, dtype=column.dtype)


def escape_text(value: str) -> str:
    value = value.replace("\x00", "\ufffd")  # a NUL makes a CSV binary data to its readers
    return f"'{value}" if _RISKY.match(value) else value


def escape_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The Arrow form, for exports: only string columns change."""
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        return column
    if pc.any(pc.match_substring(column, "\x00")).as_py():  # binary data to a CSV's readers
        column = pc.replace_substring(column, "\x00", "\ufffd")
    risky = pc.match_substring_regex(column, FORMULA_START)
    if not pc.any(risky).as_py():
        return column
    quote, nothing = pa.scalar("'", column.type), pa.scalar("", column.type)
    return pc.if_else(risky, pc.binary_join_element_wise(quote, column, nothing), column)


def unescape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo `escape_*` on a file read back: `'=1+2` is the text `=1+2` (headers too)."""
    frame.columns = [re.sub(ESCAPED_FORMULA, r"\1", str(c)) for c in frame.columns]
    for name in frame.columns:
        column = frame[name]
        if column.str.startswith("'").any():
            frame[name] = column.str.replace(ESCAPED_FORMULA, r"\1", regex=True)
    return frame


# ---------------------------------------------------------------- CSV text of typed values


def csv_schema(schema: pa.Schema, text: list[bool] | None = None) -> pa.Schema:
    """The same column names (escaped where a spreadsheet would run them: a custom field's
    name comes from the server); lists and timestamps become text, and the columns `text`
    marks (numbers written with a decimal comma)."""
    marked = text or [False] * len(schema)
    return pa.schema(
        [
            pa.field(
                escape_text(f.name),
                pa.string() if _needs_text(f.type) or as_text else f.type,
                metadata=f.metadata,
            )
            for f, as_text in zip(schema, marked, strict=True)
        ]
    )


def _needs_text(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_list(dtype) or pa.types.is_struct(dtype) or dtype == TIMESTAMP)


def to_csv_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Lists of strings as `;`-joined text (MULTISELECT, TAGS), lists of structs as JSON,
    timestamps as `yyyy-MM-dd HH:mm:ss` — what Insightly writes, and what import reads back."""
    dtype = column.type
    if dtype == TIMESTAMP:
        # whole seconds, as the API writes them (%S on milliseconds would add ".000")
        seconds = column.cast(pa.timestamp("s", tz="UTC"), safe=False)
        return pc.strftime(seconds, format=DATETIME_FORMAT)
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
        return as_text(value.astimezone(UTC))
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# beside an export in CSV or XLSX: the records as exported, in Parquet, that an edited copy is
# merged with on import (extract writes them, load reads them)
BASE_DIR = "_base"


# ---------------------------------------------------------------- the shipped examples

# what `insightly-etl examples DIR` writes, from the package (insightly_etl/examples links to
# the repository's own folders, so there is one copy of each file): package path -> DIR path
EXAMPLES = {
    "mappings": "mappings",
    "sample_data": "sample_data",
    "makefiles": "examples",
}
_EXAMPLE_FILES = re.compile(r"\.(ya?ml|csv|xlsx|mk)$|^mapping\.schema\.json$")


def write_examples(directory: Path, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """The sample files, their mappings and the example makefiles, as the README uses them,
    into `directory`: (written, kept). An existing file is kept unless `force`. The sandbox's
    seed is not among them: the sandbox has it built in."""
    from importlib.resources import files

    root = files("insightly_etl") / "examples"
    written: list[Path] = []
    kept: list[Path] = []
    for source, target in EXAMPLES.items():
        for item in _walk(root / source):
            relative = item[0]
            if not _EXAMPLE_FILES.search(relative) or relative.startswith("sandbox/"):
                continue
            path = directory / target / relative
            if path.exists() and not force:
                kept.append(path)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, item[1].read_bytes())
            written.append(path)
    return sorted(written), sorted(kept)


def _walk(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        name = f"{prefix}{child.name}"
        out += _walk(child, f"{name}/") if child.is_dir() else [(name, child)]
    return out
