"""What a whole-account export covers, against the API's own list of collections (from the
shipped swagger, not from our registry), so a collection nobody exports cannot go unnoticed."""

from __future__ import annotations

from pathlib import Path

from insightly_etl.api.registry import OBJECTS

SWAGGER = Path(__file__).resolve().parents[1] / "data" / "swagger_collections.txt"

# Not exported, each with why (the README's table says the same).
NOT_EXPORTED = {
    "Instance": "one record about the account, not a collection",
    "Tags": "per record type; every record's TAGS column has them",
    "Follows": "what the calling user follows, per record type: about the API user",
    "Permissions": "the calling user's permissions: one object about the API user",
}


def test_every_collection_of_the_api_is_exported_or_listed_as_not_yet_with_why() -> None:
    api = {line.strip() for line in SWAGGER.read_text().splitlines() if line and line[0] != "#"}
    # CustomObjects: custom_objects.parquet, and each custom object's records in its own file
    exported = {o.endpoint for o in OBJECTS.values()} | {"CustomObjects"}
    assert exported - api == set()  # nothing exported that the API does not list
    assert api - exported == set(NOT_EXPORTED), "update NOT_EXPORTED or the exporter"


def test_the_readme_says_why_each_collection_is_not_exported() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    table = readme[readme.index("| collection | why not |") :].split("\n\n")[0]
    for name in NOT_EXPORTED:
        assert f"`{name}`" in table, name
