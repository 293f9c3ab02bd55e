"""Writes `swagger-objects.json`: collections the shared field reference does not describe,
their fields taken from the swagger's own GET answer schema (the same form as
`insightly-object-fields.json`). Run when the swagger changes:

    python -m insightly_etl.reference.derive ../shared/reference/insightly-v3.1-swagger.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Listable collections of the swagger missing from the shared reference (Service and
# Marketing add-ons, activity sets, document templates). The first property is the id.
COLLECTIONS = (
    "ActivitySets",
    "CommunityComments",
    "CommunityForums",
    "CommunityPosts",
    "DocumentTemplates",
    "ForumCategories",
    "KnowledgeArticle",
    "KnowledgeArticleCategory",
    "KnowledgeArticleFolder",
    "MarketingVisits",
)


def _field(
    name: str, prop: dict[str, Any], nested: dict[str, Any], swagger: dict[str, Any]
) -> dict[str, Any]:
    kind = prop.get("type", "string")
    out: dict[str, Any] = {"name": name, "type": kind, "nullable": True}
    if kind == "string" and prop.get("format") == "date-time":
        out["type"] = "date-time"
    if kind == "integer":
        out["format"] = prop.get("format", "int64")
    if prop.get("maxLength"):
        out["max_length"] = prop["maxLength"]
    if prop.get("readOnly"):
        out["read_only"] = True
    if kind == "array":
        out["nullable"] = False
        ref = (prop.get("items") or {}).get("$ref", "")
        item = ref.rsplit("/", 1)[-1]
        if item:
            out["items"] = item
            if item not in nested:
                schema = swagger["definitions"][item]
                nested[item] = {
                    "title": schema.get("title"),
                    "swagger_required": schema.get("required", []),
                    "fields": [
                        _field(n, p, nested, swagger) for n, p in schema["properties"].items()
                    ],
                }
    return out


def derive(swagger: dict[str, Any]) -> dict[str, Any]:
    objects: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for name in COLLECTIONS:
        paths = swagger["paths"]
        items = paths[f"/{name}"]["get"]["responses"]["200"]["schema"]["items"]
        props = items["properties"]
        fields = [_field(n, p, nested, swagger) for n, p in props.items()]
        fields[0]["nullable"] = False
        objects[name] = {
            "endpoint": f"/{name}",
            "id_field": fields[0]["name"],
            "list": f"GET /{name}",
            "search": f"GET /{name}/Search" if f"/{name}/Search" in paths else None,
            "swagger_schema_title": items.get("title"),
            "swagger_required": items.get("required", []),
            "fields": fields,
        }
    return {
        "_about": "Derived by insightly_etl/reference/derive.py from the swagger's GET answer "
        "schemas, for collections insightly-object-fields.json does not describe.",
        "objects": objects,
        "nested": nested,
    }


if __name__ == "__main__":
    source = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    target = Path(__file__).with_name("swagger-objects.json")
    target.write_text(json.dumps(derive(source), indent=1) + "\n", "utf-8")
    print(f"wrote {target}")
