"""Planning an import: which rows create, which update (and which fields), which change nothing.

Existing records are found by the mapping's `match` key with the cheapest strategy for this
file: one listing of the object (500 records a request) or one `/Search` per row — the first
listing page tells the total, and the listing goes on only if it costs fewer requests.
A row whose key is already used by an earlier row is a duplicate and is not sent twice.

An update sends only the standard fields that differ, and — when any custom field differs —
the record's complete list of editable custom fields (current values merged with the changes):
whether a partial list clears the others is not documented, and older API versions erased
every sub-element a PUT left out (docs/api.md §3, §5).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.api.client import PAGE_SIZE, InsightlyClient
from insightly_etl.api.registry import ObjectType, custom_values, get_object, record_id
from insightly_etl.api.tasks import gather_all
from insightly_etl.errors import ForbiddenError, NotFoundError
from insightly_etl.files import CELL_CHARACTERS, cell_length
from insightly_etl.load.fields import (
    BOOLEAN,
    DATE,
    DATETIME,
    INTEGER,
    MULTISELECT,
    NUMBER,
    TAGS,
    TEXT,
    FieldSpec,
)
from insightly_etl.load.identity import (
    compared,
    duplicate_action,
    identity_field,
    identity_text,
    key_folds,
    key_text,
    match_text,
    row_keys,
    shared_in_file,
    written_values,
)
from insightly_etl.load.mapping import matched_by_id
from insightly_etl.load.readers import Cell
from insightly_etl.load.spreadsheet import (
    KEPT_DIGITS,
    LOST,
    SCIENTIFIC,
    Cut,
    artefact,
    cut_to_a_cell,
    long_number_shown,
    lost_and_edited,
    read_instant,
    single_byte,
    year_as_day,
    zeros_lost_in_typing,
)
from insightly_etl.load.states import (
    WRITES,
    Action,
    LastWrite,
    OnConflict,
    OnDuplicate,
    OnDuplicateEmail,
    OnMatch,
)
from insightly_etl.load.validate import ABSENT, ValidationResult, keyless_text
from insightly_etl.moments import iso_instant
from insightly_etl.progress import NullProgress, Progress

Record = dict[str, Any]


class _Empty(dict[str, Any]):
    """An empty dict that stays empty: the default of PlannedRow's dicts, one for all rows.
    A million planned rows with five fresh empty dicts each held 320 MB; a row that needs
    one is given a dict of its own, and changing this shared one in place is refused."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("PlannedRow's default dict is shared: assign a new dict instead")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _refuse
    __ior__ = _refuse


_EMPTY: dict[str, Any] = _Empty()


def _empty() -> dict[str, Any]:
    return _EMPTY


@dataclass(slots=True)
class PlannedRow:
    row: int
    line: int
    action: Action  # create | update | unchanged
    payload: dict[str, Any] = field(default_factory=_empty)
    record_id: int | None = None
    etag: str | None = None
    before: dict[str, Any] = field(default_factory=_empty)  # current values of the fields changed
    after: dict[str, Any] = field(default_factory=_empty)  # the values they will have
    key: tuple[str, ...] | None = None
    parent_id: int | None = None  # notes
    sent_at: str | None = None  # UTC, when the last write for this row left
    settled: bool = False  # its outcome is journaled (done, or a conflict found before sending)
    # fields left as they are: the file differs only as a spreadsheet re-saves (old, new, why)
    artefacts: dict[str, tuple[Any, Any, str]] = field(default_factory=_empty)
    # fields changed both in the file and in Insightly since the export: (base, current, new)
    conflicts: dict[str, tuple[Any, Any, Any]] = field(default_factory=_empty)
    # payload and after are here; a planned create has them built only when needed
    # (Planner.fill), so a million planned rows hold no million request bodies
    built: bool = True


class PlannedRows:
    """The plan's rows in the file's order. A row planning built (an update, an unchanged
    row: its body, images, conflicts) is kept as it is; a planned create only as its row
    number, and made again (`make`) each time the rows are read: a million planned creates
    held 150 MB as objects, 8 bytes each as numbers. A create made so is a new object each
    time: what sending sets on it (sent_at, its body) is not kept in the plan."""

    def __init__(self, make: Callable[[int], PlannedRow] | None = None) -> None:
        self._make = make
        self._built: list[PlannedRow] = []
        self._creates = array("q")  # rows, ascending

    def append(self, p: PlannedRow) -> None:
        """A row as planning built it (in the file's order): not a create (add_create)."""
        assert p.action != Action.CREATE, "a planned create is kept as its row: add_create"
        self._built.append(p)

    def add_create(self, row: int) -> None:
        """A planned create, made by `make` when read (rows in the file's order)."""
        assert self._make is not None, "creates kept as numbers need a way to make them"
        self._creates.append(row)

    def __len__(self) -> int:
        return len(self._built) + len(self._creates)

    def __iter__(self) -> Iterator[PlannedRow]:
        if not self._creates:
            return iter(self._built)
        assert self._make is not None
        made = map(self._make, self._creates)
        return heapq.merge(self._built, made, key=lambda p: p.row)

    def built(self) -> list[PlannedRow]:
        """The rows kept as planning built them: all but the creates."""
        return self._built

    def creates(self) -> list[int]:
        """Every planned create's row, ascending."""
        return list(self._creates)

    def last(self) -> int:
        """The last planned row (-1: none)."""
        return max(
            self._built[-1].row if self._built else -1, self._creates[-1] if self._creates else -1
        )

    def count(self, action: Action) -> int:
        if action == Action.CREATE:
            return len(self._creates)
        return sum(1 for p in self._built if p.action == action)

    def drop(self, rows: set[int]) -> None:
        """These rows are not planned after all (decided otherwise since)."""
        self._built = [p for p in self._built if p.row not in rows]
        self._creates = array("q", (r for r in self._creates if r not in rows))


@dataclass
class Plan:
    rows: PlannedRows = field(default_factory=PlannedRows)
    duplicates: dict[int, str] = field(default_factory=dict)  # row -> message
    skipped: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)  # row -> message (e.g. ambiguous key)
    warnings: list[str] = field(default_factory=list)
    # row -> (field, value, what already has it): --on-duplicate-email warn (the row is sent)
    shared: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    # row -> the record Insightly's own duplicate rule would take it for (no match key): the
    # row is created all the same, unless --skip-duplicates
    like_existing: dict[int, int] = field(default_factory=dict)
    strategy: str = "none"  # listing | search | get | none
    requests: int = 0
    # an edited export's cells a person emptied, or set members taken out, that the mapping
    # does not send (blank: skip, merge: add): field -> how many
    not_sent: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, action: Action) -> int:
        return self.rows.count(action)

    def conflicts(self) -> dict[str, int]:
        """field -> rows where it changed both in the file and in Insightly since the export."""
        out: dict[str, int] = defaultdict(int)
        for p in self.rows.built():  # a create has none
            for name in p.conflicts:
                out[name] += 1
        return dict(sorted(out.items()))

    def artefacts(self) -> dict[str, dict[str, int]]:
        """field -> why -> how many cells were left as they are."""
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for p in self.rows.built():  # a create has none
            for name, (_, _, why) in p.artefacts.items():
                out[name][why] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    @property
    def writes(self) -> Iterator[PlannedRow]:
        """The rows that write, in the file's order, made as they are read."""
        return (p for p in self.rows if p.action in WRITES)

    def write_count(self) -> int:
        return self.count(Action.CREATE) + self.count(Action.UPDATE)


@dataclass(frozen=True)
class Overwritten:
    """A row --on-conflict overwrite sends whole though its copy is older than its record."""

    row: int
    record_id: int
    fields: tuple[str, ...]  # what it sends
    sure: bool  # the record changed after the copy (else the copy's time cannot be read)


def identifying_fields(result: ValidationResult) -> set[str]:
    """The fields that say who a row's record is, where a `?` a code page wrote for a letter
    makes a new record of an existing one (Planner._lost_characters): the object's duplicate
    rule's names, the match key, e-mail addresses."""
    obj = get_object(result.mapping.object)
    rule = obj.duplicate_rule
    keys = {f for _, f in result.mapping.match.pairs} if result.mapping.match else set()
    emails = {name for name, spec in result.specs.items() if spec.is_email}
    return {*(rule.all_of if rule else ()), *keys, *emails}


# ---------------------------------------------------------------- values


def current_value(record: Record, spec: FieldSpec) -> Any:
    if spec.custom:
        return custom_values(record).get(spec.name)
    if spec.kind == TAGS:
        # a tuple of names, never joined: a tag name may itself hold ";" ("Partner; EMEA");
        # what is no tag is left out here, and an update refused (tags_unknown)
        tags = record.get("TAGS") or ()
        return tuple(str(t["TAG_NAME"]) for t in tags if isinstance(t, dict) and t.get("TAG_NAME"))
    return record.get(spec.name)


def tags_unknown(
    record: Record, changes: dict[str, Any], specs: dict[str, FieldSpec]
) -> str | None:
    """Why the record's tags, which the row changes, are not known from Insightly's answer:
    an answer without TAGS (as a brief listing's) or with something that is no tag. A PUT
    with TAGS replaces the set, so the row's would remove the tags the answer left out."""
    if not any((spec := specs.get(name)) and spec.kind == TAGS for name in changes):
        return None
    if "TAGS" not in record:
        why = "holds no TAGS for the record"
    else:
        tags = record["TAGS"]
        if tags is None or (
            isinstance(tags, list)
            and all(
                isinstance(t, dict) and "TAG_NAME" in t and isinstance(t["TAG_NAME"], str | None)
                for t in tags
            )
        ):
            return None  # a tag without a name is no tag (the export leaves it out too)
        why = f"holds TAGS that are no list of tags ({str(tags)[:80]})"
    return (
        f"TAGS: Insightly's answer {why}: not sent, as a PUT with TAGS replaces the record's "
        "tags and would remove the ones not known; run again later, or add them in Insightly"
    )


def set_parts(value: Any) -> list[str]:
    """The members of a set value: a record's tags (a tuple) or a file's `a;b` text."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v not in (None, "")]
    return [p for p in str(value).split(";") if p]


def _members(value: Any) -> set[str]:
    """A set value's members as a file's text gives them: split at ";" and trimmed."""
    return {p.strip() for p in set_parts(value)} - {""}


def display(value: Any) -> Any:
    """A value as a results file shows it (a set as `a;b`, a whole amount as `1054`, not
    `1054.0`)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return ";".join(map(str, value)) if isinstance(value, list | tuple) else value


def same_value(spec: FieldSpec, new: Any, old: Any) -> bool:
    """Equal as Insightly sees it: numbers numerically, options and tags as sets, dates by
    their `yyyy-MM-dd HH:mm:ss` text; an empty string is no value."""
    if _is_empty(old):  # "", None and an empty set are all no value
        old = None
    if _is_empty(new):
        new = None
    if new is None or old is None:
        return new is old
    if spec.kind in (NUMBER, INTEGER):
        try:
            return math.isclose(float(new), float(old), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if spec.kind == BOOLEAN:
        return bool(new) == (old if isinstance(old, bool) else str(old).lower() == "true")
    if spec.kind in (MULTISELECT, TAGS):
        return _same_joined(new, old) or set(set_parts(new)) == set(set_parts(old))
    if spec.is_email:  # an address is the same whatever its letters' case
        return match_text(str(new), True) == match_text(str(old), True)
    if spec.kind == DATE:  # `2026-09-19`, `2026-09-19 00:00:00` or `2026-09-19T00:00:00`
        return str(new)[:10] == str(old)[:10]
    if spec.kind == DATETIME:  # the same moment, whatever its form (`T`, `Z`, offset)
        moments = _moment(new), _moment(old)
        if None not in moments:
            return moments[0] == moments[1]
        return _utc_text(new) == _utc_text(old)
    return str(new) == str(old)


def _moment(value: Any) -> datetime | None:
    """A date-time's UTC moment to the second (`2026-11-01T10:00:00.5+01:00` is
    `2026-11-01 09:00:00`); None: not such text."""
    moment = iso_instant(value)
    return None if moment is None else moment.replace(microsecond=0)


def wire_value(spec: FieldSpec, value: Any) -> Any:
    """A validated value in the form the API takes."""
    if value is None:
        return None
    if spec.kind == TAGS:
        return [{"TAG_NAME": t} for t in set_parts(value)]
    return value


def row_values(result: ValidationResult, row: int) -> dict[str, Any]:
    """The fields this row sets (None: clear); fields with no value in the file are left out."""
    return result.row(row)


def create_payload(
    obj: ObjectType, specs: dict[str, FieldSpec], values: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    custom = []
    for name, value in values.items():
        spec = specs[name]
        if value is None or spec.via:
            continue  # nothing to clear on a new record; steps (steps.py) set the rest
        if spec.custom:
            custom.append({"FIELD_NAME": name, "FIELD_VALUE": value})
        else:
            body[name] = wire_value(spec, value)
    if custom:
        body["CUSTOMFIELDS"] = custom
    return body


@dataclass(frozen=True)
class FieldPolicy:
    """How one row's value meets an existing record's (see mapping.UPDATE_MODES, MERGE_MODES)."""

    update: str = "overwrite"  # overwrite | fill | never
    merge: str = "add"  # add | replace (TAGS, MULTISELECT)


OVERWRITE = FieldPolicy()


def row_policies(result: ValidationResult, row: int) -> dict[str, FieldPolicy]:
    """Per field of this row: its column's policy; a value that came from `defaults:` only
    fills a field that is empty in Insightly."""
    policies = {r.field: FieldPolicy(r.update, r.merge) for r in result.rules}
    for name, mask in result.defaulted.items():
        if mask[row]:
            policies[name] = FieldPolicy("fill", policies.get(name, OVERWRITE).merge)
    return policies


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def _pieces(value: Any) -> set[str]:
    """A set's members as `;`-joined text shows them: a tag named `Partner; EMEA` is the
    pieces `Partner` and `EMEA` once an export has joined it."""
    return {piece.strip() for part in set_parts(value) for piece in part.split(";")} - {""}


def _same_joined(new: Any, old: Any) -> bool:
    """A set written back as an export wrote it: `Partner; EMEA;vip` for the tags
    `Partner; EMEA` and `vip` is those two tags, not three."""
    return (
        isinstance(old, list | tuple)
        and any(";" in str(t) for t in old)
        and isinstance(new, str)
        and _pieces(new) == _pieces(old)
    )


def _added(old: Any, new: Any) -> Any:
    """The old set with the new values after it, none twice, in the old one's form (a tuple
    of tag names, or multi-select `a;b` text)."""
    parts = set_parts(old)
    known = set(parts) | _pieces(old)  # `EMEA` of a tag `Partner; EMEA` is no new tag
    parts += [p for p in set_parts(new) if p not in known and p.strip() not in known]
    return tuple(parts) if isinstance(old, list | tuple) else ";".join(parts)


@dataclass
class Artefacts:
    """What a spreadsheet changed in one row without a person (see spreadsheet.py)."""

    encoding: str | None = None  # the file's, when a single-byte code page
    send: frozenset[str] = frozenset()  # fields whose column says `artefacts: send`
    found: dict[str, tuple[Any, Any, str]] = field(default_factory=dict)  # field -> old, new, why
    scientific: frozenset[str] = frozenset()  # number fields the row's cell wrote as 1.2E+11


def update_payload(
    obj: ObjectType,
    specs: dict[str, FieldSpec],
    values: dict[str, Any],
    record: Record,
    policies: dict[str, FieldPolicy] | None = None,
    artefacts: Artefacts | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(body, before-image, after-image) of the fields that change; an empty body means
    nothing changes. Nothing the policies do not allow is overwritten or removed. Given
    `artefacts`, a value that differs only as a spreadsheet program re-saves it is put there
    instead of in the body (spreadsheet.py)."""
    assert obj.id_field is not None
    body: dict[str, Any] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    custom_changes: dict[str, Any] = {}
    for name, value in values.items():
        spec = specs[name]
        if spec.via:
            continue  # a pipeline, stage or state: a step of its own (steps.py)
        policy = (policies or {}).get(name, OVERWRITE)
        old = current_value(record, spec)
        if _same_joined(value, old):
            continue  # the record's own tags as an export joins them (a name may hold ";")
        if policy.update == "never" or (policy.update == "fill" and not _is_empty(old)):
            continue
        if spec.kind in (MULTISELECT, TAGS) and policy.merge == "add" and value is not None:
            value = _added(old, value)
        if same_value(spec, value, old):
            continue
        if artefacts is not None and name not in artefacts.send:
            why = artefact(
                spec, value, old, artefacts.encoding, scientific=name in artefacts.scientific
            )
            if why is not None:
                artefacts.found[name] = (old, value, why)
                continue
        before[name] = old
        after[name] = value
        if spec.custom:
            custom_changes[name] = value
        else:
            body[name] = wire_value(spec, value)
    if custom_changes:
        current = custom_values(record)
        body["CUSTOMFIELDS"] = [
            {"FIELD_NAME": s.name, "FIELD_VALUE": custom_changes.get(s.name, current.get(s.name))}
            for s in specs.values()
            if s.custom and s.writable
        ]
    if body:
        body[obj.id_field] = record[obj.id_field]
    return body, before, after


def _utc_text(value: Any) -> str:
    """`2026-11-01 10:00:00` from the API's text, an export's, or a spreadsheet's ISO form."""
    if value is None or value is pd.NA:
        return ""
    return str(value).strip().replace("T", " ").removesuffix("Z")[:19]


def _unreadable(rid: object, exc: ForbiddenError) -> str:
    return (
        f"record {rid} cannot be read by the API user (HTTP 403: {exc.message}); "
        "not written. An account administrator can share it, or run with their key"
    )


def _not_the_api(rid: object, exc: NotFoundError) -> str:
    return f"record {rid} could not be read: HTTP {exc.status} {exc.message}; run again"


def _has_case(key: tuple[str, ...] | None) -> bool:
    """Whether a key has letters a search might compare by case."""
    return key is not None and any(part != part.upper() or part != part.lower() for part in key)


def record_key(
    record: Record, fields: list[str], folds: list[bool] | None = None
) -> tuple[str, ...] | None:
    parts = []
    for i, name in enumerate(fields):
        value = custom_values(record).get(name) if name.endswith("__c") else record.get(name)
        text = key_text(value)
        if text is None:
            return None
        text = match_text(text, bool(folds and folds[i]))
        if not text:
            return None
        parts.append(text)
    return tuple(parts)


# ---------------------------------------------------------------- planning


PERSON_NAME = ("FIRST_NAME", "LAST_NAME")  # the fields of a contact's or lead's name
# the fields that say who a record is, by group: a row of an edited file is an edit of an
# earlier row only when one group agrees in full (checkpoint/pairing.py); a person's own, so
# one edited in a row that stays the same person is corrected, not another person's
WHO = (PERSON_NAME, ("EMAIL_ADDRESS",), ("EMAIL",), ("PHONE",), ("PHONE_MOBILE",))
_PERSONS = frozenset(f for group in WHO for f in group)
# a key that reads as another system's record id: letters and digits, mixed case, no spaces
_CASED_ID = re.compile(r"(?=[^ ]*\d)(?=[^ ]*[a-z])(?=[^ ]*[A-Z])[A-Za-z0-9_-]{6,}")


# why ids alike only ignoring case are never one record, and the way out: said alike by the
# plan, each row's failure, and validate
OTHER_LETTERS = "ids written in other letters are other records in many systems (Salesforce)"
CASE_WAY_OUT = "add compare: exact to the match key, or compare: casefold if they are the same"


def ids_apart(spec: FieldSpec | None, values: list[str]) -> bool:
    """Key values of a field that differ (in case alone, where they matched) and read as
    another system's ids: other records, not one."""
    return (
        len(set(values)) > 1 and any(_CASED_ID.fullmatch(v) for v in values) and not _is_email(spec)
    )


def _is_email(spec: FieldSpec | None) -> bool:
    return spec is not None and spec.is_email


_CELL_KINDS = frozenset(c.value for c in Cell)


def _year_as_day(name: str, spec: FieldSpec | None, value: Any) -> str | None:
    """A year typed into a cell formatted as a date, which the spreadsheet kept as that day
    number: `1990` as 1905-06-12."""
    if spec is None or spec.kind not in (DATE, DATETIME) or value is None:
        return None
    year = year_as_day(value)
    if year is None:
        return None
    return (
        f"{name}: {str(value)[:10]} is the day a spreadsheet makes of the number {year} typed "
        "into a cell formatted as a date; type the whole date (or fix the cell's format)"
    )


def _renamed(p: PlannedRow, owner: Record | None) -> str | None:
    """`'Ada Lovelace' -> 'Alan Turing'`: an update that gives a person the name of `owner`
    (the record whose e-mail it takes too), else None: a person may well marry and take an
    old address, but not become the very person who holds it."""
    if owner is None or not any(n in p.after for n in PERSON_NAME):
        return None
    if any(
        str(p.after.get(n) or "").casefold() != str(owner.get(n) or "").casefold()
        for n in PERSON_NAME
        if n in p.after
    ):
        return None
    was = " ".join(str(p.before.get(n) or "") for n in PERSON_NAME if n in p.after).strip()
    now = " ".join(str(p.after.get(n) or "") for n in PERSON_NAME if n in p.after).strip()
    return f"{was!r} -> {now!r}" if was and now and was.casefold() != now.casefold() else None


# (row, record id) -> what this import's earlier runs last wrote to it (the checkpoint's)
LastWrites = Callable[[int, int], LastWrite]


def planning_columns(result: ValidationResult) -> list[str]:
    """The file's columns whose text planning reads besides the validated values (a file
    read in blocks keeps only these: source.py): an export's DATE_UPDATED_UTC, the match
    key's columns, and those of number fields (a cell in scientific notation). Planning that
    reads another column of `result.table.frame` must name it here, or it is missing for
    files of more than one block only."""
    wanted = {"DATE_UPDATED_UTC"}
    if result.mapping.match is not None:
        wanted |= {column for column, _ in result.mapping.match.pairs}
    for rule in result.rules:
        spec = result.specs.get(rule.field)
        if spec is not None and spec.kind in (NUMBER, INTEGER):
            wanted.add(rule.column)
    return [c for c in result.table.columns if c in wanted]


SHOWN_FROM = 5_000  # rows: planning more (or writing their plan) shows a bar, advanced by so many


class Planner:
    def __init__(
        self,
        client: InsightlyClient,
        result: ValidationResult,
        *,
        on_match: OnMatch,
        create_missing: bool,
        skip_duplicates: bool,
        on_duplicate: OnDuplicate = "error",
        on_conflict: OnConflict = "skip",
        on_duplicate_email: OnDuplicateEmail = "warn",
        base: dict[int, dict[str, Any]] | None = None,
        last_write: LastWrites | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.progress = progress or NullProgress()  # the rows planned
        self.base = base  # record id -> its fields as exported (load/base.py)
        # (row, record id) -> what this import's earlier runs wrote to it (the checkpoint)
        self.last_writes = last_write
        self._last_write: dict[tuple[int, int], LastWrite] = {}  # asked by the check and merge
        self._bases: dict[tuple[int, int], dict[str, Any] | None] = {}  # (row, id) -> its base
        # row -> field -> (base, current, new): changed both in the file and in Insightly
        self.field_conflicts: dict[int, dict[str, tuple[Any, Any, Any]]] = {}
        self.overwritten_whole: list[Overwritten] = []  # sent whole by --on-conflict overwrite
        self._identifying = identifying_fields(result)  # asked of every new record's row
        self.result = result
        self.obj = get_object(result.mapping.object)
        self.specs = result.specs
        self.on_match = on_match
        self.create_missing = create_missing
        self.skip_duplicates = skip_duplicates
        self.on_duplicate = on_duplicate
        self.on_conflict = on_conflict
        self.on_duplicate_email = on_duplicate_email  # identity.py
        self._listed: list[Record] | None = None  # every record, when planning listed them
        self._like_existing: set[int] = set()  # rows warned of by Insightly's duplicate rule
        frame = result.table.frame
        # the moment the file's copy of each record was taken, when it says (an export)
        self.file_updated = frame.get("DATE_UPDATED_UTC")
        self.day_first = result.first_is_day  # read once, by validation
        encoding = (result.table.encoding or "").lower().replace("-", "").replace("_", "")
        self.encoding = encoding if single_byte(encoding) else None
        self.send_artefacts = frozenset(r.field for r in result.rules if r.artefacts == "send")
        self._column_of = {r.field: r.column for r in result.rules}  # the file's, by field
        self.records: dict[int, Record] = {}  # what planning read, by id
        self._ignores_case: bool | None = None  # whether /Search ignores case (probed once)
        self._written_keys: list[tuple[str, ...] | None] | None = None
        self.etags: dict[int, str] = {}
        self._keys: list[tuple[str, ...] | None] = []  # of every row, by plan()
        self._lines: list[int] = []
        self._scientific_cells: dict[str, np.ndarray] | None = None

    def _scientific(self) -> dict[str, np.ndarray]:
        """Number fields -> which rows' cells the file wrote in scientific notation (a long
        number a spreadsheet showed shorter), found once."""
        if self._scientific_cells is None:
            frame = self.result.table.frame
            self._scientific_cells = {}
            for rule in self.result.rules:
                spec = self.specs.get(rule.field)
                if spec is not None and spec.kind in (NUMBER, INTEGER) and rule.column in frame:
                    cells = frame[rule.column].astype("string").str.strip()
                    found = cells.str.fullmatch(SCIENTIFIC.pattern).fillna(False)
                    if found.any():
                        self._scientific_cells[rule.field] = found.to_numpy(dtype=bool)
        return self._scientific_cells

    async def plan(
        self,
        rows: list[int],
        lines: list[int],
        *,
        all_valid_rows: list[int],
        known_ids: dict[int, int] | None = None,
    ) -> Plan:
        """`known_ids`: rows whose record an earlier run created or updated (row -> id); without
        a match key that id is how an edited row finds its record again."""
        meter = self.client.meter()
        mapping = self.result.mapping
        keys = row_keys(self.result)
        self._keys, self._lines = keys, lines  # a planned create is made from them when read
        plan = Plan(rows=PlannedRows(self._planned_create))
        self._settle_duplicates(rows, lines, keys, all_valid_rows, plan)
        todo = [r for r in rows if r not in plan.duplicates and r not in plan.skipped]
        matches: dict[int, list[Record]] = {}
        known = {r: rid for r, rid in (known_ids or {}).items() if r in todo}
        if mapping.match is not None:
            keyless = [lines[r] for r in todo if keys[r] is None]
            plan.warnings += keyless_text(self.result, len(keyless), keyless)
            matches = await self._find(todo, keys, plan)
            await self._confirm_several(matches)
            # a row whose key finds nothing, though an earlier run wrote its record (a key
            # filled in since, the mapping's key changed, a spreadsheet dropped its zeros)
            # (deleted in Insightly since, or unreadable: the row fails, as without a key)
            earlier = {r: rid for r, rid in known.items() if not matches.get(r)}
            if earlier:
                before = plan.strategy
                for r, found in (await self._by_ids(earlier, plan)).items():
                    if found and self._still_its_record(r, found[0]):
                        matches[r] = found
                plan.strategy = (
                    "get"
                    if before == "none"
                    else f"{before}, then a read of each record an earlier run wrote"
                )
            self._not_another_person(known, matches, plan)
        else:
            if known:
                matches = await self._by_ids(known, plan)
            fresh = [r for r in todo if r not in known]
            if fresh and self.obj.duplicate_rule and self.obj.id_field:
                await self._warn_like_insightly(fresh, plan)
        self._one_row_a_record(todo, lines, matches, plan)
        bar = len(todo) > SHOWN_FROM  # a bar for the plans that take a while (the importer
        if bar:  # ends it, however planning ends)
            self.progress.start(f"plan {self.obj.name}", total=len(todo), unit="row")
        for i, r in enumerate(todo, 1):
            if bar and i % SHOWN_FROM == 0:
                self.progress.advance(SHOWN_FROM)
            if r in plan.skipped or r in plan.failed:
                continue
            values = row_values(self.result, r)
            found = matches.get(r, [])
            parent = self._parent(r)
            if mapping.match is not None and keys[r] is not None and len(found) > 1:
                ids = ", ".join(str(x[self.obj.id_field or ""]) for x in found[:5])
                plan.failed[r] = (
                    f"{len(found)} existing records have this {self._key_label()} (ids {ids})"
                )
            elif found:
                record = found[0]
                rid = record_id(record, self.obj.id_field or "")
                if rid is None:
                    plan.failed[r] = "the matching record has no integer id in Insightly's answer"
                    continue
                if other := self._other_id(r, record):
                    plan.failed[r] = other
                    continue
                if self.on_match == "skip":
                    plan.skipped[r] = f"an existing record matches (id {rid}) and --on-match skip"
                elif self.on_match == "error":
                    plan.failed[r] = f"an existing record matches (id {rid}) and --on-match error"
                else:
                    kept = Artefacts(self.encoding, self.send_artefacts)
                    body, before_image, after_image = self.diff(r, record, kept)
                    if refused := self._lossy_change(r, record, after_image) or tags_unknown(
                        record, after_image, self.specs
                    ):
                        plan.failed[r] = refused
                        continue
                    if self.file_updated is not None:
                        self._count_not_sent(r, record, plan)
                    merged = self.base_of(r, rid) is not None  # field by field, not the row
                    whole = bool(body) and not merged
                    conflict = self.conflict(r, record, after_image) if whole else None
                    if conflict:
                        plan.failed[r] = conflict
                        continue
                    overwritten = whole and self.on_conflict == "overwrite"
                    if overwritten and self.copy_conflict(r, record, after_image):
                        copied, _ = read_instant(self.file_updated.iat[r], self.day_first)
                        self.overwritten_whole.append(
                            Overwritten(r, rid, tuple(sorted(after_image)), copied is not None)
                        )
                    action = Action.UPDATE if body else Action.UNCHANGED
                    plan.rows.append(
                        PlannedRow(
                            r,
                            lines[r],
                            action,
                            body,
                            rid,
                            self.etags.get(rid),
                            before_image,
                            after_image,
                            keys[r],
                            parent,
                            artefacts=kept.found,
                            conflicts=self.field_conflicts.get(r, _EMPTY),
                        )
                    )
            elif (given_id := self.written_key(r)) is not None and matched_by_id(
                self.result.mapping
            ):
                # a record id names one record: none is made in its place (an export's row of
                # a record deleted since, or an id of another account, made one each run)
                plan.failed[r] = (
                    f"no {self.obj.singular} has {self.obj.id_field} {', '.join(given_id)} (deleted "
                    "in Insightly, or another account's): not created; to create, empty the "
                    "cell, or leave the column out of the mapping (a copy into another account)"
                )
            elif mapping.match is not None and not self.create_missing:
                plan.skipped[r] = "no existing record matches and --no-create-missing"
            elif not self.obj.creatable and not self.obj.under_parent:
                plan.failed[r] = f"{self.obj.name} cannot be created through the API"
            elif lost := self._lost_characters(values) or self._typed_for_a_new_record(r, values):
                plan.failed[r] = lost
            else:
                payload = create_payload(self.obj, self.specs, values)
                missing = [
                    s.name for s in self.specs.values() if s.required and s.name not in payload
                ]
                if missing:
                    plan.failed[r] = (
                        f"no existing {self.obj.singular} matches, and a new one needs "
                        f"{', '.join(missing)}, which this row does not give"
                    )
                else:  # kept as its row; its body is built when it is sent (fill)
                    plan.rows.add_create(r)
        if bar:
            self.progress.advance(len(todo) % SHOWN_FROM)
            self.progress.finish()
        await self._check_identity(plan)
        self._warn_no_copy_time(plan)
        self._warn_overwritten_whole(plan)
        plan.requests = meter.requests
        # the values read a row at a time (Arrow scalars): mimalloc keeps their memory unless
        # asked (300k rows: 110 MB given back)
        pa.default_memory_pool().release_unused()
        return plan

    def _warn_overwritten_whole(self, plan: Plan) -> None:
        """Rows --on-conflict overwrite sends though Insightly changed their record after the
        file's copy, with no export's `_base` to tell the person's edits from the rest: every
        cell that differs is sent, a colleague's later edit reverted. Said before anything is
        sent (it was without a word)."""
        if not self.overwritten_whole:
            return
        first = self.overwritten_whole[0]
        line = self.result.table.lines[first.row]
        changed = (
            "changed"
            if all(o.sure for o in self.overwritten_whole)
            else "changed (or, where the copy's time cannot be read, may have changed)"
        )
        plan.warnings.append(
            f"{len(self.overwritten_whole):,} row(s) whose record {changed} in Insightly after "
            "the file's copy are overwritten whole (--on-conflict overwrite, and no export's "
            "_base to tell the cells edited in the file from the rest): every cell that differs "
            f"from Insightly is sent, a colleague's later edit reverted too "
            f"({self.result.table.unit} {line}: record {first.record_id}, "
            f"{', '.join(first.fields)}). To send only what the file changed, import from the "
            "export's folder or give --base FILE"
        )

    def _warn_no_copy_time(self, plan: Plan) -> None:
        """An export's file (its ids the key) without DATE_UPDATED_UTC and without the
        export's `_base` (moved, its columns trimmed): nothing says which cells the person
        edited, nor that Insightly changed since, so every cell that differs is sent, a
        colleague's later edit overwritten. Said before anything is sent."""
        mapping = self.result.mapping
        if (
            self.base is not None
            or self.file_updated is not None
            or not mapping.identity
            or not matched_by_id(mapping)
            or not plan.count(Action.UPDATE)
        ):
            return
        plan.warnings.append(
            f"{self.result.table.path.name} has {self.obj.id_field} but no DATE_UPDATED_UTC "
            "column and no export's _base beside it: every cell that differs from Insightly "
            "now is sent as an edit, a colleague's change since the export too. Keep the "
            "column, or import from the export's folder (or give --base FILE)"
        )

    def _planned_create(self, row: int) -> PlannedRow:
        """A planned create as planning decided it (PlannedRows keeps only its row)."""
        key = self._keys[row]
        return PlannedRow(
            row, self._lines[row], Action.CREATE, key=key, parent_id=self._parent(row), built=False
        )

    def fill(self, p: PlannedRow) -> PlannedRow:
        """A planned create's body and the values it sets, built from the file's row (as
        planning checked them) when it is sent or written to the plan file."""
        if not p.built:
            values = row_values(self.result, p.row)
            p.payload = create_payload(self.obj, self.specs, values)
            p.after = {k: v for k, v in values.items() if v is not None and not self.specs[k].via}
            p.built = True
        return p

    def release(self, p: PlannedRow) -> None:
        """A create that is done: its body goes at once, not when the batch it was sent in
        is let go (the plan keeps none: PlannedRows makes a create anew when read)."""
        if p.action == Action.CREATE and p.built:
            p.payload, p.after, p.built = _EMPTY, _EMPTY, False

    async def _check_identity(self, plan: Plan) -> None:
        """Rows that would give a record the e-mail (or organisation name) another record
        has, in the file or in the account (identity.py)."""
        name = identity_field(self.result)
        if name is None:
            return

        def watched(row: int) -> bool:
            # a row Insightly's own duplicate rule was said of (like_existing) is not said of
            # again, of the same record; skip and error act on it
            return row not in self._like_existing or self.on_duplicate_email != "warn"

        updates = {
            p.row: p
            for p in plan.rows.built()
            if p.action == Action.UPDATE and name in p.after and watched(p.row)
        }
        writers = sorted([*(r for r in plan.rows.creates() if watched(r)), *updates])
        if not writers:
            return
        lines = self.result.table.lines
        written = written_values(self.result, name, writers)
        texts = compared(written)  # as compared, NA: none
        owners = await self._owners(name, texts, written)
        found: dict[int, tuple[str, str]] = {}
        for r, (value, first) in shared_in_file(self.result, writers, written, texts).items():
            found[r] = (value, f"{self.result.table.unit} {lines[first]} of this file")
        moved: set[int] = set()
        held = texts.isin(list(owners)).to_numpy(dtype=bool, na_value=False)
        for r, text in zip(np.asarray(writers)[held].tolist(), texts[held], strict=True):
            p = updates.get(r)  # else a create: no record yet
            others = [i for i in owners[text] if p is None or i != p.record_id]
            if others:
                more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
                value = str(self.result.cell(r, name))
                found[r] = (value, f"{self.obj.singular} {others[0]}{more}")
                owner = self.records.get(others[0])
                if p is not None and (renamed := _renamed(p, owner)):
                    # another record's e-mail and another name: the row is another person's,
                    # its id moved (one column sorted on its own); never written over
                    moved.add(r)
                    plan.failed[r] = (
                        f"the row would give {self.obj.singular} {p.record_id} the {name} of "
                        f"{self.obj.singular} {others[0]} ({value!r}) and another name "
                        f"({renamed}): its {self.obj.id_field} looks moved from another row "
                        "(one column sorted on its own?); not written"
                    )
        if moved:
            plan.rows.drop(moved)
            found = {r: f for r, f in found.items() if r not in moved}
        if not found:
            return
        for r, (value, holder) in found.items():
            message = f"{name} {value!r} already belongs to {holder}"
            if self.on_duplicate_email == "warn":
                plan.shared[r] = (name, value, holder)
            elif self.on_duplicate_email == "skip":
                plan.skipped[r] = f"{message}; --on-duplicate-email skip"
            else:
                plan.failed[r] = f"{message}; --on-duplicate-email error"
        if self.on_duplicate_email != "warn":
            plan.rows.drop(set(found))
            return
        shown = sorted(found)[:3]
        plan.warnings.append(
            f"{len(found):,} row(s) give {name} a value another record has "
            f"(action '{duplicate_action(name)}' in NAME.plan.csv; sent all the same, as "
            "--on-duplicate-email warn): "
            + "; ".join(
                f"{self.result.table.unit} {lines[r]} {found[r][0]!r} like {found[r][1]}"
                for r in shown
            )
            + (" …" if len(found) > 3 else "")
        )

    async def _owners(
        self, name: str, texts: pd.Series, written: pd.Series
    ) -> dict[str, list[int]]:
        """value as compared -> ids of the account's records with it, for the values of
        `texts` (the file's, as compared; `written`: as the file writes them, what a search
        sends): by the listing planning made, else a search per value when that costs less
        and the search ignores case (so that it finds `Bjorn@ABBA.example` for
        `bjorn@abba.example`), else one listing. The account's values are gathered, then
        matched against the file's a column at once: a million rows' values were a million
        Python strings in a set (180 MB)."""
        distinct = texts.dropna().unique()
        held: dict[str, list[int]] = defaultdict(list)  # the account's value -> ids
        id_field = self.obj.id_field or ""

        def keep(records: list[Record]) -> None:
            for record in records:
                text = identity_text(record.get(name))
                rid = record_id(record, id_field)
                if text is not None and rid is not None and rid not in held[text]:
                    held[text].append(rid)

        def wanted() -> dict[str, list[int]]:  # in Arrow: no Python string a row of the file
            values = pa.array(list(held), pa.string())
            hits = pc.is_in(values, value_set=pa.array(distinct, pa.string()))
            return {t: held[t] for t in values.filter(hits).to_pylist()}

        if not len(distinct):
            return {}
        if self._listed is not None:
            keep(self._listed)
            return wanted()
        params = {"brief": "true"} if self.obj.brief else {}
        pages = self.client.iter_pages(self.obj.endpoint, params, key=self.obj.id_field)
        first = await anext(pages)
        keep(first.records)
        total = first.total or len(first.records)
        if len(distinct) < max(1, math.ceil(total / PAGE_SIZE)) - 1 and self.obj.searchable:
            for record in first.records:
                if (rid := record_id(record, id_field)) is not None:
                    self.records.setdefault(rid, record)
            if await self._search_ignores_case(name, {}):
                await pages.aclose()
                pairs = pd.DataFrame(
                    {"text": texts.to_numpy(), "written": written.str.strip().to_numpy()}
                )
                pairs = pairs.dropna().drop_duplicates("text", keep="last")
                as_written = dict(zip(pairs["text"], pairs["written"], strict=True))
                answers = await gather_all(
                    *(
                        self.client.get(
                            f"{self.obj.endpoint}/Search",
                            {"field_name": name, "field_value": as_written.get(v, v), "top": 50},
                        )
                        for v in sorted(distinct.tolist())
                    )
                )
                for answer in answers:
                    keep([x for x in answer.data or [] if isinstance(x, dict)])
                return wanted()
        async for page in pages:
            keep(page.records)
        return wanted()

    async def _confirm_several(self, matches: dict[int, list[Record]]) -> None:
        """A key that found several records is asked again, record by record: a listing read
        while a colleague deleted and re-created a record (a merge, a re-import) holds both,
        and only the one still there is the match. One GET each, only for such keys."""
        id_field = self.obj.id_field or ""
        several = {
            rid
            for found in matches.values()
            if len(found) > 1
            for record in found
            if (rid := record_id(record, id_field)) is not None
        }
        if not several:
            return

        gone: set[int] = set()  # 404 only: any other answer is no evidence it went

        async def ask(rid: int) -> None:
            try:
                await self.client.get(f"{self.obj.endpoint}/{rid}")
            except NotFoundError as exc:
                if exc.from_api:  # a gateway's page is no word on the record
                    gone.add(rid)

        await gather_all(*(ask(rid) for rid in sorted(several)))
        for r, found in matches.items():
            if len(found) > 1:
                matches[r] = [x for x in found if record_id(x, id_field) not in gone]

    def _settle_duplicates(
        self,
        rows: list[int],
        lines: list[int],
        keys: list[tuple[str, ...] | None],
        all_valid_rows: list[int],
        plan: Plan,
    ) -> None:
        """Rows of the file sharing a match key (over every valid row, so reruns agree). Rows
        identical to an earlier one are sent once; rows that differ are the user's call: none
        is sent unless --on-duplicate first|last names the one that wins."""
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for r in all_valid_rows:
            if keys[r] is not None:
                groups[keys[r]].append(r)  # type: ignore[index]
        todo = set(rows)
        unit = self.result.table.unit  # line, or a workbook's row
        alike = self._alike(r for group in groups.values() if len(group) > 1 for r in group)
        for key, group in groups.items():
            if len(group) < 2:
                continue
            # as the file writes it (the first row's), not as compared
            label = f"{self._key_label()} {', '.join(self.written_key(group[0]) or key)}"
            distinct: list[int] = []  # the first row of each distinct set of values
            for r in group:
                if not any(alike[d] == alike[r] for d in distinct):
                    distinct.append(r)
            if len(distinct) == 1:
                for r in group[1:]:
                    if r in todo:
                        plan.skipped[r] = (
                            f"identical to {unit} {lines[group[0]]} ({label}): sent once"
                        )
                continue
            where = ", ".join(str(lines[r]) for r in distinct)
            if ids := self._ids_in_other_letters(distinct):
                for r in group:  # never one of them by --on-duplicate: they are others
                    if r in todo:
                        plan.duplicates[r] = (
                            f"{unit}s {where} have {ids}, alike only ignoring case: "
                            f"{OTHER_LETTERS}; none is sent: {CASE_WAY_OUT}"
                        )
                continue
            if self.on_duplicate in ("first", "last"):
                # the file's first or last row, whichever set of values it has
                winner = group[0] if self.on_duplicate == "first" else group[-1]
                for r in group:
                    if r == winner or r not in todo:
                        continue
                    plan.skipped[r] = (
                        f"identical to {unit} {lines[winner]} ({label}): sent once"
                        if alike[r] == alike[winner]
                        else f"{unit}s {where} share {label} with different values; {unit} "
                        f"{lines[winner]} wins (--on-duplicate {self.on_duplicate})"
                    )
            else:  # every row of the group, those alike an earlier one too: none is sent
                for r in group:
                    if r in todo:
                        plan.duplicates[r] = (
                            f"{unit}s {where} share {label} with different values; none is sent "
                            "(fix the file, or choose with --on-duplicate first|last)"
                        )

    def _one_row_a_record(
        self, rows: list[int], lines: list[int], matches: dict[int, list[Record]], plan: Plan
    ) -> None:
        """Rows of this run that would write one record (one row's key finds the record
        another row made, whose e-mail it corrects): none is sent, since one would undo the
        other's write, both reported done."""
        by_record: dict[int, list[int]] = defaultdict(list)
        for r in rows:
            found = matches.get(r) or []
            if len(found) == 1 and (rid := record_id(found[0], self.obj.id_field or "")):
                by_record[rid].append(r)
        unit = self.result.table.unit
        for rid, group in by_record.items():
            if len(group) < 2:
                continue
            where = ", ".join(str(lines[r]) for r in group)
            for r in group:
                plan.failed[r] = (
                    f"{unit}s {where} would each write record {rid}: none is sent (a record is "
                    "one row of the file; fix the file)"
                )

    def _alike(self, rows: Iterable[int]) -> dict[int, bytes]:
        """Each row's values as compared (_as_compared), as a 16-byte digest, equal for rows
        that write alike: read in the file's order, once. Read a key's rows at a time, rows
        far apart converted their blocks again and again (8,192 rows, each key's two 4,096
        rows apart: 2 min 47 s)."""
        return {
            r: hashlib.blake2b(
                repr(sorted(self._as_compared(row_values(self.result, r)).items())).encode(),
                digest_size=16,
            ).digest()
            for r in sorted(rows)
        }

    def _as_compared(self, values: dict[str, Any]) -> dict[str, Any]:
        """A row's values as a person compares two rows: text in NFC, spaces tidied, an
        e-mail in any case (`Vic@` and `vic@` is one address; `Björn` in two Unicode forms
        is one name)."""
        return {
            name: match_text(v, _is_email(self.specs.get(name))) if isinstance(v, str) else v
            for name, v in values.items()
        }

    def conflict(self, row: int, record: Record, changes: dict[str, Any]) -> str | None:
        """A file that carries DATE_UPDATED_UTC (an export edited and imported back) is a copy
        as of that moment: a record changed in Insightly since is not overwritten, unless
        --on-conflict overwrite. The copy's time is read in any form a spreadsheet writes and
        compared as an instant, at the copy's precision (to the minute when a spreadsheet
        dropped the seconds); one that cannot be read is a conflict. Returns why, or None."""
        if self.on_conflict == "overwrite":
            return None
        return self.copy_conflict(row, record, changes)

    def copy_conflict(self, row: int, record: Record, changes: dict[str, Any]) -> str | None:
        """Why the row's copy is older than its record (conflict), whatever --on-conflict
        says; None for a file without DATE_UPDATED_UTC."""
        if self.file_updated is None:
            return None
        written = self.file_updated.iat[row]
        if written is None or written is pd.NA or str(written).strip() == "":
            return None  # a row added to the export: no copy to be older than
        copied, seconds = read_instant(written, self.day_first)
        now, _ = read_instant(record.get("DATE_UPDATED_UTC"), True)
        rid = record.get(self.obj.id_field or "")
        if copied is None:
            return (
                f"conflict: this file's DATE_UPDATED_UTC {str(written)!r} cannot be read as one "
                f"moment, so a change to record {rid} in Insightly since the copy cannot be ruled "
                f"out; not overwritten ({', '.join(sorted(changes))}). Write it as "
                "yyyy-MM-dd HH:mm:ss, or use --on-conflict overwrite"
            )
        if now is None:
            return None
        later = now.replace(second=0) > copied if not seconds else now > copied
        if not later or self._ours_last(row, record, changes):
            return None
        shown = copied.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
        return (
            f"conflict: record {rid} changed in Insightly at {now:%Y-%m-%d %H:%M:%S} UTC, after "
            f"this file's copy ({shown} UTC); not overwritten ({', '.join(sorted(changes))}). "
            "Re-export it, or use --on-conflict overwrite"
        )

    def _ours(self, row: int, record: Record) -> LastWrite:
        """What this import last wrote to the row's record (none without a checkpoint)."""
        rid = record_id(record, self.obj.id_field or "")
        if self.last_writes is None or rid is None:
            return LastWrite()
        if (row, rid) not in self._last_write:
            self._last_write[row, rid] = self.last_writes(row, rid)
        return self._last_write[row, rid]

    def _ours_last(self, row: int, record: Record, changes: dict[str, Any]) -> bool:
        """Whether the record's last change is this import's own write for this row (its
        DATE_UPDATED_UTC is the one that write left, its fields what it wrote), and `changes`
        only fields that write wrote: a typo fixed in the file and run again is no conflict
        with the run that sent the typo. The time has whole seconds, so a colleague's edit
        in the second of ours would share it: a field of ours that no longer holds what we
        wrote, or any other field the row would change, may be theirs."""
        mine = self._ours(row, record)
        ours = mine.fields
        left, now = iso_instant(mine.stamp), iso_instant(record.get("DATE_UPDATED_UTC"))
        return (
            left is not None
            and left == now
            and set(changes) <= set(ours)
            and all(
                same_value(spec, current_value(record, spec), value)
                for name, value in ours.items()
                if (spec := self.specs.get(name)) is not None
            )
        )

    def diff(
        self, row: int, record: Record, artefacts: Artefacts | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """What this row changes in this record: (body, before-image, after-image); what a
        spreadsheet changed without a person goes into `artefacts`, not the body. With a base
        (an edited export), only the cells the person changed are candidates."""
        values = self._key_as_held(row_values(self.result, row), record)
        rid = record_id(record, self.obj.id_field or "")
        base = self.base_of(row, rid) if rid is not None else None
        kept = artefacts if artefacts is not None else Artefacts(self.encoding, self.send_artefacts)
        kept.scientific = frozenset(f for f, cells in self._scientific().items() if cells[row])
        if base is not None:
            values = self._merge(row, record, base, values, kept)
        return update_payload(
            self.obj, self.specs, values, record, row_policies(self.result, row), kept
        )

    def _key_as_held(self, values: dict[str, Any], record: Record) -> dict[str, Any]:
        """The row's values without the key parts the record holds as the key compares them:
        ` björn-1 ` found `BJÖRN-1` case-blind, so it is that key, not an edit of it (it was
        written back with its spaces and capitals lost)."""
        match = self.result.mapping.match
        if match is None:
            return values
        out = dict(values)
        for (_, name), fold in zip(match.pairs, key_folds(self.result), strict=True):
            new = out.get(name)
            held = self._held_key(record, name)
            if isinstance(new, str) and held and match_text(new, fold) == match_text(held, fold):
                del out[name]
        return out

    def _held_key(self, record: Record, name: str) -> str | None:
        """The part `name` of the match key as the record holds it (None: it holds none)."""
        spec = self.specs.get(name)
        return key_text(current_value(record, spec)) if spec else None

    def base_of(self, row: int, rid: int) -> dict[str, Any] | None:
        """The exported record this row is an edited copy of: only when the copy's
        DATE_UPDATED_UTC is the base's (a row from another export is not merged with it)."""
        if self.base is None:
            return None
        if (row, rid) not in self._bases:  # asked at planning, again by the diff and the send
            self._bases[row, rid] = self._copy_of(row, self.base.get(rid))
        return self._bases[row, rid]

    def _copy_of(self, row: int, base: dict[str, Any] | None) -> dict[str, Any] | None:
        if base is None:
            return None
        if self.file_updated is not None and "DATE_UPDATED_UTC" in base:
            copied, seconds = read_instant(self.file_updated.iat[row], self.day_first)
            exported, _ = read_instant(base.get("DATE_UPDATED_UTC"), True)
            if copied is None or exported is None:
                return None
            if (exported if seconds else exported.replace(second=0)) != copied:
                return None
        return base

    def _merge(
        self,
        row: int,
        record: Record,
        base: dict[str, Any],
        values: dict[str, Any],
        artefacts: Artefacts,
    ) -> dict[str, Any]:
        """The row's values the person changed relative to the base. A field Insightly changed
        since the export too is a conflict: kept as Insightly has it, unless --on-conflict
        overwrite (then the person's value wins, for that field only)."""
        out: dict[str, Any] = {}
        conflicts: dict[str, tuple[Any, Any, Any]] = {}
        ours = self._ours(row, record).fields
        for name, new in values.items():
            spec = self.specs[name]
            was = self._base_value(base, spec)
            if name in ours and same_value(spec, current_value(record, spec), ours[name]):
                was = ours[name]  # Insightly has what this import wrote: the person's value
            if same_value(spec, new, was):
                continue  # the person did not change it: whatever Insightly has now stays
            why = (
                artefact(spec, new, was, self.encoding, scientific=name in artefacts.scientific)
                if name not in artefacts.send
                and (
                    (isinstance(new, str) and isinstance(was, str))
                    or (isinstance(new, int | float) and isinstance(was, int | float))
                )
                else None
            )
            if why is not None:  # a spreadsheet changed it, not the person: kept, and said
                artefacts.found[name] = (current_value(record, spec), new, why)
                continue
            now = current_value(record, spec)
            if not same_value(spec, now, was) and not same_value(spec, new, now):
                conflicts[name] = (was, now, new)
                if self.on_conflict != "overwrite":
                    continue
            out[name] = new
        if conflicts:
            self.field_conflicts[row] = conflicts
        else:
            self.field_conflicts.pop(row, None)
        return out

    @staticmethod
    def _base_value(base: dict[str, Any], spec: FieldSpec) -> Any:
        value = base.get(spec.name)
        if spec.kind == TAGS and isinstance(value, str):
            return tuple(set_parts(value))
        return value

    def _count_not_sent(self, row: int, record: Record, plan: Plan) -> None:
        """What the person did in an edited export that this mapping leaves as it is: a cell
        emptied (the record has a value; `blank: clear` sends it), a tag or option taken out
        of a set (`merge: replace` takes it out in Insightly too)."""
        rid = record_id(record, self.obj.id_field or "")
        base = self.base_of(row, rid) if rid is not None else None
        for rule in self.result.rules:
            spec = self.specs.get(rule.field)
            if spec is None or spec.via or rule.update == "never":
                continue
            # what the person took out: from the export when there is one (a colleague's
            # later additions are not the person's doing), else from Insightly now
            old = self._base_value(base, spec) if base is not None else current_value(record, spec)
            new = self.result.cell(row, rule.field)
            if _same_joined(new, old):
                continue
            if new is ABSENT and rule.blank == "skip" and not _is_empty(old):
                what = "emptied cells not sent (blank: clear sends them)"
            elif (
                spec.kind in (MULTISELECT, TAGS)
                and rule.merge == "add"
                and new is not ABSENT
                # a tag that holds ";" itself ("R&D; EMEA") is split as the file's text is
                and _members(";".join(set_parts(old))) - _members(new)
            ):
                what = "set members taken out, not sent (merge: replace sends them)"
            else:
                continue
            counts = plan.not_sent.setdefault(rule.field, {})
            counts[what] = counts.get(what, 0) + 1

    def _lossy_change(self, row: int, record: Record, changes: dict[str, Any]) -> str | None:
        """A change a spreadsheet made of a person's edit, which sent would lose what the
        person meant. The row fails, naming the field:
        - a long text (a note's body) the spreadsheet cut at CELL_CHARACTERS, then edited
          there: sent, it would cut off the rest in Insightly (the cut alone is an artefact,
          kept; with `artefacts: send` it fails too);
        - a year typed into a cell formatted as a date, which the spreadsheet keeps as that
          day number: `1990` sent as 1905-06-12."""
        for name, new in changes.items():
            spec = self.specs.get(name)
            old = current_value(record, spec) if spec is not None else None
            year = _year_as_day(name, spec, new) if name not in self.send_artefacts else None
            if year and spec is not None and not same_value(spec, new, old):
                return year
            typed = (
                self._typed_as_number(row, name, spec, new, old)
                if isinstance(new, str) and name not in self.send_artefacts
                else None
            )
            if typed:
                return typed
            if not (isinstance(new, str) and isinstance(old, str)):
                continue
            if self.encoding and lost_and_edited(new, old):
                return (
                    f"{name}: {new[:60]!r} was edited in a file saved as {self.encoding}, "
                    f"which lost characters of {old[:60]!r} (a '?' for each): sent, it would "
                    "write the '?'. Make the edit in Insightly, or in a file saved as CSV UTF-8 "
                    "or XLSX"
                )
            held = (  # counted as a spreadsheet counts (an emoji two), so the two compare
                f"{name}: Insightly holds {cell_length(old):,} characters, and a spreadsheet "
                f"cell only the first {CELL_CHARACTERS:,}"
            )
            cut = cut_to_a_cell(new, old)
            if cut is Cut.EDITED:
                return (
                    f"{held}: the edit of that cut would lose the rest. Make it in Insightly, "
                    "or in the CSV or Parquet export without opening it in a spreadsheet"
                )
            if cut is Cut.CUT:  # an artefact, sent only as `artefacts: send` says: not so
                return f"{held}: sent, even as `artefacts: send` says, it would lose the rest"
        return None

    def _typed_for_a_new_record(self, row: int, values: dict[str, Any]) -> str | None:
        """What a spreadsheet made of a value as it was typed, in a new record's values (the
        column's `artefacts: send` sends it): a year in a date cell, digits as a number."""
        for name, value in values.items():
            if name in self.send_artefacts:
                continue
            spec = self.specs[name]
            why = _year_as_day(name, spec, value)
            if why is None and isinstance(value, str):
                why = self._typed_as_number(row, name, spec, value, None)
            if why:
                return why
        return None

    def _cell(self, row: int, name: str) -> Cell | None:
        """The workbook cell type of the row's cell for field `name`; None in a CSV, or for a
        field no column gives (a default)."""
        cells = self.result.table.cells
        column = self._column_of.get(name)
        if not cells or column is None:
            return None
        kinds = cells.get(column)
        kind = kinds.iloc[row] if kinds is not None else Cell.TEXT  # no typed cell in it
        return Cell(kind) if kind in _CELL_KINDS else Cell.TEXT

    def _typed_as_number(
        self, row: int, name: str, spec: FieldSpec | None, new: str, old: Any
    ) -> str | None:
        """A text a spreadsheet read as a number when it was typed (or opened): sent, the
        record gets what the spreadsheet made of it. `artefacts: send` sends it. In a workbook
        the cell says whether it is a number; a CSV cannot say."""
        if spec is None or spec.kind != TEXT:
            return None
        cell = self._cell(row, name)
        digits = new.lstrip("+-")
        if cell == Cell.NUMBER and digits.isdigit() and len(digits) > KEPT_DIGITS:
            return (
                f"{name}: {new!r} is a number cell of {len(digits)} digits, and a spreadsheet "
                f"keeps {KEPT_DIGITS}: the digits after them may be lost; format the column as "
                "Text and type them again, or take the original file; the column's "
                "`artefacts: send` sends it as it is"
            )
        if cell not in (None, Cell.NUMBER):
            return None  # typed as text: what it shows is what the person wrote
        if long_number_shown(new):
            return (
                f"{name}: {new!r} is a long number as a spreadsheet shows it in scientific "
                "notation, the digits after the first few lost: type it into a cell formatted "
                "as Text (or take the original file); the column's `artefacts: send` sends it "
                "as it is"
            )
        if isinstance(old, str) and zeros_lost_in_typing(new, old):
            return (
                f"{name}: {new!r} where Insightly has {old!r}: a spreadsheet drops the leading "
                "zeros of digits typed into a cell it reads as a number; type it into a cell "
                "formatted as Text (or as '0…), or give the column `artefacts: send` to send "
                "it as it is"
            )
        return None

    def _lost_characters(self, values: dict[str, Any]) -> str | None:
        """A new record whose name, e-mail or match key has a `?` inside a word may be an
        existing record whose letters a code page lost (`?ukasz@…` for `łukasz@…`, in a file
        saved as Windows-1252, or as ASCII): it is not created, so it cannot become a
        duplicate."""
        for name, value in values.items():
            if name not in self._identifying:
                continue
            if isinstance(value, str) and LOST.search(value):
                page = self.encoding or "a single-byte code page"
                return (
                    f"{name} {value!r} has '?' inside a word, which is how a program saving "
                    f"in {page} writes a character it cannot hold; not created (it may be an "
                    "existing record). Save the file as CSV UTF-8, or fix the cell"
                )
        return None

    def _key_label(self) -> str:
        pairs = self.result.mapping.match.pairs if self.result.mapping.match else ()
        return " + ".join(f for _, f in pairs) or "key"

    def _parent(self, row: int) -> int | None:
        """Notes: the id of the record the row's note goes under."""
        ids = self.result.parent_ids
        if ids is None or pd.isna(ids.iat[row]):
            return None
        return int(ids.iat[row])

    async def _find(
        self, rows: list[int], keys: list[tuple[str, ...] | None], plan: Plan
    ) -> dict[int, list[Record]]:
        """Existing records per row, by the cheapest strategy."""
        assert self.result.mapping.match is not None
        fields = [f for _, f in self.result.mapping.match.pairs]
        wanted = [r for r in rows if keys[r] is not None]
        if not wanted:
            return {}
        by_id = fields == [self.obj.id_field]
        single_field = len(fields) == 1 and (by_id or self.obj.searchable)
        if single_field and len(wanted) == 1:
            return await self._one_by_one(wanted, keys, fields, plan, by_id)
        # the first listing page says how many records there are
        pages = self.client.iter_pages(self.obj.endpoint, key=self.obj.id_field)
        first = await anext(pages)
        total = first.total or len(first.records)
        listing_cost = max(1, math.ceil(total / PAGE_SIZE))
        if single_field and len(wanted) < listing_cost:
            await pages.aclose()
            for record in first.records:  # known records: what a search probe can ask about
                rid = record_id(record, self.obj.id_field or "")
                if rid is not None:
                    self.records[rid] = record
            return await self._one_by_one(wanted, keys, fields, plan, by_id)
        plan.strategy = "listing"
        index: dict[tuple[str, ...], list[Record]] = defaultdict(list)
        self._index_page(first.records, fields, index)
        self._listed = list(first.records)
        async for page in pages:
            self._index_page(page.records, fields, index)
            self._listed.extend(page.records)
        found = {r: index.get(keys[r], []) for r in wanted if keys[r] is not None}  # type: ignore[arg-type]
        unlisted = [r for r, records in found.items() if not records]
        if by_id and unlisted:
            # an id the listing lacks is deleted (404) or a record this user may not see,
            # which lists may leave out (403): asked, so that neither becomes a duplicate
            found.update(await self._one_by_one(unlisted, keys, fields, plan, by_id=True))
            plan.strategy = "listing, then a read per id it did not list"
        return found

    def _index_page(
        self, records: list[Record], fields: list[str], index: dict[tuple[str, ...], list[Record]]
    ) -> None:
        folds = key_folds(self.result)
        for record in records:
            rid = record_id(record, self.obj.id_field or "")
            if rid is None:
                continue  # a record without a usable id cannot be matched or updated
            self.records[rid] = record
            key = record_key(record, fields, folds)
            if key is not None:
                index[key].append(record)

    async def _one_by_one(
        self,
        rows: list[int],
        keys: list[tuple[str, ...] | None],
        fields: list[str],
        plan: Plan,
        by_id: bool,
    ) -> dict[int, list[Record]]:
        plan.strategy = "get" if by_id else "search"
        assert self.obj.id_field is not None

        written = row_keys(self.result, fold=False)
        folds = key_folds(self.result)

        async def one(r: int) -> tuple[int, list[Record]]:
            key = keys[r]
            assert key is not None
            if by_id and not (key[0].isascii() and key[0].isdigit()):
                plan.failed[r] = f"{self.obj.id_field} {key[0]!r} is not a record id"
                return r, []
            if by_id:
                try:
                    reply = await self.client.get(f"{self.obj.endpoint}/{key[0]}")
                except NotFoundError as exc:
                    if not exc.from_api:  # whether the record is there is unknown: not created
                        plan.failed[r] = _not_the_api(key[0], exc)
                    return r, []
                except ForbiddenError as exc:
                    plan.failed[r] = _unreadable(key[0], exc)
                    return r, []
                if reply.etag:
                    self.etags[int(key[0])] = reply.etag  # a record's own ETag: usable in If-Match
                found = [reply.data]
            else:
                value = (written[r] or key)[0]
                params = {"field_name": fields[0], "field_value": value, "top": PAGE_SIZE}
                answer = (await self.client.get(f"{self.obj.endpoint}/Search", params)).data
                # the search's own idea of equal (case, spaces) is not ours: compared again
                found = [
                    x
                    for x in answer or []
                    if isinstance(x, dict) and record_key(x, fields, folds) == key
                ]
            for record in found:
                rid = record_id(record, self.obj.id_field or "")
                if rid is not None:
                    self.records[rid] = record
            return r, found

        pairs = dict(await gather_all(*(one(r) for r in rows)))
        if not by_id and any(folds):
            # whether Insightly's search ignores case is not known: a row it did not find
            # may still have its record, written otherwise. One search, for a record we know
            # in other letters, tells; if it does not ignore case, one listing settles them.
            unsure = [r for r, found in pairs.items() if not found and _has_case(keys[r])]
            if unsure and not await self._search_ignores_case(fields[0], pairs):
                plan.strategy = "search, then listing for the rows it did not find"
                index: dict[tuple[str, ...], list[Record]] = defaultdict(list)
                self._listed = []
                async for page in self.client.iter_pages(self.obj.endpoint, key=self.obj.id_field):
                    self._index_page(page.records, fields, index)
                    self._listed.extend(page.records)
                for r in unsure:
                    pairs[r] = index.get(keys[r], [])  # type: ignore[arg-type]
        return pairs

    def _still_its_record(self, row: int, record: Record) -> bool:
        """Whether the record an earlier run wrote for `row`, which the row's key does not
        find, is still the row's: every part of the key it holds is empty, the row's as
        compared or as a spreadsheet re-saved it, or a person's e-mail, name or phone the
        row corrects (the row is the same person by another of them: checkpoint/pairing.py;
        a fixed e-mail made a second contact), or another system's id the row corrects while
        it is the record's person by name and e-mail. Else the row names another record by
        its key (an edited external id moves a row on): it is created, the earlier record
        left be."""
        match = self.result.mapping.match
        assert match is not None
        rules = {(r.column, r.field) for r in self.result.rules}
        folds = key_folds(self.result)
        corrected: set[str] = set()  # a person's own fields the row's key changes
        for (column, name), fold in zip(match.pairs, folds, strict=True):
            spec = self.specs.get(name)
            held = self._held_key(record, name)
            if held is None or not match_text(held, fold):
                continue  # the record has no key yet: the row fills it in
            if (column, name) in rules:
                value = self.result.cell(row, name)
            else:  # a column only matched by: as the file has it (a workbook's empty is NA)
                raw = self.result.table.frame[column].iat[row]
                value = None if pd.isna(raw) else str(raw)
            text = key_text(value)
            if text is None or not match_text(text, fold):
                continue  # the row's key cell is empty: it names no other record
            if match_text(text, fold) == match_text(held, fold):
                continue
            if spec is not None and artefact(spec, value, held, self.encoding) is not None:
                continue
            if name not in _PERSONS:
                # another system's id: another record, unless the row is the record's person
                # by name and e-mail both (a typo in the id fixed made Lea Lutz twice)
                if not self._one_person(row, record):
                    return False
                continue
            corrected.add(name)
        if corrected:
            return self._same_person(row, record, corrected)
        return not self._wholly_renamed(row, record)

    def _agrees(self, values: dict[str, Any], record: Record, group: tuple[str, ...]) -> bool:
        """Whether every field of `group` is filled in on the row and the record, alike."""
        for name in group:
            mine, held = key_text(values.get(name)), self._held_key(record, name)
            if not mine or not held or match_text(mine, True) != match_text(held, True):
                return False
        return True

    def _one_person(self, row: int, record: Record) -> bool:
        """Whether the row is the record's person by its whole name and its e-mail."""
        values = row_values(self.result, row)
        return self._agrees(values, record, PERSON_NAME) and any(
            self._agrees(values, record, (e,)) for e in ("EMAIL_ADDRESS", "EMAIL")
        )

    def _not_another_person(
        self, known: dict[int, int], matches: dict[int, list[Record]], plan: Plan
    ) -> None:
        """Rows matched by record id whose id finds another record than the one they wrote
        in an earlier run, a record of another person by name: failed, never written over (a
        CONTACT_ID mistyped in an export made Eve Evans Sophia Sorel). An e-mail or external
        id moved to another record is that record's, as an upsert has it."""
        if not matched_by_id(self.result.mapping):
            return
        for r, rid in known.items():
            found = matches.get(r) or []
            other = record_id(found[0], self.obj.id_field or "") if len(found) == 1 else None
            if other is None or other == rid or not self._wholly_renamed(r, found[0]):
                continue
            names = " ".join(str(found[0].get(n) or "") for n in PERSON_NAME)
            plan.failed[r] = (
                f"its {self._key_label()} finds record {other} ({names}), another person than "
                f"the record {rid} this row wrote in an earlier run: not written (a mistyped "
                "key?); fix the key, or start a new import for that row"
            )
            del matches[r]

    def _wholly_renamed(self, row: int, record: Record) -> bool:
        """Whether the row names another person than the record: first and last name both
        written on both sides, and both different (Zoe Quinn, given a key, at Alan Turing's
        switchboard phone, is not Alan's record filled in)."""
        values = row_values(self.result, row)
        parts = [(key_text(values.get(n)), self._held_key(record, n)) for n in PERSON_NAME]
        return all(
            mine and held and match_text(mine, True) != match_text(held, True)
            for mine, held in parts
        )

    def _same_person(self, row: int, record: Record, corrected: set[str]) -> bool:
        """Whether the row is still the person the record is, its key's `corrected` fields
        aside: their whole name was not changed, and the name or the e-mail the key leaves
        alone agrees with the record's, filled in on both (a switchboard phone, or nothing,
        is no evidence: Zoe Quinn at Alan Turing's phone is another person, not Alan)."""
        if set(PERSON_NAME) <= corrected:
            return False  # Bob Eighteen is not Carol Jones, whatever mailbox they share
        values = row_values(self.result, row)
        others = (PERSON_NAME, ("EMAIL_ADDRESS",), ("EMAIL",))
        return any(self._agrees(values, record, g) for g in others if not corrected & set(g))

    def _ids_in_other_letters(self, rows: list[int]) -> str | None:
        """`External_Id__c '0035g00000Qa1Bc' and '0035g00000QA1bC'`: rows whose keys are ids
        that differ in case alone (None: alike as written, no ids, or `compare:` given)."""
        match = self.result.mapping.match
        if match is None or match.compare_given:
            return None
        written = [self.written_key(r) for r in rows]
        for i, name in enumerate(f for _, f in match.pairs):
            parts = list(dict.fromkeys(k[i] for k in written if k is not None))
            if ids_apart(self.specs.get(name), parts):
                return f"{name} " + " and ".join(repr(v) for v in parts[:3])
        return None

    def _other_id(self, row: int, record: Record) -> str | None:
        """Why a record matched ignoring case is not the row's: its key is an id written in
        other letters (Salesforce's `0035g00000Qa1Bc` and `0035g00000QA1bC` are two records).
        None when the keys are alike, are not ids, or the mapping says `compare: casefold`."""
        match = self.result.mapping.match
        written = self.written_key(row)
        if match is None or match.compare_given or written is None:
            return None
        fields = [f for _, f in match.pairs]
        held = record_key(record, fields)
        for here, there, name in zip(written, held or (), fields, strict=False):
            if ids_apart(self.specs.get(name), [here, there]):
                rid = record_id(record, self.obj.id_field or "")
                return (
                    f"{name} {here!r} matches record {rid} only ignoring case (it holds "
                    f"{there!r}): {OTHER_LETTERS}; not written: {CASE_WAY_OUT}"
                )
        return None

    def seen_ids(self, plan: Plan) -> set[int]:
        """The records planning read or was told of (Insightly's duplicate rule): they existed
        before anything was sent, so no create of this run made them."""
        id_field = self.obj.id_field or ""
        listed = (record_id(r, id_field) for r in self._listed or ())
        return {*self.records, *(rid for rid in listed if rid is not None)} | set(
            plan.like_existing.values()
        )

    def written_key(self, row: int) -> tuple[str, ...] | None:
        """The row's key as the file writes it (tidied, not case-folded): what a search sends,
        and what a created record holds."""
        if self._written_keys is None:
            self._written_keys = row_keys(self.result, fold=False)
        return self._written_keys[row]

    async def _search_ignores_case(self, name: str, found: dict[int, list[Record]]) -> bool:
        """Whether `/Search` finds a record by its value in other letters: asked once per
        run, with a record planning has read (one request); False when none can tell."""
        if self._ignores_case is None:
            known = [x for records in found.values() for x in records] + list(self.records.values())
            if not known:  # nothing read yet: a few records to ask about (one request)
                answer = (await self.client.get(self.obj.endpoint, {"top": 20})).data
                known = [x for x in answer or [] if isinstance(x, dict)]
            self._ignores_case = False
            for record in known[:50]:
                value = (
                    key_text(current_value(record, self.specs[name]))
                    if name in self.specs
                    else None
                )
                if value is None or value.swapcase() == value:
                    continue
                params = {"field_name": name, "field_value": value.swapcase(), "top": 2}
                answer = (await self.client.get(f"{self.obj.endpoint}/Search", params)).data
                ids = {
                    record_id(x, self.obj.id_field or "")
                    for x in answer or []
                    if isinstance(x, dict)
                }
                self._ignores_case = record_id(record, self.obj.id_field or "") in ids
                break
        return self._ignores_case

    async def _by_ids(self, known: dict[int, int], plan: Plan) -> dict[int, list[Record]]:
        """The records earlier runs wrote, one GET each (edited rows are few)."""

        async def one(r: int, rid: int) -> tuple[int, list[Record]]:
            try:
                reply = await self.client.get(f"{self.obj.endpoint}/{rid}")
            except NotFoundError as exc:
                plan.failed[r] = (
                    f"record {rid}, written by an earlier run, was deleted in Insightly since; "
                    "not created again"
                    if exc.from_api
                    else _not_the_api(rid, exc)
                )
                return r, []
            except ForbiddenError as exc:
                plan.failed[r] = _unreadable(rid, exc)
                return r, []
            if reply.etag:
                self.etags[rid] = reply.etag
            self.records[rid] = dict(reply.data)
            return r, [dict(reply.data)]

        pairs = await gather_all(*(one(r, rid) for r, rid in known.items()))
        if plan.strategy == "none":
            plan.strategy = "get"
        return {r: found for r, found in pairs if r not in plan.failed}

    def like_existing(self, rid: object) -> str:
        return f"looks like existing {self.obj.singular} {rid} (Insightly's duplicate rule)"

    async def _warn_like_insightly(self, rows: list[int], plan: Plan) -> None:
        """Without a match key: warn about rows Insightly's importer would call duplicates."""
        assert self.obj.duplicate_rule is not None
        same_all, same_one = self.obj.duplicate_rule.all_of, self.obj.duplicate_rule.one_of
        if not all(f in self.result.values.columns for f in same_all):
            return
        existing: dict[tuple[str, ...], list[Record]] = defaultdict(list)
        self._listed = []
        async for page in self.client.iter_pages(
            self.obj.endpoint, {"brief": "true"} if self.obj.brief else {}, key=self.obj.id_field
        ):
            self._listed.extend(page.records)
            for record in page.records:
                key = record_key(record, list(same_all))
                if key is not None:
                    existing[tuple(k.casefold() for k in key)].append(record)
        plan.strategy = "listing"
        for r in rows:
            values = row_values(self.result, r)
            key = tuple(str(values.get(f, "")).casefold() for f in same_all)
            for record in existing.get(key, []):
                if not same_one or any(
                    values.get(f) not in (None, "")
                    and str(values.get(f)).casefold() == str(record.get(f) or "").casefold()
                    for f in same_one
                ):
                    rid = record[self.obj.id_field or ""]
                    self._like_existing.add(r)
                    if self.skip_duplicates:
                        plan.skipped[r] = f"{self.like_existing(rid)}; --skip-duplicates"
                    else:
                        plan.like_existing[r] = rid
                    break
        if plan.like_existing:  # a line each would be a million lines: a count and examples
            lines = self.result.table.lines
            shown = list(plan.like_existing.items())[:3]
            plan.warnings.append(
                f"{len(plan.like_existing):,} row(s) look like an existing "
                f"{self.obj.singular} by Insightly's duplicate rule (action 'like-existing' in "
                "NAME.plan.csv; created all the same, --skip-duplicates skips them): "
                + "; ".join(f"{self.result.table.unit} {lines[r]} like {rid}" for r, rid in shown)
                + (" …" if len(plan.like_existing) > 3 else "")
            )
