"""Mapping files: which spreadsheet column goes to which Insightly field, and how.

```yaml
object: contacts
match: {column: Email, field: EMAIL_ADDRESS}   # finds existing records (import part 2)
columns:
  First Name: FIRST_NAME                        # plain rename
  Email: {field: EMAIL_ADDRESS, transform: [strip, lower]}
  Birthday: {field: DATE_OF_BIRTH, date_format: "%d/%m/%Y"}
  Tier: {field: Customer_Tier__c, values: {gold: Gold, silver: Silver}}
  Interests: {field: Interests__c, split: ","}
  Company: {field: ORGANISATION_ID, lookup: {object: organisations, by: ORGANISATION_NAME}}
links:                # each row's record is linked to the record this column names
  - {column: Deal, object: opportunities, by: OPPORTUNITY_NAME, role: Decision maker}
defaults: {BACKGROUND: "Imported from the 2026 trade fair list"}
decimal: "."          # or ","
timezone: UTC         # for date-times written without a zone
```

The structure is checked here, on load, with messages naming the file and the key; whether
the fields exist and are writable is checked against the account by `validate.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from insightly_etl.api.registry import LINKABLE, LINKED_TO, get_object
from insightly_etl.errors import InputError
from insightly_etl.yamlfile import read_yaml

TRANSFORMS = ("strip", "lower", "upper", "title", "collapse_spaces", "digits")
BLANK_MODES = ("skip", "clear")
# A cell that differs from the record only as a spreadsheet program re-saves it (a postcode's
# leading zero dropped, `?` for a character the code page lacks): left as it is (keep), or
# sent like an edit (send). See load/spreadsheet.py.
ARTEFACT_MODES = ("keep", "send")
# What an update does with a mapped field of an existing record: the file wins (overwrite), only
# an empty field is filled (fill), or the column is used on create only (never).
UPDATE_MODES = ("overwrite", "fill", "never")
# Sets (TAGS, MULTISELECT) on update: the file's values are added to the record's (add), or the
# record's set is made equal to the file's (replace: the only way a value is removed).
MERGE_MODES = ("add", "replace")
_TOP_KEYS = (
    "object",
    "match",
    "columns",
    "defaults",
    "decimal",
    "timezone",
    "parent",
    "blank",
    "artefacts",
    "date_order",
    "links",
)
_LINK_KEYS = ("column", "object", "by", "role", "details")
_LOOKUP_KEYS = ("object", "by", "missing")
_MATCH_KEYS = ("column", "field", "compare")
_PARENT_KEYS = ("column", "object", "by")
_COLUMN_KEYS = (
    "field",
    "transform",
    "date_format",
    "values",
    "split",
    "lookup",
    "blank",
    "decimal",
    "timezone",
    "update",
    "merge",
    "artefacts",
)


@dataclass(frozen=True)
class Lookup:
    object: str  # snake_case object name
    by: str  # field of that object to match the cell against
    # when no record matches: "reject" the row (the default), "skip" the field for that row,
    # or an id to use instead (a departed owner's deals go to a named user)
    missing: str | int = "reject"


@dataclass(frozen=True)
class ColumnRule:
    column: str
    field: str
    transform: tuple[str, ...] = ()
    date_format: str | None = None
    values: dict[str, str] = dataclass_field(default_factory=dict)
    split: str | None = None
    lookup: Lookup | None = None
    blank: str = "skip"  # an empty cell: "skip" = leave the field alone, "clear" = send null
    decimal: str = "."
    decimal_given: bool = False  # declared: values are read by it alone, never by their look
    timezone: str = "UTC"
    update: str = "overwrite"  # UPDATE_MODES
    merge: str = "add"  # MERGE_MODES, for TAGS and MULTISELECT fields
    artefacts: str = "keep"  # ARTEFACT_MODES


@dataclass(frozen=True)
class LinkRule:
    """`links:` item: link each row's record to the record its `column` names (once)."""

    column: str
    lookup: Lookup
    role: str | None = None
    details: str | None = None

    @property
    def step(self) -> str:
        return f"link:{self.column}"


@dataclass(frozen=True)
class MatchKey:
    pairs: tuple[tuple[str, str], ...]  # (column, field) — several make a combined key
    # how text keys compare (after Unicode NFC, trimming, collapsing inner spaces and removing
    # zero-width characters): casefold (the default) or exact; e-mail addresses always casefold
    compare: str = "casefold"
    compare_given: bool = False  # the mapping says how: casefold then matches ids too (plan.py)


@dataclass(frozen=True)
class Mapping:
    object: str
    columns: tuple[ColumnRule, ...]
    defaults: dict[str, Any]
    match: MatchKey | None = None
    parent: ColumnRule | None = None  # notes: the record a note is attached to
    source: str = "<mapping>"
    identity: bool = False  # no `columns`: headers that are field names map as they are
    links: tuple[LinkRule, ...] = ()
    decimal: str | None = None  # the top-level `decimal:`, when the mapping says
    # how slash dates read: dmy (31/12/2026), mdy (12/31/2026), or None: as the file shows
    date_order: str | None = None
    # the top-level `blank:` and `artefacts:`, for the columns a mapping without `columns` maps
    blank: str = "skip"
    artefacts: str = "keep"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    return "list" if isinstance(value, list) else type(value).__name__


def _fail(source: str, key: str, message: str, hint: str | None = None) -> InputError:
    return InputError(f"{source}: {key}: {message}", hint=hint)


def _check_keys(source: str, where: str, value: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in value:
        if key not in allowed:
            raise _fail(
                source, f"{where}{key}", "unknown key", f"Allowed here: {', '.join(allowed)}."
            )


def _timezone(source: str, where: str, value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(
            source,
            where,
            f"unknown time zone {value!r}",
            "Use an IANA name such as UTC or Europe/Berlin.",
        ) from None
    return str(value)


DATE_ORDERS = ("dmy", "mdy")


def _date_order(source: str, value: Any) -> str | None:
    if value is None:
        return None
    if value in DATE_ORDERS:
        return str(value)
    raise _fail(source, "date_order", f"must be dmy or mdy, not {value!r}")


def _bad_directive(date_format: str) -> str | None:
    """Why a date format is no strptime pattern (`%Q`, a stray `%`), or None; found when the
    mapping is read, not as an internal error when the first date is."""
    try:
        datetime.strptime("", date_format)
    except ValueError as exc:
        return None if str(exc).startswith("time data") else str(exc)
    return None


def _decimal(source: str, where: str, value: Any) -> str:
    if value not in (".", ","):
        raise _fail(source, where, f"must be '.' or ',', not {value!r}")
    return str(value)


def _rule(source: str, column: str, spec: Any, defaults: dict[str, str]) -> ColumnRule:
    where = f"columns.{column}"
    if isinstance(spec, str):
        return ColumnRule(
            column=column,
            field=spec,
            decimal=defaults["decimal"],
            decimal_given=defaults["decimal_given"] == "yes",
            timezone=defaults["timezone"],
            blank=defaults["blank"],
            artefacts=defaults["artefacts"],
        )
    if not isinstance(spec, dict):
        raise _fail(
            source, where, "expected a field name or a mapping like {field: FIELD_NAME, ...}"
        )
    _check_keys(source, f"{where}.", spec, _COLUMN_KEYS)
    if not isinstance(spec.get("field"), str) or not spec["field"]:
        raise _fail(
            source, f"{where}.field", "missing: name the Insightly field this column goes to"
        )
    transform = spec.get("transform") or []
    if isinstance(transform, str):
        transform = [transform]
    if not isinstance(transform, list):
        raise _fail(
            source, f"{where}.transform", f"expected a name or a list of names, not {transform!r}"
        )
    for t in transform:
        if t not in TRANSFORMS:
            raise _fail(
                source,
                f"{where}.transform",
                f"unknown transform {t!r}",
                f"Allowed: {', '.join(TRANSFORMS)}.",
            )
    values = spec.get("values") or {}
    if not isinstance(values, dict) or any(
        isinstance(v, dict | list) or isinstance(k, dict | list) for k, v in values.items()
    ):
        raise _fail(source, f"{where}.values", "expected a map of file value -> Insightly value")
    texts: dict[str, str] = {}
    for k, v in values.items():
        if k is None or v is None:  # `n/a: null` sent the text "None"
            raise _fail(
                source,
                f"{where}.values",
                f'{k!r}: {v!r} has no text on one side; write it out ("" for an empty value)',
            )
        if str(k) in texts:  # `1:` and `"1":` are one file value
            raise _fail(source, f"{where}.values", f"the file value {str(k)!r} is given twice")
        texts[str(k)] = str(v)
    lookup = None
    if "lookup" in spec:
        lk = spec["lookup"]
        if not isinstance(lk, dict) or "object" not in lk:
            raise _fail(source, f"{where}.lookup", "expected {object: OBJECT, by: FIELD}")
        _check_keys(source, f"{where}.lookup.", lk, _LOOKUP_KEYS)
        target_obj = get_object(str(lk["object"]))
        target = target_obj.name
        id_spec = target_obj.field(target_obj.id_field or "")
        if id_spec is None or id_spec.type != "integer":
            raise _fail(
                source,
                f"{where}.lookup.object",
                f"{target} have no numeric record ids to look up; map the value itself instead",
            )
        by = lk.get("by") or target_obj.name_field
        if not by:
            raise _fail(source, f"{where}.lookup.by", f"name the field of {target} to match by")
        missing = lk.get("missing", "reject")
        if not (
            missing in ("reject", "skip")
            or (isinstance(missing, int) and not isinstance(missing, bool) and missing > 0)
        ):
            raise _fail(
                source,
                f"{where}.lookup.missing",
                f"must be reject, skip or a record id to use instead, not {missing!r}",
            )
        lookup = Lookup(target, str(by), missing)
    blank = spec.get("blank", defaults["blank"])
    if blank not in BLANK_MODES:
        raise _fail(
            source, f"{where}.blank", f"must be one of {', '.join(BLANK_MODES)}, not {blank!r}"
        )
    for key, allowed in (
        ("update", UPDATE_MODES),
        ("merge", MERGE_MODES),
        ("artefacts", ARTEFACT_MODES),
    ):
        if key in spec and spec[key] not in allowed:
            raise _fail(
                source,
                f"{where}.{key}",
                f"must be one of {', '.join(allowed)}, not {spec[key]!r}",
            )
    split = spec.get("split")
    if split is not None and (not isinstance(split, str) or not split):
        raise _fail(source, f"{where}.split", "expected the separator, e.g. ',' or ';'")
    date_format = spec.get("date_format")
    if date_format is not None and (not isinstance(date_format, str) or "%" not in date_format):
        raise _fail(
            source,
            f"{where}.date_format",
            f"expected a strftime pattern like '%d/%m/%Y', not {date_format!r}",
        )
    if date_format is not None and (wrong := _bad_directive(date_format)):
        raise _fail(
            source,
            f"{where}.date_format",
            f"{wrong}; expected a strftime pattern like '%d/%m/%Y' (%d day, %m month, %Y year, "
            "%H:%M:%S time)",
        )
    return ColumnRule(
        column=column,
        field=str(spec["field"]),
        transform=tuple(transform),
        date_format=date_format,
        values=texts,
        split=split,
        lookup=lookup,
        blank=str(blank),
        update=str(spec.get("update", "overwrite")),
        merge=str(spec.get("merge", "add")),
        artefacts=str(spec.get("artefacts", defaults["artefacts"])),
        decimal=_decimal(source, f"{where}.decimal", spec["decimal"])
        if "decimal" in spec
        else defaults["decimal"],
        decimal_given="decimal" in spec or defaults["decimal_given"] == "yes",
        timezone=_timezone(source, f"{where}.timezone", spec["timezone"])
        if "timezone" in spec
        else defaults["timezone"],
    )


COMPARE_MODES = ("casefold", "exact")


def _match(source: str, value: Any) -> MatchKey:
    items = value if isinstance(value, list) else [value]
    pairs = []
    compare, given = "casefold", False
    for item in items:
        if not isinstance(item, dict) or not item.get("column") or not item.get("field"):
            raise _fail(
                source, "match", "expected {column: COLUMN, field: FIELD} or a list of them"
            )
        _check_keys(source, "match.", item, _MATCH_KEYS)
        pairs.append((str(item["column"]).strip(), str(item["field"])))
        if "compare" in item:
            if item["compare"] not in COMPARE_MODES:
                raise _fail(
                    source,
                    "match.compare",
                    f"must be casefold or exact, not {item['compare']!r}",
                )
            if given and item["compare"] != compare:
                # one way of comparing for the whole key: the last part's won, unseen
                raise _fail(
                    source,
                    "match.compare",
                    f"{item['compare']!r} for {pairs[-1][0]!r}, but {compare!r} for another "
                    "part of the key; compare applies to the whole key",
                    "Give compare: once, or the same on every part.",
                )
            compare, given = str(item["compare"]), True
    return MatchKey(tuple(pairs), compare, given)


def _links(source: str, obj: str, value: Any) -> tuple[LinkRule, ...]:
    if not isinstance(value, list):
        raise _fail(
            source,
            "links",
            "expected a list of {column: COLUMN, object: OBJECT, by: FIELD, role: …}",
        )
    if not get_object(obj).linkable:
        raise _fail(
            source,
            "links",
            f"{obj} records cannot be given links through the API",
            f"Links are added to: {', '.join(LINKABLE)}.",
        )
    rules: list[LinkRule] = []
    for n, item in enumerate(value):
        where = f"links[{n}]"
        if not isinstance(item, dict) or not item.get("column") or not item.get("object"):
            raise _fail(
                source, where, "expected {column: COLUMN, object: OBJECT, by: FIELD, role: …}"
            )
        _check_keys(source, f"{where}.", item, _LINK_KEYS)
        try:
            target = get_object(str(item["object"]))
        except InputError as exc:
            raise _fail(source, f"{where}.object", exc.message, exc.hint) from None
        if target.link_name is None:
            raise _fail(
                source,
                f"{where}.object",
                f"{target.name} cannot be linked to",
                f"Links go to: {', '.join(LINKED_TO)}.",
            )
        by = item.get("by") or target.name_field
        if not by:
            raise _fail(source, f"{where}.by", f"name the field of {target.name} to match by")
        texts = {}
        for key in ("role", "details"):
            text = item.get(key)
            if text is not None and (not isinstance(text, str) or len(text) > 255):
                raise _fail(source, f"{where}.{key}", "expected a text of at most 255 characters")
            texts[key] = text
        rule = LinkRule(str(item["column"]).strip(), Lookup(target.name, str(by)), **texts)
        if any(r.column == rule.column for r in rules):
            raise _fail(source, f"{where}.column", f"column {rule.column!r} is linked twice")
        rules.append(rule)
    return tuple(rules)


def parse_mapping(
    data: Any, *, source: str = "<mapping>", object_name: str | None = None
) -> Mapping:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a YAML mapping with keys like object, columns, match")
    _check_keys(source, "", data, _TOP_KEYS)
    obj = object_name or data.get("object")
    if not obj:
        raise _fail(source, "object", "missing: name the object type to import (or pass --object)")
    try:
        obj_name = get_object(str(obj)).name
    except InputError as exc:
        if object_name:  # from --object / the command line: no file to name
            raise
        raise InputError(f"{source}: object: {exc.message}", hint=exc.hint) from None
    written = data.get("object")
    if object_name and written and (_object_of(written) or obj_name).lower() != obj_name.lower():
        raise InputError(  # else each column is refused as "not a field of" the other object
            f"--object {object_name} and {source}'s object: {str(written)[:60]} disagree",
            hint="Leave out --object (the mapping says which object), or give the mapping of "
            f"{object_name}.",
        )
    defaults = {
        "decimal": _decimal(source, "decimal", data["decimal"]) if "decimal" in data else ".",
        "decimal_given": "yes" if "decimal" in data else "no",
        "timezone": _timezone(source, "timezone", data["timezone"])
        if "timezone" in data
        else "UTC",
        "blank": str(data.get("blank", "skip")),
        "artefacts": str(data.get("artefacts", "keep")),
    }
    if defaults["blank"] not in BLANK_MODES:
        raise _fail(source, "blank", f"must be one of {', '.join(BLANK_MODES)}")
    if defaults["artefacts"] not in ARTEFACT_MODES:
        raise _fail(source, "artefacts", f"must be one of {', '.join(ARTEFACT_MODES)}")
    columns_spec = data.get("columns")
    if columns_spec is not None and not isinstance(columns_spec, dict):
        raise _fail(source, "columns", "expected a map of column name -> field")
    problems: list[InputError] = []  # every column's, reported at once
    parsed: list[ColumnRule] = []
    for col, spec in (columns_spec or {}).items():
        # a list: one column feeds several fields, each with its own rules (Zoho's Stage
        # becomes the pipeline stage, the state and the lost reason)
        for one in spec if isinstance(spec, list) and spec else [spec]:
            try:
                # headers are read trimmed: a key copied with the header's spaces is the same
                parsed.append(_rule(source, str(col).strip(), one, defaults))
            except InputError as exc:
                problems.append(exc)
    rules = tuple(parsed)
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.field in seen:
            problems.append(
                _fail(
                    source,
                    f"columns.{rule.column}",
                    f"{rule.field} is already mapped from column {seen[rule.field]!r}",
                )
            )
        seen[rule.field] = rule.column
    defaults_spec = data.get("defaults") or {}
    if not isinstance(defaults_spec, dict):
        problems.append(_fail(source, "defaults", "expected a map of field -> value"))
        defaults_spec = {}
    for name, value in defaults_spec.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            problems.append(
                _fail(
                    source,
                    f"defaults.{name}",
                    f"expected a single value (text, number, true/false), not a {_kind(value)}",
                    "For a multi-select or tags default, write the values as one text: 'a;b'.",
                )
            )
    if problems:
        if len(problems) == 1:
            raise problems[0]
        raise InputError(
            f"{source}: {len(problems)} problems:\n"
            + "\n".join(f"  {p.message.removeprefix(source + ': ')}" for p in problems),
            hint="; ".join(dict.fromkeys(p.hint for p in problems if p.hint)) or None,
        )
    parent = None
    if "parent" in data:
        parent_spec = data["parent"]
        if (
            not isinstance(parent_spec, dict)
            or "column" not in parent_spec
            or "object" not in parent_spec
        ):
            raise _fail(
                source, "parent", "expected {column: COLUMN, object: contacts, by: EMAIL_ADDRESS}"
            )
        _check_keys(source, "parent.", parent_spec, _PARENT_KEYS)
        parent_obj = get_object(str(parent_spec["object"]))
        by = str(parent_spec.get("by") or parent_obj.name_field or "")
        parent = ColumnRule(
            column=str(parent_spec["column"]).strip(),
            field="PARENT",
            lookup=Lookup(parent_obj.name, by),
        )
    return Mapping(
        object=obj_name,
        columns=rules,
        defaults={str(k): v for k, v in defaults_spec.items()},
        match=_match(source, data["match"]) if data.get("match") else None,
        parent=parent,
        source=source,
        identity=columns_spec is None,
        links=_links(source, obj_name, data["links"]) if data.get("links") is not None else (),
        decimal=defaults["decimal"] if "decimal" in data else None,
        date_order=_date_order(source, data.get("date_order")),
        blank=defaults["blank"],
        artefacts=defaults["artefacts"],
    )


def export_key(mapping: Mapping, columns: Iterable[str]) -> Mapping:
    """The mapping, matched by the record id where it names no key of its own and the file
    is an export with its ids: such a file updates those records, never duplicates them."""
    id_field = get_object(mapping.object).id_field
    if mapping.identity and mapping.match is None and id_field and id_field in columns:
        return replace(mapping, match=MatchKey(((id_field, id_field),)))
    return mapping


def matched_by_id(mapping: Mapping) -> bool:
    """Whether the mapping's key is the record's own id (CONTACT_ID)."""
    obj = get_object(mapping.object)
    return mapping.match is not None and all(f == obj.id_field for _, f in mapping.match.pairs)


def _object_of(name: object) -> str | None:
    """The object type a name means, None when it names none."""
    try:
        return get_object(str(name)).name
    except InputError:
        return None


def read_mapping(path: Path | None, *, object_name: str | None = None) -> Mapping:
    """A mapping file, or (with no file) the identity mapping for `object_name`."""
    if path is None:
        if not object_name:
            raise InputError("give --mapping FILE or --object OBJECT")
        return parse_mapping({}, source="(no mapping file)", object_name=object_name)
    data = read_yaml(path, "a mapping")
    return parse_mapping(data, source=str(path), object_name=object_name)


# ---------------------------------------------------------------- the JSON Schema of the file


SCHEMA_FILE = "mapping.schema.json"  # in mappings/ (and what `insightly-etl examples` writes)


def mapping_schema(objects: list[str]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a mapping file, from the rules `parse_mapping`
    enforces: its keys are the parser's key lists and its choices the parser's choices, so
    an editor with a YAML language server checks a mapping as it is typed. What only the
    account can say (which fields exist) is the parser's, not the schema's."""
    text = {"type": "string", "minLength": 1}
    scalar = {"type": ["string", "number", "boolean", "null"]}

    def strict(properties: dict[str, Any], keys: tuple[str, ...], **more: Any) -> dict[str, Any]:
        assert set(properties) == set(keys), "the schema and the parser name other keys"
        return {"type": "object", "additionalProperties": False, "properties": properties, **more}

    obj = {  # any spelling get_object takes (any case, a US one, a singular): suggested only
        "type": "string",
        "minLength": 1,
        "description": "The object type (contacts, organisations, …) or a custom object's "
        "API name (Site__c).",
        "examples": objects,
    }
    choices = {
        "blank": {"enum": list(BLANK_MODES)},
        "artefacts": {"enum": list(ARTEFACT_MODES)},
        "decimal": {"enum": [".", ","]},
        "timezone": {"type": "string", "description": "An IANA time zone, e.g. Europe/Berlin."},
    }
    lookup = strict(
        {
            "object": obj,
            "by": text,
            "missing": {"anyOf": [{"enum": ["reject", "skip"]}, {"type": "integer", "minimum": 1}]},
        },
        _LOOKUP_KEYS,
        required=["object"],
    )
    transforms = {"enum": list(TRANSFORMS)}
    rule = strict(
        {
            "field": text,
            "transform": {"anyOf": [transforms, {"type": "array", "items": transforms}]},
            "date_format": {"type": "string", "pattern": "%"},
            "values": {"type": "object", "additionalProperties": scalar},
            "split": text,
            "lookup": lookup,
            "update": {"enum": list(UPDATE_MODES)},
            "merge": {"enum": list(MERGE_MODES)},
            **choices,
        },
        _COLUMN_KEYS,
        required=["field"],
    )
    column = {"anyOf": [text, rule]}
    match = strict(
        {"column": text, "field": text, "compare": {"enum": list(COMPARE_MODES)}},
        _MATCH_KEYS,
        required=["column", "field"],
    )
    link = strict(
        {
            "column": text,
            "object": obj,
            "by": text,
            "role": {"type": "string", "maxLength": 255},
            "details": {"type": "string", "maxLength": 255},
        },
        _LINK_KEYS,
        required=["column", "object"],
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:insightly-etl:mapping",
        "title": "insightly-etl mapping file",
        "description": "How a file's columns become an Insightly object's fields (README: "
        "Import, part 1).",
        **strict(
            {
                "object": obj,
                "match": {"anyOf": [match, {"type": "array", "items": match, "minItems": 1}]},
                "columns": {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [column, {"type": "array", "items": column, "minItems": 1}]
                    },
                },
                "defaults": {"type": "object", "additionalProperties": scalar},
                "parent": strict(
                    {"column": text, "object": obj, "by": text},
                    _PARENT_KEYS,
                    required=["column", "object"],
                ),
                "date_order": {"enum": list(DATE_ORDERS)},
                "links": {"type": "array", "items": link},
                **choices,
            },
            _TOP_KEYS,
        ),
    }
