"""API records (JSON dicts) → Arrow record batches of a fixed schema.

The API is loosely typed (custom values especially: a NUMERIC field may hold "n/a"). Each
column is first handed to Arrow whole; only when that fails is it converted value by value,
and a value that does not fit its column becomes null and is counted, never a crash.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.extract.schema import META_SOURCE, TIMESTAMP

Record = dict[str, Any]
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d")


class PageConverter:
    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.bad_values: Counter[str] = Counter()  # column -> values kept as null
        self._custom = [f.name for f in schema if (f.metadata or {}).get(META_SOURCE) == b"custom"]

    def to_batch(self, records: list[Record]) -> pa.RecordBatch:
        custom_values: list[dict[str, Any]] = []
        if self._custom:
            custom_values = [
                {c.get("FIELD_NAME"): c.get("FIELD_VALUE") for c in r.get("CUSTOMFIELDS") or ()}
                for r in records
            ]
        columns = []
        for field in self.schema:
            if field.name in self._custom:
                raw = [cv.get(field.name) for cv in custom_values]
            else:
                raw = [r.get(field.name) for r in records]
            columns.append(self._column(field, raw))
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def to_table(self, records: list[Record]) -> pa.Table:
        return pa.Table.from_batches([self.to_batch(records)], schema=self.schema)

    # ---------------------------------------------------------------- one column
    def _column(self, field: pa.Field, raw: list[Any]) -> pa.Array:
        dtype = field.type
        if dtype == TIMESTAMP:
            return self._timestamps(field.name, raw)
        if pa.types.is_list(dtype) and pa.types.is_string(dtype.value_type):
            raw = [_string_list(v) for v in raw]
        elif pa.types.is_list(dtype) and pa.types.is_struct(dtype.value_type):
            raw = [_struct_list(v, dtype.value_type) for v in raw]
        try:
            return pa.array(raw, type=dtype)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            pass
        fix = _FIXERS.get(str(dtype))
        if fix is None:  # nested structs: keep what converts, null the rest
            return pa.array([self._one(field.name, dtype, v) for v in raw], type=dtype)
        values = []
        for v in raw:
            fixed = fix(v) if v is not None else None
            if v is not None and fixed is None:
                self.bad_values[field.name] += 1
            values.append(fixed)
        return pa.array(values, type=dtype)

    def _one(self, name: str, dtype: pa.DataType, value: Any) -> Any:
        try:
            pa.array([value], type=dtype)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            self.bad_values[name] += 1
            return None
        return value

    def _timestamps(self, name: str, raw: list[Any]) -> pa.Array:
        texts = [v if isinstance(v, str) and v.strip() else None for v in raw]
        bad = sum(1 for v, t in zip(raw, texts, strict=True) if v is not None and t is None)
        strings = pa.array(texts, type=pa.string())
        result = pc.strptime(strings, format=_DATE_FORMATS[0], unit="s", error_is_null=True)
        for fmt in _DATE_FORMATS[1:]:
            missing = pc.and_(pc.is_null(result), pc.is_valid(strings))
            if not pc.any(missing).as_py():
                break
            other = pc.strptime(strings, format=fmt, unit="s", error_is_null=True)
            result = pc.if_else(missing, other, result)
        bad += pc.sum(pc.and_(pc.is_null(result), pc.is_valid(strings))).as_py() or 0
        if bad:
            self.bad_values[name] += bad
        return result.cast(TIMESTAMP)


def _string_list(value: Any) -> Any:
    """MULTISELECT values travel as "A;B;C" (reference §3); TAGS as [{TAG_NAME}]."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part for part in value.split(";") if part != ""]
    if isinstance(value, list):
        return [
            str(v.get("TAG_NAME")) if isinstance(v, dict) else str(v)
            for v in value
            if v is not None
        ]
    return [str(value)]


def _struct_list(value: Any, struct: pa.StructType) -> Any:
    """Nested LINKS/DATES/EMAILDOMAINS items: their date strings parsed, odd values nulled."""
    if not isinstance(value, list):
        return None
    items = []
    for item in value:
        if not isinstance(item, dict):
            continue
        clean = {}
        for f in struct:
            v = item.get(f.name)
            if v is not None:
                v = _to_datetime(v) if f.type == TIMESTAMP else _FIXERS.get(str(f.type), _same)(v)
            clean[f.name] = v
        items.append(clean)
    return items


def _same(v: Any) -> Any:
    return v


def _to_datetime(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(v.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _to_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None


def _to_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            number = float(v.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _to_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    return None


def _to_str(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(v, ensure_ascii=False)  # an object or array kept as JSON text


_FIXERS: dict[str, Callable[[Any], Any]] = {
    "int64": _to_int,
    "double": _to_float,
    "bool": _to_bool,
    "string": _to_str,
}
