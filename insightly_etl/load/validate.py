"""Validate every value of a file against the account's fields before any write, for free.

Two levels:
- the mapping: every field exists and is writable, every column is in the file, required
  fields are mapped or defaulted — a problem here is an `InputError` (exit 2);
- the rows: each value parses for its field's type. This runs column by column with pandas
  string operations (no Python loop per cell); only the messages of failed cells are built one
  by one. Every error names the row's line, the column, the value and what is wrong.

The result holds each valid row's values as Insightly wants them: integers, numbers, booleans,
`yyyy-MM-dd HH:mm:ss` date-times in UTC, `yyyy-MM-dd 00:00:00` calendar days, exact options.
An empty cell means "no value in this file" (`ABSENT`: left out of a create, unchanged by an
update); a column with `blank: clear` turns it into `None`, which clears the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from insightly_etl.api.registry import OBJECTS, ObjectType
from insightly_etl.errors import InputError
from insightly_etl.load.account import AccountFacts, LookupIndex
from insightly_etl.load.fields import (
    BOOLEAN,
    DATE,
    DATETIME,
    DROPDOWN,
    INTEGER,
    MULTISELECT,
    NUMBER,
    TAGS,
    TEXT,
    FieldSpec,
    field_specs,
    suggest,
    suggest_field,
)
from insightly_etl.load.mapping import ColumnRule, Mapping
from insightly_etl.load.readers import SourceTable


class _Absent:
    """No value in the file for this field: leave it out of the request."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()

BOOL_WORDS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "1": True,
    "0": False,
    "checked": True,
    "unchecked": False,
    "x": True,
}
_EMAIL_RE = r"[^@\s]+@[^@\s]+\.[^@\s.]+"
_URL_RE = r"(https?://)?[^\s/@]+\.[^\s/@]{2,}(/\S*)?"
_ZONE_RE = r"(Z|[+-]\d{2}:?\d{2})$"
_NUMBER_RE = {
    ".": r"[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?|[+-]?\.\d+",
    ",": r"[+-]?(\d{1,3}([.\u00a0\u202f ]\d{3})+|\d+)(,\d+)?|[+-]?,\d+",
}
_GROUP_SEP = {".": r",", ",": r"[.\u00a0\u202f ]"}
ERROR_COLUMNS = ["row", "line", "column", "field", "kind", "value", "message"]


@dataclass
class ValidationResult:
    table: SourceTable
    mapping: Mapping
    specs: dict[str, FieldSpec]
    rules: list[ColumnRule]  # the effective rules (identity mappings resolved)
    values: pd.DataFrame  # one column per mapped field; ABSENT / None / a typed value
    errors: pd.DataFrame  # ERROR_COLUMNS, one line per problem
    notes: list[str] = field(default_factory=list)  # mapping-level remarks (ignored columns …)
    parent_ids: pd.Series | None = None  # notes: the parent record of each row

    @property
    def rejected_rows(self) -> np.ndarray:
        return (
            np.unique(self.errors["row"].to_numpy())
            if len(self.errors)
            else np.array([], dtype=int)
        )

    @property
    def valid(self) -> pd.Series:
        mask = pd.Series(True, index=self.values.index)
        mask.iloc[self.rejected_rows] = False
        return mask

    @property
    def rows(self) -> int:
        return len(self.values)

    @property
    def bad_rows(self) -> int:
        return len(self.table.bad_rows)


# ---------------------------------------------------------------- the mapping level


def effective_rules(
    table: SourceTable, mapping: Mapping, specs: dict[str, FieldSpec], obj: ObjectType
) -> tuple[list[ColumnRule], list[str]]:
    """The mapping's rules, or for a mapping without `columns`, the headers that are fields."""
    notes: list[str] = []
    if not mapping.identity:
        return list(mapping.columns), notes
    rules = []
    for column in table.columns:
        spec = specs.get(column)
        if spec is None:
            notes.append(f"column {column!r} is not a field of {obj.name}; ignored")
        elif not spec.writable:
            if column != obj.id_field:
                notes.append(f"column {column!r} is read-only ({spec.why_not_writable}); ignored")
        else:
            rules.append(
                ColumnRule(
                    column=column,
                    field=column,
                    split=";" if spec.kind in (MULTISELECT, TAGS) else None,
                )
            )
    return rules, notes


def check_mapping(
    table: SourceTable, mapping: Mapping, specs: dict[str, FieldSpec], rules: list[ColumnRule]
) -> None:
    src = mapping.source
    columns = table.columns
    obj = OBJECTS[mapping.object]
    for rule in [*rules, *([mapping.parent] if mapping.parent else [])]:
        if rule.column not in columns:
            close = suggest(rule.column, columns)
            raise InputError(
                f"{src}: column {rule.column!r} is not in {table.path.name}"
                + (f"; did you mean {close!r}?" if close else ""),
                hint=f"The file's columns: {', '.join(columns)}.",
            )
    for rule in rules:
        _check_field(src, f"columns.{rule.column}", rule.field, specs, obj)
        spec = specs[rule.field]
        if rule.lookup is not None and spec.kind != INTEGER:
            raise InputError(
                f"{src}: columns.{rule.column}: a lookup gives a record id, but {rule.field} is {spec.api_type}"
            )
    for name in mapping.defaults:
        _check_field(src, f"defaults.{name}", name, specs, obj)
    if mapping.match:
        for column, fname in mapping.match.pairs:
            if column not in columns:
                raise InputError(f"{src}: match: column {column!r} is not in {table.path.name}")
            if fname not in specs and fname != obj.id_field:
                hint = suggest_field(fname, specs)
                raise InputError(
                    f"{src}: match: {fname} is not a field of {obj.name}"
                    + (f"; did you mean {hint}?" if hint else "")
                )
    mapped = {r.field for r in rules} | set(mapping.defaults)
    if obj.name == "notes" and mapping.parent is None and not mapping.match:
        raise InputError(
            f"{src}: notes are created under a record: add parent: {{column: …, object: contacts, by: EMAIL_ADDRESS}}"
        )
    if not mapping.match:
        missing = [s.name for s in specs.values() if s.required and s.name not in mapped]
        if missing:
            raise InputError(
                f"{src}: {obj.name} need {', '.join(missing)}, which the mapping neither maps nor defaults",
                hint="Map a column to it, or give it under defaults:.",
            )


def _check_field(
    src: str, where: str, name: str, specs: dict[str, FieldSpec], obj: ObjectType
) -> None:
    spec = specs.get(name)
    if spec is None:
        hint = suggest_field(name, specs)
        raise InputError(
            f"{src}: {where}: {name} is not a field of {obj.name}"
            + (f"; did you mean {hint}?" if hint else ""),
            hint=f"List them with: insightly-etl fields {obj.name}",
        )
    if not spec.writable:
        raise InputError(f"{src}: {where}: {name} is read-only ({spec.why_not_writable})")


# ---------------------------------------------------------------- the row level


class _Errors:
    def __init__(self, lines: np.ndarray) -> None:
        self.lines = lines
        self.parts: list[pd.DataFrame] = []

    def add(
        self,
        mask: pd.Series,
        column: str,
        fname: str,
        kind: str,
        raw: pd.Series,
        message: pd.Series,
    ) -> None:
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        rows = np.flatnonzero(mask.to_numpy())
        self.parts.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "line": self.lines[rows],
                    "column": column,
                    "field": fname,
                    "kind": kind,
                    "value": raw[mask].astype(object).to_numpy(),
                    "message": message[mask].astype(object).to_numpy(),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in ERROR_COLUMNS})
        return pd.concat(self.parts, ignore_index=True).sort_values(
            "row", kind="stable", ignore_index=True
        )


def _quoted(s: pd.Series) -> pd.Series:
    return "'" + s.astype(str) + "'"


def _transform(s: pd.Series, rule: ColumnRule, spec: FieldSpec) -> pd.Series:
    if spec.kind != TEXT or rule.lookup is not None:
        s = s.str.strip()  # surrounding spaces never matter in numbers, dates, options, names
    for t in rule.transform:
        if t == "strip":
            s = s.str.strip()
        elif t == "lower":
            s = s.str.lower()
        elif t == "upper":
            s = s.str.upper()
        elif t == "title":
            s = s.str.title()
        elif t == "collapse_spaces":
            s = s.str.replace(r"\s+", " ", regex=True).str.strip()
        elif t == "digits":
            s = s.str.replace(r"\D", "", regex=True)
    if rule.values:
        s = s.replace(rule.values)
    return s


def _parse_dates(s: pd.Series, rule: ColumnRule, date_only: bool) -> pd.Series:
    """Parsed date-times as text for Insightly; NA where the value does not parse."""
    if date_only:
        # a calendar day is sent as that day, whatever zone was written beside it
        text = s.str.replace(_ZONE_RE, "", regex=True)
        parsed = pd.to_datetime(text, format=rule.date_format or "ISO8601", errors="coerce")
        return parsed.dt.strftime("%Y-%m-%d 00:00:00")
    aware = s.str.contains(_ZONE_RE, regex=True).fillna(False)
    out = pd.Series(pd.NA, index=s.index, dtype="string")
    if (~aware).any():
        naive = pd.to_datetime(s[~aware], format=rule.date_format or "ISO8601", errors="coerce")
        if getattr(naive.dt, "tz", None) is None:
            naive = naive.dt.tz_localize(rule.timezone, ambiguous="NaT", nonexistent="NaT")
        out[~aware] = naive.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S")
    if aware.any():
        zoned = pd.to_datetime(
            s[aware], format=rule.date_format or "ISO8601", errors="coerce", utc=True
        )
        out[aware] = zoned.dt.strftime("%Y-%m-%d %H:%M:%S")
    return out


def _option_messages(bad: pd.Series, options: tuple[str, ...], fname: str) -> pd.Series:
    """'gold' is not an option of Customer_Tier__c; did you mean 'Gold'? — per distinct value."""
    messages = {}
    for value in bad.unique():
        close = suggest(str(value), list(options))
        tail = f"; did you mean {close!r}?" if close else f" (options: {', '.join(options)})"
        messages[value] = f"{value!r} is not an option of {fname}{tail}"
    return bad.map(messages)


class _ColumnValidator:
    def __init__(self, errors: _Errors, lookups: dict[tuple[str, str], LookupIndex]) -> None:
        self.errors = errors
        self.lookups = lookups

    def run(self, raw: pd.Series, rule: ColumnRule, spec: FieldSpec, *, require: bool) -> pd.Series:
        s = _transform(raw, rule, spec)
        blank = s == ""
        out = pd.Series(ABSENT, index=s.index, dtype=object)
        if rule.blank == "clear":
            out[blank] = None
        if require:
            self.errors.add(
                blank,
                rule.column,
                spec.name,
                "required",
                raw,
                pd.Series(f"{spec.name} is required", index=s.index),
            )
        present = ~blank
        if not present.any():
            return out
        v = s[present]
        add = self._adder(present, raw, rule, spec)
        if rule.lookup is not None:
            parsed = self._lookup(v, rule, add)
        else:
            parsed = self._by_kind(v, rule, spec, add)
        ok = parsed.notna()
        out[ok[ok].index] = parsed[ok].astype(object)
        return out

    def _adder(
        self, present: pd.Series, raw: pd.Series, rule: ColumnRule, spec: FieldSpec
    ) -> Callable[[pd.Series, str, pd.Series], None]:
        def add(bad: pd.Series, kind: str, message: pd.Series) -> None:
            mask = pd.Series(False, index=present.index)
            mask[bad[bad].index] = True
            full = pd.Series("", index=present.index, dtype=object)
            full[message.index] = message.astype(object)
            self.errors.add(mask, rule.column, spec.name, kind, raw, full)

        return add

    def _by_kind(
        self,
        v: pd.Series,
        rule: ColumnRule,
        spec: FieldSpec,
        add: Callable[[pd.Series, str, pd.Series], None],
    ) -> pd.Series:
        kind = spec.kind
        if kind == INTEGER:
            good = v.str.fullmatch(r"[+-]?\d+").fillna(False)
            add(~good, "integer", _quoted(v[~good]) + " is not a whole number")
            return (
                pd.to_numeric(v.where(good), errors="coerce")
                .astype("Int64")
                .astype(object)
                .where(good)
            )
        if kind == NUMBER:
            good = v.str.fullmatch(_NUMBER_RE[rule.decimal]).fillna(False)
            add(
                ~good,
                "number",
                _quoted(v[~good]) + f" is not a number with {rule.decimal!r} as the decimal mark",
            )
            normal = v.where(good).str.replace(_GROUP_SEP[rule.decimal], "", regex=True)
            if rule.decimal == ",":
                normal = normal.str.replace(",", ".", regex=False)
            return pd.to_numeric(normal, errors="coerce").astype(object).where(good)
        if kind == BOOLEAN:
            parsed = v.str.lower().map(BOOL_WORDS)
            bad = parsed.isna()
            add(
                bad,
                "boolean",
                _quoted(v[bad])
                + " is not a yes/no value (true/false, yes/no, 1/0, checked/unchecked)",
            )
            return parsed
        if kind in (DATE, DATETIME):
            parsed = _parse_dates(v, rule, kind == DATE)
            bad = parsed.isna()
            expected = (
                f"in the format {rule.date_format}"
                if rule.date_format
                else "in ISO form (2026-12-31 or 2026-12-31 14:30:00)"
            )
            add(
                bad,
                "date",
                _quoted(v[bad]) + f" is not a {'date' if kind == DATE else 'date-time'} {expected}",
            )
            return parsed.astype(object)
        if kind == DROPDOWN:
            bad = ~v.isin(spec.options)
            add(bad, "option", _option_messages(v[bad], spec.options, spec.name))
            return v.astype(object).where(~bad)
        if kind in (MULTISELECT, TAGS):
            parts = v.str.split(rule.split or ";").explode().str.strip()
            parts = parts[parts != ""]
            if kind == MULTISELECT:
                wrong = parts[~parts.isin(spec.options)]
                first_wrong = wrong[~wrong.index.duplicated()]
                bad = pd.Series(v.index.isin(first_wrong.index), index=v.index)
                add(bad, "option", _option_messages(first_wrong, spec.options, spec.name))
                joined = parts.groupby(level=0).agg(";".join)
                return joined.reindex(v.index).astype(object).where(~bad)
            grouped = parts.groupby(level=0).agg(list)
            return grouped.reindex(v.index).astype(object)
        # text
        if spec.max_length:
            length = v.str.len()
            bad = length > spec.max_length
            add(
                bad,
                "length",
                _quoted(v[bad].str.slice(0, 30))
                + " is "
                + length[bad].astype(str)
                + f" characters long; {spec.name} allows {spec.max_length}",
            )
            v = v.where(~bad)
        if spec.is_email:
            bad = ~v.str.fullmatch(_EMAIL_RE).fillna(True)
            add(bad, "email", _quoted(v[bad]) + " is not a plausible email address")
            v = v.where(~bad)
        elif spec.is_url:
            bad = ~v.str.fullmatch(_URL_RE).fillna(True)
            add(bad, "url", _quoted(v[bad]) + " is not a plausible web address")
            v = v.where(~bad)
        return v.astype(object)

    def _lookup(
        self, v: pd.Series, rule: ColumnRule, add: Callable[[pd.Series, str, pd.Series], None]
    ) -> pd.Series:
        assert rule.lookup is not None
        index = self.lookups.get((rule.lookup.object, rule.lookup.by), {})
        hits = v.map(lambda key: index.get(key))  # one dict look-up per cell
        missing = hits.isna()
        what = f"{rule.lookup.object} record with {rule.lookup.by}"
        messages = {}
        for value in v[missing].unique():
            close = suggest(str(value), list(index)) if len(index) < 50_000 else None
            messages[value] = f"no {what} {value!r}" + (
                f"; did you mean {close!r}?" if close else ""
            )
        add(missing, "lookup", v[missing].map(messages))
        many = hits.map(lambda ids: isinstance(ids, list) and len(ids) > 1)
        add(
            many,
            "lookup",
            v[many]
            + hits[many].map(
                lambda ids: (
                    f" matches {len(ids)} {rule.lookup.object} records (ids {', '.join(map(str, ids[:5]))}); make it unique"
                    if ids
                    else ""
                )
            ),
        )
        single = hits.map(lambda ids: ids[0] if isinstance(ids, list) and len(ids) == 1 else None)
        return single.astype(object).where(single.notna())


def validate_table(table: SourceTable, mapping: Mapping, facts: AccountFacts) -> ValidationResult:
    obj = OBJECTS[mapping.object]
    specs = field_specs(obj, facts.definitions)
    rules, notes = effective_rules(table, mapping, specs, obj)
    check_mapping(table, mapping, specs, rules)
    lines = np.asarray(table.lines, dtype=np.int64)
    errors = _Errors(lines)
    validator = _ColumnValidator(errors, facts.lookups)
    frame = table.frame
    values: dict[str, pd.Series] = {}
    for rule in rules:
        spec = specs[rule.field]
        require = spec.required and not mapping.match and rule.field not in mapping.defaults
        values[rule.field] = validator.run(frame[rule.column], rule, spec, require=require)
    defaults = _validate_defaults(mapping, specs)
    for name, value in defaults.items():
        if name in values:
            values[name] = values[name].where(values[name].map(lambda x: x is not ABSENT), value)
        else:
            values[name] = pd.Series([value] * len(frame), index=frame.index, dtype=object)
    parent_ids = None
    if mapping.parent is not None:
        parent_spec = FieldSpec(name="PARENT", label="Parent", kind=INTEGER, api_type="integer")
        parent_ids = validator.run(
            frame[mapping.parent.column], mapping.parent, parent_spec, require=not mapping.match
        )
    result_values = (
        pd.DataFrame(values, index=frame.index) if values else pd.DataFrame(index=frame.index)
    )
    return ValidationResult(
        table, mapping, specs, rules, result_values, errors.frame(), notes, parent_ids
    )


def _validate_defaults(mapping: Mapping, specs: dict[str, FieldSpec]) -> dict[str, Any]:
    """Defaults are validated once, like a one-row column; a bad one is a mapping error."""
    out = {}
    for name, value in mapping.defaults.items():
        spec = specs[name]
        text = (
            ""
            if value is None
            else ("true" if value is True else "false" if value is False else str(value))
        )
        probe = _Errors(np.array([0]))
        rule = ColumnRule(
            column=f"defaults.{name}",
            field=name,
            split=";" if spec.kind in (MULTISELECT, TAGS) else None,
        )
        parsed = _ColumnValidator(probe, {}).run(
            pd.Series([text], dtype="string"), rule, spec, require=False
        )
        bad = probe.frame()
        if len(bad):
            raise InputError(f"{mapping.source}: defaults.{name}: {bad['message'].iloc[0]}")
        out[name] = parsed.iloc[0]
    return out
