"""Insightly's object types as this tool names them (snake_case) and what the API offers for each.

Field facts come from the shipped reference (`insightly_etl/reference`); the capabilities below
(search, brief, custom fields, writes) from `docs/api.md` §2 and §4.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from insightly_etl.errors import InputError
from insightly_etl.reference import load_reference

# Fields the server sets whatever the swagger's readOnly flags say (Event/Note dates are not
# flagged there, "almost certainly an omission", docs/api.md §2.1).
SERVER_SET = frozenset({"DATE_CREATED_UTC", "DATE_UPDATED_UTC", "CREATED_USER_ID"})
# Written through dedicated endpoints (…/{id}/Pipeline, …/PipelineStage), not top-level bodies.
NOT_IN_BODY = frozenset({"PIPELINE_ID", "STAGE_ID"})
# An opportunity's state (docs/api.md §2.1, v2.2 spelling; the API's case is UNCERTAIN, so states
# are compared without case): changed with its reason by `PUT /Opportunities/{id}/StateChange`.
OPPORTUNITY_STATES = ("Open", "Won", "Lost", "Abandoned", "Suspended")


@dataclass(frozen=True)
class DuplicateRule:
    """When Insightly's own importer calls a new record a duplicate of an existing one: every
    field of `all_of` equal, and (if any are named) one of `one_of` too."""

    all_of: tuple[str, ...]
    one_of: tuple[str, ...] = ()


_NAME_FIELDS = {
    "organisations": "ORGANISATION_NAME",
    "contacts": "EMAIL_ADDRESS",
    "leads": "EMAIL",
    "opportunities": "OPPORTUNITY_NAME",
    "projects": "PROJECT_NAME",
    "users": "EMAIL_ADDRESS",
    "pipelines": "PIPELINE_NAME",
    "pipeline_stages": "STAGE_NAME",
    "lead_sources": "LEAD_SOURCE",
    "lead_statuses": "LEAD_STATUS",
    "opportunity_categories": "CATEGORY_NAME",
    "opportunity_state_reasons": "STATE_REASON",
    "project_categories": "CATEGORY_NAME",
    "task_categories": "CATEGORY_NAME",
}
# The per-record collections `export --with` reads, and the types whose records have them:
# GET /{endpoint}/{id}/{Sub} in the swagger (docs/api.md §2.2); links: every linkable type.
_SUB_COLLECTIONS = {
    "comments": ("emails", "notes", "tasks", "tickets"),
    "emails": ("contacts", "leads", "opportunities", "organisations", "projects"),
    "files": (
        "contacts",
        "emails",
        "leads",
        "notes",
        "opportunities",
        "organisations",
        "projects",
    ),
    "state_history": ("opportunities",),
}
_PERSON = ("FIRST_NAME", "LAST_NAME")
_FACTS: dict[str, dict[str, Any]] = {  # beyond the fields: see ObjectType
    "contacts": dict(
        link_name="Contact",
        linkable=True,
        identity="EMAIL_ADDRESS",
        duplicate_rule=DuplicateRule(_PERSON, ("EMAIL_ADDRESS", "PHONE", "ORGANISATION_ID")),
    ),
    "organisations": dict(
        link_name="Organisation",
        linkable=True,
        identity="ORGANISATION_NAME",
        duplicate_rule=DuplicateRule(("ORGANISATION_NAME",)),
    ),
    "opportunities": dict(
        pipeline_flag="FOR_OPPORTUNITIES",
        states=OPPORTUNITY_STATES,
        link_name="Opportunity",
        linkable=True,
        duplicate_rule=DuplicateRule(("OPPORTUNITY_NAME",)),
    ),
    "projects": dict(
        pipeline_flag="FOR_PROJECTS",
        link_name="Project",
        linkable=True,
        duplicate_rule=DuplicateRule(("PROJECT_NAME",)),
    ),
    "leads": dict(
        link_name="Lead",
        identity="EMAIL",
        duplicate_rule=DuplicateRule(_PERSON, ("EMAIL", "PHONE", "ORGANISATION_NAME")),
    ),
    "tasks": dict(link_name="Task", linkable=True),
    "events": dict(link_name="Event", linkable=True),
    "emails": dict(link_name="Email", linkable=True),
    "notes": dict(link_name="Note", linkable=True, under_parent=True),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # string | integer | number | boolean | date-time | array | object
    max_length: int | None = None
    read_only: bool = False
    items: str | None = None  # nested schema name of an array
    required: bool = False  # on create (swagger `required`, minus server-set entries)


@dataclass(frozen=True)
class ObjectType:
    name: str  # snake_case, as on the command line: contacts, pipeline_stages, …
    endpoint: str  # as in the URL: Contacts, PipelineStages, Product, …
    id_field: str | None
    fields: tuple[Field, ...]
    searchable: bool = False  # GET /{endpoint}/Search (field_name/field_value, updated_after_utc)
    brief: bool = False  # accepts brief=true
    creatable: bool = False  # POST /{endpoint}
    updatable: bool = False  # PUT /{endpoint}
    custom: bool = False  # a custom object of the account (`Site__c`), not a standard one
    # pipeline and stage change through PUT /{endpoint}/{id}/Pipeline and /PipelineStage
    # (docs/api.md §2.1); the flag a pipeline carries when it is for this type. Leads have the
    # routes in the 2025 swagger but no PIPELINE_ID in their schema.
    pipeline_flag: str | None = None
    states: tuple[str, ...] = ()  # changed, with a reason, through …/{id}/StateChange
    link_name: str | None = None  # how links name the type ("Contact", not "Contacts", §2.2)
    linkable: bool = False  # GET/POST /{endpoint}/{id}/Links (the 2025 swagger dropped Leads')
    identity: str | None = None  # the field that names a record: one record per value, by custom
    duplicate_rule: DuplicateRule | None = None  # Insightly's own importer's
    under_parent: bool = False  # created only under a record: POST /{Parent}/{id}/{endpoint}
    name_field: str | None = None  # how people name a record: what a lookup matches by default
    sub_collections: frozenset[str] = frozenset()  # what `export --with` reads per record

    @property
    def pipelined(self) -> bool:
        return self.pipeline_flag is not None

    @property
    def singular(self) -> str:
        """One record's name in a message: `opportunity`, `pipeline stage`, `Site__c`."""
        if self.custom:
            return self.name
        words = self.name.replace("_", " ")
        if words.endswith("ies"):
            return words[:-3] + "y"  # opportunities, categories
        if words.endswith(("uses", "sses", "xes")):
            return words[:-2]  # statuses, addresses
        return words.removesuffix("s")

    @property
    def has_custom_fields(self) -> bool:
        return any(f.name == "CUSTOMFIELDS" for f in self.fields)

    @property
    def updated_field(self) -> str | None:
        return (
            "DATE_UPDATED_UTC" if any(f.name == "DATE_UPDATED_UTC" for f in self.fields) else None
        )

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def is_writable(self, f: Field) -> bool:
        return not (
            f.read_only
            or f.name == self.id_field
            or f.name in SERVER_SET
            or f.name in NOT_IN_BODY
            or f.name == "CUSTOMFIELDS"
        )


# name, endpoint, searchable, brief, creatable, updatable
_TABLE: list[tuple[str, str, bool, bool, bool, bool]] = [
    ("contacts", "Contacts", True, True, True, True),
    ("organisations", "Organisations", True, True, True, True),
    ("leads", "Leads", True, True, True, True),
    ("opportunities", "Opportunities", True, True, True, True),
    ("projects", "Projects", True, True, True, True),
    ("tasks", "Tasks", True, True, True, True),
    ("events", "Events", True, True, True, True),
    ("notes", "Notes", True, True, False, True),  # created under a parent record
    ("pipelines", "Pipelines", False, False, False, False),
    ("pipeline_stages", "PipelineStages", False, False, False, False),
    ("users", "Users", False, False, False, False),
    ("lead_sources", "LeadSources", False, False, False, False),
    ("lead_statuses", "LeadStatuses", False, False, False, False),
    ("opportunity_categories", "OpportunityCategories", False, False, False, False),
    ("project_categories", "ProjectCategories", False, False, False, False),
    ("task_categories", "TaskCategories", False, False, False, False),
    ("products", "Product", True, True, True, True),
    ("pricebooks", "Pricebook", True, True, True, True),
    ("quotations", "Quotation", True, True, True, True),
    ("countries", "Countries", False, False, False, False),
    ("currencies", "Currencies", False, False, False, False),
    ("emails", "Emails", True, True, False, False),
    ("milestones", "Milestones", True, True, False, False),
    ("pricebook_entries", "PricebookEntry", True, True, False, False),
    ("opportunity_line_items", "OpportunityLineItem", True, True, False, False),
    ("quotation_line_items", "QuotationLineItem", True, True, False, False),
    ("prospects", "Prospect", True, True, False, False),
    ("tickets", "Ticket", True, True, False, False),
    ("file_categories", "FileCategories", False, False, False, False),
    ("opportunity_state_reasons", "OpportunityStateReasons", False, False, False, False),
    ("relationships", "Relationships", False, False, False, False),
    ("teams", "Teams", False, True, False, False),
    ("team_members", "TeamMembers", False, False, False, False),
    # fields from the swagger's answer schemas (reference/swagger-objects.json); Service and
    # Marketing add-ons: accounts without them answer 403/404, and the export skips them
    ("activity_sets", "ActivitySets", False, True, False, False),
    ("document_templates", "DocumentTemplates", True, True, False, False),
    ("knowledge_articles", "KnowledgeArticle", True, True, False, False),
    ("knowledge_article_categories", "KnowledgeArticleCategory", True, True, False, False),
    ("knowledge_article_folders", "KnowledgeArticleFolder", True, True, False, False),
    ("forum_categories", "ForumCategories", True, True, False, False),
    ("community_forums", "CommunityForums", True, True, False, False),
    ("community_posts", "CommunityPosts", True, True, False, False),
    ("community_comments", "CommunityComments", True, True, False, False),
    ("marketing_visits", "MarketingVisits", False, False, False, False),
]

# Leads get the instance's default source/status and tasks default their owner to the caller
# (docs/api.md §2.1), so these swagger `required` entries are not create-time requirements.
_NOT_REQUIRED = frozenset({"LEAD_SOURCE_ID", "LEAD_STATUS_ID", "OWNER_USER_ID"})

CUSTOM_FIELDS = "custom_fields"  # the pseudo-object of custom-field definitions
CUSTOM_OBJECTS = "custom_objects"  # the pseudo-object of custom-object definitions


def _fields(ref: dict[str, Any]) -> tuple[Field, ...]:
    required = set(ref.get("swagger_required", [])) - SERVER_SET - _NOT_REQUIRED
    return tuple(
        Field(
            name=f["name"],
            type=f["type"],
            max_length=f.get("max_length"),
            read_only=bool(f.get("read_only")),
            items=f.get("items"),
            required=f["name"] in required and not f.get("read_only"),
        )
        for f in ref["fields"]
    )


def _build() -> dict[str, ObjectType]:
    objects = load_reference()["objects"]
    registry: dict[str, ObjectType] = {}
    for name, endpoint, searchable, brief, creatable, updatable in _TABLE:
        ref = objects[endpoint]
        registry[name] = ObjectType(
            name=name,
            endpoint=endpoint,
            id_field=ref["id_field"],
            fields=_fields(ref),
            searchable=searchable,
            brief=brief,
            creatable=creatable,
            updatable=updatable,
            name_field=_NAME_FIELDS.get(name),
            sub_collections=frozenset(
                {s for s, parents in _SUB_COLLECTIONS.items() if name in parents}
                | ({"links"} if _FACTS.get(name, {}).get("linkable") else set())
            ),
            **_FACTS.get(name, {}),
        )
    return registry


OBJECTS: dict[str, ObjectType] = _build()
LINKABLE = tuple(sorted(n for n, o in OBJECTS.items() if o.linkable))  # for messages
LINKED_TO = tuple(n for n, o in OBJECTS.items() if o.link_name)  # for messages


# A custom object's API name (docs/api.md §3): letters, digits and underscores, ending in __c.
# Anything else is refused before it reaches a URL or a file name.
_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,60}__c$")


def is_custom_object_name(name: str) -> bool:
    return name.strip().lower().endswith("__c")


def custom_object(name: str) -> ObjectType:
    """A custom object's records, `/{Name__c}` (docs/api.md §2, CustomObjectRecords): RECORD_ID,
    RECORD_NAME (required), owner, visibility, dates and CUSTOMFIELDS; listed, searched and
    written like the standard objects. Which custom objects exist is the account's business:
    `GET /CustomObjects`. The name is kept as written (the API ignores the case of paths)."""
    name = name.strip()
    name = name[:-3] + "__c" if name.lower().endswith("__c") else name  # Site__C is Site__c
    if not _CUSTOM_NAME.match(name):
        raise InputError(
            f"{name!r} is not a custom object name",
            hint="Custom objects are named by their API name: letters, digits and _, "
            "ending in __c (e.g. Site__c).",
        )
    ref = load_reference()["objects"]["CustomObjectRecords"]
    return ObjectType(
        name=name,
        endpoint=name,
        id_field=ref["id_field"],
        fields=_fields(ref),
        searchable=True,
        brief=True,
        creatable=True,
        updatable=True,
        custom=True,
        name_field="RECORD_NAME",
    )


# Words people use for Insightly's object types (other CRMs', US spelling).
_SYNONYMS = {
    "people": "contacts",
    "persons": "contacts",
    "companies": "organisations",
    "accounts": "organisations",
    "deals": "opportunities",
}


def _aliases() -> dict[str, str]:
    """US spellings and singulars of every object name, and a few synonyms."""
    out: dict[str, str] = dict(_SYNONYMS)
    for name in OBJECTS:
        for form in (name, name.replace("organisation", "organization")):
            out[form] = name
            last = form.split("_")[-1]
            single = (
                last[:-3] + "y"
                if last.endswith("ies")
                else last[:-2]
                if last.endswith("ses")
                else last.removesuffix("s")
            )
            out[form[: len(form) - len(last)] + single] = name
    return out


def get_object(name: str) -> ObjectType:
    """Look an object type up by its snake_case name, its endpoint name (any case), a US
    spelling or a singular (`organization`, `contact`); else say which was meant."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if is_custom_object_name(name):
        return custom_object(name)
    if key in OBJECTS:
        return OBJECTS[key]
    for obj in OBJECTS.values():
        if obj.endpoint.lower() == key:
            return obj
    aliases = _aliases()
    if key in aliases:
        return OBJECTS[aliases[key]]
    close = difflib.get_close_matches(key, [*OBJECTS, *aliases], n=1, cutoff=0.75)
    meant = (aliases.get(close[0], close[0])) if close else None
    raise InputError(
        f"unknown object type {name!r}" + (f"; did you mean {meant!r}?" if meant else ""),
        hint="Known object types: "
        + ", ".join(OBJECTS)
        + f", {CUSTOM_FIELDS}, {CUSTOM_OBJECTS}, and the account's custom objects by their "
        "API name (Site__c).",
    )


def custom_field_metadata_fields() -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = load_reference()["nested"]["APICustomFieldMetadata"]["fields"]
    return fields


def custom_object_fields() -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = load_reference()["objects"]["CustomObjects"]["fields"]
    return fields


def nested_schema(name: str) -> list[dict[str, Any]]:
    """The fields of a nested item (`APILinkDto`); one the reference lists only as an object of
    its own (`APITeamMember` is a TeamMembers record) comes from there."""
    reference = load_reference()
    nested = reference["nested"].get(name) or reference["objects"].get(
        name.removeprefix("API") + "s", {"fields": []}
    )
    fields: list[dict[str, Any]] = nested["fields"]
    return fields


MAX_ID = 2**63 - 1  # ids are 64-bit integers: beyond, no column or checkpoint holds one


def record_id(record: dict[str, Any], id_field: str) -> int | None:
    """A record's id as a positive 64-bit integer, or None when the server gave something
    else (a fraction, NaN, a number past 64 bits, a word, true)."""
    value = record.get(id_field)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 < number <= MAX_ID else None


# a field's API name as Insightly makes them (Customer_Tier__c): a letter, then letters,
# digits and _. Nothing else is a column: a name beginning `_` would be one of the lake's own
# (`_op`, `_high_water_mark`), and a path's or a formula's characters have no place in one.
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FIELD_NAME_MAX = 128  # characters: Insightly's are a label's few words


def usable_definitions(
    obj: ObjectType, definitions: list[Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The custom field definitions that can be columns beside the standard fields, and why
    each other one cannot: a definition without a FIELD_NAME, one not named as Insightly names
    fields (ASCII letters, digits and _, a letter first, at most 128), one whose FIELD_TYPE is
    not text, one named like a standard field (Insightly names custom fields `…__c`; a column
    of that name would be two), or one listed again (case aside: Delta tables and
    spreadsheets do not tell EMAIL from email)."""
    taken = {f.name.casefold() for f in obj.fields}
    kept: list[dict[str, Any]] = []
    left: list[str] = []
    definitions, others = _own_definitions(obj, definitions)
    if others:
        left.append(f"CustomFields/{obj.endpoint}: {others} definitions of other objects")
    for d in definitions:
        name = d.get("FIELD_NAME") if isinstance(d, dict) else None
        kind = d.get("FIELD_TYPE") if isinstance(d, dict) else None
        if not isinstance(name, str) or not name.strip():
            left.append(f"CustomFields/{obj.endpoint}: a definition without a FIELD_NAME")
        elif not _FIELD_NAME.fullmatch(name):
            left.append(
                f"CustomFields/{obj.endpoint}: the custom field {name[:60]!r}"
                + ("…" if len(name) > 60 else "")
                + " is not named as Insightly names fields (letters, digits and _, a letter "
                "first)"
            )
        elif len(name) > _FIELD_NAME_MAX:
            left.append(
                f"CustomFields/{obj.endpoint}: the custom field {name[:60]!r}… is named in "
                f"{len(name):,} characters, more than {_FIELD_NAME_MAX}"
            )
        elif kind is not None and not isinstance(kind, str):
            left.append(
                f"CustomFields/{obj.endpoint}: the custom field {name!r} has a FIELD_TYPE "
                f"that is no type's name ({str(kind)[:40]})"
            )
        elif name.casefold() in taken:
            standard = any(f.name.casefold() == name.casefold() for f in obj.fields)
            why = "the name of a standard field" if standard else "the name of an earlier one"
            left.append(f"CustomFields/{obj.endpoint}: the custom field {name!r} has {why}")
        else:
            taken.add(name.casefold())
            kept.append(d)
    return kept, left


def _own_definitions(obj: ObjectType, definitions: list[Any]) -> tuple[list[Any], int]:
    """The definitions of `obj` alone, and how many others there were. The real API answers
    an object name it does not know (or of a type that cannot have custom fields) with every
    object's definitions (docs/api.md §3): a definition whose FIELD_FOR (upper-case singular:
    CONTACT, SITE__C) names another object, or another than this one's when the answer
    names several, is no column of this one."""

    def named(d: Any) -> str | None:
        for_ = d.get("FIELD_FOR") if isinstance(d, dict) else None
        return for_.casefold() if isinstance(for_, str) else None

    own = (obj.link_name or obj.endpoint).casefold()
    # the names other objects go by in FIELD_FOR; one not among them (a form not recorded)
    # is kept: this object's answer, whatever it calls the object
    others = {
        (o.link_name or o.endpoint).casefold() for o in OBJECTS.values() if o.name != obj.name
    } - {own}
    fors = {f for d in definitions if (f := named(d)) is not None}
    if len(fors) > 1:  # several objects': only ours, however they are named
        others |= fors - {own}
    mine = [d for d in definitions if named(d) not in others]
    return mine, len(definitions) - len(mine)


def custom_values(record: dict[str, Any]) -> dict[str, Any]:
    """A record's custom fields as {FIELD_NAME: FIELD_VALUE} (they travel as a list of pairs)."""
    pairs = record.get("CUSTOMFIELDS")
    if not isinstance(pairs, list):  # none, or a server's other shape (counted by the export)
        return {}
    return {str(c.get("FIELD_NAME")): c.get("FIELD_VALUE") for c in pairs if isinstance(c, dict)}
