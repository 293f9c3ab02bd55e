"""Issue 23 item 7: the JSON Schema of mapping files, shipped in mappings/ and generated from
the parser's own rules; a test holds the two together."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from insightly_etl.api.registry import OBJECTS
from insightly_etl.errors import InputError
from insightly_etl.files import write_examples
from insightly_etl.load.mapping import SCHEMA_FILE, mapping_schema, parse_mapping

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "mappings" / SCHEMA_FILE
SCHEMA = mapping_schema(list(OBJECTS))
MAPPINGS = sorted([*ROOT.glob("mappings/*.yaml"), *ROOT.glob("sample_data/migration/*.yaml")])


def schema_errors(data: object) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(data)]


def test_the_shipped_schema_is_the_one_the_parser_s_rules_make() -> None:
    assert json.loads(SHIPPED.read_text(encoding="utf-8")) == SCHEMA, (
        "mappings/mapping.schema.json is out of date: run `make schema`"
    )
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: p.name)
def test_every_shipped_mapping_passes_both_and_names_the_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=")
    target = (path.parent / text.splitlines()[0].split("$schema=")[1]).resolve()
    assert target == SHIPPED
    data = yaml.safe_load(text)
    assert schema_errors(data) == []
    parse_mapping(data, source=path.name)


BAD = {
    "unknown top key": "object: contacts\ncolumn: {Name: FIRST_NAME}\n",
    "unknown column key": "object: contacts\ncolumns:\n  Name: {field: FIRST_NAME, trim: yes}\n",
    "column without field": "object: contacts\ncolumns:\n  Name: {transform: strip}\n",
    "unknown transform": "object: contacts\ncolumns:\n  Name: {field: FIRST_NAME, transform: shout}\n",
    "bad blank": "object: contacts\nblank: erase\ncolumns: {Name: FIRST_NAME}\n",
    "bad update": "object: contacts\ncolumns:\n  Name: {field: FIRST_NAME, update: always}\n",
    "bad date order": "object: contacts\ndate_order: ymd\ncolumns: {Name: FIRST_NAME}\n",
    "bad decimal": "object: contacts\ndecimal: ';'\ncolumns: {Name: FIRST_NAME}\n",
    "match without field": "object: contacts\nmatch: {column: Email}\ncolumns: {Email: EMAIL_ADDRESS}\n",
    "bad compare": "object: contacts\nmatch: {column: E, field: EMAIL_ADDRESS, compare: fuzzy}\n",
    "lookup without object": "object: contacts\ncolumns:\n  Org: {field: ORGANISATION_ID, lookup: {by: X}}\n",
    "bad missing": "object: contacts\ncolumns:\n  Org:\n    field: ORGANISATION_ID\n    lookup: {object: organisations, missing: ignore}\n",
    "link key": "object: contacts\nlinks:\n  - {column: Org, object: organisations, weight: 3}\n",
    "parent key": "object: notes\nparent: {column: E, object: contacts, via: EMAIL_ADDRESS}\n",
    "defaults list": "object: contacts\ndefaults: {TAGS: [a, b]}\n",
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_what_the_parser_refuses_the_schema_refuses(text: str) -> None:
    data = yaml.safe_load(text)
    assert schema_errors(data), "the schema let through what the parser refuses"
    with pytest.raises(InputError):
        parse_mapping(data, source="m.yaml")


def test_examples_write_the_schema_beside_the_mappings(tmp_path: Path) -> None:
    written, _ = write_examples(tmp_path)
    assert tmp_path / "mappings" / SCHEMA_FILE in written
    assert json.loads((tmp_path / "mappings" / SCHEMA_FILE).read_text()) == SCHEMA


@pytest.mark.parametrize(
    ("word", "candidates", "meant"),
    [
        # a name cut short: the column it begins, not a near one (it said 'Mailing City')
        ("Mailing Zip", ["Mailing City", "Mailing Zip/Postal Code"], "Mailing Zip/Postal Code"),
        (
            "ADDRESS_MAIL_ZIP",
            ["ADDRESS_MAIL_CITY", "ADDRESS_MAIL_POSTCODE"],
            "ADDRESS_MAIL_POSTCODE",
        ),
        ("Emial", ["Email", "Name"], "Email"),
        ("Xyz", ["Email", "Name"], None),
    ],
)
def test_did_you_mean(word: str, candidates: list[str], meant: str | None) -> None:
    from insightly_etl.load.fields import suggest

    assert suggest(word, candidates) == meant
