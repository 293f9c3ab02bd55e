"""The sandbox behaves as shared/reference/insightly-api.md describes (in-process, ASGITransport)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from insightly_etl.sandbox import Sandbox
from tests.conftest import KEY, asgi_client

pytestmark = pytest.mark.anyio


async def test_list_is_a_bare_array_in_id_order_with_default_page_of_100(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        r = await c.get("Contacts")
    assert r.status_code == 200
    rows = r.json()
    assert isinstance(rows, list) and len(rows) == 100
    ids = [row["CONTACT_ID"] for row in rows]
    assert ids == sorted(ids)
    assert "X-Total-Count" not in r.headers
    assert r.headers["ETag"]


async def test_top_is_capped_at_500_and_skip_pages(make_sandbox) -> None:
    sb = make_sandbox(generate={"Contacts": 1000})
    async with asgi_client(sb) as c:
        big = await c.get("Contacts", params={"top": 2000, "count_total": "true"})
        assert len(big.json()) == 500
        assert big.headers["X-Total-Count"] == "1220"
        last = await c.get("Contacts", params={"top": 500, "skip": 1000})
        past = await c.get("Contacts", params={"top": 500, "skip": 1220})
    assert len(last.json()) == 220  # the short page ends the collection
    assert past.json() == []


async def test_pages_do_not_overlap_or_skip(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        pages = [
            (await c.get("Contacts", params={"top": 50, "skip": s})).json()
            for s in range(0, 250, 50)
        ]
    ids = [r["CONTACT_ID"] for page in pages for r in page]
    assert len(ids) == len(set(ids)) == 220


async def test_records_carry_every_standard_field_and_custom_fields(seeded: Sandbox) -> None:
    from insightly_etl.reference import object_fields

    async with asgi_client(seeded) as c:
        row = (await c.get("Contacts", params={"top": 1})).json()[0]
        defs = (await c.get("CustomFields/Contacts")).json()
    assert {f["name"] for f in object_fields("Contacts")} <= set(row)
    assert row["VISIBLE_TO"] == "EVERYONE" and row["VISIBLE_TEAM_ID"] is None
    assert isinstance(row["TAGS"], list) and isinstance(row["LINKS"], list)
    # the recorded shape (docs/api.md §10): the custom fields with a value, in definition order
    order = [d["FIELD_NAME"] for d in defs]
    listed = [c["FIELD_NAME"] for c in row["CUSTOMFIELDS"]]
    assert listed == sorted(listed, key=order.index) and len(listed) < len(order)
    assert all(c["FIELD_VALUE"] is not None for c in row["CUSTOMFIELDS"])
    assert all(c["CUSTOM_FIELD_ID"] == c["FIELD_NAME"] for c in row["CUSTOMFIELDS"])
    assert row["EMAIL_OPTED_OUT"] is False  # the server's default, not null
    datetime.strptime(row["DATE_CREATED_UTC"], "%Y-%m-%d %H:%M:%S")


async def test_the_complete_shape_lists_every_custom_field_and_puts_answer_201(
    make_sandbox,
) -> None:
    sb = make_sandbox(shape="complete")
    async with asgi_client(sb) as c:
        row = (await c.get("Contacts", params={"top": 1})).json()[0]
        lead = (await c.post("Leads", json={"LAST_NAME": "Sloan"})).json()
        put = await c.put("Contacts", json={"CONTACT_ID": row["CONTACT_ID"], "TITLE": "x"})
    names = [d["FIELD_NAME"] for d in sb.account.definitions("Contacts")]
    assert [c["FIELD_NAME"] for c in row["CUSTOMFIELDS"]] == names
    assert (lead["EMAIL"], lead["EMPLOYEE_COUNT"], lead["CONVERTED"]) == (None, None, None)
    assert put.status_code == 201


async def test_a_new_lead_answers_as_a_live_one_did(make_sandbox) -> None:
    """The recorded create of a lead (docs/api.md §10): `""` for its unset e-mail and
    description, 0 employees, not converted, not opted out, no custom fields listed."""
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        lead = (
            await c.post("Leads", json={"FIRST_NAME": "Henrietta", "LAST_NAME": "Sloan"})
        ).json()
    assert {k: lead[k] for k in ("EMAIL", "LEAD_DESCRIPTION", "EMPLOYEE_COUNT", "CONVERTED")} == {
        "EMAIL": "",
        "LEAD_DESCRIPTION": "",
        "EMPLOYEE_COUNT": 0,
        "CONVERTED": False,
    }
    assert lead["EMAIL_OPTED_OUT"] is False and lead["TITLE"] is None
    assert lead["CUSTOMFIELDS"] == []
    # the API user is responsible for it, and it has a mailbox of its own
    assert lead["RESPONSIBLE_USER_ID"] == sb.account.me()["USER_ID"]
    assert re.fullmatch(
        rf"[a-z0-9-]+-L{lead['LEAD_ID']}-[0-9A-F]{{7}}@mailbox\.insight\.ly",
        lead["LINKED_EMAIL_ADDRESS"],
    )


async def test_custom_field_definitions_cover_every_field_type(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        types = set()
        for obj in ("Contacts", "Organisations", "Leads", "Opportunities"):
            defs = (await c.get(f"CustomFields/{obj}")).json()
            assert all(d["FIELD_NAME"].endswith("__c") for d in defs)
            types |= {d["FIELD_TYPE"] for d in defs}
    assert types == {
        "TEXT",
        "MULTILINETEXT",
        "DROPDOWN",
        "MULTISELECT",
        "BIT",
        "DATE",
        "DATETIME",
        "NUMERIC",
        "PERCENT",
        "AUTONUMBER",
    }


async def test_custom_field_definitions_are_named_as_the_real_api_takes_names(
    seeded: Sandbox,
) -> None:
    """Singular or plural, any case: the object's; an object with none: []; one unknown, or
    without custom fields: every object's (amp-labs' notes of the real API)."""
    async with asgi_client(seeded) as c:
        contacts = (await c.get("CustomFields/Contacts")).json()
        forms = [(await c.get(f"CustomFields/{n}")).json() for n in ("Contact", "contacts")]
        unknown = await c.get("CustomFields/Bogus")
        pipelines = (await c.get("CustomFields/Pipelines")).json()
        projects = (await c.get("CustomFields/Projects")).json()
    assert contacts and forms == [contacts, contacts]
    assert unknown.status_code == 200
    assert {d["FIELD_FOR"] for d in unknown.json()} == {
        "CONTACT",
        "ORGANISATION",
        "LEAD",
        "OPPORTUNITY",
        "SITE__C",  # custom objects' too
        "ASSET__C",
    }
    assert pipelines == unknown.json()
    assert projects == []  # has custom fields, none defined


async def test_header_names_come_in_the_case_the_real_api_sends(seeded: Sandbox) -> None:
    """A .NET client finds X-Total-Count among the answer's headers by ==: HTTP/1.1 keeps
    a name's case, and the sandbox's server (h11) writes them as the app gives them."""
    async with asgi_client(seeded) as c:
        answer = await c.get("Contacts", params={"top": 1, "count_total": "true"})
    names = [name for name, _ in answer.headers.raw]
    assert {
        b"X-Total-Count",
        b"ETag",
        b"Content-Type",
        b"X-RateLimit-Limit",
        b"X-RateLimit-Remaining",
        b"Date",
    } <= set(names)
    assert not [n for n in names if n == n.lower()]


async def test_links_and_dates_in_a_body_are_made_as_their_own_endpoints_make_them(
    seeded: Sandbox,
) -> None:
    """v3.1 takes sub-collections in a POST/PUT body: a link given so is a whole link with an
    id of its own, mirrored on the record it names, as POST …/Links makes one; a record PUT
    back as it was read keeps its links and dates; LINKS [] removes them, mirrors too."""
    body = {
        "FIRST_NAME": "Body",
        "LINKS": [{"LINK_OBJECT_NAME": "Organisation", "LINK_OBJECT_ID": 1042, "ROLE": "Buyer"}],
        "DATES": [{"OCCASION_NAME": "Anniversary", "OCCASION_DATE": "2020-05-01 00:00:00"}],
    }
    async with asgi_client(seeded) as c:
        first = (await c.post("Contacts", json=body)).json()
        second = (await c.post("Contacts", json=body)).json()
        mirrors = (await c.get("Organisations/1042/Links", params={"top": 500})).json()
        read = {k: v for k, v in first.items() if k != "CUSTOMFIELDS"}  # its autonumber
        same = await c.put("Contacts", json=read)
        bad = await c.put(
            "Contacts",
            json={
                "CONTACT_ID": first["CONTACT_ID"],
                "TITLE": "x",
                "LINKS": [{"LINK_OBJECT_NAME": "Organisation", "LINK_OBJECT_ID": 999999}],
            },
        )
        cleared = (
            await c.put("Contacts", json={"CONTACT_ID": first["CONTACT_ID"], "LINKS": []})
        ).json()
        after = (await c.get("Organisations/1042/Links", params={"top": 500})).json()
    link = first["LINKS"][0]
    assert link == {
        "LINK_ID": link["LINK_ID"],
        "OBJECT_NAME": "Contact",
        "OBJECT_ID": first["CONTACT_ID"],
        "LINK_OBJECT_NAME": "Organisation",
        "LINK_OBJECT_ID": 1042,
        "ROLE": "Buyer",
        "DETAILS": None,
        "RELATIONSHIP_ID": None,
        "IS_FORWARD": True,
    }
    assert link["LINK_ID"] != second["LINKS"][0]["LINK_ID"]
    assert first["DATES"][0]["CREATE_TASK_YEARLY"] is False
    assert first["DATES"][0]["DATE_ID"] != second["DATES"][0]["DATE_ID"]
    mirror = next(m for m in mirrors if m["LINK_ID"] == link["LINK_ID"])
    assert (mirror["OBJECT_ID"], mirror["LINK_OBJECT_ID"], mirror["IS_FORWARD"]) == (
        1042,
        first["CONTACT_ID"],
        False,
    )
    assert same.status_code == 200
    assert same.json()["LINKS"] == first["LINKS"] and same.json()["DATES"] == first["DATES"]
    assert bad.status_code == 400 and "999999" in bad.json()["Message"]
    assert cleared["LINKS"] == [] and cleared["TITLE"] is None  # the refused PUT changed nothing
    assert link["LINK_ID"] not in {m["LINK_ID"] for m in after}


async def test_a_record_s_tasks_events_dates_and_domains_are_listed_as_the_swagger_lists(
    seeded: Sandbox,
) -> None:
    """`GET /{Object}/{id}/Tasks|Events|Dates|EmailDomains` answered 404; each list is paged
    and counted like every list (FileAttachments gave no X-Total-Count)."""
    tasks = seeded.account.collections["Tasks"].ids[:2]
    event = seeded.account.collections["Events"].ids[0]
    async with asgi_client(seeded) as c:
        for tid in tasks:
            linked = await c.post(
                f"Tasks/{tid}/Links", json={"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": 2001}
            )
            assert linked.status_code == 201, linked.text
        await c.post(
            f"Events/{event}/Links", json={"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": 2001}
        )
        await c.put(
            "Contacts",
            json={
                "CONTACT_ID": 2001,
                "DATES": [{"OCCASION_NAME": "Joined", "OCCASION_DATE": "2020-01-02 00:00:00"}],
            },
        )
        listed = await c.get("Contacts/2001/Tasks", params={"count_total": "true", "top": 1})
        events = (await c.get("contacts/2001/events")).json()
        dates = (await c.get("Contacts/2001/Dates")).json()
        domains = (await c.get("Organisations/1001/EmailDomains")).json()
        files = await c.get("Contacts/2008/FileAttachments", params={"count_total": "true"})
        none = await c.get("Contacts/999999/Tasks")
    assert [t["TASK_ID"] for t in listed.json()] == tasks[:1]
    assert listed.headers["X-Total-Count"] == "2"
    assert [e["EVENT_ID"] for e in events] == [event]
    assert [d["OCCASION_NAME"] for d in dates] == ["Joined"]
    assert domains == [{"EMAIL_DOMAIN_ID": 1001, "EMAIL_DOMAIN": "brightpartners1001.example"}]
    assert files.headers["X-Total-Count"] == str(len(files.json())) != "0"
    assert none.status_code == 404


async def test_a_note_made_under_a_record_with_links_in_its_body_keeps_its_parent_link(
    seeded: Sandbox,
) -> None:
    async with asgi_client(seeded) as c:
        note = (
            await c.post(
                "Contacts/2001/Notes",
                json={
                    "TITLE": "Call",
                    "LINKS": [{"LINK_OBJECT_NAME": "Organisation", "LINK_OBJECT_ID": 1042}],
                },
            )
        ).json()
    assert [(lk["LINK_OBJECT_NAME"], lk["LINK_OBJECT_ID"]) for lk in note["LINKS"]] == [
        ("Contact", 2001),
        ("Organisation", 1042),
    ]


async def test_brief_drops_nested_arrays(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        row = (await c.get("Organisations", params={"top": 1, "brief": "true"})).json()[0]
    assert "CUSTOMFIELDS" not in row and "TAGS" not in row and "EMAILDOMAINS" not in row
    assert "ORGANISATION_NAME" in row


async def test_get_one_and_404(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        one = await c.get("Contacts/2001")
        missing = await c.get("Contacts/99999999")
        me = await c.get("Users/Me")
    assert one.json()["CONTACT_ID"] == 2001 and one.headers["ETag"]
    assert missing.status_code == 404 and "Message" in missing.json()
    assert me.json()["USER_ID"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "Pipelines",
        "PipelineStages",
        "Users",
        "LeadSources",
        "LeadStatuses",
        "OpportunityCategories",
        "ProjectCategories",
        "TaskCategories",
        "Countries",
        "Currencies",
        "Product",
        "Pricebook",
        "Quotation",
        "Tasks",
        "Events",
        "Notes",
        "Projects",
        "Leads",
        "Opportunities",
        "Organisations",
    ],
)
async def test_every_object_lists(seeded: Sandbox, path: str) -> None:
    async with asgi_client(seeded) as c:
        r = await c.get(path)
    assert r.status_code == 200 and len(r.json()) > 0


async def test_instance_is_an_object_and_plural_of_singular_path_is_405(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        inst = await c.get("Instance")
        plural = await c.get("Products")
    assert inst.json()["PLAN_NAME"] == "Plus"
    assert plural.status_code == 405


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("scheme", "credential"),
    [
        ("Basic", KEY),
        ("Basic", f"{KEY}:"),
        ("Basic", f"{KEY}:anything"),
        ("basic", f"{KEY}:"),  # a scheme's name is case-blind (RFC 7235; .NET takes it)
        ("BASIC", KEY),
    ],
    ids=["no-colon", "blank-password", "any-password", "lower-case", "upper-case"],
)
async def test_basic_auth_forms_accepted(seeded: Sandbox, scheme: str, credential: str) -> None:
    header = f"{scheme} " + base64.b64encode(credential.encode()).decode()
    async with asgi_client(seeded, auth=False) as c:
        r = await c.get("Users/Me", headers={"Authorization": header})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "header", [None, "Basic " + base64.b64encode(b"wrong:").decode(), "Bearer x", "Basic !!!"]
)
async def test_bad_auth_is_401_with_the_real_body(seeded: Sandbox, header: str | None) -> None:
    async with asgi_client(seeded, auth=False) as c:
        r = await c.get("Contacts", headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.json() == {"Message": "Authorization has been denied for this request."}


async def test_the_version_in_the_path_is_case_blind_as_asp_net_routes_are(
    seeded: Sandbox,
) -> None:
    async with asgi_client(seeded) as c:
        upper = await c.get("http://sandbox.test/V3.1/contacts/2001")
    assert upper.status_code == 200 and upper.json()["CONTACT_ID"] == 2001


async def test_a_custom_field_may_be_named_by_its_custom_field_id(seeded: Sandbox) -> None:
    """Answers carry the name twice; an item sent with CUSTOM_FIELD_ID alone was refused
    as "Custom field 'None' does not exist"."""
    async with asgi_client(seeded) as c:
        answer = await c.put(
            "Contacts",
            json={
                "CONTACT_ID": 2002,
                "CUSTOMFIELDS": [{"CUSTOM_FIELD_ID": "Nickname__c", "FIELD_VALUE": "Bo"}],
            },
        )
        unknown = await c.put(
            "Contacts", json={"CONTACT_ID": 2002, "CUSTOMFIELDS": [{"FIELD_VALUE": "Bo"}]}
        )
    values = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in answer.json()["CUSTOMFIELDS"]}
    assert answer.status_code == 200 and values["Nickname__c"] == "Bo"
    assert unknown.json() == {"Message": "Custom field '' does not exist for Contact."}


# ---------------------------------------------------------------- search


async def test_search_exact_match_standard_and_custom(seeded: Sandbox) -> None:
    async with asgi_client(seeded) as c:
        hit = await c.get(
            "Contacts/Search",
            params={"field_name": "EMAIL_ADDRESS", "field_value": "samir.ivanova.2001@example.com"},
        )
        case = await c.get(
            "Contacts/Search",
            params={"field_name": "EMAIL_ADDRESS", "field_value": "SAMIR.IVANOVA.2001@example.com"},
        )
        custom = await c.get(
            "Contacts/Search", params={"field_name": "External_Id__c", "field_value": "EXT-0002005"}
        )
        by_int = await c.get(
            "Contacts/Search", params={"field_name": "ORGANISATION_ID", "field_value": "1042"}
        )
        half = await c.get("Contacts/Search", params={"field_name": "EMAIL_ADDRESS"})
        unknown = await c.get("Contacts/Search", params={"field_name": "NOPE", "field_value": "x"})
    assert [r["CONTACT_ID"] for r in hit.json()] == [2001]
    assert case.json() == []
    assert [r["CONTACT_ID"] for r in custom.json()] == [2005]
    assert by_int.json() and all(r["ORGANISATION_ID"] == 1042 for r in by_int.json())
    assert half.status_code == 400 and unknown.status_code == 400


@pytest.mark.parametrize(
    ("fmt", "shift"),
    [
        ("%Y-%m-%dT%H:%M:%SZ", 0),  # recorded working, as documented
        ("%Y-%m-%d %H:%M:%S", 0),  # recorded working (Airbyte, the taps)
        # as ASP.NET's DateTime.Parse reads them (JavaScript's toISOString, .NET's "o" and
        # culture forms): each filters, none is taken for no filter at all
        ("%Y-%m-%dT%H:%M:%S.000Z", 0),
        ("%Y-%m-%dT%H:%M:%S.1234567Z", 0),
        ("%Y-%m-%dT%H:%M:%S+02:00", 2),
        ("%Y-%m-%dT%H:%M:%S-05:30", -5.5),
        ("%m/%d/%Y %I:%M:%S %p", 0),
        ("%Y/%m/%d %H:%M:%S", 0),
    ],
)
async def test_updated_after_utc_is_strictly_after(make_sandbox, fmt: str, shift: float) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        rows = (await c.get("Contacts", params={"top": 500})).json()
        stamps = sorted({r["DATE_UPDATED_UTC"] for r in rows})
        pivot = stamps[len(stamps) // 2]
        local = datetime.strptime(pivot, "%Y-%m-%d %H:%M:%S") + timedelta(hours=shift)
        text = local.strftime(fmt)
        found = (
            await c.get("Contacts/Search", params={"updated_after_utc": text, "top": 500})
        ).json()
        listed = (await c.get("Contacts", params={"updated_after_utc": text, "top": 500})).json()
        unparsed = await c.get("Contacts/Search", params={"updated_after_utc": "yesterday"})
    expected = {r["CONTACT_ID"] for r in rows if r["DATE_UPDATED_UTC"] > pivot}
    assert {r["CONTACT_ID"] for r in found} == expected
    assert {r["CONTACT_ID"] for r in listed} == expected  # plain lists filter too
    assert all(r["DATE_UPDATED_UTC"] != pivot for r in found)  # the equal second is excluded
    # ASP.NET model binding: a value that does not parse is no filter, not an error
    assert unparsed.status_code == 200 and len(unparsed.json()) == min(100, len(rows))


# ---------------------------------------------------------------- writes


async def test_create_returns_201_and_the_full_record(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        r = await c.post(
            "Contacts",
            json={
                "FIRST_NAME": "Ada",
                "LAST_NAME": "Lovelace",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Customer_Tier__c", "FIELD_VALUE": "Gold"}],
                "TAGS": [{"TAG_NAME": "vip"}],
            },
        )
        rec = r.json()
        again = (await c.get(f"Contacts/{rec['CONTACT_ID']}")).json()
    assert r.status_code == 201
    assert rec["CONTACT_ID"] > 2220 and rec["DATE_CREATED_UTC"] == rec["DATE_UPDATED_UTC"]
    assert rec["OWNER_USER_ID"] == 1 and rec["CREATED_USER_ID"] == 1 and rec["PHONE"] is None
    assert {
        "FIELD_NAME": "Customer_Tier__c",
        "FIELD_VALUE": "Gold",
        "CUSTOM_FIELD_ID": "Customer_Tier__c",
    } in rec["CUSTOMFIELDS"]
    member = next(c for c in rec["CUSTOMFIELDS"] if c["FIELD_NAME"] == "Member_No__c")
    assert member["FIELD_VALUE"] == str(
        int(
            max(
                int(v["FIELD_VALUE"])
                for r in sb.account.collections["Contacts"].records.values()
                for v in r["CUSTOMFIELDS"]
                if v["FIELD_NAME"] == "Member_No__c"
            )
        )
    )
    assert rec["TAGS"] == [{"TAG_NAME": "vip"}]
    assert again == rec


@pytest.mark.parametrize("shape", ["recorded", "complete"])
async def test_a_record_created_without_custom_fields_gets_its_autonumber(
    make_sandbox, shape: str
) -> None:
    sb = make_sandbox(shape=shape)
    async with asgi_client(sb) as c:
        rec = (await c.post("Contacts", json={"FIRST_NAME": "Plain"})).json()
    values = {item["FIELD_NAME"]: item["FIELD_VALUE"] for item in rec["CUSTOMFIELDS"]}
    if shape == "complete":  # every one listed, null when unset
        assert list(values) == [d["FIELD_NAME"] for d in sb.account.definitions("Contacts")]
        assert values["Customer_Tier__c"] is None
    else:  # only the one with a value
        assert list(values) == ["Member_No__c"]
    assert values["Member_No__c"] is not None


async def test_put_is_partial_null_clears_and_bumps_updated(make_sandbox) -> None:
    clock = [datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)]
    sb = make_sandbox(now=lambda: clock[0])
    async with asgi_client(sb) as c:
        before = (await c.get("Contacts/2001")).json()
        clock[0] += timedelta(seconds=5)
        r = await c.put(
            "Contacts",
            json={
                "CONTACT_ID": 2001,
                "TITLE": "CTO",
                "PHONE_MOBILE": None,
                "CUSTOMFIELDS": [{"FIELD_NAME": "Nickname__c", "FIELD_VALUE": "Sam"}],
            },
        )
        after = r.json()
    assert r.status_code == 200  # as a live PUT answered (docs/api.md §10; the swagger says 201)
    assert after["TITLE"] == "CTO" and after["PHONE_MOBILE"] is None
    assert (
        after["FIRST_NAME"] == before["FIRST_NAME"]
        and after["EMAIL_ADDRESS"] == before["EMAIL_ADDRESS"]
    )
    assert after["DATE_UPDATED_UTC"] == "2026-11-20 12:00:05"
    cf_before = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in before["CUSTOMFIELDS"]}
    cf_after = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in after["CUSTOMFIELDS"]}
    assert cf_after == {**cf_before, "Nickname__c": "Sam"}  # merge: other custom fields kept


async def test_put_replace_mode_erases_unlisted_custom_fields(make_sandbox) -> None:
    sb = make_sandbox(put_customfields="replace")
    async with asgi_client(sb) as c:
        after = (
            await c.put(
                "Contacts",
                json={
                    "CONTACT_ID": 2001,
                    "CUSTOMFIELDS": [{"FIELD_NAME": "Nickname__c", "FIELD_VALUE": "S"}],
                },
            )
        ).json()
    values = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in after["CUSTOMFIELDS"]}
    assert "Customer_Tier__c" not in values and values["Nickname__c"] == "S"  # erased: unset
    assert values["Member_No__c"] is not None


async def test_put_also_accepted_with_id_in_path_and_404_for_unknown(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        ok = await c.put("Contacts/2002", json={"TITLE": "Boss"})
        missing = await c.put("Contacts", json={"CONTACT_ID": 5, "TITLE": "x"})
        no_id = await c.put("Contacts", json={"TITLE": "x"})
    assert ok.status_code == 200 and ok.json()["TITLE"] == "Boss"
    assert missing.status_code == 404
    assert no_id.status_code == 400


@pytest.mark.parametrize("status", [None, 412, 400])
async def test_stale_if_match_is_refused(make_sandbox, status: int | None) -> None:
    """400 as live probes saw (the default), or 412 as documented."""
    sb = make_sandbox() if status is None else make_sandbox(if_match_status=status)
    async with asgi_client(sb) as c:
        etag = (await c.get("Contacts/2003")).headers["ETag"]
        fresh = await c.put(
            "Contacts", json={"CONTACT_ID": 2003, "TITLE": "A"}, headers={"If-Match": etag}
        )
        stale = await c.put(
            "Contacts", json={"CONTACT_ID": 2003, "TITLE": "B"}, headers={"If-Match": etag}
        )
        current = (await c.get("Contacts/2003")).json()
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    assert stale.status_code == (status or 400)
    assert "If-Match" in stale.json()["Message"]
    assert current["TITLE"] == "A"


async def test_a_malformed_if_match_is_refused_with_400_as_live(make_sandbox) -> None:
    sb = make_sandbox(if_match_status=412)
    async with asgi_client(sb) as c:
        answer = await c.put(
            "Contacts", json={"CONTACT_ID": 2003, "TITLE": "A"}, headers={"If-Match": "abc"}
        )
        weak = await c.put(
            "Contacts", json={"CONTACT_ID": 2003, "TITLE": "A"}, headers={"If-Match": 'W/"x"'}
        )
    assert (answer.status_code, answer.json()) == (
        400,
        {"Message": "If-Match header value abc is not valid."},
    )
    assert weak.status_code == 412  # well formed, but not the record's (stale, as documented)
    assert sb.account.collections["Contacts"].records[2003]["TITLE"] != "A"


async def test_delete_answers_202_then_404(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        first = await c.delete("Contacts/2004")
        second = await c.delete("Contacts/2004")
        gone = await c.get("Contacts/2004")
    assert (first.status_code, second.status_code, gone.status_code) == (202, 404, 404)
    assert first.content == b""


async def test_notes_are_created_under_a_parent(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        top = await c.post("Notes", json={"TITLE": "x"})
        r = await c.post("Contacts/2001/Notes", json={"TITLE": "Call", "BODY": "Went well"})
        listed = (await c.get("Contacts/2001/Notes")).json()
        orphan = await c.post("Contacts/1/Notes", json={"TITLE": "x"})
    assert top.status_code == 405
    note = r.json()
    assert r.status_code == 201 and note["TITLE"] == "Call"
    assert (
        note["LINKS"][0]["LINK_OBJECT_NAME"] == "Contact"
        and note["LINKS"][0]["LINK_OBJECT_ID"] == 2001
    )
    assert note["NOTE_ID"] in [n["NOTE_ID"] for n in listed]
    assert orphan.status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("Contacts", {"LAST_NAME": "x"}, "The FIRST_NAME field is required."),
        ("Projects", {"PROJECT_NAME": "x"}, "The STATUS field is required."),
        (
            "Contacts",
            {"FIRST_NAME": "x" * 256},
            "The field FIRST_NAME must be a string with a maximum length of 255.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "OWNER_USER_ID": "abc"},
            "Error converting value \"abc\" to type 'System.Int64'. Path 'OWNER_USER_ID'.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "EMAIL_OPTED_OUT": "maybe"},
            "Error converting value \"maybe\" to type 'System.Boolean'. Path 'EMAIL_OPTED_OUT'.",
        ),
        (
            "Opportunities",
            {"OPPORTUNITY_NAME": "x", "BID_AMOUNT": "1,234.50"},
            "Error converting value \"1,234.50\" to type 'System.Double'. Path 'BID_AMOUNT'.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "DATE_OF_BIRTH": "31/12/1990"},
            "Could not convert string to DateTime: 31/12/1990. Path 'DATE_OF_BIRTH'.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "DATE_OF_BIRTH": "1990-02-30 00:00:00"},
            "Could not convert string to DateTime: 1990-02-30 00:00:00. Path 'DATE_OF_BIRTH'.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "DATE_OF_BIRTH": "1990-01-01T00:00:00Z"},
            "Could not convert string to DateTime: 1990-01-01T00:00:00Z. Path 'DATE_OF_BIRTH'.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "DATE_CREATED_UTC": "2020-01-01 00:00:00"},
            "The field DATE_CREATED_UTC is read-only and cannot be set.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "CONTACT_ID": 5},
            "The field CONTACT_ID is read-only and cannot be set.",
        ),
        (
            "Opportunities",
            {"OPPORTUNITY_NAME": "x", "STAGE_ID": 11},
            "The field STAGE_ID is read-only and cannot be set.",
        ),
        (
            "Contacts",
            {"FIRST_NAME": "x", "ORGANISATION_ID": 1},
            "ORGANISATION_ID 1 does not refer to an existing record.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Shoe_Size__c", "FIELD_VALUE": "9"}],
            },
            "Custom field 'Shoe_Size__c' does not exist for Contact.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Customer_Tier__c", "FIELD_VALUE": "gold"}],
            },
            "'gold' is not a valid option for custom field Customer_Tier__c.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Interests__c", "FIELD_VALUE": "Music;Knitting"}],
            },
            "'Knitting' is not a valid option for custom field Interests__c.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Lifetime_Value__c", "FIELD_VALUE": "lots"}],
            },
            "Error converting value \"lots\" to type 'System.Double'. Path 'Lifetime_Value__c'.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "First_Purchase__c", "FIELD_VALUE": "2026-13-01"}],
            },
            "Could not convert string to DateTime: 2026-13-01. Path 'First_Purchase__c'.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Newsletter__c", "FIELD_VALUE": "yes"}],
            },
            "Error converting value \"yes\" to type 'System.Boolean'. Path 'Newsletter__c'.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Member_No__c", "FIELD_VALUE": "7"}],
            },
            "Custom field Member_No__c is read-only and cannot be set.",
        ),
        (
            "Contacts",
            {
                "FIRST_NAME": "x",
                "CUSTOMFIELDS": [{"FIELD_NAME": "Nickname__c", "FIELD_VALUE": "n" * 256}],
            },
            "The field Nickname__c must be a string with a maximum length of 255.",
        ),
        ("Contacts", [{"FIRST_NAME": "x"}], "The request body must be a JSON object."),
    ],
)
@pytest.mark.slow
async def test_validation_failures_are_400_with_a_message(
    make_sandbox, path: str, body: object, message: str
) -> None:
    sb = make_sandbox(writes="strict")
    async with asgi_client(sb) as c:
        before = len(sb.account.collections[path].ids)
        r = await c.post(path, json=body)
    assert r.status_code == 400
    assert r.json() == {"Message": message}
    assert len(sb.account.collections[path].ids) == before  # nothing was created


async def test_valid_values_are_normalised(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        r = await c.post(
            "Contacts",
            json={
                "FIRST_NAME": "x",
                "OWNER_USER_ID": "2",
                "EMAIL_OPTED_OUT": "true",
                "DATE_OF_BIRTH": "1990-12-31",
                "CUSTOMFIELDS": [
                    {"FIELD_NAME": "Interests__c", "FIELD_VALUE": "Music;Travel"},
                    {"FIELD_NAME": "Lifetime_Value__c", "FIELD_VALUE": "1234.5"},
                    {"FIELD_NAME": "First_Purchase__c", "FIELD_VALUE": "2026-01-15 13:45:00"},
                    {"FIELD_NAME": "Newsletter__c", "FIELD_VALUE": True},
                ],
            },
        )
    rec = r.json()
    cf = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in rec["CUSTOMFIELDS"]}
    assert (rec["OWNER_USER_ID"], rec["EMAIL_OPTED_OUT"], rec["DATE_OF_BIRTH"]) == (
        2,
        True,
        "1990-12-31 00:00:00",
    )
    assert cf["Interests__c"] == "Music;Travel" and cf["Lifetime_Value__c"] == 1234.5
    assert cf["First_Purchase__c"] == "2026-01-15 00:00:00" and cf["Newsletter__c"] is True


async def test_leads_get_default_source_and_status(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        lead = (await c.post("Leads", json={"LAST_NAME": "Nguyen"})).json()
    assert lead["LEAD_SOURCE_ID"] == 1 and lead["LEAD_STATUS_ID"] == 1


# ---------------------------------------------------------------- limits


async def test_rate_limit_429_keeps_headers_and_does_not_spend_quota(make_sandbox) -> None:
    sb = make_sandbox(rate_limit=5, daily_quota=1000, retry_after=2)
    async with asgi_client(sb) as c:
        answers = [await c.get("Users/Me") for _ in range(8)]
    statuses = [a.status_code for a in answers]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.headers["X-RateLimit-Limit"] == "1000"
    assert int(limited.headers["X-RateLimit-Remaining"]) > 0
    assert limited.headers["Retry-After"] == "2"
    assert sb.quota.used == statuses.count(200)


async def test_daily_quota_429_with_remaining_zero_then_reset(make_sandbox) -> None:
    sb = make_sandbox(daily_quota=3)
    async with asgi_client(sb) as c:
        ok = [await c.get("Users/Me") for _ in range(3)]
        spent = await c.get("Users/Me")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sb.app), base_url="http://sandbox.test"
        ) as admin:
            await admin.post("/_sandbox/reset-quota")
        again = await c.get("Users/Me")
    assert [r.headers["X-RateLimit-Remaining"] for r in ok] == ["2", "1", "0"]
    assert spent.status_code == 429 and spent.headers["X-RateLimit-Remaining"] == "0"
    assert spent.headers["X-RateLimit-Limit"] == "3"
    assert again.status_code == 200


# ---------------------------------------------------------------- faults


@pytest.mark.slow
async def test_faults_are_seeded_and_of_every_kind(make_sandbox) -> None:
    sb = make_sandbox(fault_rate=1.0, fault_slow_s=0.01)
    async with asgi_client(sb) as c:
        statuses = []
        for _ in range(30):
            statuses.append((await c.get("Users/Me")).status_code)
        created = 0
        dropped = 0
        for n in range(40):
            before = len(sb.account.collections["Contacts"].ids)
            try:
                r = await c.post("Contacts", json={"FIRST_NAME": f"F{n}"})
            except ConnectionResetError:
                dropped += 1
                assert (
                    len(sb.account.collections["Contacts"].ids) == before + 1
                )  # applied, then dropped
                continue
            if r.status_code == 201:
                created += 1
            else:
                assert len(sb.account.collections["Contacts"].ids) == before  # 500/503: not applied
    assert {500, 503, 200} <= set(statuses)  # 200 here = the slow kind, answered late
    assert dropped > 0 and created > 0
    assert set(sb.faults_injected) == {"500", "503", "slow", "drop"}
    replay = make_sandbox(fault_rate=1.0, fault_slow_s=0.01)
    async with asgi_client(replay) as c:
        assert [(await c.get("Users/Me")).status_code for _ in range(30)] == statuses


async def test_denied_objects_answer_403(make_sandbox) -> None:
    sb = make_sandbox(deny=frozenset({"Leads"}))
    async with asgi_client(sb) as c:
        r = await c.get("Leads")
    assert r.status_code == 403


async def test_admin_stats_and_records(make_sandbox) -> None:
    sb = make_sandbox()
    async with asgi_client(sb) as c:
        await c.get("Contacts/2001")
        await c.get("Contacts/2002")
        await c.get("Contacts", params={"top": 1})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sb.app), base_url="http://sandbox.test"
    ) as admin:
        stats = (await admin.get("/_sandbox/stats")).json()
        records = (await admin.get("/_sandbox/records/Contacts")).json()
    assert {"method": "GET", "path": "/v3.1/Contacts/{id}", "status": 200, "count": 2} in stats[
        "requests"
    ]
    assert stats["records"]["Contacts"] == 220 == len(records)


async def test_state_file_keeps_the_account_and_the_day_count_across_restarts(
    make_sandbox, tmp_path
) -> None:
    state = tmp_path / "account.sqlite"
    first = make_sandbox(state=state, daily_quota=100)
    async with asgi_client(first) as c:
        rec = (await c.post("Contacts", json={"FIRST_NAME": "Persisted"})).json()
        await c.delete("Contacts/2001")
        await c.put("Contacts", json={"CONTACT_ID": 2002, "TITLE": "Kept"})
    first.account.close()
    second = make_sandbox(
        state=state, daily_quota=100, generate={"Contacts": 50}
    )  # generate ignored
    async with asgi_client(second) as c:
        again = await c.get(f"Contacts/{rec['CONTACT_ID']}")
        gone = await c.get("Contacts/2001")
        kept = (await c.get("Contacts/2002")).json()
    assert again.json() == rec
    assert gone.status_code == 404 and kept["TITLE"] == "Kept"
    assert len(second.account.collections["Contacts"].ids) == 220
    assert second.quota.used == 6  # 3 before the restart + 3 after


async def test_paths_and_parameter_names_are_case_insensitive_as_a_singer_tap_sends_them(
    seeded,
) -> None:
    """tap-insightly asks `GET /v3.1/contacts?count_total=true&updated_after_utc=None&skip=0&top=500`;
    ASP.NET routes and binds case-insensitively and ignores the unparseable `None`."""
    async with asgi_client(seeded) as c:
        tap = await c.get(
            "contacts",
            params={"count_total": "true", "updated_after_utc": "None", "skip": 0, "top": 500},
        )
        upper = await c.get("CONTACTS", params={"TOP": "2", "Skip": "1", "Count_Total": "True"})
        canonical = await c.get("Contacts", params={"top": 2, "skip": 1})
        one = await c.get(f"contacts/{canonical.json()[0]['CONTACT_ID']}")
        search = await c.get(
            "contacts/search", params={"FIELD_NAME": "FIRST_NAME", "field_value": "x"}
        )
        fields = await c.get("customfields/contacts")
    total = len(seeded.account.collections["Contacts"].ids)
    assert tap.status_code == 200 and tap.headers["X-Total-Count"] == str(total)
    assert len(tap.json()) == min(500, total)
    assert upper.status_code == 200 and upper.json() == canonical.json()
    assert upper.headers["X-Total-Count"] == str(total)
    assert one.status_code == 200 and one.json()["CONTACT_ID"] == canonical.json()[0]["CONTACT_ID"]
    assert search.status_code == 200 and fields.status_code == 200 and len(fields.json()) > 0


async def test_child_lists_filter_by_updated_after_utc(make_sandbox) -> None:
    sb = make_sandbox()
    rid = sb.account.collections["Contacts"].ids[0]
    async with asgi_client(sb) as c:
        note = (await c.post(f"Contacts/{rid}/Notes", json={"TITLE": "t", "BODY": "b"})).json()
        past = await c.get(
            f"contacts/{rid}/notes", params={"updated_after_utc": "2000-01-01T00:00:00Z"}
        )
        future = await c.get(
            f"Contacts/{rid}/Notes", params={"updated_after_utc": "2999-01-01T00:00:00Z"}
        )
    assert note["NOTE_ID"] in [n["NOTE_ID"] for n in past.json()]
    assert future.status_code == 200 and future.json() == []


async def test_a_deeply_nested_body_is_a_400_not_a_crash(make_sandbox) -> None:
    async with asgi_client(make_sandbox()) as c:
        r = await c.post(
            "Contacts",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert (r.status_code, r.json()) == (400, {"Message": "The request body is not valid JSON."})


async def test_lenient_writes_ignore_read_only_fields_and_take_iso_dates_as_live_evidence_says(
    make_sandbox,
) -> None:
    sb = make_sandbox()  # writes="lenient", the default
    async with asgi_client(sb) as c:
        r = await c.post(
            "Contacts",
            json={
                "FIRST_NAME": "Lenient",
                "DATE_CREATED_UTC": "2001-01-01 00:00:00",
                "IMAGE_URL": "http://x.example/a.png",
                "DATE_OF_BIRTH": "1990-02-03T00:00:00.000Z",
                # custom dates as standard ones: they were refused ("Could not convert")
                "CUSTOMFIELDS": [
                    {"FIELD_NAME": "First_Purchase__c", "FIELD_VALUE": "2024-01-02T00:00:00Z"},
                    {"FIELD_NAME": "Last_Webinar__c", "FIELD_VALUE": "2024-01-02T10:30:00+02:00"},
                ],
            },
        )
    record = r.json()
    assert r.status_code == 201, r.text
    assert record["DATE_CREATED_UTC"] != "2001-01-01 00:00:00"  # silently not applied
    assert record["IMAGE_URL"] != "http://x.example/a.png"
    assert record["DATE_OF_BIRTH"] == "1990-02-03 00:00:00"
    values = {c["FIELD_NAME"]: c["FIELD_VALUE"] for c in record["CUSTOMFIELDS"]}
    assert values["First_Purchase__c"] == "2024-01-02 00:00:00"
    assert values["Last_Webinar__c"] == "2024-01-02 08:30:00"  # the instant, in UTC


async def test_the_quota_window_is_rolling_a_request_frees_up_24_hours_after_it_was_made(
    make_sandbox,
) -> None:
    from datetime import UTC, datetime, timedelta

    clock = {"now": datetime(2026, 11, 23, 9, 0, tzinfo=UTC)}
    sb = make_sandbox(daily_quota=3, now=lambda: clock["now"])
    async with asgi_client(sb) as c:
        for _ in range(2):
            await c.get("Users/Me")
        clock["now"] += timedelta(hours=12)
        third = await c.get("Users/Me")
        refused = await c.get("Users/Me")
        clock["now"] += timedelta(hours=12, minutes=1)  # the first two are a day old
        freed = await c.get("Users/Me")
        stats = (await c.get("http://sandbox.test/_sandbox/stats")).json()
    assert third.headers["X-RateLimit-Remaining"] == "0"
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Remaining"] == "0"
    assert freed.status_code == 200 and freed.headers["X-RateLimit-Remaining"] == "1"
    assert stats["quota_window"] == "rolling"
    assert stats["next_free"] == "2026-11-24 21:00 UTC: 1"


async def test_a_calendar_window_resets_at_utc_midnight(make_sandbox) -> None:
    from datetime import UTC, datetime, timedelta

    clock = {"now": datetime(2026, 11, 23, 23, 59, tzinfo=UTC)}
    sb = make_sandbox(daily_quota=1, now=lambda: clock["now"], quota_window="calendar")
    async with asgi_client(sb) as c:
        await c.get("Users/Me")
        refused = await c.get("Users/Me")
        clock["now"] += timedelta(minutes=2)
        next_day = await c.get("Users/Me")
    assert (refused.status_code, next_day.status_code) == (429, 200)


async def test_rate_limit_headers_come_on_every_answer_errors_included(make_sandbox) -> None:
    sb = make_sandbox(daily_quota=50)
    async with asgi_client(sb, auth=False) as anonymous:
        denied = await anonymous.get("Contacts")
    async with asgi_client(sb) as c:
        missing = await c.get("Contacts/999999")
    for r in (denied, missing):
        assert r.headers["X-RateLimit-Limit"] == "50" and "X-RateLimit-Remaining" in r.headers
    assert (denied.status_code, missing.status_code) == (401, 404)


async def test_answers_are_gzipped_when_asked(seeded) -> None:
    async with asgi_client(seeded) as c:
        r = await c.get("Contacts", params={"top": 500}, headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip" and len(r.json()) > 100


async def test_requests_beyond_max_concurrent_get_429_and_spend_no_quota(make_sandbox) -> None:
    import asyncio

    sb = make_sandbox(max_concurrent=2, latency_ms=100, daily_quota=100)
    async with asgi_client(sb) as c:
        answers = await asyncio.gather(*(c.get("Users/Me") for _ in range(5)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 200, 429, 429, 429]
    assert sb.quota.used == 2


async def test_a_burst_is_the_bucket_size(make_sandbox) -> None:
    import asyncio

    sb = make_sandbox(rate_limit=1, burst=3, daily_quota=100)
    async with asgi_client(sb) as c:
        answers = await asyncio.gather(*(c.get("Users/Me") for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 429, 429]
