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

from insightly_etl.api.registry import custom_values, record_id
from insightly_etl.extract.schema import DAY, META_SOURCE, TIMESTAMP
from insightly_etl.moments import DATETIME_FORMAT, ISO_FORMAT, iso_instant

Record = dict[str, Any]
_TAGS_WIRE = pa.list_(pa.struct([pa.field("TAG_NAME", pa.string())]))
_DATE_FORMATS = (DATETIME_FORMAT, ISO_FORMAT, "%Y-%m-%d")


class PageConverter:
    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.bad_values: Counter[str] = Counter()  # column -> values kept as null
        # records left out: an id that is no integer (the record cannot be keyed), or an id a
        # page already gave (a server that pages inconsistently)
        self.bad_ids = 0
        self.duplicate_ids = 0
        self._ids = [f.name for f in schema if not f.nullable and f.type == pa.int64()]
        self._seen: set[int] = set()
        self._custom = [f.name for f in schema if (f.metadata or {}).get(META_SOURCE) == b"custom"]
        standard = [f for f in schema if f.name not in self._custom]
        # the standard fields as they travel: date-times still text, parsed after
        self._wire = pa.schema(
            [
                pa.field(f.name, _TAGS_WIRE if f.name == "TAGS" else _as_wire(f.type))
                for f in standard
            ]
        )

    def _keyed(self, records: list[Record]) -> list[Record]:
        """The records whose id is an integer not seen before (see bad_ids, duplicate_ids)."""
        if not self._ids:
            return records
        name = self._ids[0]
        kept = []
        for record in records:
            rid = record_id(record, name) if isinstance(record, dict) else None
            if rid is None:
                self.bad_ids += 1
            elif rid in self._seen:
                self.duplicate_ids += 1
            else:
                self._seen.add(rid)
                kept.append(record if record.get(name) == rid else {**record, name: rid})
        return kept

    def to_batch(self, records: list[Record]) -> pa.RecordBatch:
        records = self._keyed(records)
        columns = dict(zip(self._wire.names, self._standard_columns(records), strict=True))
        if self._custom:
            # a server's CUSTOMFIELDS that is no list of pairs: every custom field of the
            # record would be null without a word
            if odd := sum(not isinstance(r.get("CUSTOMFIELDS"), list | None) for r in records):
                self.bad_values["CUSTOMFIELDS"] += odd
            values = [custom_values(r) for r in records]
            for name in self._custom:
                columns[name] = self._column(self.schema.field(name), [v.get(name) for v in values])
        return pa.RecordBatch.from_arrays(
            [columns[f.name] for f in self.schema], schema=self.schema
        )

    def to_table(self, records: list[Record]) -> pa.Table:
        """For an incremental merge: the same checks, without remembering ids across calls."""
        self._seen = set()
        return pa.Table.from_batches([self.to_batch(records)], schema=self.schema)

    def _standard_columns(self, records: list[Record]) -> list[pa.Array]:
        """All standard columns at once in C++; column by column only if that fails."""
        try:
            wire = pa.RecordBatch.from_pylist(records, schema=self._wire)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            return [
                self._column(self.schema.field(f.name), [r.get(f.name) for r in records])
                for f in self._wire
            ]
        out = []
        for f, column in zip(self._wire, wire.columns, strict=True):
            target = self.schema.field(f.name).type
            if target in (TIMESTAMP, DAY):
                out.append(self._timestamps(f.name, column, target=target))
            elif f.type == _TAGS_WIRE:  # [{TAG_NAME}] -> [TAG_NAME]
                names = pc.struct_field(column.flatten(), "TAG_NAME")
                if names.null_count or pc.any(pc.equal(names, "")).as_py():
                    # a tag without a name is no tag: the rows read one by one, which drop it
                    values = [r.get(f.name) for r in records]
                    out.append(self._column(self.schema.field(f.name), values))
                else:
                    out.append(
                        pa.ListArray.from_arrays(column.offsets, names, mask=column.is_null())
                    )
            elif f.type != target:  # nested structs holding date-times
                try:
                    out.append(column.cast(_as_naive(target)).cast(target))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    out.append(
                        self._column(self.schema.field(f.name), [r.get(f.name) for r in records])
                    )
            else:
                out.append(self._finite(f.name, column))
        return out

    def _finite(self, name: str, column: pa.Array) -> pa.Array:
        """A number column without NaN or infinity (a lenient JSON parser takes them; no
        warehouse wants them): they become no value, counted like any value that did not fit."""
        if not pa.types.is_floating(column.type):
            return column
        finite = pc.fill_null(pc.is_finite(column), True)
        bad = len(column) - (pc.sum(pc.cast(finite, pa.int64())).as_py() or 0)
        if not bad:
            return column
        self.bad_values[name] += bad
        return pc.if_else(finite, column, pa.scalar(None, column.type))

    # ---------------------------------------------------------------- one column
    def _column(self, field: pa.Field, raw: list[Any]) -> pa.Array:
        dtype = field.type
        if dtype in (TIMESTAMP, DAY):
            return self._timestamps(
                field.name,
                pa.array([v if isinstance(v, str) else None for v in raw], pa.string()),
                raw,
                target=dtype,
            )
        if pa.types.is_list(dtype) and pa.types.is_string(dtype.value_type):
            raw = [_string_list(v) for v in raw]
        elif pa.types.is_list(dtype) and pa.types.is_struct(dtype.value_type):
            lists = [_struct_list(v, dtype.value_type) for v in raw]
            if odd := sum(v is not None and x is None for v, x in zip(raw, lists, strict=True)):
                self.bad_values[field.name] += odd
            raw = lists
        try:
            return self._finite(field.name, pa.array(raw, type=dtype))
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

    def _timestamps(
        self,
        name: str,
        strings: pa.Array,
        raw: list[Any] | None = None,
        *,
        target: pa.DataType = TIMESTAMP,
    ) -> pa.Array:
        """`yyyy-MM-dd HH:mm:ss` text (or ISO, or a bare date) to UTC timestamps, vectorised;
        to calendar days when `target` is DAY (the date the text names, whatever its time)."""
        bad = 0 if raw is None else sum(1 for v in raw if v is not None and not isinstance(v, str))
        strings = pc.if_else(pc.equal(pc.utf8_trim_whitespace(strings), ""), None, strings)
        result = pc.strptime(strings, format=_DATE_FORMATS[0], unit="ms", error_is_null=True)
        for fmt in _DATE_FORMATS[1:]:
            missing = pc.and_(pc.is_null(result), pc.is_valid(strings))
            if not pc.any(missing).as_py():
                break
            other = pc.strptime(strings, format=fmt, unit="ms", error_is_null=True)
            result = pc.if_else(missing, other, result)
        # Arrow's strptime rolls an impossible day over (2020-02-31 is read as 2 March): a day
        # the text does not name is no day, kept as null and counted like any bad value
        named = pc.extract_regex(strings, r"^\s*(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})")
        rolled = pa.array([False] * len(strings), pa.bool_())
        for part, of in (("y", pc.year), ("m", pc.month), ("d", pc.day)):
            said = pc.cast(pc.struct_field(named, part), pa.int64())  # 2020-2-3 too
            rolled = pc.or_(rolled, pc.fill_null(pc.not_equal(said, of(result)), False))
        result = pc.if_else(rolled, pa.scalar(None, result.type), result)
        missing = pc.and_(pc.and_(pc.is_null(result), pc.is_valid(strings)), pc.invert(rolled))
        if pc.any(missing).as_py():  # other ISO forms, one by one: a `T` without `Z`, an
            # offset, fractions of a second (seen from other servers and proxies)
            others = [
                _iso_instant(v) if m else None
                for v, m in zip(strings.to_pylist(), missing.to_pylist(), strict=True)
            ]
            result = pc.if_else(missing, pa.array(others, type=result.type), result)
        bad += pc.sum(pc.and_(pc.is_null(result), pc.is_valid(strings))).as_py() or 0
        if bad:
            self.bad_values[name] += bad
        if target == DAY:
            return pc.cast(result, DAY, safe=False)  # the day the text names, its time dropped
        return result.cast(TIMESTAMP)


def _as_wire(dtype: pa.DataType) -> pa.DataType:
    """The type a column has in JSON: date-times and days (also nested ones) are text."""
    if dtype in (TIMESTAMP, DAY):
        return pa.string()
    if pa.types.is_list(dtype):
        return pa.list_(_as_wire(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _as_wire(f.type)) for f in dtype])
    return dtype


def _as_naive(dtype: pa.DataType) -> pa.DataType:
    """Text casts to timestamps without a zone; a second cast then says UTC."""
    if dtype in (TIMESTAMP, DAY):
        return pa.timestamp("ms")
    if pa.types.is_list(dtype):
        return pa.list_(_as_naive(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _as_naive(f.type)) for f in dtype])
    return dtype


def _string_list(value: Any) -> Any:
    """MULTISELECT values travel as "A;B;C" (docs/api.md §3); TAGS as [{TAG_NAME}]."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part for part in value.split(";") if part != ""]
    if isinstance(value, list):
        return [
            str(v.get("TAG_NAME")) if isinstance(v, dict) else str(v)
            for v in value
            if v is not None and (not isinstance(v, dict) or v.get("TAG_NAME") not in (None, ""))
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
                if f.type in (TIMESTAMP, DAY):
                    v = _to_datetime(v)
                    v = v.date() if v is not None and f.type == DAY else v
                else:
                    v = _FIXERS.get(str(f.type), _same)(v)
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
    moment = _iso_instant(v)
    return None if moment is None else moment.replace(tzinfo=UTC)


def _iso_instant(text: Any) -> datetime | None:
    """An ISO moment as naive UTC, to the millisecond (what the Parquet column holds)."""
    moment = iso_instant(text) if isinstance(text, str) else None
    return None if moment is None else moment.replace(microsecond=moment.microsecond // 1000 * 1000)


_INT64 = range(-(2**63), 2**63)


def _to_int(v: Any) -> int | None:
    """An integer that fits int64, from an int, a whole float or digits; else None."""
    if isinstance(v, bool):
        return None
    number: int | None = None
    if isinstance(v, int):
        number = v
    elif isinstance(v, float) and v.is_integer():
        number = int(v)
    elif isinstance(v, str):
        try:
            number = int(v.strip())
        except ValueError:
            return None
    return number if number is not None and number in _INT64 else None


def _to_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):  # JSON's NaN and Infinity (a lenient parser takes them)
        return float(v) if math.isfinite(v) else None
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
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON's NaN in a text field is no text
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(v, ensure_ascii=False)  # an object or array kept as JSON text


_FIXERS: dict[str, Callable[[Any], Any]] = {
    "int64": _to_int,
    "double": _to_float,
    "bool": _to_bool,
    "string": _to_str,
}
