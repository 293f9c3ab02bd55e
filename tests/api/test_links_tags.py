"""The sandbox's Links and Tags endpoints (docs/api.md §2.2, §4, swagger), which a migration uses
to link people to deals and to tag records without rewriting them."""

from __future__ import annotations

import pytest

from tests.conftest import asgi_client

pytestmark = pytest.mark.anyio


async def test_a_link_is_added_listed_mirrored_and_removed(make_sandbox) -> None:
    sb = make_sandbox()
    contact = sb.account.collections["Contacts"].ids[0]
    opp = sb.account.collections["Opportunities"].ids[0]
    async with asgi_client(sb) as c:
        added = await c.post(
            f"contacts/{contact}/links",
            json={
                "LINK_OBJECT_NAME": "Opportunity",
                "LINK_OBJECT_ID": opp,
                "ROLE": "Decision maker",
            },
        )
        link = added.json()
        listed = (await c.get(f"Contacts/{contact}/Links")).json()
        mirrored = (await c.get(f"Opportunities/{opp}/Links")).json()
        plural = await c.post(
            f"Contacts/{contact}/Links",
            json={"LINK_OBJECT_NAME": "Opportunities", "LINK_OBJECT_ID": opp},
        )
        dangling = await c.post(
            f"Contacts/{contact}/Links",
            json={"LINK_OBJECT_NAME": "Opportunity", "LINK_OBJECT_ID": 999999},
        )
        renamed = await c.put(
            f"Contacts/{contact}/Links", json={"LINK_ID": link["LINK_ID"], "ROLE": "Champion"}
        )
        removed = await c.delete(f"Contacts/{contact}/Links/{link['LINK_ID']}")
        after = (await c.get(f"Contacts/{contact}/Links")).json()
        mirror_after = (await c.get(f"Opportunities/{opp}/Links")).json()
    assert added.status_code == 201
    assert (link["OBJECT_NAME"], link["OBJECT_ID"], link["ROLE"]) == (
        "Contact",
        contact,
        "Decision maker",
    )
    assert link in listed
    back = [lk for lk in mirrored if lk["LINK_ID"] == link["LINK_ID"]]
    assert [(b["LINK_OBJECT_NAME"], b["LINK_OBJECT_ID"], b["IS_FORWARD"]) for b in back] == [
        ("Contact", contact, False)
    ]
    assert plural.status_code == 400
    assert plural.json() == {
        "Message": "LINK_OBJECT_NAME 'Opportunities' is not an object (link object names are singular, e.g. Contact)."
    }
    assert dangling.json() == {
        "Message": "LINK_OBJECT_ID 999999 does not refer to an existing record."
    }
    assert renamed.status_code == 200 and renamed.json()["ROLE"] == "Champion"
    assert removed.status_code == 202 and link["LINK_ID"] not in [lk["LINK_ID"] for lk in after]
    assert not [lk for lk in mirror_after if lk["LINK_ID"] == link["LINK_ID"]]


async def test_tags_are_added_replaced_removed_listed_and_searched(make_sandbox) -> None:
    sb = make_sandbox()
    contact = sb.account.collections["Contacts"].ids[0]
    async with asgi_client(sb) as c:
        await c.put(f"Contacts/{contact}/Tags", json=[{"TAG_NAME": "alpha"}, {"TAG_NAME": "beta"}])
        added = await c.post(
            f"Contacts/{contact}/Tags", json={"TAG_NAME": "gamma; with a semicolon"}
        )
        again = await c.post(f"Contacts/{contact}/Tags", json={"TAG_NAME": "alpha"})
        removed = await c.request("DELETE", f"Contacts/{contact}/Tags", json={"TAG_NAME": "beta"})
        tags = (await c.get(f"Contacts/{contact}/Tags")).json()
        found = (
            await c.get("Contacts/SearchByTag", params={"tagName": "gamma; with a semicolon"})
        ).json()
        listed = (await c.get("Tags", params={"record_type": "contacts"})).json()
        missing = await c.get("Tags")
    assert added.status_code == 201 and again.status_code == 201 and removed.status_code == 202
    assert tags == [{"TAG_NAME": "alpha"}, {"TAG_NAME": "gamma; with a semicolon"}]
    assert [r["CONTACT_ID"] for r in found] == [contact]
    assert {"TAG_NAME": "gamma; with a semicolon"} in listed
    assert missing.status_code == 400
