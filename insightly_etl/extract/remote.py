"""Exports into object storage: `--out s3://bucket/prefix` (and `gs://…`, `abfs://…`), through
pyarrow's filesystems.

The export runs unchanged in a local staging folder, and its files move whole:

0. **check** that the location takes writes (a probe object, `_insightly-etl.probe`, written
   and removed), before any request to Insightly is spent;
1. **pull**: the location's earlier export (its manifest, and the files that manifest names:
   tables, `_base`, `_deleted`, links, sub-collections) is copied into the staging folder, so
   an incremental run merges into it and a full run finds deletions, exactly as in a local
   folder. Nothing else under the prefix is read: a shared bucket's other objects stay there;
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
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from insightly_etl.config import Secret, redact
from insightly_etl.errors import InputError, InsightlyEtlError, StorageError
from insightly_etl.extract.export import MANIFEST, export_files, read_manifest
from insightly_etl.files import BASE_DIR

SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss")
PROBE = "_insightly-etl.probe"  # written and removed before a run: the location takes writes
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_PARTITION = re.compile(r"^account=[A-Za-z0-9_\-]{1,100}$")  # export._partition_value's
# pyarrow's errors: OSError (IO), ArrowInvalid (a ValueError), and the bare ArrowException
# that its Azure filesystem raises when no credential is found
_FAILURES = (OSError, ValueError, TypeError, pa.ArrowException)
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
    """The filesystem and the path in it that `uri` names. Refused (exit 2): another scheme,
    credentials written into the URI, an empty folder name (`s3://lake//x`), no bucket."""
    found = _URI.match(uri)
    scheme = found.group(1).lower() if found else ""
    if not found or scheme not in SCHEMES:
        raise InputError(
            f"{uri!r}: {scheme}:// is not a storage this tool reads or writes",
            hint="Give a local path, or s3://bucket/prefix, gs://bucket/prefix or "
            "abfs://container@account.dfs.core.windows.net/prefix.",
        )
    rest = uri[found.end() :]
    if scheme in ("s3", "gs", "gcs") and "@" in rest.split("/", 1)[0]:
        # never echoed: what stands before the @ would be a secret
        raise InputError(
            f"{scheme}://***@{rest.split('@', 1)[1]}: credentials in the URI are not read",
            hint="Set the cloud's own environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "GOOGLE_APPLICATION_CREDENTIALS) and give the URI without them.",
        )
    if "?" in rest or "#" in rest:  # never dropped silently: it would name another place
        shown = uri.split("?", 1)[0].split("#", 1)[0]  # a SAS token's signature stays unshown
        raise InputError(f"{shown!r}…: a storage path has no ?query or #fragment")
    path = rest.strip("/")
    if not path.split("/")[0]:
        raise InputError(f"{uri!r} names no bucket", hint=f"{scheme}://bucket/prefix")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise InputError(f"{uri!r}: an empty, . or .. folder name is not a storage path")
    for name in CLOUD_SECRETS:
        if value := os.environ.get(name):
            Secret(value)  # registered: redacted wherever it would be printed
    try:
        if scheme == "s3":
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
            return pafs.S3FileSystem(
                endpoint_override=endpoint or None,
                region=region or None,  # None: the bucket's region is asked for
                connect_timeout=10,
            ), path
        if scheme in ("gs", "gcs"):
            # without credentials, the GCS client retries its metadata server for 15 minutes
            return pafs.GcsFileSystem(retry_time_limit=timedelta(seconds=20)), path
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path.strip("/")
    except _FAILURES as exc:
        raise InputError(f"{uri!r}: {redact(str(exc))}") from None


_CHUNK = 1 << 24  # 16 MB at a time between the local file and the object
_OWNER = ".insightly-etl-owner"  # in a staging folder: the process id that made it


@contextmanager
def _temporary() -> Iterator[str]:
    """A staging folder in the system's temporary folder, removed on leaving. A run killed
    with -9 cannot remove its own: the next run removes those whose process is gone."""
    _remove_orphans()
    with tempfile.TemporaryDirectory(prefix=_PREFIX) as tmp:
        (Path(tmp) / _OWNER).write_text(str(os.getpid()))
        yield tmp


_PREFIX = "insightly-etl-"


def _remove_orphans() -> None:
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there
        return
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        try:
            pid = int((folder / _OWNER).read_text())
            if folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue  # not ours to remove
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)  # its run is gone: nobody will
        except (OSError, ValueError):
            continue  # no owner file (another tool's, or not made by a run): left alone


def _storage_error(uri: str, exc: BaseException) -> StorageError:
    return StorageError(
        f"{uri}: {redact(str(exc)).strip()}",
        hint="Check the bucket, its credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
        "or the cloud's own) and the endpoint (AWS_ENDPOINT_URL).",
    )


def _local_files(folder: Path) -> Files:
    return {
        p.relative_to(folder).as_posix(): (st.st_size, st.st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and (st := p.stat())
    }


def _copy_in(fs: pafs.FileSystem, path: str, target: Path) -> bool:
    """The object at `path` copied to `target`; False when there is none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with fs.open_input_stream(path) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    except FileNotFoundError:
        target.unlink(missing_ok=True)
        return False
    return True


def check_writable(fs: pafs.FileSystem, root: str, uri: str) -> None:
    """A probe object written and removed: a missing bucket, read-only credentials or a wrong
    endpoint is found before the export spends a request, not at its end."""
    try:
        with fs.open_output_stream(f"{root}/{PROBE}") as probe:
            probe.write(b"")
        fs.delete_file(f"{root}/{PROBE}")
    except _FAILURES as exc:
        raise _storage_error(uri, exc) from None


def pull(fs: pafs.FileSystem, root: str, uri: str, folder: Path) -> Files:
    """The location's export copied into `folder`: its manifest and the files it names, nothing
    else (nothing when there is no manifest yet); what was copied, as it lies in `folder`.
    Account partitions (`account=acme/`) are not: each is pulled when its run knows it is its
    own (`Staging.pull_partition`), so a run never reads another account's tables."""
    try:
        _pull_export(fs, root, uri, folder)
    except _FAILURES as exc:
        raise _storage_error(uri, exc) from None
    return _local_files(folder)


def _pull_export(fs: pafs.FileSystem, root: str, uri: str, folder: Path) -> None:
    if _copy_in(fs, f"{root}/{MANIFEST}", folder / MANIFEST):
        for name in export_files(read_manifest(folder, uri)):
            if name.endswith("/"):  # a Delta table: its folder, data files and log
                _copy_folder(fs, f"{root}/{name.rstrip('/')}", folder / name)
            elif name != MANIFEST:
                _copy_in(fs, f"{root}/{name}", folder / name)


def _copy_folder(fs: pafs.FileSystem, root: str, folder: Path) -> None:
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    for info in found:
        name = info.path[len(root) :].lstrip("/")
        parts = name.split("/")
        if info.type != pafs.FileType.File or any(
            not p or p.startswith(".") or "\\" in p or len(p) > 200 for p in parts
        ):
            continue  # not a table's file: a key such as `x/../../y` is never written locally
        _copy_in(fs, info.path, folder / name)


def publish(fs: pafs.FileSystem, root: str, uri: str, folder: Path, before: Files) -> int:
    """Upload what the run wrote or changed in `folder`, the manifest last; remove from the
    location what the run removed. The number of files uploaded."""
    now = _local_files(folder)
    changed = [name for name, stat in now.items() if before.get(name) != stat]
    # the commit points go last: a Delta table's log after its data files, in version order,
    # and the manifest after everything
    changed.sort(key=lambda name: (name == MANIFEST, "/_delta_log/" in f"/{name}", name))
    try:
        for name in changed:
            parent = f"{root}/{name}".rsplit("/", 1)[0]
            fs.create_dir(parent, recursive=True)
            with (folder / name).open("rb") as src, fs.open_output_stream(f"{root}/{name}") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        for name in sorted(set(before) - set(now)):
            fs.delete_file(f"{root}/{name}")
    except _FAILURES as exc:
        raise _storage_error(uri, exc) from None
    return len(changed)


def _copy_base(fs: pafs.FileSystem, folder: str, local: Path) -> None:
    """`_base/*.parquet` of the object's folder, when there is one (an export's records as they
    were, which an import of an edited CSV or XLSX compares each cell with)."""
    with suppress(*_FAILURES):
        found = fs.get_file_info(pafs.FileSelector(f"{folder}/{BASE_DIR}", allow_not_found=True))
        for info in found:
            name = info.base_name
            ours = name.endswith(".parquet") and not name.startswith(".") and len(name) <= 200
            if info.type == pafs.FileType.File and ours and "\\" not in name:
                _copy_in(fs, info.path, local / BASE_DIR / name)


@contextmanager
def downloaded(uri: str) -> Iterator[Path]:
    """A file in object storage (an import's input) as a local file of the same name, for the
    duration: read as any local file is (its encoding, its sheets, its line numbers)."""
    fs, path = open_location(uri)
    name = path.rsplit("/", 1)[-1]
    if "/" not in path or name.startswith(".") or "\\" in name:
        raise InputError(f"{uri!r} names no file", hint="s3://bucket/folder/people.csv")
    with _temporary() as tmp:
        local = Path(tmp) / name
        try:
            found = _copy_in(fs, path, local)
        except _FAILURES as exc:
            raise _storage_error(uri, exc) from None
        if found:  # an edited export's base beside it: the three-way merge reads it
            _copy_base(fs, path.rsplit("/", 1)[0], Path(tmp))
        if not found:
            bucket = path.split("/", 1)[0]
            try:
                missing = fs.get_file_info(bucket).type == pafs.FileType.NotFound
            except _FAILURES:
                missing = False
            if missing:
                raise StorageError(
                    f"{uri}: no such bucket {bucket!r}", hint="Check the bucket's name."
                )
            raise InputError(f"{uri}: no such file")
        yield local


@contextmanager
def collected(uri: str) -> Iterator[tuple[Path, dict[str, int]]]:
    """`--files-dir` in object storage: a local folder whose files are uploaded to `uri` on
    leaving (also after an error: what was downloaded is kept), and the files there already
    (name -> size), which are not fetched again. Nothing there is downloaded or removed."""
    fs, root = open_location(uri)
    check_writable(fs, root, uri)
    try:
        found = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except _FAILURES as exc:
        raise _storage_error(uri, exc) from None
    there = {i.base_name: i.size or 0 for i in found if i.type == pafs.FileType.File}
    with _temporary() as tmp:
        folder = Path(tmp)
        try:
            yield folder, there
        except BaseException:
            with suppress(StorageError):
                publish(fs, root, uri, folder, {})
            raise
        publish(fs, root, uri, folder, {})


class Staging:
    """The local folder an export into object storage runs in."""

    def __init__(self, fs: pafs.FileSystem, root: str, uri: str, folder: Path) -> None:
        self.fs, self.root, self.uri, self.folder = fs, root, uri, folder
        self.before: Files = {}

    def pull_partition(self, name: str) -> None:
        """Bring the run's own account partition (`account=acme`) into the folder."""
        if not _PARTITION.match(name):
            raise InputError(f"{name!r} is not an account partition")
        uri = f"{self.uri.rstrip('/')}/{name}"
        try:
            _pull_export(self.fs, f"{self.root}/{name}", uri, self.folder / name)
        except _FAILURES as exc:
            raise _storage_error(uri, exc) from None
        self.before = _local_files(self.folder)

    def partitions(self) -> list[str]:
        """The account partitions at the location that hold an export (`account=acme`), by
        their names alone: none of them is read (a flat export must not land beside them)."""
        try:
            found = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
            names = [
                i.base_name
                for i in found
                if i.type == pafs.FileType.Directory and _PARTITION.match(i.base_name)
            ]
            manifests = self.fs.get_file_info([f"{self.root}/{n}/{MANIFEST}" for n in names])
        except _FAILURES as exc:
            raise _storage_error(self.uri, exc) from None
        return [n for n, m in zip(names, manifests, strict=True) if m.type == pafs.FileType.File]


@contextmanager
def staged(uri: str) -> Iterator[Staging]:
    """A local folder holding the location's export; on leaving (also after an error), what
    changed in it is published to the location."""
    fs, root = open_location(uri)
    check_writable(fs, root, uri)
    with _temporary() as tmp:
        folder = Path(tmp)
        stage = Staging(fs, root, uri, folder)
        stage.before = pull(fs, root, uri, folder)
        try:
            yield stage
        except BaseException as exc:
            if isinstance(exc, InsightlyEtlError):  # named as the user knows it
                exc.message = exc.message.replace(str(folder), uri.rstrip("/"))
                exc.args = (exc.message,)
            # what the run finished before it stopped, as a local folder would keep it; the
            # run's own error is the one reported
            with suppress(StorageError):
                publish(fs, root, uri, folder, stage.before)
            raise
        publish(fs, root, uri, folder, stage.before)
