"""The sandbox account: records per collection, in memory, optionally persisted to SQLite.
Section numbers (§N) are those of docs/api.md.

Records are kept in id order (ids only grow, so appending keeps the order); each record's JSON
text is cached so a 500-record page is a join of cached bytes, not 500 encodes.
With a state file every write goes through to SQLite at once, so the account (and the day's
request count) survives a restart or a killed server.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from insightly_etl.sandbox.model import (
    DATE_FMT,
    NOTE_PARENTS,
    Spec,
    WriteRejected,
    build_specs,
    coerce_custom,
    coerce_integer,
    coerce_standard,
    custom_object_spec,
)

Record = dict[str, Any]


# a date's or an e-mail domain's id field, and what an item the body leaves out of it holds
# (the swagger's APIDate and APIEmailDomain)
_NESTED: dict[str, tuple[str, dict[str, Any]]] = {
    "DATES": (
        "DATE_ID",
        {
            "OCCASION_NAME": None,
            "OCCASION_DATE": None,
            "REPEAT_YEARLY": False,
            "CREATE_TASK_YEARLY": False,
        },
    ),
    "EMAILDOMAINS": ("EMAIL_DOMAIN_ID", {"EMAIL_DOMAIN": None}),
}


class SeedError(ValueError):
    """The seed (or --generate) asks for something the account cannot hold."""


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class Collection:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.records: dict[Any, Record] = {}
        self.ids: list[Any] = []
        self.next_id = 1
        self._json: dict[int, bytes] = {}
        self._brief: dict[int, bytes] = {}
        # the recorded shape (docs/api.md §10): a custom field without a value is left out of
        # CUSTOMFIELDS (a contact listed 4 of its 10; a create answers `[]`). The record keeps
        # every field; only its answers leave them out.
        self.omit_unset_custom = False

    def put(self, record: Record) -> None:
        rid = record[self.spec.id_field]
        if rid not in self.records:
            # ids only grow, so appending keeps id order; Countries/Currencies are keyed by name
            if isinstance(rid, int) and self.ids and rid < self.ids[-1]:
                bisect.insort(self.ids, rid)
            else:
                self.ids.append(rid)
        self.records[rid] = record
        if isinstance(rid, int):
            self.next_id = max(self.next_id, rid + 1)
        self._json.pop(rid, None)
        self._brief.pop(rid, None)

    def remove(self, rid: int) -> None:
        del self.records[rid]
        del self.ids[bisect.bisect_left(self.ids, rid)]
        self._json.pop(rid, None)
        self._brief.pop(rid, None)

    def omit_unset(self, on: bool) -> None:
        """Answer in the recorded shape (unset custom fields left out) or the complete one."""
        self.omit_unset_custom = on
        self._json.clear()

    def json_of(self, rid: int, *, brief: bool = False) -> bytes:
        cache = self._brief if brief else self._json
        data = cache.get(rid)
        if data is None:
            record = self.records[rid]
            if brief:
                arrays = self.spec.array_fields
                record = {k: v for k, v in record.items() if k not in arrays}
            elif self.omit_unset_custom and record.get("CUSTOMFIELDS"):
                record = dict(record)
                record["CUSTOMFIELDS"] = [
                    c for c in record["CUSTOMFIELDS"] if c.get("FIELD_VALUE") is not None
                ]
            data = cache[rid] = dumps(record)
        return data

    def etag_of(self, rid: int) -> str:
        return '"' + hashlib.sha1(self.json_of(rid)).hexdigest()[:20] + '"'


# What recorded answers hold where a record has no value (docs/api.md §10: the leads of a
# live account carry `EMAIL: ""`, `LEAD_DESCRIPTION: ""`, `EMPLOYEE_COUNT: 0` and
# `CONVERTED: false`, contacts and leads `EMAIL_OPTED_OUT: false`; every other unset field
# is null). ASSUMPTION (§11): the server fills these when a record is made, so they hold on
# every record, seeded or created; a PUT that clears one stores null.
SERVER_DEFAULTS: dict[str, dict[str, Any]] = {
    "Leads": {
        "EMAIL": "",
        "LEAD_DESCRIPTION": "",
        "EMPLOYEE_COUNT": 0,
        "CONVERTED": False,
        "EMAIL_OPTED_OUT": False,
    },
    "Contacts": {"EMAIL_OPTED_OUT": False},
}


class Account:
    """One Insightly instance: its collections, custom-field definitions and users."""

    def __init__(
        self,
        *,
        custom_fields: dict[str, list[dict[str, Any]]],
        instance: dict[str, Any],
        now: Callable[[], datetime] | None = None,
        put_customfields: str = "merge",
        writes: str = "lenient",
        shape: str = "recorded",
    ) -> None:
        self.specs = build_specs()
        self.collections = {name: Collection(spec) for name, spec in self.specs.items()}
        self.search_ignores_case = False
        self.custom_objects: list[dict[str, Any]] = []  # GET /CustomObjects, from the seed
        self.state_history: dict[int, list[dict[str, Any]]] = {}  # opportunity id -> changes
        # FILE_ID -> APIFileAttachment + PARENT_OBJECT / PARENT_ID (collection, record id)
        self.attachments: dict[int, dict[str, Any]] = {}
        # COMMENT_ID -> comment + PARENT_OBJECT / PARENT_ID (Emails, Notes, Tasks, Ticket)
        self.comments: dict[int, dict[str, Any]] = {}
        # LINK_ID, DATE_ID, EMAIL_DOMAIN_ID: the last given (from the records when first needed)
        self._nested_ids: dict[str, int] = {}
        self.custom_fields = custom_fields
        self.instance = instance
        self.now = now or (lambda: datetime.now(UTC))
        # ASSUMPTION (docs/api.md §3): a PUT changes only the custom fields it lists ("merge").
        # "replace" imitates older API versions, where a PUT erased every sub-element it left
        # out, so the loader can be tested against both.
        self.put_customfields = put_customfields
        self.writes = writes  # lenient | strict (see _apply)
        self.shape = shape  # recorded (docs/api.md §10) | complete (every field, null when unset)
        self._db: sqlite3.Connection | None = None
        self._autonumber: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def define_custom_objects(self, definitions: list[dict[str, Any]]) -> None:
        """The account's custom objects (from its seed or state): each a collection of its own."""
        for definition in definitions:
            name = definition.get("OBJECT_NAME")
            if not isinstance(name, str) or not name.endswith("__c") or name in self.specs:
                raise SeedError(f"custom object {name!r}: OBJECT_NAME must be a new Name__c")
            self.specs[name] = custom_object_spec(name)
            self.collections[name] = Collection(self.specs[name])
            self.custom_objects.append(definition)

    def collection_named(self, join_object: Any) -> str | None:
        """The collection a lookup field's JOIN_OBJECT names: a singular as in links
        (`Organisation`) or a custom object's name (`Site__c`), any case. ASSUMPTION
        (docs/api.md §3: lookup fields are not seen live): that is how JOIN_OBJECT names it."""
        key = str(join_object or "").strip().lower()
        for name, spec in self.specs.items():
            if key in (name.lower(), spec.singular.lower()):
                return name
        return None

    def timestamp(self) -> str:
        return self.now().astimezone(UTC).strftime(DATE_FMT)

    def definitions(self, collection: str) -> list[dict[str, Any]]:
        return self.custom_fields.get(collection, [])

    def me(self) -> Record:
        users = self.collections["Users"]
        return users.records[users.ids[0]]

    def blank(self, spec: Spec) -> Record:
        record: Record = {}
        for info in spec.fields.values():
            record[info.name] = [] if info.type == "array" else None
        if "VISIBLE_TO" in spec.fields:
            record["VISIBLE_TO"] = "EVERYONE"
        if spec.has_custom_fields:
            record["CUSTOMFIELDS"] = self._render_custom(spec.name, {})
        return record

    def complete(self, spec: Spec, sparse: Record) -> Record:
        """A seed/generated record with every standard field present (null or [])."""
        record = self.blank(spec)
        record.update({k: v for k, v in sparse.items() if k in spec.fields})
        if spec.has_custom_fields:
            given = {c["FIELD_NAME"]: c.get("FIELD_VALUE") for c in sparse.get("CUSTOMFIELDS", [])}
            record["CUSTOMFIELDS"] = self._render_custom(spec.name, given)
        self._server_defaults(spec, record)
        return record

    def _server_defaults(self, spec: Spec, record: Record) -> None:
        if self.shape != "recorded":
            return
        for name, value in SERVER_DEFAULTS.get(spec.name, {}).items():
            if record.get(name) is None:
                record[name] = value

    def _render_custom(self, collection: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        # Every defined field is listed, null when unset, like the live custom-object sample
        # (docs/api.md §3; whether unset fields are ever omitted is uncertain).
        return [
            {
                "FIELD_NAME": d["FIELD_NAME"],
                "FIELD_VALUE": values.get(d["FIELD_NAME"]),
                "CUSTOM_FIELD_ID": d["FIELD_NAME"],
            }
            for d in self.definitions(collection)
        ]

    # ------------------------------------------------------------------ loading
    def load(self, collection: str, records: Iterable[Record]) -> None:
        coll = self.collections[collection]
        for sparse in records:
            coll.put(self.complete(coll.spec, sparse))

    # ------------------------------------------------------------------ reads
    def search(
        self,
        collection: str,
        *,
        field_name: str | None = None,
        field_value: str | None = None,
        updated_after: str | None = None,
    ) -> list[int]:
        coll = self.collections[collection]
        ids = coll.ids
        if updated_after is not None:
            # Strictly after (docs/api.md §4, Airbyte #26079); same format compares as text.
            ids = [
                i for i in ids if (coll.records[i].get("DATE_UPDATED_UTC") or "") > updated_after
            ]
        if field_name is not None:
            # ASSUMPTION (§11): whether Insightly's search ignores case is not documented and no
            # recorded answer shows it; exact by default, `search_ignores_case` for the other
            # reading. The importer must be right either way (it probes; load/plan.py).
            def fold(text: Any) -> Any:
                return text.casefold() if self.search_ignores_case and text else text

            wanted = fold(field_value)
            if field_name.endswith("__c"):
                ids = [
                    i
                    for i in ids
                    if fold(_text(_custom_value(coll.records[i], field_name))) == wanted
                ]
            else:
                ids = [i for i in ids if fold(_text(coll.records[i].get(field_name))) == wanted]
        return ids

    # ------------------------------------------------------------------ writes
    def create(
        self, collection: str, body: Any, *, parent: tuple[str, int] | None = None
    ) -> Record:
        spec = self.specs[collection]
        if not isinstance(body, dict):
            raise WriteRejected("The request body must be a JSON object.")
        record = self.blank(spec)
        now = self.timestamp()
        links = self._apply(spec, record, body, creating=True)
        for name in spec.required:
            if record.get(name) is None or record.get(name) == "":
                raise WriteRejected(f"The {name} field is required.")
        coll = self.collections[collection]
        record[spec.id_field] = coll.next_id
        if "DATE_CREATED_UTC" in spec.fields:
            record["DATE_CREATED_UTC"] = now
        if "DATE_UPDATED_UTC" in spec.fields:
            record["DATE_UPDATED_UTC"] = now
        me = self.me()["USER_ID"]
        if "CREATED_USER_ID" in spec.fields:
            record["CREATED_USER_ID"] = me
        if "OWNER_USER_ID" in spec.fields and record.get("OWNER_USER_ID") is None:
            record["OWNER_USER_ID"] = me
        if collection == "Leads":
            self._lead_defaults(record)
        self._server_defaults(spec, record)
        if collection == "Opportunities" and not record.get("OPPORTUNITY_STATE"):
            # ASSUMPTION (§11): a new deal is open (the seed's case)
            record["OPPORTUNITY_STATE"] = "OPEN"
        if spec.has_custom_fields:
            self._assign_autonumbers(collection, record)
        if parent is not None:
            link_id = self._next_link_id()
            record["LINKS"] = [self._link(spec, record[spec.id_field], *parent, link_id=link_id)]
        coll.put(record)
        self._persist(collection, record)
        if links is not None:  # beside the parent's link, which the body does not name
            kept = [{"LINK_ID": lk["LINK_ID"]} for lk in record.get("LINKS") or []]
            return self._replace_links(collection, record[spec.id_field], [*kept, *links])
        return record

    def update(self, collection: str, body: Any) -> Record:
        spec = self.specs[collection]
        if not isinstance(body, dict):
            raise WriteRejected("The request body must be a JSON object.")
        rid = body.get(spec.id_field)
        if rid is None:
            raise WriteRejected(f"The {spec.id_field} field is required.")
        rid = coerce_integer(rid, spec.id_field)
        coll = self.collections[collection]
        if rid not in coll.records:
            raise KeyError(rid)
        record = json.loads(coll.json_of(rid))  # a copy: a refused write changes nothing
        links = self._apply(spec, record, body, creating=False)
        for name in spec.required:
            if name in body and record.get(name) in (None, ""):
                raise WriteRejected(f"The {name} field is required.")
        if "DATE_UPDATED_UTC" in spec.fields:
            record["DATE_UPDATED_UTC"] = self.timestamp()
        coll.put(record)
        self._persist(collection, record)
        if links is not None:
            return self._replace_links(collection, rid, links)
        return record

    def copy_of(self, collection: str, rid: int) -> Record:
        """A new record like `rid` (a colleague's create, for `list_churn`): next id, now."""
        coll = self.collections[collection]
        record = json.loads(coll.json_of(rid))
        record[coll.spec.id_field] = coll.next_id
        for stamp in ("DATE_CREATED_UTC", "DATE_UPDATED_UTC"):
            if stamp in coll.spec.fields:
                record[stamp] = self.timestamp()
        coll.put(record)
        self._persist(collection, record)
        return record

    def delete(self, collection: str, rid: int) -> None:
        coll = self.collections[collection]
        if rid not in coll.records:
            raise KeyError(rid)
        coll.remove(rid)
        if self._db is not None:
            self._db.execute("DELETE FROM records WHERE collection=? AND id=?", (collection, rid))
            self._db.commit()

    def _apply(
        self, spec: Spec, record: Record, body: dict[str, Any], *, creating: bool
    ) -> list[dict[str, Any]] | None:
        """The body's fields onto `record`; the links it gives (None: it gives none), made
        once the record is stored (they are mirrored on the records they name)."""
        links = None
        for name, value in body.items():
            if name == "CUSTOMFIELDS" and spec.has_custom_fields:
                self._apply_custom(spec, record, value)
                continue
            info = spec.fields.get(name)
            if info is None:
                continue  # JSON.NET ignores unknown members (ASSUMPTION, docs/api.md §5)
            if name == spec.id_field and not creating:
                continue
            if not spec.is_writable_field(name):
                # ASSUMPTION, lenient (default): read-only and server-set fields in a body are
                # ignored — public clients send DATE_CREATED_UTC, IMAGE_URL, OPPORTUNITY_VALUE
                # and a v2 report shows them silently dropped (docs/api.md §5). Strict refuses.
                if value is None or self.writes == "lenient":
                    continue
                raise WriteRejected(f"The field {name} is read-only and cannot be set.")
            if name == "LINKS" and info.type == "array":
                links = self._body_links(value)
                continue
            if info.type == "array":
                record[name] = self._nested(name, value, record.get(name) or [])
                continue
            coerced = coerce_standard(info, value, iso=self.writes == "lenient")
            target = spec.references.get(name)
            if coerced is not None and target and coerced not in self.collections[target].records:
                raise WriteRejected(f"{name} {coerced} does not refer to an existing record.")
            record[name] = coerced
        return links

    def _apply_custom(self, spec: Spec, record: Record, value: Any) -> None:
        if not isinstance(value, list):
            raise WriteRejected("CUSTOMFIELDS must be an array of {FIELD_NAME, FIELD_VALUE}.")
        definitions = {d["FIELD_NAME"]: d for d in self.definitions(spec.name)}
        given: dict[str, Any] = {}
        for item in value:
            # answers carry the name twice (CUSTOM_FIELD_ID is FIELD_NAME, docs/api.md §2);
            # a client may send either
            name = (
                str(item.get("FIELD_NAME") or item.get("CUSTOM_FIELD_ID") or "")
                if isinstance(item, dict)
                else ""
            )
            if name not in definitions:
                raise WriteRejected(f"Custom field '{name}' does not exist for {spec.singular}.")
            given[name] = coerce_custom(
                definitions[name], item.get("FIELD_VALUE"), iso=self.writes == "lenient"
            )
            if definitions[name].get("FIELD_TYPE") == "LOOKUP" and given[name] is not None:
                # a lookup names an existing record of its JOIN_OBJECT, like any id
                # (ASSUMPTION, §11)
                join = definitions[name].get("JOIN_OBJECT")
                target = self.collection_named(join)
                if target is None or given[name] not in self.collections[target].records:
                    raise WriteRejected(
                        f"Custom field {name}: {join} {given[name]} does not exist."
                    )
        current = {c["FIELD_NAME"]: c.get("FIELD_VALUE") for c in record["CUSTOMFIELDS"]}
        if self.put_customfields == "replace":
            # what the body leaves out is erased; autonumbers stay (no client writes them)
            current = {
                name: value
                for name, value in current.items()
                if definitions.get(name, {}).get("FIELD_TYPE") == "AUTONUMBER"
            }
        current.update(given)
        record["CUSTOMFIELDS"] = self._render_custom(spec.name, current)

    def _nested(self, name: str, value: Any, current: list[Any]) -> list[dict[str, Any]]:
        # Tags, dates and email domains in a POST/PUT body replace the set ([DOC], §2.2)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise WriteRejected(f"{name} must be an array of objects.")
        if name == "TAGS":
            for tag in value:
                if len(str(tag.get("TAG_NAME") or "")) > 255:
                    raise WriteRejected(
                        "The field TAG_NAME must be a string with a maximum length of 255."
                    )
            return [{"TAG_NAME": t.get("TAG_NAME")} for t in value]
        id_key, shape = _NESTED.get(name, (None, {}))
        mine = {c.get(id_key) for c in current if isinstance(c, dict)} if id_key else set()
        items = []
        for item in value:
            copy = {**shape, **item}
            # an item of this record keeps its id; another is a new one, numbered across the
            # account (ASSUMPTION, docs/api.md §11: as LINK_IDs are; no date is recorded)
            if id_key and copy.get(id_key) not in mine:
                copy[id_key] = self._next_nested_id(id_key)
            items.append(copy)
        return items

    def _next_nested_id(self, id_key: str) -> int:
        """The next id of a record's nested items (links, dates, e-mail domains), counted
        across the account."""
        if id_key not in self._nested_ids:
            self._nested_ids[id_key] = max(
                (
                    item[id_key]
                    for coll in self.collections.values()
                    for r in coll.records.values()
                    for items in r.values()
                    if isinstance(items, list)
                    for item in items
                    if isinstance(item, dict) and isinstance(item.get(id_key), int)
                ),
                default=0,
            )
        self._nested_ids[id_key] += 1
        return self._nested_ids[id_key]

    def _body_links(self, value: Any) -> list[dict[str, Any]]:
        """The links a POST/PUT body gives, each checked as `POST …/Links` checks one (a
        refused write changes nothing): made, kept (an item with one of the record's
        LINK_IDs) or removed (the record's links not among them) once the record is stored."""
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise WriteRejected("LINKS must be an array of objects.")
        for item in value:
            self._link_target(item)
        return value

    def _replace_links(self, collection: str, rid: int, wanted: list[dict[str, Any]]) -> Record:
        record = self.collections[collection].records[rid]
        current = {
            lk["LINK_ID"]
            for lk in record.get("LINKS") or []
            if isinstance(lk, dict) and isinstance(lk.get("LINK_ID"), int)
        }
        kept = {item.get("LINK_ID") for item in wanted} & current
        for link_id in current - kept:
            self.remove_link(collection, rid, link_id)
        for item in wanted:
            if item.get("LINK_ID") in kept:
                self.update_link(collection, rid, item)
            else:
                self.add_link(collection, rid, {k: v for k, v in item.items() if k != "LINK_ID"})
        return self.collections[collection].records[rid]

    def _link(
        self, spec: Spec, rid: int, parent: str, parent_id: int, *, link_id: int
    ) -> dict[str, Any]:
        return {
            "LINK_ID": link_id,
            "OBJECT_NAME": spec.singular,
            "OBJECT_ID": rid,
            "LINK_OBJECT_NAME": self.specs[parent].singular,
            "LINK_OBJECT_ID": parent_id,
            "ROLE": None,
            "DETAILS": None,
            "RELATIONSHIP_ID": None,
            "IS_FORWARD": True,
        }

    def _lead_defaults(self, record: Record) -> None:
        # ASSUMPTION (docs/api.md §2.1): leads without a source/status get the instance defaults.
        for field, coll, flag in (
            ("LEAD_SOURCE_ID", "LeadSources", "DEFAULT_VALUE"),
            ("LEAD_STATUS_ID", "LeadStatuses", "DEFAULT_STATUS"),
        ):
            if record.get(field) is None:
                options = self.collections[coll].records.values()
                default = next((o for o in options if o.get(flag)), None)
                if default is not None:
                    record[field] = default[self.specs[coll].id_field]
        # recorded on a lead made through the API (amp-labs write/leads.json, docs/api.md §10):
        # the API user is responsible for it, and it has a mailbox of its own for e-mail
        # (`…-L78563840-H4PRTS1@mailbox.insight.ly`; the code's making is not known)
        if record.get("RESPONSIBLE_USER_ID") is None:
            record["RESPONSIBLE_USER_ID"] = self.me()["USER_ID"]
        if record.get("LINKED_EMAIL_ADDRESS") is None and "LEAD_ID" in record:
            rid = record["LEAD_ID"]
            code = hashlib.sha256(f"lead {rid}".encode()).hexdigest()[:7].upper()
            box = str(self.instance.get("INSTANCE_SUBDOMAIN") or "sandbox")
            record["LINKED_EMAIL_ADDRESS"] = f"{box}-L{rid}-{code}@mailbox.insight.ly"

    def _assign_autonumbers(self, collection: str, record: Record) -> None:
        for item in record["CUSTOMFIELDS"]:
            definition = next(
                d for d in self.definitions(collection) if d["FIELD_NAME"] == item["FIELD_NAME"]
            )
            if definition["FIELD_TYPE"] == "AUTONUMBER":
                key = f"{collection}.{item['FIELD_NAME']}"
                if key not in self._autonumber:
                    self._autonumber[key] = self._max_autonumber(collection, item["FIELD_NAME"])
                self._autonumber[key] += 1
                item["FIELD_VALUE"] = str(self._autonumber[key])

    def _max_autonumber(self, collection: str, name: str) -> int:
        best = 0
        for record in self.collections[collection].records.values():
            value = _custom_value(record, name)
            if isinstance(value, str) and value.isdigit():
                best = max(best, int(value))
        return best

    # ------------------------------------------------------------------ pipelines and state
    # PUT /{Opportunities|Projects|Leads}/{id}/Pipeline, …/PipelineStage, DELETE …/Pipeline,
    # PUT /Opportunities/{id}/StateChange (docs/api.md §2.1, swagger). A missing record, pipeline
    # or stage is a KeyError (404 "Record, Pipeline or Pipeline Stage not found"); a pipeline
    # for another object type, or a stage of another pipeline, is one too — ASSUMPTION (§11): the
    # swagger lists only 400/404 and its 404 text names all three.
    def change_pipeline(self, collection: str, rid: int, body: Any) -> Record:
        record = self._pipelined(collection, rid)
        if not isinstance(body, dict):
            raise WriteRejected("The request body must be a JSON object.")
        pipeline = self._pipeline_for(collection, body.get("PIPELINE_ID"))
        change = body.get("PIPELINE_STAGE_CHANGE")
        stages = self._stages_of(pipeline)
        if isinstance(change, dict) and change.get("STAGE_ID") is not None:
            stage = self._stage_in(stages, change.get("STAGE_ID"))
        elif stages:  # ASSUMPTION (§11): no stage named: the pipeline's first
            stage = stages[0]["STAGE_ID"]
        else:
            stage = None
        return self._set_fields(collection, record, {"PIPELINE_ID": pipeline, "STAGE_ID": stage})

    def change_stage(self, collection: str, rid: int, body: Any) -> Record:
        record = self._pipelined(collection, rid)
        if not isinstance(body, dict):
            raise WriteRejected("The request body must be a JSON object.")
        if record.get("PIPELINE_ID") is None:
            raise KeyError(rid)  # no pipeline: no stage of it can be found
        stage = self._stage_in(self._stages_of(record["PIPELINE_ID"]), body.get("STAGE_ID"))
        return self._set_fields(collection, record, {"STAGE_ID": stage})

    def clear_pipeline(self, collection: str, rid: int) -> Record:
        record = self._pipelined(collection, rid)
        return self._set_fields(collection, record, {"PIPELINE_ID": None, "STAGE_ID": None})

    def change_state(self, rid: int, body: Any) -> Record:
        record = self._pipelined("Opportunities", rid)
        if not isinstance(body, dict):
            raise WriteRejected("The request body must be a JSON object.")
        state = str(body.get("FOR_OPPORTUNITY_STATE") or body.get("OPPORTUNITY_STATE") or "")
        # ASSUMPTION (docs/api.md §2.1: v3.1 spelling uncertain): the v2.2 states, any case
        known = {s.lower(): s for s in ("Open", "Won", "Lost", "Abandoned", "Suspended")}
        if state.lower() not in known:
            raise WriteRejected(
                f"'{state}' is not an opportunity state (Open, Won, Lost, Abandoned, Suspended)."
            )
        state = known[state.lower()]
        reason_id = body.get("STATE_REASON_ID")
        reason = None
        if reason_id is not None:
            reasons = self.collections["OpportunityStateReasons"].records
            found = reasons.get(coerce_integer(reason_id, "STATE_REASON_ID"))
            if found is None or str(found.get("FOR_OPPORTUNITY_STATE")).lower() != state.lower():
                raise WriteRejected(f"STATE_REASON_ID {reason_id} is not a reason for {state}.")
            reason_id, reason = found["STATE_REASON_ID"], found["STATE_REASON"]
        updated = self._set_fields("Opportunities", record, {"OPPORTUNITY_STATE": state})
        self.state_history.setdefault(rid, []).append(
            {
                "OPPORTUNITY_ID": rid,
                "DATE_CHANGED_UTC": updated["DATE_UPDATED_UTC"],
                "FOR_OPPORTUNITY_STATE": state,
                "STATE_REASON_ID": reason_id,
                "STATE_REASON": reason,
            }
        )
        self.set_meta("state_history", json.dumps(self.state_history))
        return updated

    # ------------------------------------------------------------------ links and tags
    # /{obj}/{id}/Links and /{obj}/{id}/Tags (docs/api.md §2.2, swagger). ASSUMPTIONS, none seen
    # live: a link is mirrored on the linked record (IS_FORWARD false), as the web app shows it
    # on both; LINK_IDs count up per account; adding either moves DATE_UPDATED_UTC (docs/api.md
    # §11).
    def add_link(self, collection: str, rid: int, body: Any) -> dict[str, Any]:
        spec = self.specs[collection]
        record = self._pipelined(collection, rid)
        target, target_id = self._link_target(body)
        target_name = self.specs[target].singular
        link = {
            "LINK_ID": self._next_link_id(),
            "OBJECT_NAME": spec.singular,
            "OBJECT_ID": rid,
            "LINK_OBJECT_NAME": target_name,
            "LINK_OBJECT_ID": target_id,
            "ROLE": body.get("ROLE"),
            "DETAILS": body.get("DETAILS"),
            "RELATIONSHIP_ID": body.get("RELATIONSHIP_ID"),
            "IS_FORWARD": True,
        }
        self._set_fields(collection, record, {"LINKS": [*record.get("LINKS", []), link]})
        other = self._pipelined(target, target_id)
        if "LINKS" in self.specs[target].fields:
            mirror = {
                **link,
                "OBJECT_NAME": target_name,
                "OBJECT_ID": target_id,
                "LINK_OBJECT_NAME": spec.singular,
                "LINK_OBJECT_ID": rid,
                "IS_FORWARD": False,
            }
            self._set_fields(target, other, {"LINKS": [*other.get("LINKS", []), mirror]})
        return link

    def _link_target(self, body: Any) -> tuple[str, int]:
        """The collection and id of the record a link's body names (refused if none)."""
        if not isinstance(body, dict):
            raise WriteRejected("The request body must be a JSON object.")
        target_name = str(body.get("LINK_OBJECT_NAME") or "")
        target = next((n for n, s in self.specs.items() if s.singular == target_name), None)
        if target is None:
            plural = target_name in self.specs
            raise WriteRejected(
                f"LINK_OBJECT_NAME '{target_name}' is not an object"
                + (" (link object names are singular, e.g. Contact)" if plural else "")
                + "."
            )
        target_id = coerce_integer(body.get("LINK_OBJECT_ID"), "LINK_OBJECT_ID")
        if target_id not in self.collections[target].records:
            raise WriteRejected(f"LINK_OBJECT_ID {target_id} does not refer to an existing record.")
        for field in ("ROLE", "DETAILS"):
            if len(str(body.get(field) or "")) > 255:
                raise WriteRejected(
                    f"The field {field} must be a string with a maximum length of 255."
                )
        return target, target_id

    def _next_link_id(self) -> int:
        return self._next_nested_id("LINK_ID")

    def update_link(self, collection: str, rid: int, body: Any) -> dict[str, Any]:
        """`PUT /{obj}/{id}/Links`: a link's ROLE, DETAILS and RELATIONSHIP_ID, by LINK_ID."""
        record = self._pipelined(collection, rid)
        if not isinstance(body, dict) or body.get("LINK_ID") is None:
            raise WriteRejected("The LINK_ID field is required.")
        link_id = coerce_integer(body["LINK_ID"], "LINK_ID")
        links = record.get("LINKS") or []
        found = next((lk for lk in links if lk.get("LINK_ID") == link_id), None)
        if found is None:
            raise KeyError(link_id)
        for field in ("ROLE", "DETAILS"):
            if len(str(body.get(field) or "")) > 255:
                raise WriteRejected(
                    f"The field {field} must be a string with a maximum length of 255."
                )
        found.update({k: body[k] for k in ("ROLE", "DETAILS", "RELATIONSHIP_ID") if k in body})
        self._set_fields(collection, record, {"LINKS": links})
        return found

    def remove_link(self, collection: str, rid: int, link_id: int) -> None:
        record = self._pipelined(collection, rid)
        links = record.get("LINKS") or []
        found = next((lk for lk in links if lk.get("LINK_ID") == link_id), None)
        if found is None:
            raise KeyError(link_id)
        self._set_fields(collection, record, {"LINKS": [lk for lk in links if lk is not found]})
        target = next(
            (n for n, s in self.specs.items() if s.singular == found.get("LINK_OBJECT_NAME")), None
        )
        if target and found.get("LINK_OBJECT_ID") in self.collections[target].records:
            other = self._pipelined(target, found["LINK_OBJECT_ID"])
            kept = [lk for lk in other.get("LINKS") or [] if lk.get("LINK_ID") != link_id]
            self._set_fields(target, other, {"LINKS": kept})

    def set_tags(self, collection: str, rid: int, names: list[str], *, mode: str) -> Record:
        """`add` (POST), `remove` (DELETE) or `replace` (PUT) this record's tags."""
        record = self._pipelined(collection, rid)
        for name in names:
            if len(name) > 255:
                raise WriteRejected(
                    "The field TAG_NAME must be a string with a maximum length of 255."
                )
        current = [t["TAG_NAME"] for t in record.get("TAGS") or []]
        if mode == "add":
            tags = current + [n for n in names if n not in current]
        elif mode == "remove":
            tags = [t for t in current if t not in names]
        else:
            tags = list(dict.fromkeys(names))
        return self._set_fields(collection, record, {"TAGS": [{"TAG_NAME": t} for t in tags]})

    def _pipelined(self, collection: str, rid: int) -> Record:
        coll = self.collections[collection]
        if rid not in coll.records:
            raise KeyError(rid)
        copy: Record = json.loads(coll.json_of(rid))
        return copy

    def _pipeline_for(self, collection: str, value: Any) -> int:
        pid = coerce_integer(value, "PIPELINE_ID") if value is not None else None
        pipeline = self.collections["Pipelines"].records.get(pid)
        flag = {"Opportunities": "FOR_OPPORTUNITIES", "Projects": "FOR_PROJECTS"}.get(collection)
        if pipeline is None or not flag or not pipeline.get(flag):
            raise KeyError(pid)  # lead pipelines: the seed has none (no FOR_LEADS flag, §2)
        return int(pipeline["PIPELINE_ID"])

    def _stages_of(self, pipeline: int) -> list[Record]:
        stages = self.collections["PipelineStages"].records.values()
        mine = [s for s in stages if s.get("PIPELINE_ID") == pipeline]
        return sorted(mine, key=lambda s: (s.get("STAGE_ORDER") or 0, s["STAGE_ID"]))

    def _stage_in(self, stages: list[Record], value: Any) -> int:
        sid = coerce_integer(value, "STAGE_ID") if value is not None else None
        if not any(s["STAGE_ID"] == sid for s in stages):
            raise KeyError(sid)
        return int(sid)  # type: ignore[arg-type]

    def _set_fields(self, collection: str, record: Record, values: dict[str, Any]) -> Record:
        record.update(values)
        record["DATE_UPDATED_UTC"] = self.timestamp()
        self.collections[collection].put(record)
        self._persist(collection, record)
        return record

    # ------------------------------------------------------------------ persistence
    def attach_state(self, path: Path) -> bool:
        """Use `path` as the account's SQLite state. True if it already held an account."""
        try:
            db = sqlite3.connect(path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                " collection TEXT NOT NULL, id INTEGER NOT NULL, body TEXT NOT NULL,"
                " PRIMARY KEY (collection, id))"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:  # no such folder, not writable, not a database
            raise SeedError(
                f"--state {path}: cannot keep the sandbox's state there ({exc})"
            ) from None
        self._db = db
        if "custom_fields" not in meta:
            return False
        self.define_custom_objects(json.loads(meta.get("custom_objects", "[]")))
        self.state_history = {
            int(k): v for k, v in json.loads(meta.get("state_history", "{}")).items()
        }
        self.attachments = {int(k): v for k, v in json.loads(meta.get("attachments", "{}")).items()}
        self.custom_fields = json.loads(meta["custom_fields"])
        self.instance = json.loads(meta["instance"])
        for collection, body in db.execute(
            "SELECT collection, body FROM records ORDER BY collection, id"
        ):
            self.collections[collection].put(json.loads(body))
        return True

    def save_all(self) -> None:
        """Write the whole account to the attached state (after seeding a new one)."""
        assert self._db is not None
        db = self._db
        db.execute("DELETE FROM records")
        for name, coll in self.collections.items():
            db.executemany(
                "INSERT INTO records (collection, id, body) VALUES (?, ?, ?)",
                ((name, rid, coll.json_of(rid).decode()) for rid in coll.ids),
            )
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('custom_fields', ?), ('instance', ?),"
            " ('custom_objects', ?)",
            (
                json.dumps(self.custom_fields),
                json.dumps(self.instance),
                json.dumps(self.custom_objects),
            ),
        )
        db.commit()

    def get_meta(self, key: str) -> str | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------ file attachments
    # GET /{Object}/{id}/FileAttachments and GET /FileAttachments/{id} (docs/api.md §2.2,
    # swagger). ASSUMPTION (§11): the content is not in the seed; it is made from the file's id and
    # name, FILE_SIZE bytes long, the same on every start.
    def attachments_of(self, collection: str, rid: int) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in a.items() if not k.startswith("PARENT_")}
            for _, a in sorted(self.attachments.items())
            if a.get("PARENT_OBJECT") == collection and a.get("PARENT_ID") == rid
        ]

    def comments_of(self, collection: str, rid: int) -> list[dict[str, Any]]:
        """`GET /{Emails|Notes|Tasks|Ticket}/{id}/Comments`. ASSUMPTION (§11): a comment carries its
        BODY and dates, although the swagger's Comment lists only COMMENT_ID and OWNER_USER_ID."""
        return [
            {k: v for k, v in c.items() if not k.startswith("PARENT_")}
            for _, c in sorted(self.comments.items())
            if c.get("PARENT_OBJECT") == collection and c.get("PARENT_ID") == rid
        ]

    def linked_to(
        self, child: str, collection: str, rid: int, ids: Iterable[int] | None = None
    ) -> list[int]:
        """`GET /{Object}/{id}/Notes|Emails|Tasks|Events`: the `child` records (of `ids`,
        else all) linked to the record."""
        singular = self.specs[collection].singular
        records = self.collections[child].records
        return [
            i
            for i in (self.collections[child].ids if ids is None else ids)
            if any(
                lk.get("LINK_OBJECT_NAME") == singular and lk.get("LINK_OBJECT_ID") == rid
                for lk in records[i].get("LINKS") or []
                if isinstance(lk, dict)
            )
        ]

    def attachment_content(self, file_id: int) -> tuple[dict[str, Any], bytes]:
        meta = self.attachments[file_id]  # KeyError: 404
        line = f"{meta.get('FILE_NAME')} #{file_id}\n".encode()
        size = int(meta.get("FILE_SIZE") or 0)
        return meta, (line * (size // len(line) + 1))[:size]

    def set_meta(self, key: str, value: str) -> None:
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
            self._db.commit()

    def _persist(self, collection: str, record: Record) -> None:
        if self._db is not None:
            rid = record[self.specs[collection].id_field]
            self._db.execute(
                "INSERT OR REPLACE INTO records (collection, id, body) VALUES (?, ?, ?)",
                (collection, rid, self.collections[collection].json_of(rid).decode()),
            )
            self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _custom_value(record: Record, name: str) -> Any:
    for item in record.get("CUSTOMFIELDS") or ():
        if item["FIELD_NAME"] == name:
            return item.get("FIELD_VALUE")
    return None


def _text(value: Any) -> str | None:
    """How a stored value reads in a query string, for exact-match search."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = ["NOTE_PARENTS", "Account", "Collection", "Record", "SeedError", "dumps"]
