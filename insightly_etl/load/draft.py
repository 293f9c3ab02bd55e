"""`mapping draft`: a starting mapping from a file's headers, matched to field names and labels
with case, spaces and punctuation ignored. Unmatched columns are listed as comments."""

from __future__ import annotations

import yaml

from insightly_etl.load.fields import MULTISELECT, TAGS, FieldSpec, normalise
from insightly_etl.load.readers import SourceTable

# Header words people use for standard fields (normalised: lower case, letters and digits only).
SYNONYMS: dict[str, dict[str, object]] = {
    "email": {"field": "EMAIL_ADDRESS"},
    "emailaddress": {"field": "EMAIL_ADDRESS"},
    "email1value": {"field": "EMAIL_ADDRESS"},
    "emailaddress1": {"field": "EMAIL_ADDRESS"},
    "birthday": {"field": "DATE_OF_BIRTH"},
    "mobile": {"field": "PHONE_MOBILE"},
    "mobilephone": {"field": "PHONE_MOBILE"},
    "cell": {"field": "PHONE_MOBILE"},
    "phonenumber": {"field": "PHONE"},
    "businessphone": {"field": "PHONE"},
    "homephone": {"field": "PHONE_HOME"},
    "jobtitle": {"field": "TITLE"},
    "zip": {"field": "ADDRESS_MAIL_POSTCODE"},
    "zipcode": {"field": "ADDRESS_MAIL_POSTCODE"},
    "postcode": {"field": "ADDRESS_MAIL_POSTCODE"},
    "postalcode": {"field": "ADDRESS_MAIL_POSTCODE"},
    "city": {"field": "ADDRESS_MAIL_CITY"},
    "street": {"field": "ADDRESS_MAIL_STREET"},
    "country": {"field": "ADDRESS_MAIL_COUNTRY"},
    "state": {"field": "ADDRESS_MAIL_STATE"},
    "company": {
        "field": "ORGANISATION_ID",
        "lookup": {"object": "organisations", "by": "ORGANISATION_NAME"},
    },
    "organisation": {
        "field": "ORGANISATION_ID",
        "lookup": {"object": "organisations", "by": "ORGANISATION_NAME"},
    },
    "organization": {
        "field": "ORGANISATION_ID",
        "lookup": {"object": "organisations", "by": "ORGANISATION_NAME"},
    },
    "owner": {"field": "OWNER_USER_ID", "lookup": {"object": "users", "by": "EMAIL_ADDRESS"}},
    "notes": {"field": "BACKGROUND"},
    "website": {"field": "WEBSITE"},
    "webpage": {"field": "WEBSITE"},
}


def draft_mapping(table: SourceTable, object_name: str, specs: dict[str, FieldSpec]) -> str:
    by_key: dict[str, FieldSpec] = {}
    for candidate in specs.values():
        if candidate.writable:
            by_key.setdefault(normalise(candidate.name), candidate)
            by_key.setdefault(normalise(candidate.label), candidate)
    columns: dict[str, object] = {}
    unmatched: list[str] = []
    used: set[str] = set()
    for column in table.columns:
        spec: FieldSpec | None = by_key.get(normalise(column))
        synonym = SYNONYMS.get(normalise(column))
        if (
            spec is None
            and synonym
            and str(synonym["field"]) in specs
            and str(synonym["field"]) not in used
        ):
            used.add(str(synonym["field"]))
            columns[column] = synonym if len(synonym) > 1 else synonym["field"]
            continue
        if spec is None or spec.name in used:
            unmatched.append(column)
            continue
        used.add(spec.name)
        if spec.kind in (MULTISELECT, TAGS):
            columns[column] = {"field": spec.name, "split": ";"}
        else:
            columns[column] = spec.name
    body = yaml.safe_dump(
        {"object": object_name, "columns": columns}, sort_keys=False, allow_unicode=True, width=1000
    )
    lines = [
        f"# Draft mapping for {table.path.name} -> {object_name}, written by `insightly-etl mapping draft`.",
        "# Review it, then check it with `insightly-etl validate`.",
        body.rstrip(),
    ]
    missing = [s.name for s in specs.values() if s.required and s.name not in used]
    if unmatched:
        lines.append("# Columns not matched to a field (map them, or leave them out):")
        lines += [f"#   {column}: FIELD_NAME" for column in unmatched]
    if missing:
        lines.append(
            f"# Required and not mapped: {', '.join(missing)} (map a column or add defaults:)"
        )
    return "\n".join(lines) + "\n"
