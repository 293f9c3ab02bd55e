"""The account behind the spreadsheet corpus (tests/data/spreadsheets/): the seeded sandbox,
plus contacts whose text a single-byte code page cannot hold (Polish, Czech, Vietnamese), and
the edits a person made in the corpus's "edited" files. The corpus script and the tests both
build the account from here, so the files and the account agree to the second."""

from __future__ import annotations

from typing import Any

from insightly_etl.sandbox import Sandbox, SandboxConfig

KEY = "corpus-key"
ROWS = 40  # the seed's first contacts kept in the corpus files (with the extra ones)


def _contact(
    cid: int, first: str, last: str, city: str, postcode: str, title: str
) -> dict[str, Any]:
    return {
        "CONTACT_ID": cid,
        "FIRST_NAME": first,
        "LAST_NAME": last,
        "DATE_CREATED_UTC": "2026-08-03 09:14:05",
        "DATE_UPDATED_UTC": "2026-08-04 17:02:31",
        "EMAIL_ADDRESS": f"{first.lower()}.{cid}@example.pl",
        "ADDRESS_MAIL_CITY": city,
        "ADDRESS_MAIL_POSTCODE": postcode,
        "TITLE": title,
        "OWNER_USER_ID": 1,
        "CUSTOMFIELDS": [
            {"FIELD_NAME": "Member_No__c", "FIELD_VALUE": "00" + str(cid)},
            {"FIELD_NAME": "Lifetime_Value__c", "FIELD_VALUE": 1234.5},
        ],
    }


EXTRA = [
    _contact(2901, "Łukasz", "Wiśniewski", "Łódź", "90-001", "Kierownik"),
    _contact(2902, "Jiří", "Dvořák", "Plzeň", "30100", "Ředitel"),
    _contact(2903, "Nguyễn", "Thị Ánh", "Hà Nội", "100000", "Giám đốc"),
]

# what the person changed in the "edited" files: contact id -> field -> new text
EDITS = {
    2003: {"TITLE": "Head of Procurement"},
    2010: {"ADDRESS_MAIL_CITY": "Cambridge"},
    2901: {"TITLE": "Dyrektor"},
}


# The corpus was exported before the seed gained its realistic text (synth._realistic): these
# contacts had the seed's short text then, as the files hold it.
AS_EXPORTED = {
    2007: {"BACKGROUND": "Met at the Berlin trade fair."},
    2011: {"EMAIL_ADDRESS": "ximena.obrien.2011@example.com"},
    2013: {"TITLE": "CEO"},
    2027: {"BACKGROUND": "Met at the Berlin trade fair."},
    2036: {"EMAIL_ADDRESS": "wen.schmidt.2036@example.com"},
}


# a contact whose text looks like numbers, and a number longer than a cell shows: what a
# spreadsheet re-save does to them is an artefact (tests/data/spreadsheets/numbers_*)
NUMBERS = {
    **_contact(2904, "Numbers", "Person", "Ulm", "12345678901234567890", "1E5"),
    "CUSTOMFIELDS": [
        {"FIELD_NAME": "External_Id__c", "FIELD_VALUE": "1234567890123456789"},
        {"FIELD_NAME": "Nickname__c", "FIELD_VALUE": "TRUE"},
        {"FIELD_NAME": "Lifetime_Value__c", "FIELD_VALUE": 9007199254740993},
    ],
}


def numbers_sandbox() -> Sandbox:
    sandbox = corpus_sandbox()
    sandbox.account.load("Contacts", [NUMBERS])
    return sandbox


def corpus_sandbox() -> Sandbox:
    # the corpus was exported from this account when the sandbox answered in the complete
    # shape (every field, null when unset): the files say EMAIL_OPTED_OUT is empty, not false
    sandbox = Sandbox(
        SandboxConfig(api_key=KEY, rate_limit=1e9, daily_quota=10**9, shape="complete")
    )
    contacts = sandbox.account.collections["Contacts"]
    for cid, fields in AS_EXPORTED.items():
        contacts.put({**contacts.records[cid], **fields})
    sandbox.account.load("Contacts", EXTRA)
    return sandbox
