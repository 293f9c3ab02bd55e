"""Exports into object storage: `--out s3://bucket/prefix` (and `gs://…`, `abfs://…`), through
pyarrow's filesystems.

The export runs unchanged in a local staging folder, and its files move whole:

1. **pull**: the location's earlier export (manifest, tables, `_deleted`, links) is copied into
   the staging folder, so an incremental run merges into it and a full run finds deletions,
   exactly as in a local folder;
2. **run** the export there;
3. **publish**: every file the run wrote or changed is uploaded, the manifest last. An object
   appears whole (S3 and its kin never show part of an upload), and the manifest is the commit
   point: a run killed before it leaves the earlier manifest, whose marks are older than any
   table uploaded since, so the next run asks again from those marks and its merge by id gives
   the same tables. Files the run removed are removed from the location; partial files
   (`.NAME.partial`) are never uploaded.

Published even when the run stops early (quota, an error): what it finished is in the staging
manifest, as it would be in a local folder.

Credentials and endpoint come from each cloud's usual environment (S3: `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`); the
secret ones are redacted from every message like the API key.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pyarrow.fs as pafs

from insightly_etl.config import Secret, redact
from insightly_etl.errors import InputError

MANIFEST = "_manifest.json"  # the commit point: uploaded last (export.py writes it)
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# values that open a cloud account: blanked out of messages, as the API key is
CLOUD_SECRETS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
)

Files = dict[str, tuple[int, int]]  # path under the folder -> (size, mtime_ns)


def is_uri(text: str) -> bool:
    return _URI.match(text) is not None


def open_location(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path in it that `uri` names. Refused (exit 2): another scheme, or
    a location pyarrow cannot open."""
    found = _URI.match(uri)
    scheme = found.group(1).lower() if found else ""
    if scheme not in SCHEMES:
        raise InputError(
            f"--out {uri!r}: {scheme}:// is not a storage this tool writes to",
            hint="Give a local folder, or s3://bucket/prefix, gs://bucket/prefix or "
            "abfs://container@account.dfs.core.windows.net/prefix.",
        )
    for name in CLOUD_SECRETS:
        if value := os.environ.get(name):
            Secret(value)  # registered: redacted wherever it would be printed
    try:
        if scheme == "s3":
            rest = uri[len(found.group(0)) :] if found else uri
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
            fs = pafs.S3FileSystem(
                endpoint_override=endpoint or None,
                region=region or None,  # None: the bucket's region is asked for
            )
            path = rest.strip("/")
        else:
            fs, path = pafs.FileSystem.from_uri(uri)
            path = path.strip("/")
    except (OSError, ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"--out {uri!r}: {redact(str(exc))}") from None
    if not path:
        raise InputError(f"--out {uri!r} names no bucket", hint=f"{scheme}://bucket/prefix")
    return fs, path


def _storage_error(uri: str, exc: Exception) -> InputError:
    return InputError(
        f"{uri}: {redact(str(exc))}",
        hint="Check the bucket, its credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
        "or the cloud's own) and the endpoint (AWS_ENDPOINT_URL).",
    )


def _local_files(folder: Path) -> Files:
    return {
        p.relative_to(folder).as_posix(): (st.st_size, st.st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and (st := p.stat())
    }


def pull(fs: pafs.FileSystem, root: str, uri: str, folder: Path) -> Files:
    """The location's files copied into `folder` (nothing when it holds none yet); what was
    copied, as it lies in `folder`."""
    try:
        found = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        for info in found:
            name = info.path[len(root) :].lstrip("/")
            if info.type != pafs.FileType.File or any(
                not part or part.startswith(".") or "\\" in part for part in name.split("/")
            ):
                # a leftover partial upload, or a key such as `x/../../etc/y` that would be
                # written outside the staging folder: not an export's file, not read
                continue
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(info.path) as src, target.open("wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
    except OSError as exc:
        raise _storage_error(uri, exc) from None
    return _local_files(folder)


def publish(fs: pafs.FileSystem, root: str, uri: str, folder: Path, before: Files) -> int:
    """Upload what the run wrote or changed in `folder`, the manifest last; remove from the
    location what the run removed. The number of files uploaded."""
    now = _local_files(folder)
    changed = [name for name, stat in now.items() if before.get(name) != stat]
    changed.sort(key=lambda name: name == MANIFEST)  # the commit point goes last
    try:
        for name in changed:
            parent = f"{root}/{name}".rsplit("/", 1)[0]
            fs.create_dir(parent, recursive=True)
            with (folder / name).open("rb") as src, fs.open_output_stream(f"{root}/{name}") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
        for name in sorted(set(before) - set(now)):
            fs.delete_file(f"{root}/{name}")
    except OSError as exc:
        raise _storage_error(uri, exc) from None
    return len(changed)


@contextmanager
def downloaded(uri: str) -> Iterator[Path]:
    """A file in object storage (an import's input) as a local file of the same name, for the
    duration: read as any local file is (its encoding, its sheets, its line numbers)."""
    fs, path = open_location(uri)
    name = path.rsplit("/", 1)[-1]
    if not name or name.startswith(".") or "\\" in name:
        raise InputError(f"{uri!r} names no file", hint="s3://bucket/folder/people.csv")
    with tempfile.TemporaryDirectory(prefix="insightly-etl-") as tmp:
        local = Path(tmp) / name
        try:
            with fs.open_input_stream(path) as src, local.open("wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
        except FileNotFoundError:
            raise InputError(f"{uri}: no such file") from None
        except OSError as exc:
            raise _storage_error(uri, exc) from None
        yield local


@contextmanager
def staged(uri: str) -> Iterator[Path]:
    """A local folder holding the location's export; on leaving (also after an error), what
    changed in it is published to the location."""
    fs, root = open_location(uri)
    with tempfile.TemporaryDirectory(prefix="insightly-etl-") as tmp:
        folder = Path(tmp)
        before = pull(fs, root, uri, folder)
        try:
            yield folder
        except BaseException:
            # what the run finished before it stopped, as a local folder would keep it; the
            # run's own error is the one reported
            with suppress(InputError):
                publish(fs, root, uri, folder, before)
            raise
        publish(fs, root, uri, folder, before)
