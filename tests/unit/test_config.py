from __future__ import annotations

import base64
from pathlib import Path

import pytest

from insightly_etl.config import load_settings, read_key_file
from insightly_etl.errors import ConfigError


def test_pod_gives_the_pod_url() -> None:
    s = load_settings(environ={"INSIGHTLY_API_KEY": "k", "INSIGHTLY_POD": "eu1"})
    assert s.base_url == "https://api.eu1.insightly.com/v3.1/"


def test_url_wins_over_pod_and_gets_a_trailing_slash() -> None:
    s = load_settings(
        environ={
            "INSIGHTLY_API_KEY": "k",
            "INSIGHTLY_POD": "eu1",
            "INSIGHTLY_API_URL": "http://127.0.0.1:8765/v3.1",
        }
    )
    assert s.base_url == "http://127.0.0.1:8765/v3.1/"


def test_key_file(tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text("abc\n")
    assert load_settings(api_key_file=f, environ={}).api_key.reveal() == "abc"


def test_a_key_file_saved_with_a_byte_order_mark_is_the_key(tmp_path: Path) -> None:
    """Notepad's UTF-8 puts U+FEFF first: it was sent as part of the key, which was refused."""
    f = tmp_path / "key"
    f.write_bytes(b"\xef\xbb\xbfabc\r\n")
    assert read_key_file(f) == "abc"
    f.write_bytes(b"\xff\xfea\x00b\x00")  # UTF-16: no key, and no --encoding to give
    with pytest.raises(ConfigError, match=rf"^the API key file {f} is not UTF-8 text: not a key$"):
        read_key_file(f)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "no Insightly API key: set INSIGHTLY_API_KEY or pass --api-key-file"),
        (
            {"INSIGHTLY_API_KEY": "k", "INSIGHTLY_POD": "n a 1"},
            "invalid pod 'n a 1': expected a name like na1 or eu1",
        ),
        (
            {"INSIGHTLY_API_KEY": "k", "INSIGHTLY_API_URL": "http://crm.example.com/v3.1/"},
            "refusing to send the API key over plain http to crm.example.com",
        ),
        (
            {
                "INSIGHTLY_API_KEY": "k",
                "INSIGHTLY_API_URL": "https://k@api.na1.insightly.com/v3.1/",
            },
            "the API URL must not contain credentials; set INSIGHTLY_API_KEY",
        ),
    ],
)
def test_config_errors_say_what_to_fix(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_missing_key_hint_points_to_user_settings() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert "User Settings → API" in (info.value.hint or "")


@pytest.mark.parametrize(
    "url", ["http://localhost:8765/v3.1/", "http://127.0.0.1/v3.1/", "http://[::1]:80/v3.1/"]
)
def test_plain_http_allowed_on_loopback(url: str) -> None:
    assert load_settings(
        environ={"INSIGHTLY_API_KEY": "k", "INSIGHTLY_API_URL": url}
    ).base_url.startswith("http://")


def test_a_base_url_without_the_api_version_is_refused_with_the_fix() -> None:
    from insightly_etl.config import check_base_url
    from insightly_etl.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        check_base_url("http://127.0.0.1:8899/")
    assert (
        str(caught.value)
        == "the API URL http://127.0.0.1:8899/ does not end in a version such as /v3.1/"
    )
    assert (
        caught.value.hint is not None
        and "Did you mean http://127.0.0.1:8899/v3.1/ ?" in caught.value.hint
    )
    assert check_base_url("http://127.0.0.1:8899/v3.1") == "http://127.0.0.1:8899/v3.1/"
    with pytest.raises(ConfigError) as caught:  # an older version's URL: replaced, not added to
        check_base_url("https://api.na1.insightly.com/v2.2/")
    assert str(caught.value) == (
        "the API URL https://api.na1.insightly.com/v2.2/ is of API version v2.2; this tool "
        "speaks v3.1"
    )
    assert caught.value.hint is not None and caught.value.hint.startswith(
        "Did you mean https://api.na1.insightly.com/v3.1/ ?"
    )


def test_singular_names_come_from_the_registry() -> None:
    from insightly_etl.api.registry import custom_object, get_object

    assert get_object("opportunities").singular == "opportunity"
    assert get_object("pipeline_stages").singular == "pipeline stage"
    assert get_object("knowledge_article_categories").singular == "knowledge article category"
    assert get_object("contacts").singular == "contact"
    assert get_object("lead_statuses").singular == "lead status"
    from insightly_etl.api.registry import OBJECTS

    assert all(not o.singular.endswith(("ie", "statuse")) for o in OBJECTS.values())
    assert custom_object("Site__c").singular == "Site__c"


def test_an_object_type_knows_what_it_is_beyond_its_fields() -> None:
    from insightly_etl.api.registry import LINKABLE, DuplicateRule, custom_object, get_object

    deals, notes, people = get_object("opportunities"), get_object("notes"), get_object("people")
    assert (deals.pipelined, deals.pipeline_flag, deals.states[:2]) == (
        True,
        "FOR_OPPORTUNITIES",
        ("Open", "Won"),
    )
    assert (get_object("projects").pipeline_flag, get_object("projects").states) == (
        "FOR_PROJECTS",
        (),
    )
    assert (notes.under_parent, notes.link_name, people.link_name) == (True, "Note", "Contact")
    assert (people.identity, get_object("leads").identity) == ("EMAIL_ADDRESS", "EMAIL")
    assert people.duplicate_rule == DuplicateRule(
        ("FIRST_NAME", "LAST_NAME"), ("EMAIL_ADDRESS", "PHONE", "ORGANISATION_ID")
    )
    assert (get_object("leads").linkable, "leads" in LINKABLE) == (False, False)
    assert (get_object("pipelines").name_field, custom_object("Site__c").name_field) == (
        "PIPELINE_NAME",
        "RECORD_NAME",
    )
    assert not custom_object("Site__c").pipelined and not custom_object("Site__c").linkable


def test_sub_collections_come_from_the_object_types() -> None:
    from insightly_etl.api.registry import get_object
    from insightly_etl.extract.subcollections import parents_of

    names = ["contacts", "opportunities", "Site__c", "custom_fields", "pipelines"]
    assert [o.name for o in parents_of("links", names)] == ["contacts", "opportunities"]
    assert [o.name for o in parents_of("state_history", names)] == ["opportunities"]
    assert get_object("tickets").sub_collections == frozenset({"comments"})
    assert get_object("notes").sub_collections == frozenset({"comments", "files", "links"})


def test_the_sandbox_s_public_key_is_not_blanked_out_of_words() -> None:
    from insightly_etl.config import Secret, redact

    Secret("sandbox")  # `insightly-etl sandbox`'s documented key
    assert redact("account: northwind-sandbox") == "account: northwind-sandbox"
    Secret("a-real-key-1234")
    assert redact("key a-real-key-1234 sent") == "key *** sent"


def test_a_key_file_must_be_a_small_regular_file(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        read_key_file(fifo)
    big = tmp_path / "big.key"
    big.write_text("x" * 5000)
    with pytest.raises(ConfigError, match="holds 5,000 bytes: not a key"):
        read_key_file(big)


def test_a_key_file_others_may_read_or_change_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "acme.key"
    key.write_text("a-real-key-1234\n")
    key.chmod(0o600)
    assert read_key_file(key) == "a-real-key-1234" and not caplog.records
    key.chmod(0o644)
    assert read_key_file(key) == "a-real-key-1234"
    assert [r.getMessage() for r in caplog.records] == [
        f"the API key file {key} can be read or changed by other users of this machine "
        f"(mode 644); `chmod 600 {key}` keeps it yours"
    ]


@pytest.mark.parametrize(
    "form",
    [
        lambda k: k.lower(),
        lambda k: k.upper(),
        lambda k: k.replace("-", "%2D"),  # URL-encoded
        lambda k: k.encode().hex(),
        lambda k: k.encode().hex().upper(),
        lambda k: base64.b64encode(f"{k}:a-password".encode()).decode(),  # key:password
        lambda k: k.replace("-", "").lower(),  # .NET's Guid.ToString("N")
        lambda k: k.replace("-", ""),
    ],
    ids=["lower", "upper", "url", "hex", "HEX", "basic with a password", "N", "N upper"],
)
def test_a_key_a_server_echoes_in_another_form_is_blanked_out(form) -> None:
    from insightly_etl.config import Secret, redact

    key = "5B0F3C2A-91D4-4E7B-A6C8-0D2E4F6A8B1C"
    Secret(key)
    echoed = redact(f"Invalid value {form(key)} in the request")
    assert "5B0F3C2A" not in echoed.upper() and "91D4" not in echoed.upper(), echoed
    assert b"5B0F3C2A".hex() not in echoed.lower(), echoed


@pytest.mark.parametrize(
    ("known", "this", "refused"),
    [
        (("acme", None), ("acme", None), False),
        (("acme", None), ("globex", None), True),
        (("acme", None), (None, 7), True),  # a name known, only a number now: cannot tell
        (("acme", 7), (None, 7), False),
        ((None, 7), (None, 8), True),
        ((None, 7), (None, None), True),  # GET /Users/Me refused too
        ((None, -7), (None, -7), False),
        ((None, None), (None, None), False),  # a new folder: nothing to compare
    ],
)
def test_a_key_is_told_from_another_accounts_by_name_else_by_number(known, this, refused) -> None:
    from insightly_etl.account_id import AccountId

    assert (AccountId(*this).mismatch_with(AccountId(*known)) is not None) == refused


def test_an_account_number_remembered_in_any_form_is_that_number() -> None:
    from insightly_etl.account_id import AccountId

    assert [AccountId.of(None, n).number for n in (424242, "424242", "-424242", " 7 ")] == [
        424242,
        424242,
        -424242,
        7,
    ]
    assert [AccountId.of(None, n).number for n in (True, "x", 4.2, None, "1" * 40)] == [None] * 5


def test_a_key_file_s_path_with_a_folder_is_named_though_its_name_is_key_like() -> None:
    """A Docker secret's path (/run/secrets/insightly_2024_11_30) was taken for a key, and
    neither it nor why it could not be read was said."""
    path = Path("/run/secrets/insightly_2024_11_30")
    with pytest.raises(ConfigError) as info:
        read_key_file(path)
    assert str(info.value) == f"cannot read the API key file {path}: No such file or directory"
    with pytest.raises(ConfigError) as info:  # the key itself, given as the file
        read_key_file(Path("0c4f7a9e-3b21-4d8a-9f6e-2a7b1c9d5e30"))
    assert str(info.value) == (
        "cannot read the API key file: its path looks like an API key itself, not a file's path"
    )


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("http://127.0.0.1:8/v3.1/x/", "http://127.0.0.1:8/v3.1/"),
        ("http://127.0.0.1:8/v3.1/Contacts", "http://127.0.0.1:8/v3.1/"),
        ("http://127.0.0.1:8/V3.1/", "http://127.0.0.1:8/v3.1/"),
        ("http://127.0.0.1:8/v3.1/?top=1", "http://127.0.0.1:8/v3.1/"),
        ("https://api.na1.insightly.com/v2.2", "https://api.na1.insightly.com/v3.1/"),
        (
            "https://api.na1.insightly.com/v3.1/Contacts?top=5",
            "https://api.na1.insightly.com/v3.1/",
        ),
        ("https://api.na1.insightly.com/v3.1/?", "https://api.na1.insightly.com/v3.1/"),
        ("https://api.na1.insightly.com/v3.1/#", "https://api.na1.insightly.com/v3.1/"),
        # a gateway's own version is part of its path, not Insightly's
        ("https://gw.example.com/v1/insightly/", "https://gw.example.com/v1/insightly/v3.1/"),
    ],
)
def test_a_base_url_with_more_or_less_than_its_version_is_refused_with_the_url_meant(
    url: str, meant: str
) -> None:
    """`…/v3.1/Contacts` was refused with "Did you mean …/v3.1/Contacts/v3.1/ ?"."""
    from insightly_etl.config import check_base_url

    with pytest.raises(ConfigError) as caught:
        check_base_url(url)
    assert caught.value.hint is not None and caught.value.hint.startswith(f"Did you mean {meant} ?")


def test_an_accounts_name_or_object_with_digits_in_it_is_no_key(tmp_path: Path) -> None:
    """`name: acme-20241130-production` was refused as "looks like an API key": only a GUID,
    the form of Insightly's keys, is taken for one in a name or an object's."""
    from insightly_etl.accounts import read_accounts
    from insightly_etl.errors import InputError

    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n  - name: acme-20241130-production\n    pod: na1\n    key_env: K\n"
        "    objects: [contacts, Contract_20240101_v2__c]\n",
        encoding="utf-8",
    )
    assert [e.name for e in read_accounts(path)] == ["acme-20241130-production"]
    path.write_text(
        "accounts:\n  - name: 3f2a9c1e-0d4b-4c8e-9a7f-abcdef012345\n    pod: na1\n    key_env: K\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="name: looks like an API key"):
        read_accounts(path)
