"""`mapping draft`: a starting mapping from a file's headers, matched to field names and labels
with case, spaces and punctuation ignored. Unmatched columns are listed as comments."""

from __future__ import annotations

import json
import re

import yaml

from insightly_etl.api.registry import ObjectType, get_object
from insightly_etl.load.fields import MULTISELECT, TAGS, FieldSpec, normalise
from insightly_etl.load.readers import SourceTable

ORG_LOOKUP: dict[str, object] = {
    "field": "ORGANISATION_ID",
    "lookup": {"object": "organisations", "by": "ORGANISATION_NAME"},
}
OWNER_LOOKUP: dict[str, object] = {
    "field": "OWNER_USER_ID",
    "lookup": {"object": "users", "by": "EMAIL_ADDRESS"},
}


def _address(part: str) -> list[dict[str, object]]:
    """A mailing (contacts), billing (organisations) or plain (leads) address part."""
    names = [f"ADDRESS_MAIL_{part}", f"ADDRESS_BILLING_{part}", f"ADDRESS_{part}"]
    return [{"field": name} for name in names]


# a job title's headers; beside one of them, a plain `Title` is Mr./Ms. (Outlook's)
_JOB_TITLE_WORDS = (
    "jobtitle",
    "position",
    "designation",
    "organizationtitle",
    "organization1title",
)

# Header words of other CRMs' and address books' exports (Salesforce reports and Data Export,
# HubSpot, Zoho, Pipedrive, Outlook, Google), normalised (lower case, letters and digits
# only), each with the fields it may mean, in order: the first the object has is proposed.
_HEADERS: list[tuple[list[dict[str, object]], tuple[str, ...]]] = [
    (
        [{"field": "EMAIL_ADDRESS"}, {"field": "EMAIL"}],
        (
            "email",
            "emailaddress",
            "email1value",
            "emailaddress1",
            "e-mail",
            "emails",
            "email1",
            "primaryemail",
            "workemail",
            "emailwork",
            "email1emailaddress",
        ),
    ),
    ([{"field": "FIRST_NAME"}], ("firstname", "givenname", "forename", "first")),
    ([{"field": "LAST_NAME"}], ("lastname", "surname", "familyname", "last")),
    ([{"field": "SALUTATION"}], ("salutation", "prefix", "nameprefix")),
    ([{"field": "TITLE"}], ("title", *_JOB_TITLE_WORDS)),
    ([{"field": "DATE_OF_BIRTH"}], ("birthday", "birthdate", "dateofbirth", "dob")),
    (
        [{"field": "PHONE_MOBILE"}, {"field": "MOBILE"}],
        (
            "mobile",
            "mobilephone",
            "cell",
            "cellphone",
            "phonemobile",
            "mobilephonenumber",
            "phone1value",
        ),
    ),
    (
        [{"field": "PHONE"}],
        (
            "phone",
            "phonenumber",
            "businessphone",
            "workphone",
            "phonework",
            "officephone",
            "primaryphone",
            "telephone",
        ),
    ),
    ([{"field": "PHONE_HOME"}], ("homephone", "phonehome")),
    ([{"field": "PHONE_OTHER"}], ("otherphone", "phoneother")),
    ([{"field": "PHONE_FAX"}, {"field": "FAX"}], ("fax", "faxnumber", "businessfax")),
    ([{"field": "PHONE_ASSISTANT"}], ("asstphone", "assistantphone")),
    ([{"field": "ASSISTANT_NAME"}], ("assistant", "assistantname", "assistantsname")),
    (
        _address("STREET"),
        (
            "street",
            "address",
            "mailingstreet",
            "billingstreet",
            "businessstreet",
            "streetaddress",
            "address1street",
            "billingaddressline1",
            "mailingaddressline1",
        ),
    ),
    (
        _address("CITY"),
        ("city", "mailingcity", "billingcity", "businesscity", "address1city", "town"),
    ),
    (
        _address("STATE"),
        (
            "state",
            "region",
            "province",
            "stateprovince",
            "mailingstate",
            "mailingstateprovince",
            "billingstate",
            "billingstateprovince",
            "businessstate",
            "address1region",
            "county",
            "stateregion",
        ),
    ),
    (
        _address("POSTCODE"),
        (
            "zip",
            "zipcode",
            "postcode",
            "postalcode",
            "mailingzippostalcode",
            "mailingpostalcode",
            "billingzippostalcode",
            "billingpostalcode",
            "businesspostalcode",
            "address1postalcode",
            "zippostalcode",
            "mailingzip",
            "billingzip",
        ),
    ),
    (
        _address("COUNTRY"),
        (
            "country",
            "mailingcountry",
            "billingcountry",
            "businesscountryregion",
            "address1country",
            "countryregion",
        ),
    ),
    ([{"field": "ADDRESS_SHIP_STREET"}], ("shippingstreet",)),
    ([{"field": "ADDRESS_SHIP_CITY"}], ("shippingcity",)),
    ([{"field": "ADDRESS_SHIP_STATE"}], ("shippingstate", "shippingstateprovince")),
    ([{"field": "ADDRESS_SHIP_POSTCODE"}], ("shippingzippostalcode", "shippingpostalcode")),
    ([{"field": "ADDRESS_SHIP_COUNTRY"}], ("shippingcountry",)),
    (
        [{"field": "ORGANISATION_NAME"}, ORG_LOOKUP],
        (
            "accountname",
            "companyname",
            "company",
            "organisation",
            "organization",
            "organizationname",
            "organisationname",
            "account",
            "organization1name",
            "associatedcompany",
        ),
    ),
    ([{"field": "OPPORTUNITY_NAME"}], ("opportunityname", "dealname", "deal", "title", "name")),
    ([{"field": "BID_AMOUNT"}], ("amount", "dealvalue", "value", "dealamount")),
    ([{"field": "BID_CURRENCY"}], ("currency", "amountcurrency", "dealcurrency", "valuecurrency")),
    (
        [{"field": "FORECAST_CLOSE_DATE"}],
        (
            "closedate",
            "expectedclosedate",
            "closingdate",
            "expectedclosedateofdeal",
        ),
    ),
    ([{"field": "PROBABILITY"}], ("probability", "probabilitypercent", "dealprobability")),
    (
        [{"field": "OPPORTUNITY_DETAILS"}, {"field": "LEAD_DESCRIPTION"}, {"field": "BACKGROUND"}],
        (
            "description",
            "notes",
            "note",
            "details",
            "about",
        ),
    ),
    ([{"field": "WEBSITE"}], ("website", "webpage", "web", "url", "companydomainname", "domain")),
    ([{"field": "EMPLOYEE_COUNT"}], ("employees", "numberofemployees", "noofemployees")),
    ([{"field": "INDUSTRY"}], ("industry",)),
    (
        [{"field": "EMAIL_OPTED_OUT"}],
        ("emailoptout", "hasoptedoutofemail", "emailoptedout", "donotemail", "unsubscribed"),
    ),
    (
        [OWNER_LOOKUP],
        (
            "owner",
            "contactowner",
            "accountowner",
            "opportunityowner",
            "dealowner",
            "leadowner",
            "recordowner",
            "ownername",
            "owneremail",
        ),
    ),
    ([{"field": "TAGS", "split": ";"}], ("tags", "labels", "label", "categories")),
    (
        [{"field": "STAGE_ID", "lookup": {"object": "pipeline_stages", "by": "STAGE_NAME"}}],
        ("stage", "dealstage", "pipelinestage", "salesstage"),
    ),
    (
        [{"field": "PIPELINE_ID", "lookup": {"object": "pipelines", "by": "PIPELINE_NAME"}}],
        ("pipeline", "dealpipeline", "salespipeline"),
    ),
]
SYNONYMS: dict[str, list[dict[str, object]]] = {}
for _fields, _words in _HEADERS:
    for _word in _words:
        SYNONYMS.setdefault(normalise(_word), []).extend(_fields)

# Pipedrive names each column after its object: `Person - First name`, `Deal - Title`. Only
# the prefix of the object imported is dropped: a deal's `Organization - Name` is the deal's
# organisation (a lookup), not its name
_PREFIX = re.compile(r"^\s*([A-Za-z]+)\s+-\s+")
_PIPEDRIVE = {
    "person": "contacts",
    "organization": "organisations",
    "organisation": "organisations",
    "deal": "opportunities",
    "lead": "leads",
    "activity": "tasks",
    "note": "notes",
    "product": "products",
}

# what an export may call a record's key in the system it came from; proposed as a comment
_SOURCE_IDS = {
    normalise(w)
    for w in ("id", "contactid", "accountid", "opportunityid", "leadid", "recordid", "dealid")
}


def _separator(table: SourceTable, column: str) -> str:
    """How a column separates the values of a multi-value field: Google's ` ::: `, else `;`."""
    cells = table.frame[column].iloc[:1000].astype(str)
    return " ::: " if cells.str.contains(" ::: ", regex=False).any() else ";"


def _propose_match(
    table: SourceTable, object_name: str, columns: dict[str, object]
) -> tuple[str, str] | None:
    """The column that identifies a record: the record id itself (an Insightly export), else an
    e-mail (contacts, leads), else the name (organisations, opportunities, projects)."""
    id_field = get_object(object_name).id_field
    if id_field and id_field in table.columns:
        return id_field, id_field
    fields = {
        str(rule["field"] if isinstance(rule, dict) else rule): column
        for column, rule in columns.items()
    }
    names = ["EMAIL_ADDRESS", "EMAIL", "OPPORTUNITY_NAME", "PROJECT_NAME"]
    if (identity := get_object(object_name).identity) and identity not in names:
        names.append(identity)  # an organisation's name
    return next(((fields[n], n) for n in names if n in fields), None)


def _named(obj: ObjectType) -> str | None:
    """The field a column called `Name` writes: the object's name, where it is no e-mail (a
    person's `Name` is first and last)."""
    name = obj.name_field
    return None if name is None or "EMAIL" in name else name


def draft_mapping(table: SourceTable, object_name: str, specs: dict[str, FieldSpec]) -> str:
    by_key: dict[str, FieldSpec] = {}
    for candidate in specs.values():
        if candidate.writable:
            by_key.setdefault(normalise(candidate.name), candidate)
            by_key.setdefault(normalise(candidate.label), candidate)
    columns: dict[str, object] = {}
    unmatched: list[str] = []
    used: set[str] = set()
    obj = get_object(object_name)
    # a file with a job title beside a plain `Title` (Outlook's) has Mr./Ms. in the latter
    job_title = any(normalise(c) in _JOB_TITLE_WORDS for c in table.columns)
    for column in table.columns:
        key = normalise(column)
        if key == "title" and job_title and "SALUTATION" in specs:
            key = "salutation"
        prefix = _PREFIX.match(column)
        if prefix and _PIPEDRIVE.get(prefix.group(1).lower()) == object_name:
            key = normalise(column[prefix.end() :])
        if key == "name" and _named(obj) in specs:  # `Organization - Name`, a plain `Name`
            key = normalise(_named(obj) or "")
        spec: FieldSpec | None = by_key.get(key)
        if spec is not None and spec.name not in used:
            used.add(spec.name)
            if spec.kind in (MULTISELECT, TAGS):
                columns[column] = {"field": spec.name, "split": _separator(table, column)}
            else:
                columns[column] = spec.name
            continue
        synonym = next(
            (
                rule
                for rule in SYNONYMS.get(key, [])
                if str(rule["field"]) in specs and str(rule["field"]) not in used
            ),
            None,
        )
        if synonym is None:
            unmatched.append(column)
            continue
        used.add(str(synonym["field"]))
        if "split" in synonym:
            synonym = {**synonym, "split": _separator(table, column)}
        columns[column] = synonym if len(synonym) > 1 else synonym["field"]
    match = _propose_match(table, object_name, columns)
    document: dict[str, object] = {"object": object_name}
    if match is not None:
        document["match"] = {"column": match[0], "field": match[1]}
    document["columns"] = columns
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)
    lines = [
        f"# Draft mapping for {table.path.name} -> {object_name}, written by `insightly-etl mapping draft`.",
        "# Review it, then check it with `insightly-etl validate`.",
        body.rstrip(),
    ]
    missing = [s.name for s in specs.values() if s.required and s.name not in used]
    if match is None:
        lines.append(
            "# No match key proposed: every row creates a record. Add "
            "`match: {column: …, field: …}` to update the records a column identifies."
        )
    source_ids = [c for c in unmatched if normalise(c) in _SOURCE_IDS]
    if source_ids:
        lines.append(
            f"# {source_ids[0]!r} looks like the other system's record id: keep it in a custom "
            "field (e.g. External_Id__c) and match by it to make re-runs update, not duplicate "
            "(with compare: exact where ids differ by case alone, as Salesforce's do)."
        )
    if table.notes:
        lines += [f"# {note}" for note in table.notes]
    if unmatched:
        lines.append("# Columns not matched to a field (map them, or leave them out):")
        # each as YAML writes the key, so that taking out the `#` gives a valid line: a header
        # with a line break in it (Alt+Enter in Excel), or `yes`, quoted
        lines += [f"#   {_key_line(column)}" for column in unmatched]
    if missing:
        lines.append(
            f"# Required and not mapped: {', '.join(missing)} (map a column or add defaults:)"
        )
    # a comment is one line: a name or a note holding a line break would end it early
    return "\n".join(_one_line(line) for line in lines) + "\n"


# what YAML (and str.splitlines) take for a line break: each ends a comment early
_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _escaped(text: str) -> str:
    return _BREAKS.sub(lambda m: json.dumps(m.group(0))[1:-1], text)


def _key_line(column: str) -> str:
    """`column: FIELD_NAME` as a line of the mapping's `columns:`; a name holding a line
    break as a double-quoted YAML string, its breaks escaped."""
    if _BREAKS.search(column):
        return f"{_escaped(json.dumps(column, ensure_ascii=False))}: FIELD_NAME"
    return yaml.safe_dump({column: "FIELD_NAME"}, allow_unicode=True, width=1000).strip()


def _one_line(line: str) -> str:
    if not line.startswith("#"):
        return line  # the YAML body: safe_dump quotes what needs it
    return _escaped(line)
