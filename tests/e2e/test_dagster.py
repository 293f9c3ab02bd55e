"""The Dagster extra: assets per object, partitioned by account, materialised in-process (Dagster's
own `materialize`) against a two-account sandbox on loopback."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from insightly_etl.orchestration import insightly_definitions
from insightly_etl.sandbox import SandboxConfig, running_sandbox

pytestmark = pytest.mark.slow

BASE = SandboxConfig(api_key="acme-key", subdomain="acme", rate_limit=50, daily_quota=100_000)


def accounts(tmp_path: Path, url: str) -> Path:
    (tmp_path / "globex.key").write_text("globex-key")
    path = tmp_path / "accounts.yaml"
    path.write_text(
        f"accounts:\n  - name: acme\n    url: {url}\n    key_env: ACME_KEY\n"
        f"  - name: globex\n    url: {url}\n    key_file: globex.key\n"
        f"  - name: initech\n    url: {url}\n    key_env: INITECH_KEY\n"
    )
    return path


def test_assets_per_object_partitioned_by_account(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_KEY", "acme-key")
    monkeypatch.setenv("INITECH_KEY", "initech-key")
    more = [
        replace(BASE, api_key="globex-key", subdomain="globex"),
        replace(BASE, api_key="initech-key", subdomain="initech", daily_quota=2),
    ]
    with running_sandbox(BASE, more=more) as running:
        defs = insightly_definitions(
            accounts(tmp_path, running.url), tmp_path / "out", ["contacts", "leads"]
        )
        assets = list(defs.assets)
        assert sorted(a.key.to_user_string() for a in assets) == [
            "insightly/contacts",
            "insightly/leads",
        ]
        assert assets[0].partitions_def.get_partition_keys() == ["acme", "globex", "initech"]

        for account in ("acme", "globex"):  # each partition: its own sandbox account
            result = dg.materialize(
                assets, partition_key=account, instance=dg.DagsterInstance.ephemeral()
            )
            assert result.success
            meta = {
                e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()
            }
            assert meta["insightly/contacts"]["rows"].value == 220
            assert meta["insightly/leads"]["rows"].value == 80
            assert meta["insightly/contacts"]["account"].value == account
            assert meta["insightly/contacts"]["requests"].value >= 2
            assert (tmp_path / "out" / f"account={account}" / "contacts.parquet").is_file()
        assert [s.quota.used > 0 for s in running.sandboxes] == [True, True, False]

        # initech's quota is spent after 2 requests: a retry no earlier than retry_not_before
        # (invoked directly: Dagster's own executor would really wait the day out)
        contacts = next(a for a in assets if a.key.path[-1] == "contacts")
        with pytest.raises(dg.RetryRequested) as retry:
            list(contacts(dg.build_asset_context(partition_key="initech")))
        assert retry.value.max_retries == 3
        assert 23 * 3600 < retry.value.seconds_to_wait <= 24 * 3600 + 120


def test_a_wrong_accounts_file_fails_at_load_time(tmp_path):
    bad = tmp_path / "accounts.yaml"
    bad.write_text("accounts:\n  - name: acme\n    pod: na1\n    key: inline-secret\n")
    with pytest.raises(Exception, match="a key written in the file"):
        insightly_definitions(bad, tmp_path / "out")


def test_an_entry_s_objects_and_deletions_are_kept(tmp_path, monkeypatch):
    """An asset of an object the entry does not list wrote it all the same, and incremental
    runs kept records deleted in Insightly for ever."""
    monkeypatch.setenv("ACME_KEY", "acme-key")
    with running_sandbox(BASE) as running:
        path = tmp_path / "accounts.yaml"
        path.write_text(
            f"accounts:\n  - name: acme\n    url: {running.url}\n    key_env: ACME_KEY\n"
            "    objects: [contacts]\n"
        )
        defs = insightly_definitions(
            path, tmp_path / "out", ["contacts", "leads"], incremental=True, detect_deletes=True
        )
        assets = sorted(defs.assets, key=lambda a: a.key.path[-1])
        # leads is not among acme's objects: the run succeeds and materialises contacts only
        first = dg.materialize(
            assets, partition_key="acme", instance=dg.DagsterInstance.ephemeral()
        )
        assert first.success
        done = [e.asset_key.path[-1] for e in first.get_asset_materialization_events()]
        assert done == ["contacts"]
        assert not (tmp_path / "out" / "account=acme" / "leads.parquet").exists()
        sandbox = running.sandboxes[0]
        gone = sandbox.account.collections["Contacts"].ids[0]
        sandbox.account.delete("Contacts", gone)
        again = dg.materialize(
            assets, partition_key="acme", instance=dg.DagsterInstance.ephemeral()
        )
        (event,) = again.get_asset_materialization_events()
        assert event.materialization.metadata["deleted"].value == 1
        import pyarrow.parquet as pq

        ids = pq.read_table(tmp_path / "out" / "account=acme" / "contacts.parquet")["CONTACT_ID"]
        assert gone not in ids.to_pylist()
