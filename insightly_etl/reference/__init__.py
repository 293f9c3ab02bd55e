"""The standard-field reference of Insightly API v3.1, shipped with the package.

`insightly-object-fields.json` is a copy of `shared/reference/insightly-object-fields.json`
(extracted from the official swagger plus fields seen in live responses). Both the client
(`insightly_etl.api.registry`) and the sandbox read it, so the field facts live in one place.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_reference() -> dict[str, Any]:
    text = resources.files(__name__).joinpath("insightly-object-fields.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def object_fields(endpoint_name: str) -> list[dict[str, Any]]:
    """The standard fields of an object, by its endpoint name (`Contacts`, `Product`, …)."""
    fields: list[dict[str, Any]] = load_reference()["objects"][endpoint_name]["fields"]
    return fields
