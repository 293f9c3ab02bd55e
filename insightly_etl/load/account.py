"""What validation needs to know about the account: custom-field definitions and the records
that lookups resolve names against. From the API (one request per object for definitions, one
listing per looked-up object, 500 records a request) or, with no request at all, from an export
directory (`_manifest.json` and its Parquet files)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from insightly_etl.api.client import InsightlyClient
from insightly_etl.api.registry import get_object, record_id
from insightly_etl.errors import ApiError, InputError
from insightly_etl.load.mapping import Mapping

LookupIndex = dict[str, list[int]]  # value as text -> ids of the records that have it


@dataclass
class AccountFacts:
    definitions: list[dict[str, Any]]  # custom fields of the mapped object
    lookups: dict[tuple[str, str], LookupIndex] = field(default_factory=dict)
    requests: int = 0
    # whole small collections that pipeline and state steps are checked against, by object:
    # pipelines, pipeline_stages, opportunity_state_reasons
    references: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def lookups_needed(mapping: Mapping) -> set[tuple[str, str]]:
    rules = [*mapping.columns, *([mapping.parent] if mapping.parent else [])]
    links = {(r.lookup.object, r.lookup.by) for r in mapping.links}
    return links | {(r.lookup.object, r.lookup.by) for r in rules if r.lookup is not None}


def references_needed(mapping: Mapping) -> list[str]:
    """The collections a pipeline, stage or state change is checked against (a few requests)."""
    fields = {r.field for r in mapping.columns} | set(mapping.defaults)
    obj = get_object(mapping.object)
    out = []
    if obj.pipelined and (mapping.identity or fields & {"PIPELINE_ID", "STAGE_ID"}):
        out += ["pipelines", "pipeline_stages"]
    if obj.states and (mapping.identity or "STATE_REASON_ID" in fields):
        out.append("opportunity_state_reasons")
    return out


def _index(rows: list[dict[str, Any]], id_field: str, by: str) -> LookupIndex:
    index: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        value, rid = row.get(by), record_id(row, id_field)
        if value is not None and str(value).strip() and rid is not None:
            index[str(value).strip()].append(rid)
    return dict(index)


async def facts_from_api(client: InsightlyClient, mapping: Mapping) -> AccountFacts:
    obj = get_object(mapping.object)
    meter = client.meter()
    definitions: list[dict[str, Any]] = []
    if obj.has_custom_fields:
        # a 403 or 404 here is not "no custom fields": every such object type has the
        # endpoint, so the key's user cannot read the object (403) or the URL is not an
        # Insightly API (404); validating or undoing without the definitions would mislead
        answer = (await client.get(f"CustomFields/{obj.endpoint}")).data or []
        if not isinstance(answer, list) or not all(isinstance(d, dict) for d in answer):
            raise ApiError(
                f"CustomFields/{obj.endpoint} did not answer a list of field definitions"
            )
        definitions = list(answer)
    references: dict[str, list[dict[str, Any]]] = {}
    for name in references_needed(mapping):
        references[name] = []
        async for page in client.iter_pages(
            get_object(name).endpoint, key=get_object(name).id_field
        ):
            references[name].extend(r for r in page.records if isinstance(r, dict))
    lookups: dict[tuple[str, str], LookupIndex] = {}
    for target, by in sorted(lookups_needed(mapping)):
        tobj = get_object(target)
        assert tobj.id_field is not None
        rows: list[dict[str, Any]] = []
        if target in references:  # already read whole
            rows = [
                {tobj.id_field: r.get(tobj.id_field), by: r.get(by)}
                for r in references[target]
                if _for_object(target, r, mapping.object)
            ]
        else:
            params = {"brief": "true"} if tobj.brief and not by.endswith("__c") else {}
            async for page in client.iter_pages(tobj.endpoint, params, key=tobj.id_field):
                rows.extend(
                    {tobj.id_field: r.get(tobj.id_field), by: _field_value(r, by)}
                    for r in page.records
                )
        lookups[(target, by)] = _index(rows, tobj.id_field, by)
    return AccountFacts(definitions, lookups, meter.requests, references)


def _for_object(target: str, record: dict[str, Any], object_name: str) -> bool:
    """A pipeline name is looked up among the pipelines of the mapped object type only: an
    opportunities pipeline and a projects one may share a name."""
    flag = get_object(object_name).pipeline_flag
    return target != "pipelines" or flag is None or bool(record.get(flag))


def _field_value(record: dict[str, Any], name: str) -> Any:
    if name.endswith("__c"):
        for item in record.get("CUSTOMFIELDS") or ():
            if item.get("FIELD_NAME") == name:
                return item.get("FIELD_VALUE")
        return None
    return record.get(name)


def facts_from_export(directory: Path, mapping: Mapping) -> AccountFacts:
    manifest_path = directory / "_manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"--fields-from {directory}: cannot read {manifest_path.name}: {exc}"
        ) from None
    # custom objects as the export spelled them (the account's), whatever case the mapping has
    objects = {str(k).lower(): v for k, v in (manifest.get("objects") or {}).items()}
    entry = objects.get(mapping.object.lower())
    if entry is None:
        raise InputError(
            f"--fields-from {directory}: the export has no {mapping.object}",
            hint=f"Run: insightly-etl export {mapping.object} --out {directory}",
        )
    lookups: dict[tuple[str, str], LookupIndex] = {}
    for target, by in sorted(lookups_needed(mapping)):
        tentry = objects.get(target.lower())
        if tentry is None or tentry.get("format") != "parquet":
            raise InputError(
                f"--fields-from {directory}: a lookup needs {target}, which the export lacks (as Parquet)",
                hint=f"Run: insightly-etl export {target} --out {directory}",
            )
        tobj = get_object(target)
        assert tobj.id_field is not None
        table = pq.read_table(directory / tentry["file"], columns=[tobj.id_field, by])
        lookups[(target, by)] = _index(table.to_pylist(), tobj.id_field, by)
    references: dict[str, list[dict[str, Any]]] = {}
    for name in references_needed(mapping):
        rentry = objects.get(name)
        if rentry is None or rentry.get("format") != "parquet":
            raise InputError(
                f"--fields-from {directory}: pipeline and state changes are checked against "
                f"{name}, which the export lacks (as Parquet)",
                hint=f"Run: insightly-etl export {name} --out {directory}",
            )
        references[name] = pq.read_table(directory / rentry["file"]).to_pylist()
    return AccountFacts(list(entry.get("custom_field_definitions") or []), lookups, 0, references)
