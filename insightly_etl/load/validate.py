"""Validate every value of a file against the account's fields before any write, for free.

Two levels:
- the mapping: every field exists and is writable, every column is in the file, required
  fields are mapped or defaulted — a problem here is an `InputError` (exit 2);
- the rows: each value parses for its field's type. This runs column by column with pandas
  string operations (no Python loop per cell); only the messages of failed cells are built one
  by one. Every error names the row's line, the column, the value and what is wrong.

The result holds each valid row's values as Insightly wants them: integers, numbers, booleans,
`yyyy-MM-dd HH:mm:ss` date-times in UTC, `yyyy-MM-dd 00:00:00` calendar days, exact options.
Values are kept in typed columns (Int64, Float64, boolean, Arrow strings), so a million rows
stay small. An empty cell is NA: "no value in this file" — left out of a create, unchanged by an
update. A column with `blank: clear` records its empty cells in `cleared`: those send null.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.api.registry import (
    OBJECTS,
    ObjectType,
    custom_object,
    get_object,
    record_id,
)
from insightly_etl.errors import InputError
from insightly_etl.load import spill
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
from insightly_etl.load.mapping import ColumnRule, Mapping, export_key
from insightly_etl.load.readers import Cell, SourceTable, garbled_error, garbled_note
from insightly_etl.load.spreadsheet import (
    DAY_FIRST_SAMPLE,
    SERIAL_EPOCH,
    ambiguous_slash,
    day_first_of,
    parse_locale,
    slash_parts,
    slash_readings,
)
from insightly_etl.moments import DATETIME_FORMAT

# zero-width characters, the soft hyphen, and the marks that only steer the direction of text
# (a copy from a right-to-left page brings them along): invisible, so never part of a key
INVISIBLE = "[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"


class _Absent:
    """No value in the file for this field: leave it out of the request."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # what `cell()` returns for NA; None means "clear the field"

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
    # what spreadsheets write for TRUE and FALSE in other languages (LibreOffice's and
    # Excel's words, lower-cased as Arrow does: no final ς), in a CSV they save
    **dict.fromkeys(
        [
            "wahr",
            "vrai",
            "verdadero",
            "verdadeiro",
            "vero",
            "waar",
            "prawda",
            "истина",
            "sant",
            "sand",
            "sann",
            "tosi",
            "pravda",
            "igaz",
            "doğru",
            "αληθεσ",
        ],
        True,
    ),
    **dict.fromkeys(
        [
            "falsch",
            "faux",
            "falso",
            "onwaar",
            "fałsz",
            "ложь",
            "falskt",
            "falsk",
            "usann",
            "epätosi",
            "nepravda",
            "hamis",
            "yanliş",
            "ψευδεσ",
        ],
        False,
    ),
}
_EMAIL_RE = r"[^@\s]+@[^@\s]+\.[^@\s.]+"
_URL_RE = r"(https?://)?[^\s/@]+\.[^\s/@]{2,}(/\S*)?"
_ZONE_RE = r"(?:Z|[+-]\d{2}:?\d{2})$"
# a date of zeros (and a midnight): what Outlook (`0/0/00`) and databases write for none
_ZERO_DATE = r"\s*0{1,4}[/.-]0{1,2}[/.-]0{2,4}(?:[ T]0{1,2}:00(?::00)?)?\s*"
# what a spreadsheet shows where a formula failed (Excel's, Google Sheets' #ERROR!,
# LibreOffice's Err:502): a workbook's error cell, or its CSV save, holds the text. Sent, one
# failed VLOOKUP column wrote `#N/A` over a field of every record it matched. A workbook keeps
# them in English; a CSV saved by Excel or Calc in another language writes that language's.
_ERROR_VALUES = {
    "en": "N/A REF! VALUE! DIV/0! NAME? NUM! NULL! SPILL! CALC! FIELD! BLOCKED! CONNECT! "
    "BUSY! UNKNOWN! EXTERNAL! PYTHON! GETTING_DATA ERROR!",
    "de": "NV WERT! BEZUG! ZAHL! ÜBERLAUF! KALK!",
    "fr": "VALEUR! NOM? NOMBRE! NUL! PROPAGATION!",
    "es": "N/D ¡VALOR! ¡REF! ¡DIV/0! ¿NOMBRE? ¡NUM! ¡NULO! ¡DESBORDAMIENTO! ¡CALC!",
    "it": "VALORE! RIF! NOME? NULLO! ESPANSIONE!",
    "pt": "VALOR! NOME? NÚM! NULO! DESPEJAR!",
    "nl": "N/B WAARDE! VERW! DEEL/0! NAAM? GETAL! LEEG! OVERLOOP! BEREKENEN!",
    "pl": "N/D! ARG! ADR! DZIEL/0! NAZWA? LICZBA! ZERO! ROZLANIE! OBLICZENIE!",
}
_SPREADSHEET_ERROR = (
    r"(?i)\s*(?:#(?:"
    + "|".join(
        re.escape(v) for v in sorted({v for vs in _ERROR_VALUES.values() for v in vs.split()})
    )
    + r")|(?:Err|Fehler|Erreur|Error):\d{3})\s*"
)
# group separators people type: comma (with a decimal point), or dot, space, no-break space
# and narrow no-break space (with a decimal comma); RE2 wants the characters themselves
_SPACES = " \u00a0\u202f"
_NUMBER_RE = {
    # a group of thousands never starts with 0: `0,125` is no thousand and a quarter; an
    # exponent only without groups, as programs write it: `2.5e+10` (our own CSV), `1,23E+11`
    ".": r"[+-]?([1-9]\d{0,2}(,\d{3})+(\.\d+)?|(\d+(\.\d+)?|\.\d+)([eE][+-]?\d+)?)",
    ",": r"[+-]?([1-9]\d{0,2}([." + _SPACES + r"]\d{3})+(,\d+)?|(\d+(,\d+)?|,\d+)([eE][+-]?\d+)?)",
}
_GROUP_SEP = {".": ",", ",": "[." + _SPACES + "]"}
# a currency before or after an amount: `$45,351.80`, `236.888,70 €`, `CHF 99`, `99 EUR`
_CODES = (
    "USD|EUR|GBP|CHF|JPY|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|RON|TRY|CNY|INR|BRL|MXN|ZAR|SGD|HKD"
)
_CURRENCY_BEFORE = rf"^\s*([+-]?)\s*(?:[$€£¥₹]|(?:{_CODES})\s)\s*"  # the sign may come first: -$5
_CURRENCY_AFTER = rf"\s*(?:[$€£¥₹]|\s(?:{_CODES}))\s*$"
# French and German spreadsheets put a no-break space before it; RE2 wants the characters
_PERCENT_SIGN = "[\\s" + _SPACES + "]*%$"


def _percent_cells(values: pd.Series, cells: pd.Series | None) -> pd.Series:
    """A workbook's percent cell holds the fraction (0.4 shows as 40%): a PERCENT field and
    PROBABILITY hold the number of percent."""
    if cells is None or not (cells == Cell.PERCENT).any():
        return values
    pct = (cells == Cell.PERCENT).to_numpy()
    out = values.copy()
    if out.dtype == "Float64":
        out[pct] = (out[pct] * 100).round(10)
    else:
        numbers = pd.to_numeric(out[pct], errors="coerce") * 100
        out[pct] = [
            str(round(n)) if pd.notna(n) and abs(n - round(n)) < 1e-9 else str(t)
            for n, t in zip(numbers, out[pct], strict=True)
        ]
    return out


TEXT_DTYPE = pd.StringDtype("pyarrow")
_DTYPES = {INTEGER: "Int64", NUMBER: "Float64", BOOLEAN: "boolean"}
ERROR_COLUMNS = ["row", "line", "column", "field", "kind", "value", "message"]


def _plain(value: Any) -> Any:
    if value is pd.NA or value is None or (isinstance(value, float) and np.isnan(value)):
        return ABSENT
    return value.item() if hasattr(value, "item") else value


@dataclass
class ValidationResult:
    table: SourceTable
    mapping: Mapping
    specs: dict[str, FieldSpec]
    rules: list[ColumnRule]  # the effective rules (identity mappings resolved)
    # one typed column per mapped field; NA = no value in the file. Of a file read in
    # blocks, on disk (spill.py)
    values: pd.DataFrame | spill.SpilledValues
    errors: pd.DataFrame  # ERROR_COLUMNS, one line per problem
    cleared: dict[str, np.ndarray] = field(default_factory=dict)  # field -> rows sending null
    defaulted: dict[str, np.ndarray] = field(default_factory=dict)  # field -> rows given a default
    update_only: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # required field -> rows lacking it
    notes: list[str] = field(default_factory=list)  # mapping-level remarks (ignored columns …)
    parent_ids: pd.Series | None = None  # notes: the parent record of each row
    links: dict[str, pd.Series] = field(default_factory=dict)  # `links:` column -> record ids
    first_is_day: bool | None = None  # how the file's slash dates read (spreadsheet.py)
    _block: tuple[int, dict[str, list[Any]]] = field(
        default=(-1, {}), init=False, repr=False, compare=False
    )  # cell(): the rows last read, as Python values

    @property
    def rejected_rows(self) -> np.ndarray:
        return (
            np.unique(self.errors["row"].to_numpy())
            if len(self.errors)
            else np.array([], dtype=int)
        )

    @property
    def rows(self) -> int:
        return len(self.values)

    @property
    def bad_rows(self) -> int:
        return len(self.table.bad_rows)

    def cell(self, row: int, name: str) -> Any:
        """A plain Python value, None to clear the field, or ABSENT."""
        mask = self.cleared.get(name)
        if mask is not None and mask[row]:
            return None
        values, at = self._block_of(row)
        return values[name][at]

    def row(self, row: int) -> dict[str, Any]:
        """The fields the row sets (None: clear); fields with no value are left out. One
        lookup of the row's block, not one per cell: planning reads every row three times."""
        columns, at = self._block_of(row)
        out: dict[str, Any] = {}
        for name, values in columns.items():
            mask = self.cleared.get(name)
            if mask is not None and mask[row]:
                out[name] = None
            elif (value := values[at]) is not ABSENT:
                out[name] = value
        return out

    def _block_of(self, row: int) -> tuple[dict[str, list[Any]], int]:
        """The row's block as Python values (converted once, kept until another is read), and
        where the row is in it."""
        block, at = divmod(row, spill.BATCH_ROWS)
        if self._block[0] != block:
            self._block = (block, self._plain(block))
        return self._block[1], at

    def _plain(self, block: int) -> dict[str, list[Any]]:
        """One block of rows as Python values, a column at a time: reading cells one by one
        through pandas cost a tenth of a millisecond each, and rows are read mostly in order."""
        size = spill.BATCH_ROWS
        frame = spill.rows_of(self.values, block * size, (block + 1) * size)
        return {name: [_plain(v) for v in frame[name].tolist()] for name in frame.columns}

    def column(self, name: str) -> list[Any]:
        return [self.cell(i, name) for i in range(self.rows)]

    def update_only_rows(self, examples: int = 3) -> dict[str, tuple[int, list[int]]]:
        """Required field -> how many rows lack it, and the first lines that do. With a match
        key, a row may lack a field a new record needs: it can only update. Validation cannot
        know whether it will find its record; the import will."""
        out = {}
        for name, mask in self.update_only.items():
            rows = np.flatnonzero(mask)
            if len(rows):
                out[name] = (len(rows), [self.table.lines[r] for r in rows[:examples]])
        return out


def update_only_text(
    result: ValidationResult, rows: dict[str, tuple[int, list[int]]], examples: int = 3
) -> list[str]:
    """The warnings for update_only_rows (of one result, or summed over a file's blocks)."""
    singular = get_object(result.mapping.object).singular
    return [
        f"{count:,} row(s) have no {name}, so they can only update an existing "
        f"{singular} (a new one needs it): {result.table.unit} "
        + ", ".join(map(str, lines[:examples]))
        + (" …" if count > examples else "")
        for name, (count, lines) in rows.items()
    ]


def keyless_text(
    result: ValidationResult, count: int, lines: list[int], examples: int = 3
) -> list[str]:
    """The warning for valid rows with an empty part of the match key (of one result, or
    summed over a file's blocks): no record is found by them."""
    match = result.mapping.match
    if match is None or not count:
        return []
    columns = ", ".join(dict.fromkeys(c for c, _ in match.pairs))
    singular = get_object(result.mapping.object).singular
    return [
        f"{count:,} row(s) have an empty match key ({columns}), so no existing {singular} is "
        "found by it: each updates the record an earlier run made for it, else is created "
        "(where it gives what a new one needs): "
        f"{result.table.unit} "
        + ", ".join(map(str, lines[:examples]))
        + (" …" if count > examples else "")
    ]


# ---------------------------------------------------------------- the mapping level


def effective_rules(
    table: SourceTable, mapping: Mapping, specs: dict[str, FieldSpec], obj: ObjectType
) -> tuple[list[ColumnRule], list[str]]:
    """The mapping's rules, or for a mapping without `columns`, the headers that are fields;
    and the match key's columns no rule writes (match_rules)."""
    rules, notes = _mapped_rules(table, mapping, specs, obj)
    keys = [r for r in _match_rules(mapping, rules, specs, obj) if r.column in table.columns]
    if keys:
        notes.append(
            ", ".join(f"{r.column} -> {r.field}" for r in keys)
            + " (the match key) is written into each record created, and into one found that "
            "holds none, as an upsert does: the next file finds them by it"
        )
    return rules + keys, notes


def _match_rules(
    mapping: Mapping, rules: list[ColumnRule], specs: dict[str, FieldSpec], obj: ObjectType
) -> list[ColumnRule]:
    """The match key's parts no rule writes, as rules that write them on create and fill
    them in where a record has none (never over another key): a record made without its
    external id is never found by the next file, which makes it again."""
    if mapping.match is None:
        return []
    written = {r.field for r in rules}
    return [
        # as a key compares: no surrounding spaces (a record made with ' LEG-1 ' held them)
        ColumnRule(column=column, field=name, transform=("strip",), update="fill", blank="skip")
        for column, name in dict.fromkeys(mapping.match.pairs)
        if name not in written
        and name != obj.id_field
        and (spec := specs.get(name)) is not None
        and spec.writable
    ]


def _mapped_rules(
    table: SourceTable, mapping: Mapping, specs: dict[str, FieldSpec], obj: ObjectType
) -> tuple[list[ColumnRule], list[str]]:
    notes: list[str] = []
    # a semicolon file is what Excel writes where the decimal mark is a comma (and what
    # `export --csv-dialect excel-eu` writes): its numbers come back with commas, mapped or
    # not (a mapping's column read `1.500` as 1.5 where --object read 1500)
    decimal = mapping.decimal or ("," if table.delimiter == ";" else ".")
    if not mapping.identity:
        return [
            rule if rule.decimal_given else replace(rule, decimal=decimal)
            for rule in mapping.columns
        ], notes
    rules = []
    unknown: list[str] = []
    read_only: dict[str, list[str]] = {}  # why -> columns
    for column in table.columns:
        spec = specs.get(column)
        if spec is None:
            unknown.append(column)
        elif not spec.writable:
            if column != obj.id_field:
                read_only.setdefault(spec.why_not_writable or "read-only", []).append(column)
        else:
            rules.append(
                ColumnRule(
                    column=column,
                    field=column,
                    split=";" if spec.kind in (MULTISELECT, TAGS) else None,
                    decimal=decimal,
                    blank=mapping.blank,
                    artefacts=mapping.artefacts,
                )
            )
    # one note a kind, however many columns: an export's dozen read-only columns are no news
    notes += [
        f"{_columns_text(columns)} read-only ({why}); ignored" for why, columns in read_only.items()
    ]
    if unknown:
        fields = "a field" if len(unknown) == 1 else "fields"
        notes.append(f"{_columns_text(unknown)} not {fields} of {obj.name}; ignored")
    return rules, notes


def _columns_text(columns: list[str], shown: int = 8) -> str:
    """`column 'A' is`, or `columns 'A', 'B' are`, the first few of many named."""
    if len(columns) == 1:
        return f"column {columns[0]!r} is"
    names = ", ".join(repr(c) for c in columns[:shown])
    more = f" and {len(columns) - shown:,} more" if len(columns) > shown else ""
    return f"{len(columns):,} columns ({names}{more}) are"


def _refuse_run_together(table: SourceTable, rules: list[ColumnRule]) -> None:
    """A semicolon CSV opened in a spreadsheet without its delimiter, and saved: each row one
    cell, `Name;Website;…`. Said as that, not as every mapped column missing."""
    if len(table.columns) != 1:
        return
    header = table.columns[0]
    wanted = {r.column for r in rules}
    for sep in (";", "\t", "|", ","):
        if sep in header and wanted & {part.strip() for part in header.split(sep)}:
            shown = header if len(header) <= 60 else header[:57] + "..."
            raise InputError(
                f"{table.path}: each row is one cell ({shown!r}): its columns are run together "
                f"with {sep!r}, as when a program opens a CSV without its delimiter and saves it",
                hint=f"Import the CSV itself, or open it again choosing {sep!r} as the "
                "separator (LibreOffice: the Text Import dialog; Excel: Data > From Text/CSV) "
                "and save it.",
            )


def check_mapping(
    table: SourceTable, mapping: Mapping, specs: dict[str, FieldSpec], rules: list[ColumnRule]
) -> None:
    """Every problem of the mapping with the file and the account, at once (one run each
    made fixing three take three runs): the first, with the others after it."""
    _refuse_run_together(table, rules)
    problems: list[InputError] = []
    for check in _mapping_checks(table, mapping, specs, rules):
        try:
            check()
        except InputError as exc:
            problems.append(exc)
    if len(problems) > 1:
        others = "".join(f"\n  and: {p}" for p in problems[1:])
        raise InputError(f"{problems[0]}{others}", hint=problems[0].hint)
    if problems:
        raise problems[0]


def _mapping_checks(
    table: SourceTable, mapping: Mapping, specs: dict[str, FieldSpec], rules: list[ColumnRule]
) -> Iterator[Callable[[], None]]:
    """check_mapping's checks, each on its own (a field that is none is not checked further)."""
    src = mapping.source
    columns = table.columns
    obj = get_object(mapping.object)
    link_columns = [ColumnRule(column=r.column, field=r.step) for r in mapping.links]

    def in_file(column: str, where: str) -> Callable[[], None]:
        def check() -> None:
            if column not in columns:
                close = suggest(column, columns)
                raise InputError(
                    f"{src}: {where}column {column!r} is not in {table.named}"
                    + (f"; did you mean {close!r}?" if close else ""),
                    hint=f"The {'sheet' if table.sheet else 'file'}'s columns: "
                    f"{', '.join(columns)}.",
                )

        return check

    def column_field(rule: ColumnRule) -> Callable[[], None]:
        def check() -> None:
            _check_field(src, f"columns.{rule.column}", rule.field, specs, obj)
            spec = specs[rule.field]
            if rule.lookup is not None and spec.kind != INTEGER:
                raise InputError(
                    f"{src}: columns.{rule.column}: a lookup gives a record id, but "
                    f"{rule.field} is {spec.api_type}"
                )
            if rule.lookup is not None and spec.join_object:
                _check_join(src, rule, spec.join_object)

        return check

    def match_field(column: str, fname: str) -> Callable[[], None]:
        def check() -> None:
            if fname not in specs and fname != obj.id_field:
                hint = suggest_field(fname, specs)
                raise InputError(
                    f"{src}: match: {fname} is not a field of {obj.name}"
                    + (f"; did you mean {hint}?" if hint else ""),
                    hint=f"List them with: insightly-etl fields {obj.name}",
                )
            others = [r.column for r in rules if r.field == fname and r.column != column]
            if others:  # records made would hold another key than the one they are found by
                raise InputError(
                    f"{src}: match: {fname} is found by column {column!r}, but columns write "
                    f"it from {others[0]!r}: each record created would hold another key than "
                    "the one the next file finds it by",
                    hint=f"Map {column!r} to {fname} (or nothing to it), or match by "
                    f"{others[0]!r}.",
                )

        return check

    def required() -> None:
        mapped = {r.field for r in rules} | set(mapping.defaults)
        if obj.under_parent and mapping.parent is None and not mapping.match:
            raise InputError(
                f"{src}: notes are created under a record: add parent: {{column: …, object: "
                "contacts, by: EMAIL_ADDRESS}"
            )
        if not mapping.match:
            missing = [s.name for s in specs.values() if s.required and s.name not in mapped]
            if missing:
                raise InputError(
                    f"{src}: {obj.name} need {', '.join(missing)}, which the mapping neither "
                    "maps nor defaults",
                    hint="Map a column to it, or give it under defaults:."
                    if mapping.source != "(no mapping file)"
                    else "Name the file's column for it with a mapping file (insightly-etl "
                    "mapping draft FILE --object OBJECT writes one).",
                )

    for rule in [*rules, *([mapping.parent] if mapping.parent else []), *link_columns]:
        yield in_file(rule.column, "")
    for rule in rules:
        yield column_field(rule)
    for name in mapping.defaults:
        yield functools.partial(_check_field, src, f"defaults.{name}", name, specs, obj)
    for column, fname in mapping.match.pairs if mapping.match else ():
        yield in_file(column, "match: ")
        yield match_field(column, fname)
    yield required


def _check_join(src: str, rule: ColumnRule, join_object: str) -> None:
    """A lookup field holds ids of one object (its JOIN_OBJECT): the lookup must find those."""
    try:
        target = get_object(join_object)
    except InputError:
        return  # a JOIN_OBJECT this tool does not know: the server will judge the ids
    assert rule.lookup is not None
    if target.name.lower() != rule.lookup.object.lower():
        raise InputError(
            f"{src}: columns.{rule.column}: {rule.field} holds {join_object} record ids, "
            f"but the lookup finds {rule.lookup.object} records",
            hint=f"Look up {target.name}: lookup: {{object: {target.name}, by: …}}.",
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
        positions: np.ndarray,
        column: str,
        fname: str,
        kind: str,
        values: list[Any],
        messages: list[str],
    ) -> None:
        if len(positions) == 0:
            return
        self.parts.append(
            pd.DataFrame(
                {
                    "row": positions,
                    "line": self.lines[positions],
                    "column": column,
                    "field": fname,
                    "kind": kind,
                    "value": values,
                    "message": messages,
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in ERROR_COLUMNS})
        return pd.concat(self.parts, ignore_index=True).sort_values(
            "row", kind="stable", ignore_index=True
        )


def _transform(s: pd.Series, rule: ColumnRule, spec: FieldSpec) -> pd.Series:
    if spec.kind != TEXT or rule.lookup is not None or spec.is_email:
        # surrounding spaces never matter in numbers, dates, options, names, e-mail addresses
        s = s.str.strip()
    if spec.is_email:  # nor do the invisible characters a copy and paste brings along
        s = s.str.replace(INVISIBLE, "", regex=True).str.strip()
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
        s = map_values(s, rule.values)
    return s


def blank_cells(s: pd.Series) -> np.ndarray:
    """The cells with nothing in them: empty, or of spaces and zero-width characters alone,
    as the match key reads them (a stray space typed in a spreadsheet named a contact '   ',
    a pasted U+200B an external id)."""
    text = s.str.strip()
    blank: np.ndarray = (text == "").to_numpy(dtype=bool, na_value=True)
    others = ~blank & ~pc.fill_null(pc.string_is_ascii(arrow_text(text)), True).to_numpy(
        zero_copy_only=False
    )
    if others.any():  # only text beyond ASCII may hold an invisible character
        unseen = text[others].str.replace(INVISIBLE, "", regex=True).str.strip() == ""
        blank[np.flatnonzero(others)[unseen.to_numpy(dtype=bool, na_value=False)]] = True
    return blank


def _shown_value(value: Any) -> str:
    """A cell in a message: quoted, and cut short (a 5,000-digit cell filled the summary)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(str(value)):,} characters)"


def arrow_text(s: pd.Series) -> pa.Array:
    """A column of text as one Arrow array (no copy for Arrow-backed text)."""
    arr = pa.Array.from_pandas(s)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _text_series(arr: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(arr, dtype=TEXT_DTYPE), index=index)


def _error_values(v: pd.Series) -> np.ndarray:
    """Which values are a formula's error value (_SPREADSHEET_ERROR): the pattern is tried
    only where a `#` or an `r:` (Err:, Fehler:, Erreur:) is, and a time's `:` is no `r:`."""
    found = holding(v, "#", "r:")
    if found.any():
        found[found] = fullmatch(v[found], _SPREADSHEET_ERROR)
    return found


def holding(v: pd.Series, *needles: str) -> np.ndarray:
    """Which values hold one of `needles`, for checks that look closer only there. The
    bytes the column's values are stored in are searched first, at memory speed: most
    columns hold none, and a compute function per value cost three times as much (a
    column's bytes beyond its values may say yes, never no)."""
    text = arrow_text(v)
    found = np.zeros(len(v), dtype=bool)
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    stored = (c.buffers()[2] for c in chunks if len(c))
    if not any(data is not None and _any_in(data.to_pybytes(), needles) for data in stored):
        return found
    for needle in needles:
        hit = pc.fill_null(pc.match_substring(text, needle), False)
        found |= hit.to_numpy(zero_copy_only=False)
    return found


def _any_in(raw: bytes, needles: tuple[str, ...]) -> bool:
    return any(n.encode() in raw for n in needles)


def fullmatch(s: pd.Series, pattern: str) -> np.ndarray:
    """Whole-value regex match in Arrow (RE2); False for missing values."""
    hit = pc.match_substring_regex(arrow_text(s), f"^(?:{pattern})$")
    matched: np.ndarray = pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    return matched


def regex_replace(s: pd.Series, pattern: str, replacement: str) -> pd.Series:
    return _text_series(pc.replace_substring_regex(arrow_text(s), pattern, replacement), s.index)


def map_values(s: pd.Series, values: dict[str, str]) -> pd.Series:
    """A mapping's `values:` map, whole values only, the rest unchanged."""
    arr = arrow_text(s)
    where = pc.index_in(arr, value_set=pa.array(list(values), pa.string()))
    mapped = pc.take(pa.array(list(values.values()), pa.string()), where)
    return _text_series(pc.if_else(pc.is_valid(where), mapped, arr), s.index)


_CODE_RE = {
    "d": r"(?P<d>\d{1,2})",
    "m": r"(?P<m>\d{1,2})",
    "Y": r"(?P<Y>\d{4})",
    "y": r"(?P<y>\d{2})",
    "H": r"(?P<H>\d{1,2})",
    "M": r"(?P<M>\d{1,2})",
    "S": r"(?P<S>\d{1,2})",
}
_COMPONENT = {"d": pc.day, "m": pc.month, "H": pc.hour, "M": pc.minute, "S": pc.second}


def _format_regex(date_format: str) -> str | None:
    """%d/%m/%Y -> a regex with one named group per field; None for codes beyond digits."""
    out, i = [], 0
    while i < len(date_format):
        ch = date_format[i]
        if ch == "%" and i + 1 < len(date_format):
            code = date_format[i + 1]
            if code == "%":
                out.append("%")
            elif code in _CODE_RE and _CODE_RE[code] not in out:
                out.append(_CODE_RE[code])
            else:
                return None
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "^" + "".join(out) + "$"


def _parse_naive(
    s: pd.Series, date_format: str | None, first_is_day: bool | None = None
) -> pa.Array:
    """Timestamps (seconds, no zone), null where the text is not a date.

    Fast paths in Arrow: ISO text casts strictly; an explicit numeric format is parsed by
    strptime, which rolls impossible dates over (31/02 -> 03/03), so a parse counts only if its
    day, month, hour, minute and second equal the digits written. Anything else is parsed by
    pandas, which is strict and slower. What is left is tried in ISO (a workbook's date cells,
    whatever `date_format` says) and, without a `date_format`, in the forms spreadsheet
    programs write (spreadsheet.py), slash dates in the order the file shows."""
    arr = arrow_text(s)
    parsed: pa.Array | None = None
    if date_format is None:
        try:
            return arr.cast(pa.timestamp("s"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    else:
        pattern = _format_regex(date_format)
        if pattern is not None:
            try:
                parsed = pc.strptime(arr, format=date_format, unit="s", error_is_null=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                parsed = None
            if parsed is not None:
                parts = pc.extract_regex(arr, pattern)
                ok = pc.is_valid(parsed)
                for name, component in _COMPONENT.items():
                    if f"(?P<{name}>" in pattern:
                        written = pc.cast(pc.struct_field(parts, name), pa.int64())
                        ok = pc.and_(ok, pc.fill_null(pc.equal(component(parsed), written), False))
                parsed = pc.if_else(ok, parsed, pa.scalar(None, pa.timestamp("s")))
    if parsed is None:
        strict = pd.to_datetime(s, format=date_format or "ISO8601", errors="coerce")
        parsed = pa.array(
            strict.to_numpy(dtype="datetime64[s]"), type=pa.timestamp("s"), from_pandas=True
        )
    missing = pc.and_(pc.is_null(parsed), pc.is_valid(arr)).to_numpy(zero_copy_only=False)
    if not missing.any():
        return parsed
    rest = s[missing]
    found = pd.to_datetime(rest, format="ISO8601", errors="coerce")
    if date_format is None:
        found = found.fillna(parse_locale(rest, first_is_day))
    if found.notna().any():
        merged = pd.Series(parsed.to_numpy(zero_copy_only=False), index=s.index)
        merged[missing] = found.to_numpy(dtype="datetime64[s]")
        parsed = pa.array(
            merged.to_numpy(dtype="datetime64[s]"), type=pa.timestamp("s"), from_pandas=True
        )
    return parsed


def _as_text(times: pa.Array, index: pd.Index, *, date_only: bool) -> pd.Series:
    """`yyyy-MM-dd HH:mm:ss`, or `yyyy-MM-dd 00:00:00` for a calendar day."""
    text = pc.cast(times, pa.string())
    if date_only:
        text = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 10), " 00:00:00", "")
    return _text_series(text, index)


def _clock_change(value: str, rule: ColumnRule, first_is_day: bool | None) -> str | None:
    """Why a local time that reads as a time is none in the mapping's zone: skipped or
    doubled by a clock change. None when that is not why."""
    if rule.timezone == "UTC":
        return None
    naive = _parse_naive(pd.Series([value], dtype=TEXT_DTYPE), rule.date_format, first_is_day)[0]
    if not naive.is_valid:
        return None
    stamp = pd.Timestamp(naive.as_py())
    try:
        stamp.tz_localize(rule.timezone, nonexistent="raise", ambiguous="raise")
    except Exception as exc:  # pandas 3: a ValueError; pandas 2: pytz's own errors
        kind = f"{type(exc).__name__} {exc}".lower()
        if "nonexistent" in kind:
            return f"{value!r} does not exist in {rule.timezone}: the clocks go forward over it"
        if "ambiguous" not in kind:
            raise
        first, second = (
            stamp.tz_localize(rule.timezone, ambiguous=summer).isoformat(sep=" ")
            for summer in (True, False)
        )
        return (
            f"{value!r} happens twice in {rule.timezone} (the clocks go back over it); write "
            f"it with its offset: {first} the first time, {second} the second"
        )
    return None


def _parse_dates(
    s: pd.Series, rule: ColumnRule, date_only: bool, first_is_day: bool | None = None
) -> pd.Series:
    """Parsed date-times as Insightly text; NA where the value does not parse."""
    if date_only:
        # a calendar day is sent as that day, whatever zone was written beside it
        day = _parse_naive(regex_replace(s, _ZONE_RE, ""), rule.date_format, first_is_day)
        return _as_text(day, s.index, date_only=True)
    aware = pc.fill_null(pc.match_substring_regex(arrow_text(s), _ZONE_RE), False).to_numpy(
        zero_copy_only=False
    )
    out = pd.Series(pd.NA, index=s.index, dtype=TEXT_DTYPE)
    if (~aware).any():
        local = s[~aware]
        times = _parse_naive(local, rule.date_format, first_is_day)
        if rule.timezone != "UTC":
            try:
                zoned = pc.assume_timezone(
                    times, rule.timezone, ambiguous="raise", nonexistent="raise"
                )
                times = pc.cast(zoned, pa.timestamp("s"))  # the same instants, written in UTC
            except pa.ArrowInvalid:  # a local time that is skipped or doubled by a clock change
                index = pd.DatetimeIndex(times.to_numpy(zero_copy_only=False))
                utc = index.tz_localize(
                    rule.timezone, ambiguous="NaT", nonexistent="NaT"
                ).tz_convert("UTC")
                times = pa.array(
                    utc.tz_localize(None).to_numpy(dtype="datetime64[s]"),
                    type=pa.timestamp("s"),
                    from_pandas=True,
                )
        out[~aware] = _as_text(times, local.index, date_only=False)
    if aware.any():
        zoned = pd.to_datetime(
            s[aware], format=rule.date_format or "ISO8601", errors="coerce", utc=True
        )
        out[aware] = zoned.dt.strftime(DATETIME_FORMAT)
    return out


def _other_year(value: str, date_format: str | None, year: str, other: str) -> bool:
    """Whether `value` is a date of `date_format` but for its year's digits: `other` (%y or
    %Y) where the format says `year`."""
    if not date_format or year not in date_format:
        return False
    try:
        datetime.strptime(value.strip(), date_format.replace(year, other))
    except ValueError:
        return False
    return True


def _long_year(value: str, date_format: str | None) -> bool:
    """`24.12.1961` for %d.%m.%y: a four-digit year where the format has two."""
    return _other_year(value, date_format, "%y", "%Y")


def _short_year(value: str, date_format: str | None) -> bool:
    """`02/03/79` for %d/%m/%Y: what LibreOffice or Excel writes when it saves a CSV it read
    dates from."""
    return _other_year(value, date_format, "%Y", "%y")


# a day, month and two-digit year, in the forms spreadsheet programs write (`01/15/31`,
# `01.03.26`), with a time or not
_SHORT_YEAR = (
    r"\s*\d{1,2}[/.]\d{1,2}[/.]\d{2}(?:,?\s+\d{1,2}:\d\d(?::\d\d)?(?:\s*[AaPp]\.?[Mm]\.?)?)?\s*"
)


def _two_digit_year(value: str, what: str, exported: bool) -> str:
    if exported:
        return (
            f"{value!r} has a two-digit year, in an export whose {what}s have four: a "
            "spreadsheet program wrote it so when the file was saved (a date typed as "
            "1/15/2031 is saved as 01/15/31), and which century it means is not known; type it "
            "again in a cell formatted with a four-digit year (or as 2031-01-15) and save again"
        )
    return (
        f"{value!r} has a two-digit year, and which century it means is not known (a "
        "spreadsheet program that opened and saved the file writes a date of 1925 so, and "
        "one of 2025 alike); take the original file, or give the column four-digit years in "
        "the spreadsheet (a date format with YYYY) and save again"
    )


_LAST_SERIAL = 2_958_465  # 9999-12-31 as a spreadsheet's day number


def _no_such_day(value: str, date_format: str | None) -> str | None:
    """Why a value written in the column's date format (else in ISO form, 2026-02-30) is no
    day (`02/30/1980`: day is out of range for month), or None when it is not so written."""
    text = value.strip()
    if date_format is None:
        iso = re.fullmatch(r"(\d{4}-\d{1,2}-\d{1,2})(?:[ T][\d:.]+(?:Z|[+-]\d\d:?\d\d)?)?", text)
        if iso is None:
            return None
        text, date_format = iso.group(1), "%Y-%m-%d"
    try:
        datetime.strptime(text, date_format)
    except ValueError as exc:
        return str(exc) if "out of range" in str(exc) else None
    return None


def _number_not_date(value: str, what: str, expected: str) -> str:
    """A cell of digits alone where a date goes: a year (`1990`), or the day number a
    spreadsheet keeps a date as (`9277`, days since 1899-12-30: 1925-05-25), which a cell
    formatted as a number shows. Neither is a day."""
    days = int(value)
    serial = (
        f", or the day number a spreadsheet keeps {SERIAL_EPOCH + timedelta(days):%Y-%m-%d} as"
        if 0 < days <= _LAST_SERIAL
        else ""
    )
    return (
        f"{value!r} is a number, not a {what}: a year alone{serial}; write the whole {what} "
        f"{expected}"
    )


def _option_message(value: str, options: tuple[str, ...], fname: str) -> str:
    """'gold' is not an option of Customer_Tier__c; did you mean 'Gold'?"""
    close = suggest(value, list(options))
    tail = f"; did you mean {close!r}?" if close else f" (options: {', '.join(options)})"
    return f"{value!r} is not an option of {fname}{tail}"


class _ColumnValidator:
    """One column: transforms, then the check of its field's kind. `bad(mask, kind, template)`
    records the failed cells; messages are built per distinct failed value only."""

    def __init__(
        self,
        errors: _Errors,
        lookups: dict[tuple[str, str], LookupIndex],
        first_is_day: bool | None = None,
        *,
        exported: bool = False,
        today: date | None = None,
    ) -> None:
        self.errors = errors
        self.today = today or date.today()  # a birthday after it is refused (past_only)
        self.lookups = lookups
        self.first_is_day = first_is_day  # the file's slash-date order (spreadsheet.py)
        # an export of ours: its dates have four-digit years, so a two-digit one was typed
        # or re-saved in a spreadsheet, and which century it means is not known
        self.exported = exported
        self._cells: pd.Series | None = None  # the column's workbook cell types, if any
        self.notes: list[str] = []  # what was read otherwise than it is written, and why

    def run(
        self,
        raw: pd.Series,
        rule: ColumnRule,
        spec: FieldSpec,
        *,
        require: bool,
        cells: pd.Series | None = None,
    ) -> tuple[pd.Series, np.ndarray | None]:
        """`cells`: a workbook's cell types beside the text (readers.Cell), so a typed cell
        is read as what it is."""
        s = _transform(raw.reset_index(drop=True), rule, spec)
        if spec.kind in (DATE, DATETIME):
            s = self._no_date(s, rule)
        blank = blank_cells(s)
        cleared = blank if rule.blank == "clear" else None
        if require and blank.any():
            where = np.flatnonzero(blank)
            self.errors.add(
                where,
                rule.column,
                spec.name,
                "required",
                [""] * len(where),
                [f"{spec.name} is required"] * len(where),
            )
        dtype = "Int64" if rule.lookup is not None else _DTYPES.get(spec.kind, TEXT_DTYPE)
        if blank.all():
            return pd.Series(pd.NA, index=s.index, dtype=dtype), cleared
        present = np.flatnonzero(~blank)
        v = s.iloc[present]
        self._column, self._spec = rule.column, spec.name
        if (failed := _error_values(v)).any():
            self._bad(
                v,
                failed,
                "spreadsheet error",
                "{v} is a spreadsheet's error value (a formula failed there), not data: fix "
                "the formula or empty the cell",
            )
            present, v = present[~failed], v[~failed]
        self._cells = (
            None if cells is None else cells.reset_index(drop=True).iloc[present].astype(str)
        )
        parsed = self._lookup(v, rule) if rule.lookup is not None else self._by_kind(v, rule, spec)
        return parsed.reindex(s.index).astype(dtype), cleared

    def _no_date(self, s: pd.Series, rule: ColumnRule) -> pd.Series:
        """`0/0/00`, `00.00.0000`, `0000-00-00`: no date at all, as Outlook and databases
        write it for none. Read as an empty cell, with a note."""
        zero = fullmatch(s, _ZERO_DATE)
        if not zero.any():
            return s
        note = (  # no count: a file validated a block at a time says it once
            f"column {rule.column!r}: cells like {s[zero].iloc[0]!r}, a program's way of "
            "writing no date (Outlook's), are read as empty"
        )
        if note not in self.notes:
            self.notes.append(note)
        return s.mask(zero, "")

    def _bad(self, v: pd.Series, mask: pd.Series | np.ndarray, kind: str, message: Any) -> None:
        """Record failed cells; `message` is a format string with {v}, or a function of the value."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        failed = v[mask]
        texts = failed.astype(object).tolist()
        cache: dict[str, str] = {}
        for value in set(texts):
            if callable(message):  # it reads the value whole; the text quotes it cut short
                cache[value] = message(value).replace(repr(value), _shown_value(value))
            else:
                cache[value] = message.format(v=_shown_value(value))
        self.errors.add(
            failed.index.to_numpy(),
            self._column,
            self._spec,
            kind,
            texts,
            [cache[t] for t in texts],
        )

    def _by_kind(self, v: pd.Series, rule: ColumnRule, spec: FieldSpec) -> pd.Series:
        kind = spec.kind
        if kind == INTEGER:
            if spec.name == "PROBABILITY":  # "60%", or a workbook's percent cell (0.6)
                v = _percent_cells(regex_replace(v, _PERCENT_SIGN, ""), self._cells)
            v = regex_replace(v, r"^([+-]?\d+)[.,]0+$", r"\1")  # 25.00: a spreadsheet's 25
            good = pd.Series(fullmatch(v, r"[+-]?\d+"), index=v.index)
            self._bad(v, ~good, "integer", "{v} is not a whole number")
            # beyond 18 digits a value may not fit in 64 bits: no Insightly id or count does
            huge = good & pd.Series(fullmatch(v, r"[+-]?0*\d{19,}"), index=v.index)
            self._bad(v, huge, "integer", "{v} is too large a whole number")
            good = good & ~huge
            # `+3`: Arrow reads no sign before a whole number (an internal error)
            unsigned = regex_replace(v.where(good), r"^\+", "")
            ints = pc.cast(arrow_text(unsigned), pa.int64())
            if spec.name.endswith("_ID") or spec.join_object:  # another record's id
                # (ORGANISATION_ID -1 was planned as an update: no record has it)
                nobody = pc.fill_null(pc.less(ints, 1), False).to_numpy(zero_copy_only=False)
                self._bad(v, nobody, "integer", "{v} is no record's id (ids count from 1)")
                ints = pc.if_else(nobody, pa.scalar(None, pa.int64()), ints)
            return pd.Series(pd.array(ints, dtype="Int64"), index=v.index)
        if kind == NUMBER:
            return self._number(v, rule, spec)
        if kind == BOOLEAN:
            words = pc.index_in(pc.utf8_lower(arrow_text(v)), value_set=pa.array(list(BOOL_WORDS)))
            truth = pc.take(pa.array(list(BOOL_WORDS.values())), words)
            parsed = pd.Series(
                pd.array(truth.to_numpy(zero_copy_only=False), dtype="boolean"), index=v.index
            )
            self._bad(
                v,
                parsed.isna(),
                "boolean",
                "{v} is not a yes/no value (true/false, yes/no, 1/0, checked/unchecked)",
            )
            return parsed
        if kind in (DATE, DATETIME):
            parsed = _parse_dates(v, rule, kind == DATE, self.first_is_day)
            what = "date" if kind == DATE else "date-time"
            expected = (
                f"in the format {rule.date_format}"
                if rule.date_format
                else "in ISO form (2026-12-31 or 2026-12-31 14:30:00) or a spreadsheet's "
                "(12/31/2026 2:30 PM, 31.12.2026 14:30)"
            )

            def date_message(value: str) -> str:
                clock = None if kind == DATE else _clock_change(value, rule, self.first_is_day)
                if clock:
                    return clock
                if (
                    rule.date_format is None
                    and self.first_is_day is None
                    and ambiguous_slash(value)
                ):
                    return (
                        f"{value!r} could be day/month or month/day, and the file's dates do "
                        "not settle which comes first (none shows it, or some show each); give "
                        "--date-order dmy|mdy (or the mapping's date_order:, or the column a "
                        "date_format)"
                    )
                readings = slash_readings(value) if rule.date_format is None else None
                if readings == (False, False):
                    return f"{value!r} is no day, read either way round (a typo?)"
                if readings is not None and self.first_is_day is None:
                    order = "day" if readings[0] else "month"
                    return (
                        f"{value!r} is a date only with the {order} first, and the file's dates "
                        "do not settle one order for all of them (some show each); give "
                        "--date-order dmy|mdy (or the mapping's date_order:) and fix the dates "
                        "written the other way"
                    )
                declared = readings and (readings[0] if self.first_is_day else readings[1])
                if readings is not None and not declared:  # the other reading is a day
                    this, other = ("day", "month") if self.first_is_day else ("month", "day")
                    return (
                        f"{value!r} reads only {other} first, and the file's dates put the "
                        f"{this} first (a day after the 12th shows it): fix the date, or give "
                        "--date-order dmy|mdy (or the mapping's date_order:) if the file's "
                        "other dates are the wrong ones"
                    )
                if _short_year(value, rule.date_format):
                    return (
                        f"{value!r} is not a {what} {expected}: its year has two digits, as a "
                        "spreadsheet program writes the dates of a file it opened and saved "
                        "(which century is not known); give the column four-digit years there "
                        "(a date format with YYYY) and save again, or take the original file"
                    )
                if _long_year(value, rule.date_format):
                    return (
                        f"{value!r} is not a {what} {expected}: its year has four digits, "
                        "which the format's %y (two) does not read; write the format with %Y"
                    )
                if no_day := _no_such_day(value, rule.date_format):
                    shown = (
                        f"in the format {rule.date_format}" if rule.date_format else "in ISO form"
                    )
                    return f"{value!r} is written {shown}, but is no day ({no_day})"
                return f"{value!r} is not a {what} {expected}"

            # said for what they are, however (or whether) pandas reads them: `9277` (read
            # as the year 9277), and in an export of ours a two-digit year (whose century?)
            none = np.zeros(len(v), dtype=bool)
            bare = fullmatch(v, r"\s*\d{1,5}\s*")
            if rule.date_format is not None:  # what the format reads is its (`%Y`: 1990)
                bare &= parsed.isna().to_numpy()
            # a two-digit year: which century is not known, as which of day and month comes
            # first may not be; a spreadsheet program that opened and saved the file writes
            # them so (LibreOffice saves a typed 12/25/1925 as 12/25/25, which Excel's window
            # read as 2025): refused unless the column's date_format says %y
            short = fullmatch(v, _SHORT_YEAR) & ~bare if rule.date_format is None else none
            self._bad(v, bare, "date", lambda value: _number_not_date(value, what, expected))
            self._bad(v, short, "date", lambda value: _two_digit_year(value, what, self.exported))
            parsed = parsed.where(~(bare | short))
            self._bad(v, parsed.isna().to_numpy() & ~(bare | short), "date", date_message)
            swapped = self._swappable(v, rule)
            if swapped is not None:
                self._bad(v, swapped[0], "date", swapped[1])
                parsed = parsed.where(~swapped[0])
            if spec.past_only:  # a century lost and guessed (`12/25/25`: 2025?)
                today = pd.Timestamp(self.today)
                days = pd.to_datetime(parsed, errors="coerce", utc=True).dt.tz_localize(None)
                future = (days > today).fillna(False).to_numpy(dtype=bool)
                self._bad(v, future, "date", "{v} is a birthday still to come")
                parsed = parsed.where(~future)
            return parsed
        if kind == DROPDOWN:
            bad = ~v.isin(spec.options)
            self._bad(
                v, bad, "option", lambda value: _option_message(value, spec.options, spec.name)
            )
            return v.where(~bad)
        if kind in (MULTISELECT, TAGS):
            return self._multi(v, rule, spec)
        return self._text(v, spec)

    def _swappable(
        self, v: pd.Series, rule: ColumnRule
    ) -> tuple[np.ndarray, Callable[[str], str]] | None:
        """A workbook's date cells shown in figures whose day and month could be either way
        round (`1979-02-03`), where the column says its dates are written the other way: by
        text dates that cannot be read in the cells' order (`14/07/1985` beside `mm/dd/yy`
        cells), or by the mapping's date_format or date_order. The program that saved it
        turned into dates only what it could read in its own order, and read those in it,
        not in the file's: LibreOffice in a US locale made `02/03/1979`, the second of March,
        the third of February. Each such cell is refused, never sent; a text date that fits
        the cells' order (a person typed `7/14/1990` beside them) casts no doubt."""
        if self._cells is None:
            return None
        cells = self._cells.to_numpy()
        texts = v.astype(str).to_numpy()
        declared = self.first_is_day
        if rule.date_format and "%d" in rule.date_format and "%m" in rule.date_format:
            declared = rule.date_format.index("%d") < rule.date_format.index("%m")
        suspect = np.zeros(len(v), dtype=bool)
        why = None
        for shown, day_first in ((Cell.MONTH_FIRST, True), (Cell.DAY_FIRST, False)):
            if not (cells == shown).any():
                continue
            order = "day" if day_first else "month"
            for text in texts[cells == Cell.TEXT]:
                parts = slash_parts(text)
                if parts is not None and parts[0 if day_first else 1] > 12:
                    why = why or f"this column's text dates are written {order} first ({text!r})"
                    suspect |= cells == shown
                    break
            else:
                if declared is day_first:
                    said = f"date_format {rule.date_format}" if rule.date_format else "date_order"
                    why = why or f"the mapping reads this column {order} first ({said})"
                    suspect |= cells == shown
        if why is None:
            return None
        month = pd.to_numeric(pd.Series(texts).str.slice(5, 7), errors="coerce").to_numpy()
        day = pd.to_numeric(pd.Series(texts).str.slice(8, 10), errors="coerce").to_numpy()
        with np.errstate(invalid="ignore"):
            either = suspect & (month <= 12) & (day <= 12) & (day != month)

        def message(value: str) -> str:
            return (
                f"{value!r} is a date cell whose day and month could be either way round, "
                f"and {why}: the program that saved the workbook may have read it the other "
                "way round; type it in as text, as the file had it"
            )

        return either, message

    def _number(self, v: pd.Series, rule: ColumnRule, spec: FieldSpec) -> pd.Series:
        """Numbers as people type them: a currency symbol or code around them, group
        separators, a percent sign for a PERCENT field. A declared decimal mark is the only
        reading; without one, a value that reads only with the other mark (`236.888,70`,
        `18466,7`) is read with it, and one that reads both ways (`1,234`) by the default '.'.
        A workbook's number cells are numbers already: never re-read by a text rule."""
        typed = self._cells.isin([Cell.NUMBER, Cell.PERCENT]) if self._cells is not None else None
        written = v
        # a currency or percent sign needs one of these, or a space beside a code: a column
        # without any (most) is not scanned three more times for them
        if fullmatch(v, r".*[$€£¥₹%\s].*").any():
            v = regex_replace(regex_replace(v, _CURRENCY_BEFORE, r"\1"), _CURRENCY_AFTER, "")
            if spec.api_type == "PERCENT":
                # "85%" in a spreadsheet is 85 in a PERCENT field (the number of percent)
                v = regex_replace(v, _PERCENT_SIGN, "")
        marks = pd.Series(rule.decimal, index=v.index)
        tried = rule.decimal  # the column's mark: what a value that reads no way was tried with
        either = np.zeros(len(v), dtype=bool)  # reads both ways, in a column of both marks
        reads: dict[str, np.ndarray] = {}  # mark -> which values read with it, once known
        if not rule.decimal_given:
            # one mark for the whole column: the other one only when some values read only
            # with it and none only with the default (`2.500 €` beside `1.234,50 €` is 2500)
            other = "," if rule.decimal == "." else "."
            reads_other = fullmatch(v, _NUMBER_RE[other])
            reads_default = fullmatch(v, _NUMBER_RE[rule.decimal])
            reads = {other: reads_other, rule.decimal: reads_default}
            only_other, only_default = reads_other & ~reads_default, reads_default & ~reads_other
            if only_other.any() and not only_default.any():
                marks[:] = other
                tried = other
            elif only_other.any():
                # both: a file's own `17182.44` beside `18000,5` a person typed in another
                # locale; each read the only way it reads, and `2.500` (2.5 or 2500) refused
                marks[only_other] = other
                either = reads_other & reads_default & fullmatch(v, r".*[.,].*")
        if typed is not None:
            marks[typed.to_numpy()] = "."
            either &= ~typed.to_numpy()  # a number cell is a number: no text rule re-reads it
        good = np.zeros(len(v), dtype=bool)
        out = pd.Series(pd.NA, index=v.index, dtype="Float64")
        for mark in marks.unique():
            part = (marks == mark).to_numpy()
            text = v[part]
            ok = reads[mark] if part.all() and mark in reads else fullmatch(text, _NUMBER_RE[mark])
            good[part] = ok
            normal = regex_replace(text.where(ok), _GROUP_SEP[mark], "")
            if mark == ",":
                normal = regex_replace(normal, ",", ".")
            floats = pc.cast(arrow_text(normal), pa.float64())
            finite = pc.fill_null(pc.is_finite(floats), True)
            good[np.flatnonzero(part)[~finite.to_numpy(zero_copy_only=False)]] = False  # 1e400
            floats = pc.if_else(finite, floats, pa.scalar(None, pa.float64()))
            out[part] = pd.array(floats, dtype="Float64")
        if either.any():
            out[either] = pd.NA
            self._bad(
                written,
                either,
                "number",
                "{v} reads with either decimal mark, and this column has numbers written with "
                "each: write it without a thousands separator, or give the column decimal: "
                "'.' or ','",
            )
        self._bad(
            v,
            ~good & ~either,
            "number",
            "{v} is not a number with " + repr(tried) + " as the decimal mark",
        )
        if spec.api_type == "PERCENT" and typed is not None:
            out = _percent_cells(out, self._cells)
        return out

    def _multi(self, v: pd.Series, rule: ColumnRule, spec: FieldSpec) -> pd.Series:
        """Split on the mapping's separator, trim, drop empty parts, check each option, join
        with ";" (the API's form) — in Arrow list kernels, no loop per cell."""
        lists = pc.split_pattern(arrow_text(v), rule.split or ";")
        flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
        parents = pc.list_parent_indices(lists).to_numpy()
        keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
        if not keep.all():  # "a,,b" or a trailing separator
            flat = flat.filter(pa.array(keep))
            parents = parents[keep]
        offsets = np.concatenate(([0], np.cumsum(np.bincount(parents, minlength=len(v))))).astype(
            np.int32
        )
        normal = _text_series(
            pc.binary_join(
                pa.ListArray.from_arrays(pa.array(offsets), flat), pa.scalar(";", flat.type)
            ),
            v.index,
        )
        if spec.kind == TAGS:
            return normal
        known = pc.is_in(flat, value_set=pa.array(spec.options, pa.string())).to_numpy(
            zero_copy_only=False
        )
        wrong = np.flatnonzero(~known)
        if len(wrong) == 0:
            return normal
        rows, first = np.unique(parents[wrong], return_index=True)
        first_wrong = flat.take(pa.array(wrong[first])).to_pylist()
        messages = {
            value: _option_message(value, spec.options, spec.name) for value in set(first_wrong)
        }
        positions = v.index.to_numpy()[rows]
        self.errors.add(
            positions,
            self._column,
            self._spec,
            "option",
            first_wrong,
            [messages[w] for w in first_wrong],
        )
        bad = np.zeros(len(v), dtype=bool)
        bad[rows] = True
        return normal.where(~bad)

    def _text(self, v: pd.Series, spec: FieldSpec) -> pd.Series:
        self._zeros_dropped(v, spec)
        if spec.max_length:
            length = v.str.len()
            bad = (length > spec.max_length).fillna(False).astype(bool)
            limit = spec.max_length
            self._bad(
                v,
                bad,
                "length",
                lambda value: (
                    f"{value[:30]!r} is {len(value)} characters long; {spec.name} allows {limit}"
                ),
            )
            v = v.where(~bad)
        if spec.is_email:
            bad = ~fullmatch(v, _EMAIL_RE) & v.notna().to_numpy()
            self._bad(v, bad, "email", "{v} is not a plausible email address")
            v = v.where(~bad)
        elif spec.is_url:
            bad = ~fullmatch(v, _URL_RE) & v.notna().to_numpy()
            self._bad(v, bad, "url", "{v} is not a plausible web address")
            v = v.where(~bad)
        return v

    def _zeros_dropped(self, v: pd.Series, spec: FieldSpec) -> None:
        """A workbook's number cells going to a text field, said as a note: a spreadsheet
        that took `01067` for a number kept 1067. A record the import finds keeps Insightly's
        value where only the zeros differ (an artefact), but a new one is made with the
        digits as they are. (A text file's digits cannot be told apart so: 2000 is Sydney's
        postcode, and 1067 may be Dresden's 01067.)"""
        if self._cells is None:
            return
        numbers = fullmatch(v, r"\d+") & (self._cells == Cell.NUMBER).to_numpy()
        if numbers.any():
            first = int(np.flatnonzero(numbers)[0])
            row = int(self.errors.lines[v.index[first]])
            self.notes.append(
                f"column {self._column!r} ({spec.name}): {int(numbers.sum()):,} cell(s) are "
                f"numbers in the workbook ({v.iloc[first]!r}, row {row}), sent as their digits: "
                "a leading zero the spreadsheet dropped is not among them (format the column "
                "as Text and type them again)"
            )

    def _lookup(self, v: pd.Series, rule: ColumnRule) -> pd.Series:
        assert rule.lookup is not None
        lookup = rule.lookup
        index = self.lookups.get((lookup.object, lookup.by), {})
        found = [index.get(key) for key in v.tolist()]  # one dict look-up per cell
        count = np.array([len(ids) if ids else 0 for ids in found])

        def unknown(value: str) -> str:
            close = suggest(value, list(index)) if len(index) < 50_000 else None
            return f"no {lookup.object} record with {lookup.by} {value!r}" + (
                f"; did you mean {close!r}?" if close else ""
            )

        def ambiguous(value: str) -> str:
            ids = index[value]
            return f"{value!r} matches {len(ids)} {lookup.object} records (ids {', '.join(map(str, ids[:5]))}); make it unique"

        if lookup.missing == "reject":
            self._bad(v, count == 0, "lookup", unknown)
        elif isinstance(lookup.missing, int) and lookup.missing not in {
            i for ids in index.values() for i in ids
        }:
            self._bad(
                v,
                count == 0,
                "lookup",
                lambda value: (
                    f"{unknown(value)}; and the fallback {lookup.missing} is no "
                    f"{lookup.object} record either"
                ),
            )
        self._bad(v, count > 1, "lookup", ambiguous)
        fallback = lookup.missing if isinstance(lookup.missing, int) else None
        ids = [f[0] if f and len(f) == 1 else (fallback if not f else None) for f in found]
        return pd.Series(ids, index=v.index, dtype="Int64")


def validate_table(
    table: SourceTable,
    mapping: Mapping,
    facts: AccountFacts,
    *,
    first_is_day: bool | _Absent | None = ABSENT,
) -> ValidationResult:
    """`first_is_day`: how slash dates read, as decided on the file's first block (ABSENT:
    from the mapping, else from this table)."""
    obj = get_object(mapping.object)
    mapping = export_key(mapping, table.columns)
    if mapping.identity and obj.id_field and "DATE_UPDATED_UTC" in table.columns:
        candidates = _exports_of(table.columns)
        other = candidates[0] if candidates else None
        # a contacts export holds ORGANISATION_ID too: imported as organisations, each row
        # would match the organisation it names and write the contact's fields over it
        if other is not None and _export_name(obj) not in candidates:
            raise InputError(
                f"{table.path}: this is an export of {other} (its first column is "
                f"{table.columns[0]}), not of {obj.name}",
                hint=f"Import it with --object {other}."
                if other != _CUSTOM
                else "Import it with --object and the custom object's API name (Site__c).",
            )
        if obj.id_field not in table.columns:
            raise InputError(
                f"{table.path}: this looks like an export of {obj.name} (it has "
                f"DATE_UPDATED_UTC) but has no {obj.id_field} column, so every row would "
                "create a new record",
                hint=f"Restore the {obj.id_field} column as exported, or give a mapping with a "
                "match: key.",
            )
    specs = field_specs(obj, facts.definitions)
    rules, notes = effective_rules(table, mapping, specs, obj)
    notes = [*table.notes, *notes]
    if table.garbled is not None:  # only the columns sent: another may hold what it likes
        used = {rule.column for rule in rules}
        cells = [c for c in table.garbled.cells if c[1] in used]
        if cells and not table.garbled.file_reads_right:
            raise garbled_error(table, *cells[0])
        if cells:
            notes.append(garbled_note(table, cells))
    check_mapping(table, mapping, specs, rules)
    errors = _Errors(np.asarray(table.lines, dtype=np.int64))
    if isinstance(first_is_day, _Absent):
        first_is_day = day_first_of(mapping.date_order, table.frame)
    exported = bool(mapping.identity) and "DATE_UPDATED_UTC" in table.columns
    validator = _ColumnValidator(errors, facts.lookups, first_is_day, exported=exported)
    frame = table.frame.reset_index(drop=True)
    values: dict[str, pd.Series] = {}
    cleared: dict[str, np.ndarray] = {}
    defaulted: dict[str, np.ndarray] = {}
    scoped: dict[str, ColumnRule] = {}  # stage and reason names: looked up after their scope
    for rule in rules:
        spec = specs[rule.field]
        require = spec.required and not mapping.match and rule.field not in mapping.defaults
        if rule.lookup is not None and (rule.field, rule.lookup.by) in _SCOPED:
            scoped[rule.field] = rule
            rule, spec = replace(rule, lookup=None), replace(spec, kind=TEXT, max_length=None)
        values[rule.field], clear = validator.run(
            frame[rule.column], rule, spec, require=require, cells=table.cells.get(rule.column)
        )
        if clear is not None:
            cleared[rule.field] = clear
    for name, value in _validate_defaults(mapping, specs).items():
        dtype = (
            "Int64" if specs[name].kind == INTEGER else _DTYPES.get(specs[name].kind, TEXT_DTYPE)
        )
        column = values.get(name, pd.Series(pd.NA, index=frame.index, dtype=dtype))
        defaulted[name] = column.isna().to_numpy()  # on update these only fill an empty field
        values[name] = column.fillna(value)
        cleared.pop(name, None)  # a default fills blanks: nothing is cleared then
    columns = {r.field: r.column for r in rules}
    _StepValues(errors, facts, obj, columns).check(values, scoped)
    links = {}
    for link in mapping.links:
        link_spec = FieldSpec(name=link.step, label=link.column, kind=INTEGER, api_type="integer")
        rule = ColumnRule(column=link.column, field=link.step, lookup=link.lookup)
        links[link.column], _ = validator.run(frame[link.column], rule, link_spec, require=False)
    update_only: dict[str, np.ndarray] = {}
    if mapping.match is not None:
        rejected = np.zeros(len(frame), dtype=bool)
        bad = errors.frame()
        if len(bad):
            rejected[bad["row"].to_numpy()] = True
        for spec in specs.values():
            if spec.required and spec.writable:
                lacking = (
                    values[spec.name].isna().to_numpy()
                    if spec.name in values
                    else np.ones(len(frame), dtype=bool)
                )
                update_only[spec.name] = lacking & ~rejected
    parent_ids = None
    if mapping.parent is not None:
        parent_spec = FieldSpec(name="PARENT", label="Parent", kind=INTEGER, api_type="integer")
        parent_ids, _ = validator.run(
            frame[mapping.parent.column], mapping.parent, parent_spec, require=not mapping.match
        )
    notes += validator.notes
    result_values = (
        pd.DataFrame(values, index=frame.index) if values else pd.DataFrame(index=frame.index)
    )
    return ValidationResult(
        table,
        mapping,
        specs,
        rules,
        result_values,
        errors.frame(),
        cleared,
        defaulted,
        update_only,
        notes,
        parent_ids,
        links,
        first_is_day,
    )


def validate_blocks(
    tables: Iterable[SourceTable], mapping: Mapping, facts_of: Callable[[], AccountFacts]
) -> Iterator[ValidationResult]:
    """validate_table of a file read in blocks (readers.iter_table), each block as it comes:
    slash dates read as the file's first rows show them, as when it is read whole. `facts_of`
    is asked once the first block is read: a file that cannot be read costs no request."""
    tables = iter(tables)
    head = list(_until(tables, DAY_FIRST_SAMPLE))
    sample = pd.concat([t.frame.iloc[:DAY_FIRST_SAMPLE] for t in head], ignore_index=True)
    first_is_day = day_first_of(mapping.date_order, sample)
    del sample
    facts: AccountFacts | None = None
    for table in itertools.chain(_drain(head), tables):
        facts = facts or facts_of()
        yield validate_table(table, mapping, facts, first_is_day=first_is_day)


def _until(tables: Iterator[SourceTable], rows: int) -> Iterator[SourceTable]:
    """The first tables, up to the one that makes `rows` rows (or the last)."""
    seen = 0
    for table in tables:
        yield table
        seen += len(table.frame)
        if seen >= rows:
            return


def _drain(tables: list[SourceTable]) -> Iterator[SourceTable]:
    """The tables, each let go of once it is taken."""
    while tables:
        yield tables.pop(0)


def concat_results(
    parts: list[ValidationResult], table: SourceTable, values: spill.SpilledValues | None = None
) -> ValidationResult:
    """The results of a file's blocks, in order, as one result of `table` (the whole file):
    rows numbered from the first block's first. `values`: the blocks' values, spilled (the
    parts then keep none of theirs, only their rows)."""
    first = parts[0]
    sizes = [p.rows for p in parts]
    offsets = np.cumsum([0, *sizes[:-1]])

    def masks(of: Callable[[ValidationResult], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        names = list(dict.fromkeys(name for p in parts for name in of(p)))
        return {
            name: np.concatenate(
                [
                    of(p).get(name, np.zeros(size, dtype=bool))
                    for p, size in zip(parts, sizes, strict=True)
                ]
            )
            for name in names
        }

    def series(pieces: list[pd.Series]) -> pd.Series:
        return pd.concat(pieces, ignore_index=True)

    errors = [
        p.errors.assign(row=p.errors["row"].astype("int64") + int(offset))
        for p, offset in zip(parts, offsets, strict=True)
        if len(p.errors)
    ]
    links = list(dict.fromkeys(name for p in parts for name in p.links))
    return replace(
        first,
        table=table,
        values=(
            pd.concat([p.values for p in parts], ignore_index=True) if values is None else values
        ),
        errors=pd.concat(errors, ignore_index=True) if errors else first.errors,
        cleared=masks(lambda p: p.cleared),
        defaulted=masks(lambda p: p.defaulted),
        update_only=masks(lambda p: p.update_only),
        notes=list(dict.fromkeys(n for p in parts for n in p.notes)),
        parent_ids=(
            None if first.parent_ids is None else series([_given(p.parent_ids) for p in parts])
        ),
        links={name: series([p.links[name] for p in parts]) for name in links},
    )


def _given(ids: pd.Series | None) -> pd.Series:
    """A block's parents: every block of a file with a parent column has them."""
    if ids is None:
        raise RuntimeError("a block of the file has no parent ids where the first has")
    return ids


# lookups resolved within the row's pipeline or state: a stage name repeats across pipelines
# ("Qualified"), a reason across states ("Other")
_SCOPED = {("STAGE_ID", "STAGE_NAME"), ("STATE_REASON_ID", "STATE_REASON")}


_CUSTOM = "a custom object"


def _export_name(obj: ObjectType) -> str:
    """What _exports_of says of an export of `obj`."""
    return _CUSTOM if obj.custom else obj.name


def _exports_of(columns: list[str]) -> list[str]:
    """The objects whose export a file may be, by its first column (an export's record id;
    CATEGORY_ID is each kind of category's)."""
    first = columns[0] if columns else ""
    if first == custom_object("Any__c").id_field:  # RECORD_ID: which one, the file cannot say
        return [_CUSTOM]
    return [o.name for o in OBJECTS.values() if o.id_field and o.id_field == first]


class _StepValues:
    """The values pipeline, stage and state steps send (steps.py), checked against the
    account before any write: the pipeline is for this object type, the stage is in the row's
    pipeline (a stage alone names its pipeline), the state is one Insightly knows, the reason
    is a reason for that state. Stage and reason names are looked up within their pipeline or
    state."""

    def __init__(
        self, errors: _Errors, facts: AccountFacts, obj: ObjectType, columns: dict[str, str]
    ) -> None:
        self.errors, self.obj, self.columns = errors, obj, columns
        self.refs = facts.references

    def check(self, values: dict[str, pd.Series], scoped: dict[str, ColumnRule]) -> None:
        if "PIPELINE_ID" in values or "STAGE_ID" in values:
            self._pipelines(values, scoped.get("STAGE_ID"))
        if "OPPORTUNITY_STATE" in values or "STATE_REASON_ID" in values:
            self._states(values, scoped.get("STATE_REASON_ID"))

    def _bad(self, row: int, name: str, value: Any, message: str) -> None:
        column = self.columns.get(name, name)
        kind = {"PIPELINE_ID": "pipeline", "STAGE_ID": "stage", "STATE_REASON_ID": "reason"}
        self.errors.add(np.array([row]), column, name, kind.get(name, "state"), [value], [message])

    def _pipelines(self, values: dict[str, pd.Series], by_name: ColumnRule | None) -> None:
        if "pipelines" not in self.refs:  # a test's facts: nothing to check against
            return
        flag = self.obj.pipeline_flag or ""
        pipelines = {
            pid: p
            for p in self.refs["pipelines"]
            if (pid := record_id(p, "PIPELINE_ID")) is not None
        }
        stages = {
            sid: s
            for s in self.refs["pipeline_stages"]
            if (sid := record_id(s, "STAGE_ID")) is not None
            and record_id(s, "PIPELINE_ID") is not None
        }
        name_of = {pid: str(p.get("PIPELINE_NAME")) for pid, p in pipelines.items()}
        given = values.get("PIPELINE_ID")
        raw = values.get("STAGE_ID")
        n = len(next(iter(values.values())))
        pipeline_ids: list[Any] = [pd.NA] * n
        stage_ids: list[Any] = [pd.NA] * n
        for row in range(n):
            pid = given.iat[row] if given is not None else pd.NA
            if pid is not pd.NA:
                pid = int(pid)
                if pid not in pipelines or not pipelines[pid].get(flag):
                    self._bad(
                        row,
                        "PIPELINE_ID",
                        pid,
                        f"pipeline {pid} is not a pipeline of {self.obj.name}",
                    )
                    continue
            cell = raw.iat[row] if raw is not None else pd.NA
            if cell is not pd.NA:
                sid = self._stage(row, cell, pid, stages, name_of, by_name)
                if sid is None:
                    continue
                stage_ids[row] = sid
                if pid is pd.NA:  # a stage alone: its own pipeline
                    pid = int(stages[sid]["PIPELINE_ID"])
                    if not pipelines.get(pid, {}).get(flag):
                        self._bad(
                            row,
                            "STAGE_ID",
                            cell,
                            f"stage {sid} is in a pipeline that is not for {self.obj.name}",
                        )
                        continue
            pipeline_ids[row] = pid
        values["PIPELINE_ID"] = pd.Series(pipeline_ids, dtype="Int64")
        if raw is not None:
            values["STAGE_ID"] = pd.Series(stage_ids, dtype="Int64")

    def _stage(
        self,
        row: int,
        cell: Any,
        pid: Any,
        stages: dict[int, dict[str, Any]],
        name_of: dict[int, str],
        by_name: ColumnRule | None,
    ) -> int | None:
        where = f" in pipeline {name_of.get(pid, pid)!r}" if pid is not pd.NA else ""
        if by_name is None:
            sid = int(cell)
            stage = stages.get(sid)
            if stage is None:
                self._bad(row, "STAGE_ID", sid, f"no pipeline stage has id {sid}")
                return None
            if pid is not pd.NA and int(stage["PIPELINE_ID"]) != pid:
                other = name_of.get(int(stage["PIPELINE_ID"]), stage["PIPELINE_ID"])
                self._bad(row, "STAGE_ID", sid, f"stage {sid} is in pipeline {other!r}, not{where}")
                return None
            return sid
        text = str(cell).strip()
        candidates = [
            sid
            for sid, s in stages.items()
            if str(s.get("STAGE_NAME") or "").strip() == text
            and (pid is pd.NA or int(s["PIPELINE_ID"]) == pid)
        ]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            names = [
                str(s.get("STAGE_NAME"))
                for s in sorted(stages.values(), key=lambda s: s.get("STAGE_ORDER") or 0)
                if pid is pd.NA or int(s["PIPELINE_ID"]) == pid
            ]
            close = suggest(text, names)
            self._bad(
                row,
                "STAGE_ID",
                text,
                f"no stage {text!r}{where}"
                + (f"; did you mean {close!r}?" if close else f" (stages: {', '.join(names)})"),
            )
            return None
        owners = ", ".join(
            repr(name_of.get(int(stages[c]["PIPELINE_ID"]), "?")) for c in candidates
        )
        self._bad(
            row,
            "STAGE_ID",
            text,
            f"{text!r} is a stage of several pipelines ({owners}); map PIPELINE_ID to say which",
        )
        return None

    def _states(self, values: dict[str, pd.Series], by_name: ColumnRule | None) -> None:
        canon = {s.lower(): s for s in self.obj.states}
        given = values.get("OPPORTUNITY_STATE")
        raw = values.get("STATE_REASON_ID")
        reasons = {
            rid: r
            for r in self.refs.get("opportunity_state_reasons", [])
            if (rid := record_id(r, "STATE_REASON_ID")) is not None
        }
        n = len(next(iter(values.values())))
        states: list[Any] = [pd.NA] * n
        reason_ids: list[Any] = [pd.NA] * n
        for row in range(n):
            state = given.iat[row] if given is not None else pd.NA
            if state is not pd.NA:
                state = canon.get(str(state).strip().lower())
                if state is None:
                    text = str(given.iat[row])  # type: ignore[union-attr]
                    close = suggest(text, list(self.obj.states))
                    self._bad(
                        row,
                        "OPPORTUNITY_STATE",
                        text,
                        f"{text!r} is not an opportunity state"
                        + (
                            f"; did you mean {close!r}?"
                            if close
                            else f" ({', '.join(self.obj.states)})"
                        ),
                    )
                    continue
                states[row] = state
            cell = raw.iat[row] if raw is not None else pd.NA
            if cell is pd.NA:
                continue
            if state is pd.NA:
                self._bad(
                    row, "STATE_REASON_ID", cell, "a state reason needs the row's OPPORTUNITY_STATE"
                )
                continue
            reason = self._reason(row, cell, state, reasons, by_name)
            if reason is not None:
                reason_ids[row] = reason
        if given is not None:
            values["OPPORTUNITY_STATE"] = pd.Series(states, dtype=TEXT_DTYPE)
        if raw is not None:
            values["STATE_REASON_ID"] = pd.Series(reason_ids, dtype="Int64")

    def _reason(
        self,
        row: int,
        cell: Any,
        state: str,
        reasons: dict[int, dict[str, Any]],
        by_name: ColumnRule | None,
    ) -> int | None:
        def for_state(r: dict[str, Any]) -> bool:
            return str(r.get("FOR_OPPORTUNITY_STATE") or "").lower() == state.lower()

        if by_name is None:
            rid = int(cell)
            if rid not in reasons:
                self._bad(row, "STATE_REASON_ID", rid, f"no opportunity state reason has id {rid}")
                return None
            if not for_state(reasons[rid]):
                self._bad(
                    row,
                    "STATE_REASON_ID",
                    rid,
                    f"reason {rid} is a reason for {reasons[rid].get('FOR_OPPORTUNITY_STATE')}, "
                    f"not {state}",
                )
                return None
            return rid
        text = str(cell).strip()
        mine = {i: r for i, r in reasons.items() if for_state(r)}
        hits = [i for i, r in mine.items() if str(r.get("STATE_REASON") or "").strip() == text]
        if len(hits) == 1:
            return hits[0]
        names = [str(r.get("STATE_REASON")) for r in mine.values()]
        close = suggest(text, names)
        self._bad(
            row,
            "STATE_REASON_ID",
            text,
            (
                f"{text!r} names {len(hits)} reasons for {state}; make it unique"
                if hits
                else f"no reason {text!r} for {state}"
                + (
                    f"; did you mean {close!r}?"
                    if close
                    else f" (reasons: {', '.join(names) or 'none'})"
                )
            ),
        )
        return None


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
        parsed, _ = _ColumnValidator(probe, {}).run(
            pd.Series([text], dtype=TEXT_DTYPE), rule, spec, require=False
        )
        bad = probe.frame()
        if len(bad):
            raise InputError(f"{mapping.source}: defaults.{name}: {bad['message'].iloc[0]}")
        out[name] = parsed.iloc[0]
    return out
