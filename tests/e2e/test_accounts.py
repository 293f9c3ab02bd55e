"""An export folder and a checkpoint belong to one account: used with another account's key,
they are refused before anything changes (real processes, two sandboxes)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from insightly_etl.sandbox import SandboxConfig, running_sandbox
from tests.conftest import KEY

pytestmark = pytest.mark.slow


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "insightly_etl", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": url},
        timeout=120,
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def test_another_accounts_export_folder_and_checkpoint_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "exports"
    people = tmp_path / "people.csv"
    people.write_text("FIRST_NAME,EMAIL_ADDRESS\nAda,ada@accounts.example\n", encoding="utf-8")
    with (
        running_sandbox(SandboxConfig(api_key=KEY, subdomain="acme")) as acme,
        running_sandbox(SandboxConfig(api_key=KEY, subdomain="globex")) as globex,
    ):
        first = cli(acme.url, "export", "contacts", "--out", str(out))
        assert first.returncode == 0, first.stderr
        assert "  account: acme" in first.stderr
        before = digest(out)
        second = cli(
            globex.url, "export", "contacts", "--out", str(out), "--incremental", "--detect-deletes"
        )
        assert second.returncode == 2, second.stderr
        assert (
            f"Error: {out} holds an export of account 'acme'; this key is for account 'globex': "
            "merging, or detecting deletions, would mix the two"
        ) in second.stderr
        assert digest(out) == before  # nothing changed

        made = cli(acme.url, "import", str(people), "--object", "contacts", "--quiet")
        assert made.returncode == 0, made.stderr
        checkpoint = tmp_path / "people.csv.checkpoint.sqlite"
        for args in (
            ["import", str(people), "--object", "contacts", "--quiet"],
            ["undo", str(checkpoint)],
        ):
            refused = cli(globex.url, *args)
            assert refused.returncode == 2, refused.stderr
            assert (
                f"Error: {checkpoint} belongs to an import into account 'acme'; this key is for "
                "account 'globex'"
            ) in refused.stderr
        status = cli(acme.url, "status", str(checkpoint))
        assert "  account: acme" in status.stdout
        writes = [
            n
            for (method, _, _), n in globex.sandbox.stats.items()
            if method in ("POST", "PUT", "DELETE")
        ]
        assert sum(writes) == 0
