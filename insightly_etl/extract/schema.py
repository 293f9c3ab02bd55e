"""One fixed Arrow schema per object, from the field reference and the account's custom-field
definitions — never inferred from data, so 0 rows or a million give the same columns and types.

    integer → int64        number → float64        boolean → bool         string → string
    date-time → timestamp[ms, tz=UTC] when the name ends in _UTC (an instant), else date32
      (a calendar day: DATE_OF_BIRTH, DUE_DATE, FORECAST_CLOSE_DATE, OCCASION_DATE … — the
      swagger types those date-time too, docs/api.md §6; as an instant a birthday would show a
      day early anywhere west of UTC)
    TAGS → list<string>    LINKS, DATES, EMAILDOMAINS → list<struct<…>>
    custom fields, one column each, named by FIELD_NAME:
      NUMERIC, PERCENT → float64   BIT → bool   DATE → date32   DATETIME → timestamp[ms, tz=UTC]
      MULTISELECT → list<string>   LOOKUP → int64 (a record id of JOIN_OBJECT)
      TEXT, MULTILINETEXT, DROPDOWN, AUTONUMBER, other → string

Date-times: the API gives whole seconds in UTC. Parquet has no seconds unit (a timestamp[s]
column is stored, and read back, as milliseconds), so the schema says timestamp[ms, tz=UTC]:
what is written is exactly what every reader gets back.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from insightly_etl.api.registry import (
    ObjectType,
    custom_field_metadata_fields,
    custom_object_fields,
    nested_schema,
)
from insightly_etl.files import DAY, TIMESTAMP

__all__ = [
    "DAY",
    "TIMESTAMP",
    "custom_fields_schema",
    "custom_objects_schema",
    "describe",
    "object_schema",
]

_SCALARS: dict[str, pa.DataType] = {
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date-time": TIMESTAMP,
    "string": pa.string(),
    "object": pa.string(),  # kept as JSON text
}
CUSTOM_TYPES: dict[str, pa.DataType] = {
    "NUMERIC": pa.float64(),
    "PERCENT": pa.float64(),
    "BIT": pa.bool_(),
    "DATE": DAY,
    "DATETIME": TIMESTAMP,
    "MULTISELECT": pa.list_(pa.string()),
    "LOOKUP": pa.int64(),  # the id of a record of JOIN_OBJECT
}
# field metadata keys, so a reader of the file knows where a column came from
META_SOURCE = b"insightly_source"  # "standard" | "custom"
META_TYPE = b"insightly_type"  # the reference type or the custom FIELD_TYPE
META_OBJECT = b"insightly_object"  # a schema's: the object type its rows are records of
META_RUN = b"insightly_run"  # a Parquet file's: when the run that wrote it began (UTC)


def scalar_type(type_name: str, name: str = "") -> pa.DataType:
    """A standard field's type; `name` tells a calendar day from an instant (docs/api.md §6)."""
    if type_name == "date-time" and not name.endswith("_UTC"):
        return DAY
    return _SCALARS.get(type_name, pa.string())


def _nested_type(field: dict[str, Any]) -> pa.DataType:
    if field["name"] == "TAGS":
        return pa.list_(pa.string())
    items = field.get("items")
    if field["type"] == "array" and items:
        struct = pa.struct([pa.field(f["name"], _nested_type(f)) for f in nested_schema(items)])
        return pa.list_(struct)
    return scalar_type(field["type"], field["name"])


def custom_type(field_type: str) -> pa.DataType:
    return CUSTOM_TYPES.get(field_type, pa.string())


def object_schema(
    obj: ObjectType, definitions: list[dict[str, Any]], *, brief: bool = False
) -> pa.Schema:
    """Standard fields in reference order, then custom fields in FIELD_ORDER.

    `brief` mirrors `brief=true`: the API leaves out every nested array (custom fields too)."""
    fields: list[pa.Field] = []
    for f in obj.fields:
        if f.type == "array":
            if brief or f.name == "CUSTOMFIELDS":
                continue
            dtype = _nested_type({"name": f.name, "type": f.type, "items": f.items})
        else:
            dtype = scalar_type(f.type, f.name)
        fields.append(
            pa.field(
                f.name,
                dtype,
                nullable=f.name != obj.id_field,
                metadata={META_SOURCE: b"standard", META_TYPE: f.type.encode()},
            )
        )
    if not brief and obj.has_custom_fields:
        for d in sorted(definitions, key=lambda d: (d.get("FIELD_ORDER") or 0, d["FIELD_NAME"])):
            fields.append(
                pa.field(
                    d["FIELD_NAME"],
                    custom_type(d.get("FIELD_TYPE") or ""),
                    metadata={META_SOURCE: b"custom", META_TYPE: str(d.get("FIELD_TYPE")).encode()},
                )
            )
    # the object the file is of, kept in the Parquet file: another object's file under this
    # one's name is told apart by it (custom objects all have RECORD_ID)
    return pa.schema(fields, metadata={META_OBJECT: obj.name.encode()})


def custom_fields_schema() -> pa.Schema:
    """The `custom_fields` table: every definition of every object, with an OBJECT column."""
    fields = [pa.field("OBJECT", pa.string(), nullable=False)]
    for f in custom_field_metadata_fields():
        fields.append(pa.field(f["name"], _nested_type(f)))
    return pa.schema(fields)


def custom_objects_schema() -> pa.Schema:
    """The `custom_objects` table: the definitions `GET /CustomObjects` gives (docs/api.md §2)."""
    return pa.schema(pa.field(f["name"], _nested_type(f)) for f in custom_object_fields())


def describe(schema: pa.Schema) -> list[dict[str, str]]:
    """The schema as the manifest records it."""
    return [{"name": f.name, "type": str(f.type)} for f in schema]
