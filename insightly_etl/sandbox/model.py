"""What the sandbox knows about Insightly's objects: endpoints, fields, and write validation.

Field facts come from the shipped reference (`insightly_etl/reference`, a copy of
`shared/reference/insightly-object-fields.json`). Where the real API's behaviour is not
documented, the choice made here is marked ASSUMPTION with the section of docs/api.md it
rests on; §11 there lists them all, each with its evidence or none.

The sandbox reads the reference itself rather than using the client's `api.registry`: a
mistake in the client's model of the API must not be copied into the server it is tested
against, or the tests could never see it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from insightly_etl.moments import iso_instant
from insightly_etl.reference import load_reference

DATE_FMT = "%Y-%m-%d %H:%M:%S"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT_RE = re.compile(r"^[+-]?\d+$")

# Fields the server sets on every object, whatever the swagger's readOnly flags say
# (Event/Note dates are not flagged there: "almost certainly an omission", docs/api.md §2.1).
SERVER_SET = {"DATE_CREATED_UTC", "DATE_UPDATED_UTC", "CREATED_USER_ID"}

# Swagger `required` entries that are not create-time requirements (docs/api.md §2.1):
# leads get the instance's default source/status, tasks default their owner to the caller.
NOT_REQUIRED_ON_CREATE = {"LEAD_SOURCE_ID", "LEAD_STATUS_ID", "OWNER_USER_ID"}

# Scalar fields the swagger leaves out of POST/PUT bodies although they are not read-only:
# they are changed through dedicated endpoints (…/{id}/Pipeline, …/PipelineStage; §2.1).
# ASSUMPTION (§11): a top-level write that sets them is refused, so clients learn not to send them.
NOT_WRITABLE_SCALARS = {"PIPELINE_ID", "STAGE_ID"}

# (endpoint, singular used in links and FIELD_FOR, writable at top level, searchable)
_COLLECTIONS: list[tuple[str, str, bool, bool]] = [
    ("Contacts", "Contact", True, True),
    ("Organisations", "Organisation", True, True),
    ("Leads", "Lead", True, True),
    ("Opportunities", "Opportunity", True, True),
    ("Projects", "Project", True, True),
    ("Tasks", "Task", True, True),
    ("Events", "Event", True, True),
    ("Notes", "Note", True, True),  # PUT/DELETE only; created under a parent
    ("Pipelines", "Pipeline", False, False),
    ("PipelineStages", "PipelineStage", False, False),
    ("Users", "User", False, True),
    ("LeadSources", "LeadSource", False, False),
    ("LeadStatuses", "LeadStatus", False, False),
    ("OpportunityCategories", "OpportunityCategory", False, False),
    ("ProjectCategories", "ProjectCategory", False, False),
    ("TaskCategories", "TaskCategory", False, False),
    ("Countries", "Country", False, False),
    ("Currencies", "Currency", False, False),
    ("Product", "Product", True, True),
    ("Pricebook", "Pricebook", True, True),
    ("Quotation", "Quotation", True, True),
    # served for reading (export); writes to them answer 405 — not yet modelled
    ("Emails", "Email", False, True),
    ("Milestones", "Milestone", False, True),
    ("PricebookEntry", "PricebookEntry", False, True),
    ("OpportunityLineItem", "OpportunityLineItem", False, True),
    ("QuotationLineItem", "QuotationLineItem", False, True),
    ("Prospect", "Prospect", False, True),
    ("Ticket", "Ticket", False, True),
    ("FileCategories", "FileCategory", False, False),
    ("OpportunityStateReasons", "OpportunityStateReason", False, False),
    ("Relationships", "Relationship", False, False),
    ("Teams", "Team", False, False),
    ("TeamMembers", "TeamMember", False, False),
    ("ActivitySets", "ActivitySet", False, False),
    ("DocumentTemplates", "DocumentTemplate", False, True),
    ("KnowledgeArticle", "KnowledgeArticle", False, True),
    ("KnowledgeArticleCategory", "KnowledgeArticleCategory", False, True),
    ("KnowledgeArticleFolder", "KnowledgeArticleFolder", False, True),
    ("ForumCategories", "ForumCategory", False, True),
    ("CommunityForums", "CommunityForum", False, True),
    ("CommunityPosts", "CommunityPost", False, True),
    ("CommunityComments", "CommunityComment", False, True),
    ("MarketingVisits", "MarketingVisit", False, False),
]

# Parents under which `POST /{Parent}/{id}/Notes` creates a note (docs/api.md §2.1).
NOTE_PARENTS = ("Contacts", "Organisations", "Leads", "Opportunities", "Projects")

# Objects with `GET /{Object}/{id}/FileAttachments` in the swagger.
ATTACHMENT_PARENTS = (
    "Contacts",
    "Emails",
    "Leads",
    "Notes",
    "Opportunities",
    "Organisations",
    "Projects",
)

# Objects with `GET /{Object}/{id}/Comments`, and with `GET /{Object}/{id}/Emails` (swagger).
COMMENT_PARENTS = ("Emails", "Notes", "Tasks", "Ticket")
EMAIL_PARENTS = ("Contacts", "Leads", "Opportunities", "Organisations", "Projects")
# `GET /{Object}/{id}/Tasks` and `/Events` (the swagger): the ones linked to the record
ACTIVITY_PARENTS = EMAIL_PARENTS
# `GET /{Object}/{id}/Dates`, `/EmailDomains` (the swagger): the record's own array
OWN_ARRAYS = {"Dates": ("Contacts", "Organisations"), "EmailDomains": ("Organisations",)}

# id fields that must name an existing record (ASSUMPTION (§11): the real API refuses dangling ids).
_REFERENCES = {
    "OWNER_USER_ID": "Users",
    "RESPONSIBLE_USER_ID": "Users",
    "ORGANISATION_ID": "Organisations",
    "LEAD_SOURCE_ID": "LeadSources",
    "LEAD_STATUS_ID": "LeadStatuses",
    "OPPORTUNITY_ID": "Opportunities",
    "PROJECT_ID": "Projects",
    "CONTACT_ID": "Contacts",
}
_CATEGORY_OF = {
    "Opportunities": "OpportunityCategories",
    "Projects": "ProjectCategories",
    "Tasks": "TaskCategories",
}

_CUSTOM_MAX_LENGTH = {"TEXT": 255, "MULTILINETEXT": 4000}  # UI limits, docs/api.md §3


class WriteRejected(Exception):
    """A write the real API would answer with 400 {"Message": …}."""


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str  # string | integer | number | boolean | date-time | array | object
    max_length: int | None = None
    read_only: bool = False
    items: str | None = None  # nested schema of an array field


@dataclass
class Spec:
    name: str
    singular: str
    id_field: str
    writable: bool
    searchable: bool
    fields: dict[str, FieldInfo]
    required: tuple[str, ...]
    has_custom_fields: bool
    references: dict[str, str] = field(default_factory=dict)

    @property
    def array_fields(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.type == "array"]

    def is_writable_field(self, name: str) -> bool:
        info = self.fields[name]
        return not (
            info.read_only
            or name == self.id_field
            or name in SERVER_SET
            or name in NOT_WRITABLE_SCALARS
        )


def _spec(name: str, singular: str, ref: dict[str, Any], writable: bool, searchable: bool) -> Spec:
    fields = {
        f["name"]: FieldInfo(
            name=f["name"],
            type=f["type"],
            max_length=f.get("max_length"),
            read_only=bool(f.get("read_only")),
            items=f.get("items"),
        )
        for f in ref["fields"]
    }
    required = tuple(
        r
        for r in ref.get("swagger_required", [])
        if r in fields
        and not fields[r].read_only
        and r not in SERVER_SET
        and r not in NOT_REQUIRED_ON_CREATE
    )
    refs = {f: target for f, target in _REFERENCES.items() if f in fields and f != ref["id_field"]}
    if name in _CATEGORY_OF and "CATEGORY_ID" in fields:
        refs["CATEGORY_ID"] = _CATEGORY_OF[name]
    return Spec(
        name=name,
        singular=singular,
        id_field=ref["id_field"],
        writable=writable,
        searchable=searchable,
        fields=fields,
        required=required,
        has_custom_fields="CUSTOMFIELDS" in fields,
        references=refs,
    )


def build_specs() -> dict[str, Spec]:
    objects = load_reference()["objects"]
    return {
        name: _spec(name, singular, objects[name], writable, searchable)
        for name, singular, writable, searchable in _COLLECTIONS
    }


def custom_object_spec(name: str) -> Spec:
    """A custom object's records (`/{Name__c}`): the reference's CustomObjectRecords fields,
    RECORD_NAME required; listed, searched and written like the standard objects (swagger).
    Its singular — in links and FIELD_FOR — is its own name (`FIELD_FOR` upper-cases it)."""
    ref = load_reference()["objects"]["CustomObjectRecords"]
    return _spec(name, name, ref, writable=True, searchable=True)


# ---------------------------------------------------------------- value coercion
# The real API is ASP.NET with JSON.NET, which converts "12" to an integer, 1 to true and so
# on, and fails with "Error converting value …" otherwise. ASSUMPTION (docs/api.md §9.2: the
# exact 400 texts are unknown): the messages below imitate JSON.NET's wording.


def _convert_error(value: Any, type_name: str, path: str) -> WriteRejected:
    return WriteRejected(
        f"Error converting value {_show(value)} to type '{type_name}'. Path '{path}'."
    )


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def coerce_integer(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise _convert_error(value, "System.Int64", path)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value)
    raise _convert_error(value, "System.Int64", path)


def coerce_number(value: Any, path: str) -> int | float:
    if isinstance(value, bool):
        raise _convert_error(value, "System.Double", path)
    if isinstance(value, int | float):
        number: int | float = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())  # invariant culture: "1234.5", never "1 234,5"
        except ValueError:
            raise _convert_error(value, "System.Double", path) from None
    else:
        raise _convert_error(value, "System.Double", path)
    if isinstance(number, float) and not math.isfinite(number):
        raise _convert_error(value, "System.Double", path)
    return int(number) if isinstance(number, float) and number.is_integer() else number


def coerce_boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _convert_error(value, "System.Boolean", path)


def coerce_datetime(value: Any, path: str, *, date_only: bool = False, iso: bool = False) -> str:
    """Bodies take `yyyy-MM-dd HH:mm:ss` (UTC); a bare `yyyy-MM-dd` is that day at midnight.

    With `iso` (lenient writes) ISO 8601 is accepted too (`…T…Z`, fractions, an offset, which
    is turned into UTC): JSON.NET parses ISO 8601 and public clients send it. Strict writes
    refuse it — ASSUMPTION (docs/api.md §6, §9.7), like the query string/body mix-ups that a
    live probe saw answered with 400.
    """
    if isinstance(value, str):
        text = value.strip()
        if iso and "T" in text and (when := iso_instant(text)) is not None:
            text = when.strftime(DATE_FMT)  # an offset turned into UTC
        if _DAY_RE.match(text):
            text += " 00:00:00"
        if _DATE_RE.match(text):
            try:
                parsed = datetime.strptime(text, DATE_FMT)
            except ValueError:
                pass
            else:
                return parsed.strftime("%Y-%m-%d 00:00:00" if date_only else DATE_FMT)
    raise WriteRejected(f"Could not convert string to DateTime: {value}. Path '{path}'.")


def coerce_string(value: Any, path: str, max_length: int | None) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _convert_error(value, "System.String", path)
    text = value if isinstance(value, str) else str(value)
    if max_length and len(text) > max_length:
        raise WriteRejected(
            f"The field {path} must be a string with a maximum length of {max_length}."
        )
    return text


def coerce_standard(info: FieldInfo, value: Any, *, iso: bool = False) -> Any:
    if value is None:
        return None
    if info.type == "integer":
        return coerce_integer(value, info.name)
    if info.type == "number":
        return coerce_number(value, info.name)
    if info.type == "boolean":
        return coerce_boolean(value, info.name)
    if info.type == "date-time":
        return coerce_datetime(value, info.name, iso=iso)
    if info.type == "string":
        return coerce_string(value, info.name, info.max_length)
    raise _convert_error(value, info.type, info.name)


def coerce_custom(definition: dict[str, Any], value: Any, *, iso: bool = False) -> Any:
    """Validate a custom field value against its definition (exact, case-sensitive options);
    `iso`: dates as standard fields take them (coerce_datetime)."""
    name = definition["FIELD_NAME"]
    ftype = definition["FIELD_TYPE"]
    if ftype == "AUTONUMBER" or definition.get("EDITABLE") is False:
        raise WriteRejected(f"Custom field {name} is read-only and cannot be set.")
    if value is None:
        return None
    options = [o["OPTION_VALUE"] for o in definition.get("CUSTOM_FIELD_OPTIONS") or []]
    if ftype in ("TEXT", "MULTILINETEXT"):
        return coerce_string(value, name, _CUSTOM_MAX_LENGTH[ftype])
    if ftype == "DROPDOWN":
        text = coerce_string(value, name, None)
        if text not in options:
            raise WriteRejected(f"'{text}' is not a valid option for custom field {name}.")
        return text
    if ftype == "MULTISELECT":
        # Values travel as one string, options joined by ";" with no spaces (docs/api.md §3).
        chosen = value if isinstance(value, list) else coerce_string(value, name, None).split(";")
        for item in chosen:
            if item not in options:
                raise WriteRejected(f"'{item}' is not a valid option for custom field {name}.")
        return ";".join(chosen)
    if ftype == "BIT":
        return coerce_boolean(value, name)
    if ftype == "DATE":
        # ASSUMPTION (docs/api.md §3: DATE value format unknown): stored as midnight of that day.
        return coerce_datetime(value, name, date_only=True, iso=iso)
    if ftype == "DATETIME":
        return coerce_datetime(value, name, iso=iso)
    if ftype in ("NUMERIC", "PERCENT"):
        return coerce_number(value, name)
    if ftype == "LOOKUP":
        return coerce_integer(value, name)  # a record id of JOIN_OBJECT; the store checks it
    return coerce_string(value, name, None)
