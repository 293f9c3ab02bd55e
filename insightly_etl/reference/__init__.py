"""The standard-field reference of Insightly API v3.1, shipped with the package.

`insightly-object-fields.json` is a copy of `shared/reference/insightly-object-fields.json`
(extracted from the official swagger plus fields seen in live responses). Both the client
(`insightly_etl.api.registry`) and the sandbox read it, so the field facts live in one place.
`swagger-objects.json` adds the listable collections that file does not describe (Service and
Marketing add-ons, activity sets, document templates), from the swagger's GET answer schemas
(`derive.py` writes it); the copied reference wins wherever both say something.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


def _read(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(__name__).joinpath(name).read_text("utf-8"))
    return data


@cache
def load_reference() -> dict[str, Any]:
    data = _read("insightly-object-fields.json")
    extra = _read("swagger-objects.json")
    for part in ("objects", "nested"):
        data[part] = {**extra[part], **data[part]}
    return data


def object_fields(endpoint_name: str) -> list[dict[str, Any]]:
    """The standard fields of an object, by its endpoint name (`Contacts`, `Product`, …)."""
    fields: list[dict[str, Any]] = load_reference()["objects"][endpoint_name]["fields"]
    return fields
