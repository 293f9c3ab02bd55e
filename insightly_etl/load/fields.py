"""The fields an import can write: standard ones from the reference, custom ones from the
account's definitions (`/CustomFields/{Object}`, or an export's manifest)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from insightly_etl.api.registry import ObjectType, usable_definitions

# Value kinds the validator knows. Standard types map onto them; custom FIELD_TYPEs too.
TEXT, INTEGER, NUMBER, BOOLEAN, DATE, DATETIME, DROPDOWN, MULTISELECT, TAGS = (
    "text",
    "integer",
    "number",
    "boolean",
    "date",
    "datetime",
    "dropdown",
    "multiselect",
    "tags",
)
_CUSTOM_KINDS = {
    "TEXT": TEXT,
    "MULTILINETEXT": TEXT,
    "DROPDOWN": DROPDOWN,
    "MULTISELECT": MULTISELECT,
    "BIT": BOOLEAN,
    "DATE": DATE,
    "DATETIME": DATETIME,
    "NUMERIC": NUMBER,
    "PERCENT": NUMBER,
    "LOOKUP": INTEGER,  # a record id of JOIN_OBJECT: map it with a `lookup:` to match by name
}
_CUSTOM_MAX = {"TEXT": 255, "MULTILINETEXT": 4000}  # UI limits, docs/api.md §3
_EMAIL = re.compile(r"(^|_)EMAIL(_ADDRESS)?$")
_URL = re.compile(r"(WEBSITE|^SOCIAL_|_URL$)")


@dataclass(frozen=True)
class FieldSpec:
    name: str  # API name: FIRST_NAME, Customer_Tier__c
    label: str
    kind: str  # one of the kinds above
    api_type: str  # reference type or custom FIELD_TYPE, for people
    custom: bool = False
    required: bool = False
    writable: bool = True
    why_not_writable: str | None = None
    max_length: int | None = None
    options: tuple[str, ...] = ()
    join_object: str | None = None  # a LOOKUP field: the object whose record ids it holds
    # written by a step of its own after the record's write, never in its body: "pipeline"
    # (PIPELINE_ID, STAGE_ID) or "state" (OPPORTUNITY_STATE, STATE_REASON_ID); see steps.py
    via: str | None = None
    past_only: bool = False  # a day that has been (a birthday): one still to come is refused

    @property
    def is_email(self) -> bool:
        return self.kind == TEXT and not self.custom and bool(_EMAIL.search(self.name))

    @property
    def is_url(self) -> bool:
        return self.kind == TEXT and not self.custom and bool(_URL.search(self.name))


# standard fields holding a day that has been: a birthday to come is a century lost (12/25/25)
_PAST_DAYS = frozenset({"DATE_OF_BIRTH"})


def label_of(name: str) -> str:
    """FIRST_NAME -> First Name (the reference has no labels for standard fields)."""
    return " ".join(w.capitalize() for w in name.split("_"))


def standard_kind(name: str, api_type: str) -> str:
    if name == "TAGS":
        return TAGS
    if api_type == "date-time":
        # ASSUMPTION (docs/api.md §6): fields whose names end in _UTC are instants in UTC; the
        # others (DATE_OF_BIRTH, DUE_DATE, FORECAST_CLOSE_DATE, …) are calendar days.
        return DATETIME if name.endswith("_UTC") else DATE
    return {"integer": INTEGER, "number": NUMBER, "boolean": BOOLEAN}.get(api_type, TEXT)


def field_specs(obj: ObjectType, definitions: list[dict[str, Any]]) -> dict[str, FieldSpec]:
    specs: dict[str, FieldSpec] = {}
    for f in obj.fields:
        if f.type == "array" and f.name != "TAGS":
            continue  # CUSTOMFIELDS are listed one by one below; links/dates/domains not imported
        if f.type == "object":
            continue
        via = _via(obj, f.name)
        writable = obj.is_writable(f) or via is not None
        why = None
        if not writable:
            why = (
                "set by Insightly"
                if f.name == obj.id_field or f.read_only
                else "changed through its own endpoint"
            )
        specs[f.name] = FieldSpec(
            name=f.name,
            label=label_of(f.name),
            kind=standard_kind(f.name, f.type),
            api_type=f.type,
            required=f.required,
            writable=writable,
            why_not_writable=why,
            max_length=f.max_length,
            options=obj.states if via == "state" else (),
            via=via,
            past_only=f.name in _PAST_DAYS,
        )
    if obj.states:  # not a field of the record: the reason of its state change
        specs["STATE_REASON_ID"] = FieldSpec(
            name="STATE_REASON_ID",
            label="State Reason Id",
            kind=INTEGER,
            api_type="integer",
            via="state",
        )
    usable, _ = usable_definitions(obj, definitions)  # Insightly's own never clash
    for d in sorted(usable, key=lambda d: (d.get("FIELD_ORDER") or 0, d["FIELD_NAME"])):
        ftype = str(d.get("FIELD_TYPE") or "TEXT")
        editable = ftype != "AUTONUMBER" and d.get("EDITABLE") is not False
        specs[d["FIELD_NAME"]] = FieldSpec(
            name=d["FIELD_NAME"],
            label=str(d.get("FIELD_LABEL") or d["FIELD_NAME"]),
            kind=_CUSTOM_KINDS.get(ftype, TEXT),
            api_type=ftype,
            custom=True,
            writable=editable,
            why_not_writable=None if editable else "computed by Insightly",
            max_length=_CUSTOM_MAX.get(ftype),
            options=tuple(o["OPTION_VALUE"] for o in d.get("CUSTOM_FIELD_OPTIONS") or ()),
            join_object=str(d["JOIN_OBJECT"])
            if ftype == "LOOKUP" and d.get("JOIN_OBJECT")
            else None,
        )
    return specs


def _via(obj: ObjectType, name: str) -> str | None:
    if obj.pipelined and name in ("PIPELINE_ID", "STAGE_ID"):
        return "pipeline"
    if obj.states and name == "OPPORTUNITY_STATE":
        return "state"
    return None


def normalise(text: str) -> str:
    """For matching header names to fields: case, spaces and punctuation ignored."""
    return re.sub(r"[^0-9a-z]", "", text.lower().removesuffix("__c"))


def suggest(word: str, candidates: list[str]) -> str | None:
    """A close candidate, compared case- and punctuation-insensitively: the same, else the
    shortest one it begins (`Mailing Zip` for `Mailing Zip/Postal Code`), else a near one; a
    US zip is a postcode (`ADDRESS_MAIL_ZIP`: ADDRESS_MAIL_POSTCODE)."""
    by_norm = {normalise(c): c for c in candidates}
    typed = normalise(word)
    postcode = typed.replace("zipcode", "postcode").replace("zip", "postcode")
    for key in dict.fromkeys((typed, postcode)):
        if key in by_norm:
            return by_norm[key]
        begun = sorted((n for n in by_norm if len(key) >= 4 and n.startswith(key)), key=len)
        if begun:
            return by_norm[begun[0]]
    close = difflib.get_close_matches(typed, list(by_norm), n=1, cutoff=0.75)
    return by_norm[close[0]] if close else None


def suggest_field(word: str, specs: dict[str, FieldSpec]) -> str | None:
    """ "Did you mean": from field names and labels."""
    for spec in specs.values():
        if normalise(spec.label) == normalise(word) or normalise(spec.name) == normalise(word):
            return spec.name
    by_label = {spec.label: spec.name for spec in specs.values()}
    hit = suggest(word, list(specs) + list(by_label))
    if hit:
        return by_label.get(hit, hit)
    # a name cut short (EMAIL for EMAIL_ADDRESS): the shortest field it begins
    key = normalise(word)
    started = sorted((n for n in specs if len(key) >= 3 and normalise(n).startswith(key)), key=len)
    return started[0] if started else None
