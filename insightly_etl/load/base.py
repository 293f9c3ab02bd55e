"""The base of a three-way merge: the records as they were exported, beside the CSV or XLSX a
person edited (`export` writes `_base/OBJECT.parquet` next to them), or a file named with
`--base`. With it, only the cells the person changed are sent, and a field a colleague changed
in Insightly since the export is kept unless the person changed it too (a conflict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from insightly_etl.errors import InputError
from insightly_etl.files import BASE_DIR
from insightly_etl.load.readers import read_table


def find_base(file: Path, object_name: str, given: Path | None) -> Path | None:
    """`--base`, else `_base/OBJECT.parquet` in the file's folder (an edited export)."""
    if given is not None:
        if not given.is_file():
            raise InputError(f"{given}: no such file", hint="--base names an export of the object.")
        if given.resolve() == file.resolve():
            raise InputError(
                f"{given}: the base is the file itself, so nothing would count as changed",
                hint="--base names the export as it was, before the edits.",
            )
        return given
    beside = file.parent / BASE_DIR / f"{object_name}.parquet"
    return beside if beside.is_file() else None


def read_base(path: Path, id_field: str) -> dict[int, dict[str, Any]]:
    """Record id -> its fields as exported (Parquet keeps their types; a CSV or XLSX given as
    `--base` is read as text, which compares by value all the same)."""
    if path.suffix.lower() == ".parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        rows = (
            read_table(path).frame.astype(object).where(lambda f: f != "", None).to_dict("records")
        )
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        rid = row.get(id_field)
        try:
            out[int(rid)] = row
        except (TypeError, ValueError):
            continue
    if not out:
        raise InputError(
            f"{path}: no {id_field} column with record ids; not an export to merge with"
        )
    return out
