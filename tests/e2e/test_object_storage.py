"""`export --out s3://…` against a real S3-compatible server on loopback (moto's server mode,
started and stopped here) and the real uvicorn sandbox: nothing touches the internet."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from insightly_etl.sandbox import SandboxConfig, running_sandbox
from tests.conftest import KEY

SECRET = "s3-secret-Zq81xT"  # the test's AWS secret: never printed


@pytest.fixture
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free loopback port with an empty bucket `crm`; the environment a
    user would set for it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets in the process, not the server: an earlier test's objects would
    # still be there (a 4,220-contact export made the next test verify 4,000 deletions)
    httpx.post(f"http://{host}:{port}/moto-api/reset").raise_for_status()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    objects(env).create_bucket(Bucket="crm")
    try:
        yield env
    finally:
        server.stop()


def objects(env: dict[str, str]) -> Any:
    """A boto3 client of the test's S3 server: what a colleague or an attacker puts there."""
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )


def storage(env: dict[str, str]) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=env["AWS_ENDPOINT_URL"],
        access_key="testing",
        secret_key=SECRET,
        region="us-east-1",
    )


def listing(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return {i.path[len(root) + 1 :]: i.size for i in found if i.type == pafs.FileType.File}


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "insightly_etl", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=300,
    )


def test_full_then_incremental_export_into_s3(s3: dict[str, str], tmp_path: Path) -> None:
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        full = cli(
            "export",
            "contacts",
            "organisations",
            "--out",
            "s3://crm/insightly",
            env=env,
            cwd=tmp_path,
        )
        assert full.returncode == 0, full.stderr
        assert "to s3://crm/insightly/ " in full.stderr
        assert not any(tmp_path.iterdir())  # no local folder named `s3:`, nothing left here
        fs = storage(s3)
        objects = listing(fs, "crm/insightly")
        assert {"contacts.parquet", "organisations.parquet", "_manifest.json"} <= set(objects)
        contacts = ds.dataset("crm/insightly/contacts.parquet", filesystem=fs).to_table()
        api = httpx.Client(base_url=sb.url, auth=(KEY, ""))
        total = int(
            api.get("Contacts", params={"top": 1, "count_total": "true"}).headers["X-Total-Count"]
        )
        assert contacts.num_rows == total

        # a colleague edits one contact and deletes another; the incremental run merges both
        ids = sorted(contacts.column("CONTACT_ID").to_pylist())
        edited, gone = ids[0], ids[1]
        api.put("Contacts", json={"CONTACT_ID": edited, "FIRST_NAME": "Edited"}).raise_for_status()
        api.delete(f"Contacts/{gone}").raise_for_status()
        time.sleep(1.1)  # the mark has whole seconds: the edit must be after it
        inc = cli(
            "export",
            "contacts",
            "--incremental",
            "--detect-deletes",
            "--out",
            "s3://crm/insightly",
            env=env,
            cwd=tmp_path,
        )
        assert inc.returncode == 0, inc.stderr
        assert "1 deleted (in _deleted.parquet" in inc.stderr
    after = pq.read_table("crm/insightly/contacts.parquet", filesystem=fs).to_pydict()
    names = dict(zip(after["CONTACT_ID"], after["FIRST_NAME"], strict=True))
    assert names[edited] == "Edited" and gone not in names and len(names) == total - 1
    deleted = pq.read_table("crm/insightly/_deleted.parquet", filesystem=fs).to_pydict()
    assert (deleted["object"], deleted["id"]) == (["contacts"], [gone])
    with fs.open_input_stream("crm/insightly/_manifest.json") as f:
        manifest = json.loads(f.read())
    assert manifest["objects"]["contacts"]["rows"] == total - 1
    assert SECRET not in full.stderr + inc.stderr


def test_an_export_killed_midway_leaves_the_earlier_snapshot_whole(
    s3: dict[str, str], tmp_path: Path
) -> None:
    config = SandboxConfig(api_key=KEY, generate={"Contacts": 4000}, latency_ms=300)
    staging = tmp_path / "tmp"
    staging.mkdir()
    with running_sandbox(config) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url, "TMPDIR": str(staging)}
        first = cli(
            "export", "organisations", "--out", "s3://crm/x", "--quiet", env=env, cwd=tmp_path
        )
        assert first.returncode == 0, first.stderr
        fs = storage(s3)
        before = listing(fs, "crm/x")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "insightly_etl",
                "export",
                "contacts",
                "organisations",
                "--out",
                "s3://crm/x",
                "--max-in-flight",
                "2",
                "--quiet",
            ],
            env={**os.environ, **env},
            cwd=tmp_path,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60

        def pages_served() -> int:
            return sum(
                n
                for (m, path, status), n in sb.sandbox.stats.items()
                if m == "GET" and path == "/v3.1/Contacts" and status == 200
            )

        while pages_served() < 3:  # a few pages of contacts in: the state, polled
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert listing(fs, "crm/x") == before  # the earlier snapshot, whole and alone
        assert len(list(staging.glob("insightly-etl-*"))) == 1  # its staging, left by -9
        assert pq.read_metadata("crm/x/organisations.parquet", filesystem=fs).num_rows > 0
        rerun = cli("export", "contacts", "--out", "s3://crm/x", "--quiet", env=env, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        assert not list(staging.iterdir())  # the orphan removed by the next run, its own too
    assert pq.read_metadata("crm/x/contacts.parquet", filesystem=fs).num_rows == 4220
    assert {"contacts.parquet", "organisations.parquet"} <= set(listing(fs, "crm/x"))


def test_a_missing_bucket_and_another_scheme_are_one_line_errors(
    s3: dict[str, str], tmp_path: Path
) -> None:
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        missing = cli("export", "contacts", "--out", "s3://no-such-bucket/x", env=env, cwd=tmp_path)
        other = cli("export", "contacts", "--out", "ftp://host/x", env=env, cwd=tmp_path)
        spent = sum(n for (_, path, _), n in sb.sandbox.stats.items() if path != "/v3.1/Instance")
    assert missing.returncode == 74, missing.stderr  # EX_IOERR, as a folder not writable
    lines = missing.stderr.splitlines()
    assert lines[0].startswith("Error: s3://no-such-bucket/x: ") and len(lines) == 2
    assert lines[1].startswith("Hint: Check the bucket, its credentials")
    assert spent == 0  # found before the export spent a request, not when it published
    assert other.returncode == 2
    assert (
        "'ftp://host/x': only local paths and s3://, gs://, gcs://, abfs://, abfss:// locations are supported"
        in other.stderr
    )
    for run in (missing, other):
        assert "Traceback" not in run.stderr and SECRET not in run.stderr
    assert not any(tmp_path.iterdir())


def test_keys_that_climb_out_of_the_prefix_are_never_written_locally(
    s3: dict[str, str], tmp_path: Path
) -> None:
    # a key such as `x/../../escape.txt`: S3 keys are free text, and a bucket may be shared
    bucket = objects(s3)
    bucket.put_object(Bucket="crm", Key="x/../../escape.txt", Body=b"planted")
    bucket.put_object(Bucket="crm", Key="x/.contacts.parquet.partial", Body=b"half")
    staging = tmp_path / "tmp"
    staging.mkdir()
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url, "TMPDIR": str(staging)}
        run = cli("export", "contacts", "--out", "s3://crm/x", "--quiet", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["tmp"]  # nothing escaped, none left
    assert "contacts.parquet" in listing(storage(s3), "crm/x")


def test_validate_and_import_read_their_file_from_s3(s3: dict[str, str], tmp_path: Path) -> None:
    bucket = objects(s3)
    people = "Name,Email\nAda,ada@s3.example\nGrace,not-an-email\nAlan,alan@s3.example\n"
    bucket.put_object(Bucket="crm", Key="in/people.csv", Body=people.encode("utf-8"))
    (tmp_path / "m.yaml").write_text(
        "object: contacts\nmatch: {column: Email, field: EMAIL_ADDRESS}\n"
        "columns:\n  Name: FIRST_NAME\n  Email: EMAIL_ADDRESS\n"
    )
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        check = cli(
            "validate", "s3://crm/in/people.csv", "--mapping", "m.yaml", env=env, cwd=tmp_path
        )
        assert check.returncode == 1, check.stderr
        assert "people.csv: 3 rows read (utf-8, ',' delimited): 2 valid, 1 rejected" in check.stdout
        # here, not beside the object, named by the whole URI: two people.csv never share one
        assert (tmp_path / "crm_in_people.rejects.csv").is_file()
        run = cli(
            "import",
            "s3://crm/in/people.csv",
            "--mapping",
            "m.yaml",
            "--quiet",
            env=env,
            cwd=tmp_path,
        )
        assert run.returncode == 1, run.stderr  # the rejected row
        assert "people.csv -> contacts: 2 created, 0 updated, 0 unchanged, 1 rejected" in run.stdout
        again = cli(
            "import",
            "s3://crm/in/people.csv",
            "--mapping",
            "m.yaml",
            "--quiet",
            env=env,
            cwd=tmp_path,
        )
        assert again.returncode == 1, again.stderr  # resumed: the two rows are done, not sent again
        made = httpx.get(sb.root + "/_sandbox/records/Contacts").json()
        missing = cli(
            "import", "s3://crm/in/nobody.csv", "--mapping", "m.yaml", env=env, cwd=tmp_path
        )
        no_bucket = cli(
            "validate", "s3://nobucket/in/people.csv", "--mapping", "m.yaml", env=env, cwd=tmp_path
        )
    assert sum(str(r.get("EMAIL_ADDRESS")).endswith("@s3.example") for r in made) == 2
    assert (tmp_path / "crm_in_people.csv.checkpoint.sqlite").is_file()
    assert (tmp_path / "crm_in_people.success.csv").is_file()
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == ["Error: s3://crm/in/nobody.csv: no such file"]
    assert no_bucket.returncode == 74, no_bucket.stderr
    assert no_bucket.stderr.splitlines() == [
        "Error: s3://nobucket/in/people.csv: no such bucket 'nobucket'",
        "Hint: Check the bucket's name.",
    ]


def test_only_the_exports_own_files_are_read_from_a_shared_prefix(
    s3: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = objects(s3)
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        first = cli(
            "export", "contacts", "--out", "s3://crm/team", "--quiet", env=env, cwd=tmp_path
        )
        assert first.returncode == 0, first.stderr
        # a shared prefix: another team's objects, a key that is both a file and a folder,
        # a name longer than any local file system takes, and a manifest entry that would
        # lead outside the export (written by hand or by an attacker)
        for key in ("team/other/big.bin", "team/sub", "team/sub/inner", f"team/{'n' * 300}"):
            bucket.put_object(Bucket="crm", Key=key, Body=b"x" * 1000)
        manifest = json.loads(
            bucket.get_object(Bucket="crm", Key="team/_manifest.json")["Body"].read()
        )
        manifest["objects"]["notes"] = {"file": "../../etc/passwd", "format": "parquet"}
        manifest["objects"]["../evil"] = {"file": "evil.parquet", "format": "parquet"}
        bucket.put_object(
            Bucket="crm", Key="team/_manifest.json", Body=json.dumps(manifest).encode()
        )
        caplog.clear()
        again = cli(
            "export",
            "contacts",
            "--incremental",
            "--out",
            "s3://crm/team",
            "--quiet",
            env=env,
            cwd=tmp_path,
        )
        assert again.returncode == 0, again.stderr
    # moto's own request log (werkzeug's, in this process): which objects the export read
    fetched = {
        m[1]
        for r in caplog.records
        if (m := re.search(r"GET (/crm/team/\S+) HTTP", r.getMessage()))
    }
    assert fetched == {
        "/crm/team/_manifest.json",
        "/crm/team/contacts.parquet",
        "/crm/team/links.parquet",
    }
    kept = listing(storage(s3), "crm/team")
    assert {"other/big.bin", "sub/inner", "n" * 300} <= set(kept)  # never removed either
    manifest = json.loads(bucket.get_object(Bucket="crm", Key="team/_manifest.json")["Body"].read())
    assert set(manifest["objects"]) == {"contacts"}  # the hostile entries were dropped


def test_a_damaged_location_is_a_one_line_error_naming_its_object(
    s3: dict[str, str], tmp_path: Path
) -> None:
    bucket = objects(s3)
    bucket.put_object(Bucket="crm", Key="a/_manifest.json", Body=b"[1, 2]")
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        foreign = cli("export", "contacts", "--out", "s3://crm/a", env=env, cwd=tmp_path)
        assert (
            cli(
                "export", "contacts", "--out", "s3://crm/b", "--quiet", env=env, cwd=tmp_path
            ).returncode
            == 0
        )
        bucket.put_object(Bucket="crm", Key="b/contacts.parquet", Body=b"not parquet")
        damaged = cli(
            "export", "contacts", "--incremental", "--out", "s3://crm/b", env=env, cwd=tmp_path
        )
    assert foreign.returncode == 2, foreign.stderr
    assert foreign.stderr.splitlines() == [
        'Error: s3://crm/a/_manifest.json is not an export manifest (a JSON object whose "objects" is an object)',
        "Hint: Move it away, or export into another folder.",
    ]
    assert damaged.returncode == 2, damaged.stderr
    first = damaged.stderr.splitlines()[0]
    assert first.startswith("Error: s3://crm/b/contacts.parquet cannot be read as Parquet (")
    assert "insightly-etl-" not in damaged.stderr and "Traceback" not in damaged.stderr


def test_attachments_download_into_object_storage_once(s3: dict[str, str], tmp_path: Path) -> None:
    def downloads(sb: object) -> int:
        stats = sb.sandbox.stats.items()  # type: ignore[attr-defined]
        return sum(n for (m, p, _), n in stats if m == "GET" and p == "/v3.1/FileAttachments/{id}")

    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        args = ("export", "opportunities", "--with", "files", "--out", "s3://crm/x")
        first = cli(*args, "--files-dir", "s3://crm/files", "--quiet", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        fetched = downloads(sb)
        again = cli(*args, "--files-dir", "s3://crm/files", "--quiet", env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert downloads(sb) == fetched  # the objects there are not fetched again
    stored = listing(storage(s3), "crm/files")
    assert sorted(stored) == ["905.docx", "906.png", "907"] and fetched == 3
    assert stored["906.png"] == 412_002
    assert not any(tmp_path.iterdir())


def test_a_lake_layout_in_s3_reads_in_duckdb_through_pyarrow(
    s3: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import duckdb

    # another account's partition, damaged: not this run's to read
    other = objects(s3)
    other.put_object(Bucket="crm", Key="lake/account=other-co/_manifest.json", Body=b"garbage")
    other.put_object(
        Bucket="crm", Key="lake/account=other-co/contacts/part-00000.parquet", Body=b"x"
    )
    lake = ("--layout", "lake", "--account-partition", "--out", "s3://crm/lake", "--quiet")
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        assert cli("export", "contacts", *lake, env=env, cwd=tmp_path).returncode == 0
        # a flat export beside the partitions: refused, though the staging folder never
        # holds them (and no partition's manifest is read to tell)
        flat = cli("export", "contacts", "--out", "s3://crm/lake", env=env, cwd=tmp_path)
        assert flat.returncode == 2, flat.stderr
        assert "s3://crm/lake holds a lake export's account partitions" in flat.stderr
        api = httpx.Client(base_url=sb.url, auth=(KEY, ""))
        gone = api.get("Contacts", params={"top": 1}).json()[0]["CONTACT_ID"]
        api.delete(f"Contacts/{gone}").raise_for_status()
        added = api.post("Contacts", json={"FIRST_NAME": "Cloud"}).json()["CONTACT_ID"]
        run = cli(
            "export", "contacts", "--incremental", "--detect-deletes", *lake[:-1], env=env,
            cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        # the partition is not read before the account is known: no "about 0 requests"
        assert "Detecting deletions costs one request per 500 ids" in run.stderr
    assert not [r for r in caplog.records if "GET /crm/lake/account=other-co" in r.getMessage()]
    fs = storage(s3)
    part = "crm/lake/account=northwind-sandbox"
    assert {"_manifest.json", "contacts/part-00000.parquet", "links/part-00000.parquet"} <= set(
        listing(fs, part)
    )
    # DuckDB's httpfs would need a download: it reads the S3 objects through pyarrow instead
    db = duckdb.connect()
    db.register(
        "changes", ds.dataset(f"{part}/contacts/_changes", filesystem=fs, partitioning="hive")
    )
    rows = db.sql("SELECT CONTACT_ID, _op FROM changes ORDER BY _op DESC").fetchall()
    assert rows == [(added, "upsert"), (gone, "delete")]
    snapshot = ds.dataset(f"{part}/contacts/part-00000.parquet", filesystem=fs)
    ids = set(snapshot.to_table(columns=["CONTACT_ID"])["CONTACT_ID"].to_pylist())
    assert added in ids and gone not in ids


def test_delta_tables_in_s3_read_back_with_their_history(
    s3: dict[str, str], tmp_path: Path
) -> None:
    delta = ("--table-format", "delta", "--out", "s3://crm/delta", "--quiet")
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        assert cli("export", "contacts", *delta, env=env, cwd=tmp_path).returncode == 0
        api = httpx.Client(base_url=sb.url, auth=(KEY, ""))
        total = len(api.get("Contacts", params={"top": 500}).json())
        gone = api.get("Contacts", params={"top": 1}).json()[0]["CONTACT_ID"]
        api.delete(f"Contacts/{gone}").raise_for_status()
        run = cli(
            "export", "contacts", "--incremental", "--detect-deletes", *delta, env=env, cwd=tmp_path
        )
        assert run.returncode == 0, run.stderr
    # what a reader elsewhere does: deltalake (and Polars through it) straight from the bucket.
    # In a process of its own: delta-rs holds the GIL while it waits for moto, which answers
    # from a thread of this one
    reader = f"""
import json, polars as pl
from deltalake import DeltaTable
options = {{"AWS_ENDPOINT_URL": "{s3["AWS_ENDPOINT_URL"]}", "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "{SECRET}", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}}
table = DeltaTable("s3://crm/delta/contacts", storage_options=options)
first = pl.read_delta("s3://crm/delta/contacts", version=0, storage_options=options)
print(json.dumps({{"version": table.version(),
    "operations": [h["operation"] for h in table.history()],
    "rows": table.to_pyarrow_dataset().count_rows(),
    "first": first.height, "gone_then": {gone} in first["CONTACT_ID"].to_list()}}))
"""
    read = subprocess.run(
        [sys.executable, "-c", reader], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(read.stdout) == {
        "version": 1,
        "operations": ["MERGE", "WRITE"],
        "rows": total - 1,
        "first": total,
        "gone_then": True,
    }


def test_an_edited_export_in_s3_imports_with_its_base_and_keeps_a_colleagues_edit(
    s3: dict[str, str], tmp_path: Path
) -> None:
    import csv
    import io

    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        out = ("--format", "csv", "--out", "s3://crm/ed", "--quiet")
        assert cli("export", "contacts", *out, env=env, cwd=tmp_path).returncode == 0
        bucket = objects(s3)
        text = (
            bucket.get_object(Bucket="crm", Key="ed/contacts.csv")["Body"]
            .read()
            .decode("utf-8-sig")
        )
        rows = list(csv.DictReader(io.StringIO(text)))
        rid = rows[0]["CONTACT_ID"]
        rows[0]["FIRST_NAME"] = "Edited in the file"  # the person's edit
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        bucket.put_object(
            Bucket="crm", Key="ed/contacts.csv", Body=buffer.getvalue().encode("utf-8-sig")
        )
        api = httpx.Client(base_url=sb.url, auth=(KEY, ""))
        time.sleep(1.1)  # the colleague's edit is a second after the export
        api.put(
            "Contacts", json={"CONTACT_ID": int(rid), "TITLE": "Colleague's title"}
        ).raise_for_status()
        run = cli(
            "import",
            "s3://crm/ed/contacts.csv",
            "--object",
            "contacts",
            "--quiet",
            env=env,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        record = api.get(f"Contacts/{rid}").json()
    assert record["FIRST_NAME"] == "Edited in the file"
    assert record["TITLE"] == "Colleague's title"  # the base came along: untouched cells not sent


def test_a_report_of_an_export_in_s3_fetches_only_its_manifest(
    s3: dict[str, str], tmp_path: Path
) -> None:
    with running_sandbox(SandboxConfig(api_key=KEY)) as sb:
        env = {**s3, "INSIGHTLY_API_KEY": KEY, "INSIGHTLY_API_URL": sb.url}
        done = cli("export", "contacts", "leads", "--out", "s3://crm/rep", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    page = tmp_path / "report.html"
    made = cli("report", "s3://crm/rep", "--html", str(page), env=s3, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    text = page.read_text(encoding="utf-8")
    assert "<h1>Export in s3://crm/rep</h1>" in text
    assert "<td>contacts</td><td>full</td><td class='n'>220</td>" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # nothing else kept
    missing = cli("report", "s3://crm/nothing", "--html", str(page), env=s3, cwd=tmp_path)
    assert missing.returncode == 2
    assert "Error: s3://crm/nothing/_manifest.json: no such file" in missing.stderr
