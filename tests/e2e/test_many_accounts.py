"""Many accounts from one command: accounts.yaml, a multi-account sandbox on loopback (one
key, subdomain, rate and quota each), `export --accounts`, `import --account`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from insightly_etl.cli import main
from insightly_etl.sandbox import SandboxConfig, running_sandbox
from insightly_etl.summary import schema
from tests.conftest import cli_runner

pytestmark = pytest.mark.slow

BASE = SandboxConfig(api_key="acme-key", subdomain="acme", rate_limit=50, daily_quota=100_000)


@pytest.fixture(scope="module")
def agency():
    more = [
        replace(BASE, api_key="globex-key", subdomain="globex", rate_limit=20),
        replace(BASE, api_key="initech-key", subdomain="initech", daily_quota=4),
    ]
    with running_sandbox(BASE, more=more) as running:
        yield running


def accounts_file(tmp_path: Path, url: str, *extra: str) -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "globex.key").write_text("globex-key\n")
    text = f"""accounts:
  - name: acme
    url: {url}
    key_env: ACME_KEY
    objects: [contacts, leads]
  - name: globex
    url: {url}
    key_file: keys/globex.key
    reserve: 10
    rate: 5
    objects: contacts
""" + "".join(extra)
    path = tmp_path / "accounts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def cli(*args: str, env: dict[str, str] | None = None):
    return cli_runner().invoke(main, list(args), env={"ACME_KEY": "acme-key", **(env or {})})


def test_two_accounts_export_at_once_each_into_its_own_folder(agency, tmp_path):
    accounts = accounts_file(tmp_path, agency.url)
    out = tmp_path / "out"
    result = cli(
        "export", "--accounts", str(accounts), "--out", str(out), "--summary-json",
        str(tmp_path / "s.json"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("acme: exported 2 object types, 300 rows, ")
    assert lines[1].startswith("globex: exported 1 object type, 220 rows, ")
    assert sorted(p.name for p in out.iterdir()) == ["account=acme", "account=globex"]
    acme = json.loads((out / "account=acme" / "_manifest.json").read_text())
    assert acme["account"] == "acme" and sorted(acme["objects"]) == ["contacts", "leads"]
    globex = json.loads((out / "account=globex" / "_manifest.json").read_text())
    assert globex["account"] == "globex" and sorted(globex["objects"]) == ["contacts"]
    s = json.loads((tmp_path / "s.json").read_text())
    jsonschema.validate(s, schema("summary"))
    assert [a["account_name"] for a in s["accounts"]] == ["acme", "globex"]
    assert [a["account"] for a in s["accounts"]] == ["acme", "globex"]
    assert s["requests"] == sum(a["requests"] for a in s["accounts"])
    assert s["exit_code"] == 0 and s["stop_reason"] is None
    # each account was served by its own sandbox account, paced on its own
    acme_sb, globex_sb, _ = agency.sandboxes
    assert acme_sb.quota.used >= s["accounts"][0]["requests"]
    assert globex_sb.quota.used >= s["accounts"][1]["requests"]


def test_one_failing_account_does_not_stop_the_others(agency, tmp_path):
    accounts = accounts_file(
        tmp_path,
        agency.url,
        f"  - name: initech\n    url: {agency.url}\n    key_env: INITECH_KEY\n",
        f"  - name: hooli\n    url: {agency.url}\n    key_env: HOOLI_KEY\n",
    )
    out = tmp_path / "out"
    result = cli(
        "export", "--accounts", str(accounts), "--out", str(out), "--summary-json",
        str(tmp_path / "s.json"),
        env={"INITECH_KEY": "initech-key", "HOOLI_KEY": "wrong-key"},
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # two failures of different kinds
    assert "Error: hooli: GET Instance, HTTP 401: the API key was refused" in result.stderr
    assert "(exit 77)" in result.stderr
    assert (  # the entry's key and pod, not --pod, which --accounts refuses
        "Hint: Find the account's API key in Insightly under User Settings → API and put it in "
        "$HOOLI_KEY; the pod shown there must match the entry's pod: or url:." in result.stderr
    )
    assert "Error: initech: " in result.stderr and "(exit 75)" in result.stderr
    assert "2 of 4 accounts failed: initech, hooli." in result.stderr
    assert "wrong-key" not in result.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    jsonschema.validate(s, schema("summary"))
    by_name = {a["account_name"]: a for a in s["accounts"]}
    assert by_name["acme"]["exit_code"] == by_name["globex"]["exit_code"] == 0
    assert (by_name["hooli"]["exit_code"], by_name["hooli"]["stop_reason"]) == (77, "error")
    assert (by_name["initech"]["exit_code"], by_name["initech"]["stop_reason"]) == (75, "quota")
    assert by_name["initech"]["retry_not_before"] is not None
    assert s["retry_not_before"] == by_name["initech"]["retry_not_before"]
    assert (out / "account=acme" / "_manifest.json").is_file()


def test_import_picks_one_account(agency, tmp_path):
    accounts = accounts_file(tmp_path, agency.url)
    data = tmp_path / "people.csv"
    data.write_text("FIRST_NAME,EMAIL_ADDRESS\nZelda,zelda@example.com\n", encoding="utf-8")
    globex = agency.sandboxes[1].account.collections["Contacts"]
    before = len(globex.ids)
    result = cli(
        "import", str(data), "--object", "contacts", "--accounts", str(accounts), "--account",
        "globex",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(globex.ids) == before + 1
    assert "account: globex" in result.stdout
    # a checkpoint and results of its own, per account
    assert (tmp_path / "people.csv.globex.checkpoint.sqlite").is_file()
    assert (tmp_path / "people.globex.success.csv").is_file()
    # the same checkpoint with another account's entry: refused, and no run is left behind
    runs = len(
        json.loads(
            cli("status", "--json", str(tmp_path / "people.csv.globex.checkpoint.sqlite")).stdout
        )["runs"]
    )
    other = cli(
        "import", str(data), "--object", "contacts", "--accounts", str(accounts), "--account",
        "acme", "--checkpoint", str(tmp_path / "people.csv.globex.checkpoint.sqlite"),
    )  # fmt: skip
    assert other.exit_code == 2
    assert "belongs to an import into account 'globex'" in other.stderr
    status = cli(
        "status", str(tmp_path / "people.csv.globex.checkpoint.sqlite"), "--json",
        "--accounts", str(accounts), "--account", "globex", "--log-format", "json",
    )  # fmt: skip
    assert status.exit_code == 0, status.output
    assert len(json.loads(status.stdout)["runs"]) == runs
    wrong = cli(
        "status", str(tmp_path / "people.csv.globex.checkpoint.sqlite"), "--accounts",
        str(accounts), "--account", "acme",
    )  # fmt: skip
    assert wrong.exit_code == 2
    assert "is an import for account 'globex', not 'acme'" in wrong.stderr
    missing = cli(
        "import",
        str(data),
        "--object",
        "contacts",
        "--accounts",
        str(accounts),
        "--account",
        "umbrella",
    )
    assert missing.exit_code == 2
    assert f"{accounts}: no account named 'umbrella'" in missing.stderr
    assert "Accounts there: acme, globex" in missing.stderr


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "  - name: x\n    url: http://127.0.0.1/v3.1/\n    key: abc\n",
            "a key written in the file (key:) is refused",
        ),
        ("  - name: x\n    pod: na1\n", "give one of key_env: (a variable) or key_file: (a file)"),
        (
            "  - name: x\n    pod: na1\n    key_env: ~\n",
            "give one of key_env: (a variable) or key_file: (a file)",
        ),
        (
            "  - name: ../up\n    pod: na1\n    key_env: K\n",
            "name: '../up' must begin with a letter or digit",
        ),
        ("  - name: 123\n    pod: na1\n    key_env: K\n", "name: 123 is not text; quote it"),
        ("  - name: x\n    pod: nowhere\n    key_env: K\n", "invalid pod 'nowhere'"),
        ("  - name: x\n    pod: na1\n    key_env: K\n    rate: 500\n", "rate: 500 must be"),
        ("  - name: x\n    pod: na1\n    key_env: K\n    color: red\n", "unknown key 'color'"),
        # a key pasted into a field that echoes its value (name: named the account's folder)
        *(
            (
                f"  - name: {name}\n    pod: na1\n    key_env: K\n    rate: {rate}\n",
                f"{field}: looks like an API key, which is never written here",
            )
            for field, name, rate in (
                ("name", "3f2a9c1e-0d4b-4c8e-9a7f-ABCDEF012345", 5),
                ("rate", "x", "3f2a9c1e-0d4b-4c8e-9a7f-ABCDEF012345"),
            )
        ),
        (
            "  - name: acme\n    pod: na1\n    key_env: K\n",
            "the account name 'acme' is given twice",
        ),
    ],
)
def test_a_wrong_accounts_file_is_refused_before_any_request(agency, tmp_path, entry, message):
    accounts = accounts_file(tmp_path, agency.url, entry)
    used = [s.quota.used for s in agency.sandboxes]
    result = cli("export", "--accounts", str(accounts), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert [s.quota.used for s in agency.sandboxes] == used
    assert not (tmp_path / "out").exists()
    assert "3f2a9c1e" not in result.stderr and "ABCDEF0123456789" not in result.stderr


def test_one_entry_of_the_file(agency, tmp_path):
    accounts = accounts_file(tmp_path, agency.url)
    out = tmp_path / "out"
    result = cli("export", "--accounts", str(accounts), "--account", "globex", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["account=globex"]
    assert cli("export", "--account", "globex", "--out", str(out)).exit_code == 2


def test_the_sandbox_refuses_two_accounts_alike():
    from click.testing import CliRunner

    for args in (
        ["--subdomain", "acme", "--account", "acme=k2"],
        ["--account", "g=k1", "--account", "h=k1"],
    ):
        result = CliRunner().invoke(main, ["sandbox", "--port", "0", *args])
        assert result.exit_code == 2
        assert "the subdomain and the key unlike every other account's" in result.output


def test_json_logs_name_the_failed_account_and_its_code(agency, tmp_path):
    accounts = accounts_file(
        tmp_path, agency.url, f"  - name: hooli\n    url: {agency.url}\n    key_env: HOOLI_KEY\n"
    )
    result = cli(
        "export", "--accounts", str(accounts), "--account", "hooli", "--out", str(tmp_path / "o"),
        "--log-format", "json", env={"HOOLI_KEY": "wrong-key"},
    )  # fmt: skip
    assert result.exit_code == 77
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    for line in lines:
        jsonschema.validate(line, schema("log-line"))
    assert lines[0]["account_name"] == "hooli" and lines[0]["exit_code"] == 77
    assert lines[0]["message"].startswith("GET Instance, HTTP 401")
    assert lines[-1] == {**lines[-1], "level": "error", "message": "1 of 1 accounts failed: hooli."}


def test_an_admin_route_for_no_such_account_is_404(agency):
    import httpx

    answer = httpx.post(f"{agency.root}/_sandbox/reset-quota?account=initec")
    assert answer.status_code == 404
    assert "no such account" in answer.json()["Message"]
    assert httpx.get(f"{agency.root}/_sandbox/stats?account=globex").status_code == 200


def test_connection_options_beside_accounts_are_refused(agency, tmp_path):
    accounts = accounts_file(tmp_path, agency.url)
    data = tmp_path / "p.csv"
    data.write_text("FIRST_NAME\nZed\n", encoding="utf-8")
    used = [s.quota.used for s in agency.sandboxes]
    for args in (
        [
            "import",
            str(data),
            "--object",
            "contacts",
            "--accounts",
            str(accounts),
            "--account",
            "acme",
            "--api-url",
            "http://127.0.0.1:9/v3.1/",
        ],
        ["export", "--accounts", str(accounts), "--out", str(tmp_path / "o"), "--pod", "eu1"],
    ):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert "--accounts gives each account its key and URL: leave out" in result.stderr
    assert [s.quota.used for s in agency.sandboxes] == used


def test_the_larger_reserve_applies(agency, tmp_path):
    accounts = accounts_file(tmp_path, agency.url)  # globex: reserve 10
    result = cli(
        "export", "--accounts", str(accounts), "--account", "globex", "--out", str(tmp_path / "o"),
        # more than is left today, less than the day (a reserve of the whole day is exit 2)
        "--reserve", str(100_000 - 1), "--summary-json", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert result.exit_code == 75, result.output
    (globex,) = json.loads((tmp_path / "s.json").read_text())["accounts"]
    assert globex["stop_reason"] == "reserve"


def test_a_refused_key_under_accounts_points_at_the_entry_for_every_command(agency, tmp_path):
    """import, undo and reconcile --accounts said "must match --pod / INSIGHTLY_POD", options
    --accounts itself refuses."""
    accounts = accounts_file(
        tmp_path, agency.url, f"  - name: hooli\n    url: {agency.url}\n    key_env: HOOLI_KEY\n"
    )
    data = tmp_path / "people.csv"
    data.write_text("FIRST_NAME,EMAIL_ADDRESS\nZelda,zelda@example.com\n", encoding="utf-8")
    result = cli(
        "import", str(data), "--object", "contacts", "--accounts", str(accounts), "--account",
        "hooli", env={"HOOLI_KEY": "wrong-key"},
    )  # fmt: skip
    assert result.exit_code == 77, result.output
    assert (
        "Hint: Find the account's API key in Insightly under User Settings → API and put it in "
        "$HOOLI_KEY; the pod shown there must match the entry's pod: or url:." in result.stderr
    )
    assert "--pod" not in result.stderr
