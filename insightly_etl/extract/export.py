"""`extract_objects`: every requested object type to one typed file each, plus `_manifest.json`.

Full run: page the list endpoint (`top=500`, pages fetched concurrently once the total is known),
convert each page to the object's fixed schema, write as it arrives, publish atomically.

Incremental run: per object with a high-water mark, fetch only what changed through
`/{Object}/Search?updated_after_utc=` — strictly after (docs/api.md §4), so ask from one second
before the mark and de-duplicate by id — then merge into the existing file by id (the newer
version wins). Objects without a Search endpoint are small lookup lists: read in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from insightly_etl.account_id import AccountId
from insightly_etl.api.client import InsightlyClient, Listed, Page
from insightly_etl.api.registry import (
    CUSTOM_FIELDS,
    CUSTOM_OBJECTS,
    OBJECTS,
    ObjectType,
    custom_object,
    get_object,
    is_custom_object_name,
    record_id,
    usable_definitions,
)
from insightly_etl.api.tasks import gather_all, settle
from insightly_etl.errors import (
    ApiError,
    BudgetExhausted,
    ForbiddenError,
    InputError,
    InsightlyEtlError,
    NotFoundError,
    QuotaError,
    QuotaExhausted,
    ReserveReached,
    StopReason,
)
from insightly_etl.extract.convert import PageConverter
from insightly_etl.extract.schema import (
    META_RUN,
    custom_fields_schema,
    custom_objects_schema,
    describe,
    object_schema,
)
from insightly_etl.extract.subcollections import (
    LINKS_SCHEMA,
    UNREADABLE,
    Parent,
    SubFetcher,
    SubPlan,
    changed_ids,
    parents_of,
    plan_subcollections,
)
from insightly_etl.extract.writers import (
    DeltaTableWriter,
    ParquetTableWriter,
    TableWriter,
    deltalake_available,
    is_delta_table,
    merge_delta,
    open_writer,
    read_earlier,
    remove_partials,
    table_file,
    write_json_atomic,
)
from insightly_etl.files import BASE_DIR, naming, publish, sha256_file, utc_now
from insightly_etl.lock import RunLock
from insightly_etl.moments import (
    DATETIME_FORMAT,
    ISO_FORMAT,
    as_text,
    changed_after,
    iso_instant,
)
from insightly_etl.progress import NullProgress, Progress

MANIFEST = "_manifest.json"
DELETED = "_deleted.parquet"  # object, id, detected_at: records gone from Insightly
LINKS = "links.parquet"  # every link found in the records' LINKS, one row each
LOCK = ".insightly-etl.lock"  # held by the run exporting into the folder
LOCK_HINT = (
    "Two exports into one folder would write the same files: wait for that run to finish or "
    "stop it (Ctrl-C), then run again."
)
TABLES = ("parquet", "delta")  # the formats an export reads back (merges, links, --with)
CHANGES = "_changes"  # lake layout: TABLE/_changes/run=<UTC>/part-00000.parquet, one per run
DELETED_SCHEMA = pa.schema(
    [
        pa.field("object", pa.string(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("detected_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ]
)
# every standard object type and the definitions; the account's custom objects are found at
# run time (`GET /CustomObjects`) and exported between the two
ALL_OBJECTS = [*OBJECTS, CUSTOM_FIELDS, CUSTOM_OBJECTS]


@dataclass
class ObjectResult:
    name: str
    status: str  # full | incremental | skipped
    rows: int = 0
    changed: int = 0  # records already in the file that changed (incremental: exactly)
    new: int = 0  # records not in the file before
    deleted: int = 0  # records the file had that Insightly no longer has (moved to _deleted)
    deletes_checked: bool = False  # whether this run looked for deletions
    changes_checked: bool = False  # a full run that counted `changed` (the earlier file's stamps)
    confirm_requests: int = 0  # the GETs that confirmed them, one per record no longer listed
    requests: int = 0
    file: str | None = None
    high_water_mark: str | None = None
    refusal: ApiError | None = None  # why it was skipped
    # the file holds only the records changed since then: --since into a folder without it
    partial_since: str | None = None

    def counts(self) -> dict[str, int]:
        """What this run counted, for the summary line, --summary-json and the manifest
        alike: new records only where the old ids were compared (an incremental run, or a
        full one over an earlier Parquet file), changed ones where rows were compared (an
        incremental run, the lake's change file), deletions where they were looked for."""
        counted = {"rows": self.rows, "requests": self.requests}
        if self.status == "incremental" or self.deletes_checked:
            counted["new"] = self.new
        if self.status == "incremental" or self.changes_checked:
            counted["changed"] = self.changed
        if self.deletes_checked:
            counted["deleted"] = self.deleted
        return counted


@dataclass
class ExportResult:
    account: str | None = None  # GET /Instance's subdomain
    objects: list[ObjectResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    quota_remaining: int | None = None
    quota_limit: int | None = None
    seconds: float = 0.0
    stats: dict[str, object] = field(default_factory=dict)  # the client's accounting
    sub_collections: dict[str, dict[str, Any]] = field(default_factory=dict)  # --with: file, rows
    change_files: list[str] = field(default_factory=list)  # lake layout: this run's _changes


@dataclass
class ExportOptions:
    out_dir: Path
    objects: list[str] = field(default_factory=list)  # empty: every object type
    fmt: str = "parquet"  # parquet | csv | xlsx
    csv_dialect: str = "excel"  # excel | excel-eu | plain (extract.writers.CSV_DIALECTS)
    incremental: bool = False
    since: datetime | None = None
    brief: bool = False
    detect_deletes: bool = False  # incremental: one id listing per object finds deletions
    with_: list[str] = field(default_factory=list)  # per-record sub-collections (subcollections.py)
    files_dir: Path | None = None  # --with files: the attachments' contents go here
    # files already in a --files-dir in object storage (name -> size): never fetched again
    files_present: dict[str, int] = field(default_factory=dict)
    layout: str = "flat"  # flat: contacts.parquet | lake: contacts/part-00000.parquet, _changes
    account_partition: bool = False  # lake: everything under account=<subdomain>/
    table_format: str = "parquet"  # parquet | delta: each object a Delta table (lake layout)
    # object storage: brings the run's own account partition into the staging out_dir
    pull_partition: Callable[[str], None] | None = None
    location: str | None = None  # what out_dir stages, in messages: an object storage URI
    # object storage: the account partitions at the location (not staged: not seen locally)
    partitions_beside: tuple[str, ...] = ()
    # a CSV or XLSX changed since this tool wrote it (edited in a spreadsheet): written over
    # only when asked; otherwise the run is refused before it writes anything
    overwrite_edited: bool = False

    @property
    def shown(self) -> str:
        return self.location or str(self.out_dir)


def resolve_objects(names: list[str]) -> list[str]:
    """The object types named on the command line (checked, in snake_case; custom objects as
    written, matched against the account's own when the run starts); none: all of them."""
    if not names:
        return []
    resolved: list[str] = []
    for name in names:
        low = name.strip().lower()
        key = (
            CUSTOM_FIELDS
            if low in (CUSTOM_FIELDS, "customfields")
            else CUSTOM_OBJECTS
            if low in (CUSTOM_OBJECTS, "customobjects")
            else get_object(name).name
        )
        if key.lower() not in [r.lower() for r in resolved]:
            resolved.append(key)
    return resolved


def parse_since(text: str) -> datetime:
    for fmt in (ISO_FORMAT, "%Y-%m-%dT%H:%M:%S", DATETIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise InputError(
        f"--since {text!r} is not a UTC timestamp",
        hint="Use 2026-11-01T00:00:00Z or '2026-11-01 00:00:00'.",
    )


# a file of the export folder: names that never start with a dot (so never `..`), one or two
# deep (`contacts/part-00000.parquet` in the lake layout); never absolute, never climbing out
_SAFE_NAME = re.compile(
    r"^[A-Za-z0-9_][A-Za-z0-9_.=\-]{0,199}(/[A-Za-z0-9_][A-Za-z0-9_.=\-]{0,199})?$"
)


def _safe_name(name: object) -> bool:
    return isinstance(name, str) and _SAFE_NAME.match(name) is not None


def _partition_value(account: str) -> str:
    """An account's name as a Hive partition value (`account=northwind`): letters, digits,
    `-` and `_` kept, anything else (a `/`, a `=`) made `_`."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", account)[:100] or "_"


def read_manifest(out_dir: Path, shown: str | None = None) -> dict[str, Any]:
    """The folder's `_manifest.json` (an empty one when there is none). Entries whose `file` is
    not a plain file name of the folder (`../x`, `/etc/passwd`: not written by this tool) are
    dropped: their objects are exported afresh, and nothing outside the folder is ever read.
    Messages name the folder as `shown` (an object storage URI the folder stages)."""
    path = out_dir / MANIFEST
    where = f"{shown.rstrip('/')}/{MANIFEST}" if shown else str(path)
    if not path.exists():
        return {"version": 1, "objects": {}}
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"cannot read {where}: {exc}", hint="Move it away, or export into another folder."
        ) from None
    except RecursionError:  # arrays nested 200,000 deep: no manifest of ours
        raise InputError(
            f"cannot read {where}: nested too deeply to be an export manifest",
            hint="Move it away, or export into another folder.",
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("objects"), dict):
        raise InputError(
            f'{where} is not an export manifest (a JSON object whose "objects" is an object)',
            hint="Move it away, or export into another folder.",
        )
    objects = manifest["objects"]
    for name, entry in list(objects.items()):
        if not (
            _safe_name(name)
            and "/" not in name
            and isinstance(entry, dict)
            and _safe_name(entry.get("file"))
        ):
            del objects[name]
    for key, entry in list(manifest.items()):
        if isinstance(entry, dict) and "file" in entry and not _safe_name(entry["file"]):
            del manifest[key]
    return manifest


def export_files(manifest: dict[str, Any]) -> list[str]:
    """Every file an export folder holds by its manifest (some may not exist): the manifest,
    each object's file and `_base` copy, links, sub-collections, `_deleted`, `_unreadable`."""
    names = {MANIFEST, DELETED, LINKS, UNREADABLE}
    for name, entry in manifest["objects"].items():
        delta = entry.get("format") == "delta"  # a folder: `contacts/`, read whole
        names |= {entry["file"] + ("/" if delta else ""), f"{BASE_DIR}/{name}.parquet"}
    names |= {e["file"] for e in manifest.values() if isinstance(e, dict) and "file" in e}
    return sorted(names)


class Exporter:
    def __init__(
        self,
        client: InsightlyClient,
        options: ExportOptions,
        progress: Progress,
        announce: Callable[[SubPlan], None] | None = None,
        result: ExportResult | None = None,
    ) -> None:
        self.announce = announce
        self.client = client
        self.options = options
        self.progress = progress
        self.result = result if result is not None else ExportResult()
        self.out_dir = options.out_dir  # account=<subdomain>/ in it, once known, if asked
        self.manifest = read_manifest(options.out_dir, options.location)
        # this run's change files (lake layout): contacts/_changes/run=20261204T021500Z/
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._lock: RunLock | None = None  # one export at a time into a folder
        self._begun = False  # the manifest says this run started (after every refusal)
        # META_RUN, set when the run begins: to the microsecond (run_id is to the second)
        self._run_id = ""
        self._sub_since: dict[tuple[str, str], datetime] = {}  # see _subs_since
        self._seen: dict[str, _Seen] = {}  # what each object's export of this run wrote
        self._too_big: list[_TooBig] = []  # objects this run's budget could not read whole
        self._began_at = 0  # requests sent (stats.sent) when this run began
        self._objects_at = self._object_at = 0  # … when its first object, and this one, began
        self._fields_changed: set[str] = set()  # objects whose custom fields changed
        self._defs_refused: set[str] = set()  # objects whose definitions the key may not read
        # what an earlier export into this directory learned about the account's real limits
        self.limits = self.client.start_from_learned(self.manifest.pop("limits", None))
        self.definitions: dict[str, list[dict[str, Any]]] = {}
        self.custom_objects: dict[str, dict[str, Any]] = {}  # OBJECT_NAME -> its definition
        self._schemas: dict[str, pa.Schema] = {}
        self._defs: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self.ext = options.fmt  # parquet | csv | xlsx
        self.table_fmt = "delta" if options.table_format == "delta" else options.fmt

    async def run(self) -> ExportResult:
        try:
            return await self._run()
        except InsightlyEtlError as exc:  # the folder says the run stopped, and why (report)
            self._stopped(exc.stop_reason, exc.exit_code)
            raise
        except OSError:  # a full disk, a folder made read-only: what the CLI exits 74 for
            self._stopped(StopReason.ERROR, 74)
            raise
        finally:  # definitions fetched ahead of need must not outlive a failed run
            await settle(self._defs.values())
            if self._lock is not None:
                self._lock.release()

    async def _run(self) -> ExportResult:
        opts = self.options
        check_options(opts)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(
                f"{self.out_dir}: not a directory", hint="--out names the directory for the files."
            )
        if self.table_fmt == "delta":
            if opts.layout != "lake":  # the CLI says so too; a flat Delta table is the folder
                raise InputError("--table-format delta makes a folder per table: --layout lake")
            deltalake_available()  # before any request: not after the first object's pages
        run = self.client.meter()
        account = await self.client.account()  # before any file changes: whose folder is it?
        if opts.account_partition:
            if not account:
                raise InputError(
                    "--account-partition needs the account's name, and this key's user may "
                    "not read it (GET /Instance was refused)",
                    hint="Leave out --account-partition, or use a key whose user may read it.",
                )
            if (opts.out_dir / MANIFEST).is_file() and read_manifest(opts.out_dir)["objects"]:
                raise InputError(  # its partitions would sit beside a flat export's files
                    f"{opts.location or opts.out_dir} holds an export of its own; account "
                    "partitions would be written beside it",
                    hint="Export the partitions into another --out.",
                )
            self.out_dir = opts.out_dir / f"account={_partition_value(account)}"
            _no_link(self.out_dir)  # made later, with its parents
            if opts.pull_partition is not None:
                await asyncio.to_thread(opts.pull_partition, self.out_dir.name)
            shown = f"{opts.location.rstrip('/')}/{self.out_dir.name}" if opts.location else None
            self.manifest = read_manifest(self.out_dir, shown)
            self.limits = self.client.start_from_learned(self.manifest.pop("limits", None))
        known = AccountId.of(self.manifest.get("account"), self.manifest.get("account_number"))
        this = await self.client.identify(account, known)
        if known == AccountId() and this != known and self.manifest["objects"]:
            # a folder holding an export that names no account (made by a release before
            # accounts were remembered, or its "account" taken out by hand): it may be another's
            claim = f'"account": "{this.name}"' if this.name else f'"account_number": {this.number}'
            raise InputError(
                f"{opts.shown} holds an export whose {MANIFEST} does not say which account it "
                f"is of; this key is for {this.shown}: merging, or detecting deletions, would "
                "mix the two if it is another's",
                hint=f"If the folder is that account's (exported by a release that did not "
                f"record it), add {claim} to its {MANIFEST} and run again; else export into "
                "another --out folder.",
            )
        if why := this.mismatch_with(known):
            raise InputError(
                f"{opts.shown} holds an export of {known.shown}; {why}: merging, or detecting "
                "deletions, would mix the two",
                hint="Export into another --out folder (or use the key of the folder's account).",
            )
        remembered = this.merged_with(known)
        self.manifest["account"] = remembered.name
        if remembered.number is not None:
            self.manifest["account_number"] = remembered.number
        self._check_layout()
        self.result.account = remembered.name
        started = time.monotonic()
        begun = self._round_begun()  # before the last run's stop is forgotten
        self.manifest["started_utc"] = utc_now()
        # which run wrote a Parquet file (META_RUN), to the microsecond: two runs a second
        self._run_id = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for earlier in ("finished_utc", "stopped", "requests"):  # the last run's, not this one's
            self.manifest.pop(earlier, None)
        names = await self._names(opts.objects)
        if not (self.out_dir / MANIFEST).exists():
            self._refuse_foreign(names)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock(self.out_dir, path=self.out_dir / LOCK, hint=LOCK_HINT)
        # what another run finished while this one looked at the folder, before its lock: the
        # objects as the folder holds them now (else saving would drop that run's entries)
        where = opts.location and opts.location.rstrip("/")
        shown = f"{where}/{self.out_dir.name}" if where and opts.account_partition else where
        self.manifest["objects"] = read_manifest(self.out_dir, shown)["objects"]
        self._refuse_edited(names)
        self._refuse_brief_over_full(names)
        for folder in self._own_folders():  # a killed run's leftovers
            remove_partials(folder)
        kept = self._kept_from(begun, names)
        self._save_manifest()  # the folder is this tool's from now on, before any table
        self._begun = True
        sub_plan = None
        if opts.with_:  # before anything is exported: refused if it would cross the quota
            self._sub_since = self._subs_since(names)
            sub_plan = await plan_subcollections(
                self.client,
                opts.with_,
                names,
                downloads=opts.files_dir is not None,
                since=self._sub_since,
            )
            if self.announce:
                self.announce(sub_plan)
        self._began_at = self.client.stats.sent - run.requests  # when this run began
        self._objects_at = self.client.stats.sent  # when its first object began
        try:
            for name in names:
                if name in kept:  # exported by the run that stopped, this round
                    self.result.objects.append(ObjectResult(name, "skipped"))
                    continue
                self._object_at = self.client.stats.sent
                meter = self.client.meter()
                if name == CUSTOM_FIELDS:
                    outcome = await self._export_definitions()
                elif name == CUSTOM_OBJECTS:
                    outcome = self._export_custom_objects()
                else:
                    outcome = await self._export_object(self._type_of(name))
                outcome.requests = meter.requests
                self.result.objects.append(outcome)
                self._record(outcome)
            if opts.fmt == "parquet" and "links" not in opts.with_:
                self._write_links()
            if sub_plan is not None:
                await self._fetch_subcollections(names)
        except QuotaError as exc:  # the objects after one too big spent the rest
            if self._too_big:
                raise self._budget_stop(exc) from exc
            raise
        if self._too_big:
            raise self._budget_stop()
        self.manifest["finished_utc"] = utc_now()
        self.manifest.pop("round_started_utc", None)  # every object read: the round is whole
        self.manifest["requests"] = run.requests
        self._save_manifest()
        self.result.requests = run.requests
        self.result.quota_remaining = self.client.quota.remaining
        self.result.quota_limit = self.client.quota.limit
        self.result.seconds = time.monotonic() - started
        self.result.stats = self.client.stats.summary()
        return self.result

    def _refuse_foreign(self, names: list[str]) -> None:
        """A folder without this tool's manifest that already holds a file this run would
        write (another program's `contacts.parquet`): refused, never overwritten."""
        taken = [
            p
            for p in (self._planned_path(n) for n in names)
            if p.is_symlink() or p.is_file() or (p.is_dir() and any(p.iterdir()))
        ]
        if taken:
            raise InputError(
                f"{taken[0]} is there already, and {self.options.shown} has no "
                f"{MANIFEST} of this tool's: it is another program's, and is not overwritten",
                hint="Export into a new or empty folder, or move the file away.",
            )

    def _refuse_edited(self, names: list[str]) -> None:
        """Each CSV or XLSX this run would write, checked before anything is written (and
        again just before it is put in place: `_refuse_if_edited`)."""
        for name in names:
            self._refuse_if_edited(name, self._planned_path(name))

    def _refuse_if_edited(self, name: str, path: Path) -> None:
        """A CSV or XLSX changed since this tool wrote it: a person's edits (the round trip
        through a spreadsheet), which an export would replace with Insightly's values, and
        its `_base` with them. Refused unless --overwrite-edited. A file written before the
        manifest kept fingerprints is not checked (nothing to compare with)."""
        file = self._file(path)
        written = self._fingerprint_of(file)
        if (
            self.options.overwrite_edited
            or path.suffix.lower() not in (".csv", ".xlsx")  # Parquet: _not_as_written
            or not isinstance(written, dict)
            or not path.is_file()
            or path.is_symlink()
            or not _edited(path, written)
        ):
            return
        when = str(written.get("utc") or "")[:16].replace("T", " ")
        of = f" of {when} UTC" if when else ""
        shown = f"{self.options.shown.rstrip('/')}/{file}"
        raise InputError(
            f"{shown} was changed since the export{of} wrote it (edited and saved in a "
            "spreadsheet?): this export would write Insightly's values over the edits",
            hint=f"Import it first (insightly-etl import {shown} --object {name}), then "
            "export again with --overwrite-edited; or move it out of the folder.",
        )

    def _fingerprint_of(self, file: str) -> dict[str, Any] | None:
        """What the file was when this tool last wrote it (`_fingerprint`), if kept."""
        fingerprints = self.manifest.get("fingerprints")
        written = fingerprints.get(file) if isinstance(fingerprints, dict) else None
        return written if isinstance(written, dict) else None

    def _remember_fingerprint(self, path: Path) -> None:
        """A CSV or XLSX just put in place: its fingerprint kept at once (`_refuse_edited`),
        so a run that stops before the object's manifest entry does not take it for edited.
        (A Parquet file says which run wrote it itself: _not_as_written.)"""
        if self.options.fmt in ("csv", "xlsx") and path.is_file():
            if not isinstance(self.manifest.get("fingerprints"), dict):  # a hand-edited one
                self.manifest["fingerprints"] = {}
            self.manifest["fingerprints"][self._file(path)] = _fingerprint(path)
            self._save_manifest()

    def _type_of(self, name: str) -> ObjectType:
        return custom_object(name) if name in self.custom_objects else OBJECTS[name]

    def _brief(self, obj: ObjectType) -> bool:
        """Whether this run reads `obj` without nested arrays and custom fields."""
        return self.options.brief and obj.brief

    def _refuse_brief_over_full(self, names: list[str]) -> None:
        """--brief changes merged into a file exported without it would drop the custom
        fields and nested lists (tags, links, dates) of every record, changed or not: refused
        before anything is written."""
        if not (self.options.incremental or self.options.since):
            return
        for name in names:
            if name in (CUSTOM_FIELDS, CUSTOM_OBJECTS):
                continue
            entry = self.manifest["objects"].get(name) or {}
            obj = self._type_of(name)
            if self._brief(obj) and entry and not entry.get("brief") and _exists(self._path(name)):
                raise InputError(
                    f"{self.options.shown.rstrip('/')}/{entry.get('file') or name} was exported "
                    "with custom fields and nested lists: merging --brief changes into it would "
                    "drop them from every record",
                    hint="Leave out --brief, or export with --brief in full (without "
                    "--incremental) or into another folder.",
                )

    def _lake_changes(self) -> bool:
        """Change files are written: the lake layout in Parquet (a Delta table keeps its
        history itself, each run a version)."""
        return self.options.layout == "lake" and self.table_fmt == "parquet"

    def _own_folders(self) -> list[Path]:
        """The folders this tool writes in: the export folder, `_base`, and (lake layout) each
        table's folder and its change runs. Other folders in it (a `.git`, someone's
        downloads) are never walked, and their files never removed."""
        root = self.out_dir
        folders = [root, root / BASE_DIR]
        if self.options.layout == "lake":
            for table in root.iterdir():
                if (
                    table.is_dir() and not table.is_symlink() and not table.name.startswith(".")
                ) and (any(table.glob("part-00000.*")) or any(table.glob(".part-00000.*"))):
                    folders.append(table)
                    folders += [d for d in (table / CHANGES).glob("run=*") if d.is_dir()]
        return [f for f in folders if f.is_dir() and not f.is_symlink()]

    def _round_begun(self) -> str | None:
        """When the export the last run went on with began, if that run stopped to wait for
        requests (the quota, --reserve, --max-requests): a run after it goes on with it."""
        stopped = self.manifest.get("stopped")
        if not isinstance(stopped, dict) or stopped.get("reason") not in _WAITS:
            return None
        begun = self.manifest.get("round_started_utc") or self.manifest.get("started_utc")
        return begun if isinstance(begun, str) and iso_instant(begun) is not None else None

    def _kept_from(self, begun: str | None, names: list[str]) -> set[str]:
        """The objects of `names` the stopped round exported, kept and not read again: a
        whole-account export, or an object too big for what a run has left, made no progress
        from run to run (each read the same first objects, then stopped). With --with the
        per-record lists are planned for every object at once, so a round starts afresh."""
        self.manifest.pop("round_started_utc", None)
        # what the files of a round are like: a run asking for others (--brief, --since, a
        # CSV dialect) starts a round of its own, not kept files it did not ask for
        opts = self.options
        shape = {
            "format": opts.fmt,
            "csv_dialect": opts.csv_dialect if opts.fmt == "csv" else None,
            "brief": opts.brief,
            "since": as_text(opts.since) if opts.since else None,
        }
        same = self.manifest.get("round_shape", shape) == shape  # none: an older release's
        self.manifest["round_shape"] = shape
        if begun is None or opts.with_ or not same:
            return set()
        since = iso_instant(begun)
        kept = {
            name
            for name in names
            if isinstance(entry := self.manifest["objects"].get(name), dict)
            and (when := iso_instant(entry.get("exported_utc"))) is not None
            and since is not None
            and when >= since
            # the file this run asks for: a CSV asked for after the round's Parquet is made
            and entry.get("file") == self._file(self._planned_path(name))
        }
        self.manifest["round_started_utc"] = begun
        if kept:
            self.result.warnings.append(
                f"went on with the export begun {begun} UTC, which stopped to wait for "
                f"requests: {len(kept)} object type(s) it exported "
                f"({', '.join(sorted(kept)[:5])}{', …' if len(kept) > 5 else ''}) kept, not "
                "read again"
            )
        return kept

    def _stopped(self, reason: StopReason | None, exit_code: int) -> None:
        if self._lock is not None and self._begun:  # a run refused first changes nothing
            self.manifest["stopped"] = {
                "utc": utc_now(),
                "reason": reason,
                "exit_code": exit_code,
                "requests": self.client.stats.sent,
            }
            with contextlib.suppress(OSError):
                self._save_manifest()

    def _check_layout(self) -> None:
        """A folder keeps the layout and table format of its first export: a flat file beside
        a lake folder, or Parquet files inside a Delta table's folder, would mix two exports
        that readers take for one (an older manifest without them was flat Parquet)."""
        layout, table_format = self.options.layout, self.options.table_format
        partitions = [p for p in self.out_dir.glob("account=*") if (p / MANIFEST).is_file()]
        partitions += [self.out_dir / name for name in self.options.partitions_beside]
        if partitions and not self.manifest["objects"] and not self.options.account_partition:
            raise InputError(
                f"{self.options.shown} holds a lake export's account partitions "
                f"({partitions[0].name}/ …); this run would write beside them",
                hint="Give --layout lake --account-partition as that export did, or another --out.",
            )
        if self.manifest["objects"]:
            was = (
                self.manifest.get("layout", "flat"),
                self.manifest.get("table_format", "parquet"),
            )
            if was != (layout, table_format):
                raise InputError(
                    f"{self.options.shown} holds an export in the {was[0]} layout with "
                    f"{was[1]} tables; this run asks for the {layout} layout with "
                    f"{table_format} tables",
                    hint="Export into another --out (or give the options of the folder's export).",
                )
            # a lake table's folder holds files of one format for its readers: the objects'
            # own `format` says which (a manifest of any release has it)
            files = {
                str(e["format"])
                for n, e in self.manifest["objects"].items()
                if isinstance(e, dict)
                and e.get("format")
                and n not in (CUSTOM_FIELDS, CUSTOM_OBJECTS)
            } - {"delta"}
            if layout == "lake" and table_format == "parquet" and files - {self.options.fmt}:
                raise InputError(
                    f"{self.options.shown} holds a lake export of {', '.join(sorted(files))} "
                    f"files; this run would put {self.options.fmt} files beside them",
                    hint="Give the folder's --format, or export into another --out.",
                )
        self.manifest["layout"], self.manifest["table_format"] = layout, table_format

    # ---------------------------------------------------------------- custom objects
    async def _names(self, asked: list[str]) -> list[str]:
        """What this run exports, in order: standard objects, the account's custom objects,
        then the definitions. Custom objects are found with one request, when any is wanted."""
        names = resolve_objects(asked) or list(ALL_OBJECTS)
        custom = [n for n in names if is_custom_object_name(n)]
        if asked and not custom and CUSTOM_OBJECTS not in names and CUSTOM_FIELDS not in names:
            return names
        await self._discover()
        by_lower = {name.lower(): name for name in self.custom_objects}
        for name in custom:
            if name.lower() not in by_lower:
                raise InputError(
                    f"the account has no custom object {name!r}",
                    hint="Its custom objects: "
                    + (", ".join(self.custom_objects) or "none")
                    + " (GET /CustomObjects).",
                )
        if asked:  # as named, in the account's spelling
            return [by_lower.get(n.lower(), n) for n in names]
        at = names.index(CUSTOM_FIELDS)
        return [*names[:at], *self.custom_objects, *names[at:]]

    async def _discover(self) -> None:
        """`GET /CustomObjects`: the account's custom objects. A name that is not a plain
        `Name__c` (it becomes a URL and a file name) is left out with a warning."""
        try:
            reply = await self.client.get("CustomObjects")
        except (ForbiddenError, NotFoundError) as exc:
            self.result.warnings.append(
                f"skipped custom objects: the account cannot list them (HTTP {exc.status})"
            )
            return
        seen: dict[str, str] = {}  # a name as the API compares it (any case) -> as listed
        for definition in reply.data if isinstance(reply.data, list) else []:
            name = definition.get("OBJECT_NAME") if isinstance(definition, dict) else None
            try:
                obj = custom_object(str(name))
            except InputError:
                self.result.warnings.append(
                    f"left out custom object {str(name)[:80]!r}: not a Name__c API name"
                )
                continue
            if (first := seen.setdefault(obj.name.casefold(), obj.name)) != obj.name or (
                obj.name in self.custom_objects
            ):
                # `site__c` or ` Site__c` beside `Site__c`: one object to a server whose
                # paths ignore case (read again, and written over on a case-blind disk)
                self.result.warnings.append(
                    f"left out custom object {str(name)[:80]!r}: listed already as {first!r}"
                )
                continue
            self.custom_objects[obj.name] = {**definition, "OBJECT_NAME": obj.name}

    def _export_custom_objects(self) -> ObjectResult:
        schema = custom_objects_schema()
        rows = list(self.custom_objects.values())
        self._write_all(CUSTOM_OBJECTS, schema, rows)
        return ObjectResult(
            CUSTOM_OBJECTS, "full", rows=len(rows), file=self._file(self._path(CUSTOM_OBJECTS))
        )

    def _write_all(self, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
        converter = PageConverter(schema)
        writer = open_writer(self._path(name), schema, self.options.fmt, self.options.csv_dialect)
        try:
            writer.write(converter.to_batch(rows))
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        self._schemas[name] = schema

    # ---------------------------------------------------------------- definitions
    def _definitions(self, obj: ObjectType) -> asyncio.Future[list[dict[str, Any]]]:
        """One request per object type (`/CustomFields/{Object}`), started once, awaited later."""
        if obj.name not in self._defs:
            self._defs[obj.name] = asyncio.ensure_future(self._fetch_definitions(obj))
        return self._defs[obj.name]

    async def _fetch_definitions(self, obj: ObjectType) -> list[dict[str, Any]]:
        try:
            reply = await self.client.get(f"CustomFields/{obj.endpoint}")
        except (ForbiddenError, NotFoundError):
            self._defs_refused.add(obj.name)  # not "every field deleted"
            return []
        definitions, left = usable_definitions(obj, list(reply.data or []))
        self.result.warnings.extend(f"{why}; left out" for why in left)
        self.definitions[obj.name] = definitions
        return definitions

    async def _schema(self, obj: ObjectType, brief: bool) -> pa.Schema:
        definitions = [] if brief or not obj.has_custom_fields else await self._definitions(obj)
        asked = obj.has_custom_fields and not brief and obj.name not in self._defs_refused
        if asked and obj.name not in self._schemas:  # once an object, not each call
            self._say_field_changes(obj.name, definitions)
        schema = object_schema(obj, definitions, brief=brief)
        if self.table_fmt == "parquet":  # which run wrote the file: _not_as_written
            run = self._run_id.encode()
            schema = schema.with_metadata({**(schema.metadata or {}), META_RUN: run})
        self._schemas[obj.name] = schema
        return schema

    def _say_field_changes(self, name: str, definitions: list[dict[str, Any]]) -> None:
        """Custom fields defined, deleted or retyped in Insightly since the folder's last
        export of `name`: the file's columns follow the account, said in a warning (a
        column, with every value the earlier files kept, went without a word)."""
        entry = self.manifest["objects"].get(name)
        earlier = entry.get("custom_field_definitions") if isinstance(entry, dict) else None
        if not isinstance(earlier, list) or (isinstance(entry, dict) and entry.get("brief")):
            return  # no earlier export, or a brief one, which kept no custom fields

        def types(defs: list[Any]) -> dict[str, str]:
            return {
                str(d.get("FIELD_NAME")): str(d.get("FIELD_TYPE"))
                for d in defs
                if isinstance(d, dict) and d.get("FIELD_NAME")
            }

        was, now = types(earlier), types(definitions)
        if was != now:  # every row's columns changed: the lake's change file says so
            self._fields_changed.add(name)
        if gone := [f for f in was if f not in now]:
            self.result.warnings.append(
                f"{name}: custom field(s) no longer defined in Insightly: {', '.join(gone)}; "
                "their columns, with the values earlier exports kept, are left out"
            )
        if new := [f"{f} ({now[f]})" for f in now if f not in was]:
            self.result.warnings.append(
                f"{name}: custom field(s) new in Insightly, a column each: {', '.join(new)}"
            )
        retyped = [f"{f} ({was[f]} → {now[f]})" for f in now if f in was and was[f] != now[f]]
        if retyped:
            self.result.warnings.append(
                f"{name}: custom field(s) of another type now, their columns too: "
                + ", ".join(retyped)
            )

    async def _export_definitions(self) -> ObjectResult:
        with_custom = [obj for obj in OBJECTS.values() if obj.has_custom_fields]
        with_custom += [custom_object(name) for name in self.custom_objects]
        await gather_all(*(self._definitions(obj) for obj in with_custom))
        rows = [
            {**d, "OBJECT": obj.name}
            for obj in with_custom
            for d in self.definitions.get(obj.name, [])
        ]
        self._write_all(CUSTOM_FIELDS, custom_fields_schema(), rows)
        return ObjectResult(
            CUSTOM_FIELDS, "full", rows=len(rows), file=self._file(self._path(CUSTOM_FIELDS))
        )

    # ---------------------------------------------------------------- objects
    async def _export_object(self, obj: ObjectType) -> ObjectResult:
        brief = self._brief(obj)
        if obj.has_custom_fields and not brief:
            self._definitions(obj)  # on its way beside the first page
        path = self._path(obj.name)
        since = self._since(obj)
        try:
            if since is not None:
                return await self._incremental(obj, path, since, brief)
            return await self._full(obj, path, brief)
        except (ForbiddenError, NotFoundError) as exc:
            self.result.warnings.append(
                f"skipped {obj.name}: the account cannot read it (HTTP {exc.status}: {exc.message})"
            )
            return ObjectResult(obj.name, "skipped", refusal=exc)
        except _TooBig as too_big:  # the budget is left to the objects after it; the run's
            self._too_big.append(too_big)  # end names it (_budget_stop)
            return ObjectResult(obj.name, "skipped")

    async def _check_fits(self, obj: ObjectType, page: Page, brief: bool) -> None:
        """After an object's first page: stop it there when the rest of its pages cannot be
        read within what this run may still send. An export is read whole or not at all, so
        such a run spent its budget, kept nothing, and the next one did the same. Its field
        definitions, asked for beside the first page, are answered first: what is left is
        then a count, not a race."""
        if obj.has_custom_fields and not brief:
            await self._definitions(obj)
        more = self.client.pages_after(page)
        left = self.client.requests_left()
        if left is not None and more > left[0]:
            # every run spends as much before its first object (the account) and on this one
            # so far (its first page, its field definitions); the objects before it are kept
            # by the run after this one (_kept_from), which goes on from here
            sent = self.client.stats.sent
            spent = (self._objects_at - self._began_at) + (sent - self._object_at)
            raise _TooBig(obj.name, page.total or 0, more, left[0], left[1] - spent)

    def _budget_stop(self, then: QuotaError | None = None) -> InsightlyEtlError:
        """The run's end when objects were too big for it (and, `then`, the stop that came
        after, the objects after them having spent the rest): exit 75 when a run with a
        fresh budget reads them (the next day's quota, another run), exit 2 when no run can
        at these settings (what every run spends before an object, and the object itself,
        more than --max-requests or a day's allowance)."""
        client = self.client
        listed = "; ".join(str(t) for t in self._too_big) + (
            f"; then {then.message}" if then is not None else ""
        )
        if never := [t for t in self._too_big if t.requests > t.most]:
            day = client.quota.limit
            bound = (
                f"--max-requests {client.max_requests}"
                if client.max_requests is not None
                and (day is None or client.max_requests <= day - client.reserve)
                else "the account's daily allowance"
                + (f" less --reserve {client.reserve:,}" if client.reserve else "")
            )
            return InputError(
                f"not exported: {listed}; no run can read "
                + ("them" if len(never) > 1 else "it")
                + f" within {bound}",
                hint="Give one run more requests (--max-requests, --reserve), or export a "
                "smaller part with --since, into a folder of its own.",
            )
        if then is not None:  # that stop as it was, the objects left out named first
            return type(then)(
                f"not exported: {listed}", status=then.status, method=then.method,
                path=then.path, hint=then.hint,
            )  # fmt: skip
        by_budget = client.max_requests is not None and (
            client.quota.remaining is None
            or client.max_requests - client.stats.sent <= client.quota.remaining - client.reserve
        )
        if by_budget:
            return BudgetExhausted(
                f"not exported: {listed}",
                hint="Run again: a run with its whole --max-requests free reads it.",
            )
        return (ReserveReached if client.reserve else QuotaExhausted)(
            f"not exported: {listed}",
            hint="Run again once the day's requests free up (within 24 hours)"
            + ("; --reserve keeps some for other integrations" if client.reserve else "")
            + ": the objects exported are kept.",
        )

    def _since(self, obj: ObjectType) -> datetime | None:
        if not obj.searchable or obj.updated_field is None:
            return None  # lookup lists are re-read in full
        if self.options.since is not None:
            return self.options.since
        if not self.options.incremental:
            return None
        entry = self.manifest["objects"].get(obj.name) or {}
        mark = entry.get("high_water_mark")
        path = self._path(obj.name)
        if not mark or not _exists(path):
            return None  # no earlier export of this object: a full one
        if why := self._not_the_marked_file(entry, path) or self._not_as_written(obj, entry, path):
            self.result.warnings.append(f"{obj.name}: {why}; exported in full this time")
            return None
        if entry.get("brief") and not self._brief(obj):
            self.result.warnings.append(
                f"{obj.name}: the file was exported with --brief (no custom fields or nested "
                "lists); exported in full this time"
            )
            return None
        if partial := entry.get("partial_since"):
            self.result.warnings.append(
                f"{obj.name}: the file holds only the records changed since "
                f"{str(partial)[:40]} (--since into a folder without it); exported in full "
                "this time"
            )
            return None
        moment = iso_instant(mark)
        if moment is None:  # an old or damaged manifest: this run's full export repairs it
            self.result.warnings.append(
                f"{obj.name}: the manifest's high-water mark {str(mark)[:40]!r} is no moment; "
                "exported in full this time"
            )
            return None
        moment = moment.replace(tzinfo=UTC)
        if moment > self.client.server_now() + timedelta(days=1):
            # a mark from the future (a hand edit, a server clock gone wrong) would hide every
            # change until that day comes: a full run repairs it
            self.result.warnings.append(
                f"{obj.name}: the manifest's high-water mark {str(mark)[:40]!r} is later than "
                "the server's clock; exported in full this time"
            )
            return None
        return moment

    def _not_the_marked_file(self, entry: dict[str, Any], path: Path) -> str | None:
        """Why the file an incremental run would merge into is not the one the manifest's
        mark is of, or None. The mark is of the last export's file: one in another format
        (contacts.csv after contacts.parquet) left this one as it was before that run, and
        merging into it from that mark lost every change in between."""
        if (file := entry.get("file")) is not None and str(file) != self._file(path):
            return (
                f"the last export wrote {str(file)[:80]}, not {self._file(path)}, which is "
                "older than that export's mark"
            )
        return None

    def _replaced(self, obj: ObjectType, path: Path) -> Path:
        """The file whose ids a full run compares with the records it lists (deletions): the
        one the folder's last export of the object wrote — a Parquet file, or for a CSV or
        XLSX its `_base` copy — whatever this run writes."""
        entry = self.manifest["objects"].get(obj.name)
        was = entry.get("format") if isinstance(entry, dict) else None
        if was in ("csv", "xlsx") or (was is None and self.options.fmt != "parquet"):
            return self._base_path(obj.name)
        if self.options.fmt == "parquet":
            return path
        return self.out_dir / table_file(obj.name, "parquet", self.options.layout)

    def _not_as_written(self, obj: ObjectType, entry: dict[str, Any], path: Path) -> str | None:
        """Why the Parquet file an incremental run would merge into is not the one the
        manifest's export wrote, before any request: it holds fewer or more rows (an older
        copy put back), and the records it lacks would stay missing. None: as written. A file
        that is not this object's, or not ids at all, is refused by name (read_earlier)."""
        rows = entry.get("rows")
        if (
            self.table_fmt != "parquet"
            or obj.id_field is None
            or not isinstance(rows, int)
            or isinstance(rows, bool)
        ):
            return None
        try:
            footer = pq.read_metadata(path)  # the row count and META_RUN, no data read
        except (OSError, pa.ArrowException):
            return None  # refused by name where it is read
        held, run = footer.num_rows, (footer.metadata or {}).get(META_RUN)
        stamp = run.decode("utf-8", "replace") if run else None
        shown = f"{self.options.shown.rstrip('/')}/{self._file(path)}"
        mine = entry.get("run")
        if isinstance(mine, str) and stamp is not None and stamp > mine:
            return None  # a later run's, stopped before its manifest: the merge by id catches up
        if isinstance(mine, str) and (stamp is None or stamp < mine):
            why = (
                f"{shown} was written by an earlier run ({stamp or 'of an older release'}) than "
                f"the export of {mine} the manifest names (an older copy put back?)"
            )
        elif held != rows:
            why = (
                f"{shown} holds {held:,} row(s), the export that wrote it {rows:,} (an older "
                "copy put back?)"
            )
        else:
            return None
        read_earlier(path, [obj.id_field], key=obj.id_field, of=obj.name)  # refused, or ours
        return why

    async def _full(self, obj: ObjectType, path: Path, brief: bool) -> ObjectResult:
        params = {"brief": "true"} if brief else {}
        # the earlier file's ids (new records, deletions) and stamps (what changed), read once
        old_stamps = _earlier_stamps(self._replaced(obj, path), obj) if obj.id_field else None
        before = (
            {i for i in old_stamps[obj.id_field].to_pylist() if i is not None}
            if old_stamps is not None and obj.id_field
            else None
        )
        # the lake layout's change file of a full run over an earlier snapshot: what differs
        changes_from = self._lake_changes() and before is not None
        marks = _Marks(obj.updated_field)
        seen = _Seen(obj)
        writer: TableWriter | None = None
        base: TableWriter | None = None  # CSV and XLSX: the snapshot an edited copy is read against
        converter: PageConverter | None = None
        listed = Listed()
        self.progress.start(obj.name)
        try:
            pages = self.client.iter_pages(obj.endpoint, params, key=obj.id_field, listed=listed)
            async for page in pages:
                if writer is None:  # the first page is here, and so are the definitions
                    await self._check_fits(obj, page, brief)
                    schema = await self._schema(obj, brief)
                    converter = PageConverter(schema)
                    writer = open_writer(
                        path,
                        schema,
                        self.table_fmt,
                        self.options.csv_dialect,
                        stamped=obj.updated_field is not None,
                    )
                    if self.options.fmt != "parquet" and obj.id_field:
                        base = open_writer(self._base_path(obj.name), schema, "parquet")
                self._on_page(page, marks, obj.name)
                # off the event loop, so the next requests leave on time while we convert
                batch = await asyncio.to_thread(converter.to_batch, page.records)  # type: ignore[union-attr]
                await asyncio.to_thread(writer.write, batch)
                await asyncio.to_thread(seen.add, batch)
                if base is not None:
                    await asyncio.to_thread(base.write, batch)
            deleted = confirmed = 0
            journaled: set[int] = set()
            if converter is not None and writer is not None:
                # a full export sees deletions for free: the old file's ids no longer listed,
                # each confirmed by its own GET; one still there joins the file (a listing
                # that missed it, or a record this user may see again)
                unlisted = before - seen.id_set() if before is not None else set()
                checked = await self._gone(obj, unlisted)
                await _write_late(checked.live, converter, (writer, base), seen)
                # records the pages left out, that a count above the records read says exist
                unkeyed = converter.bad_ids + converter.duplicate_ids
                missed = await self._missed(obj, seen, listed.count, unkeyed)
                await _write_late(missed, converter, (writer, base), seen)
                # and records read, then deleted before the list was read to its end
                left_out, asked = await self._deleted_since_read(obj, seen, listed.count)
                if left_out:
                    writer = await asyncio.to_thread(self._leave_out, obj, writer, base, left_out)
                    seen.leave_out(left_out)
                if before is not None:
                    # journaled before the file without them is published: a run stopped in
                    # between finds them again, and the journal takes each id once
                    journaled = checked.gone | (left_out & before)
                    self._record_deleted(obj.name, journaled)
                    deleted, confirmed = len(journaled), checked.requests + asked
        except BaseException as exc:
            for opened in (writer, base):
                if opened is not None:
                    opened.abort()
            if isinstance(exc, OSError):  # a full disk: which file
                raise naming(exc, path) from exc
            raise
        finally:
            self.progress.finish()
        assert writer is not None and converter is not None
        fresh: list[int] | None = None
        if changes_from and old_stamps is not None and isinstance(writer, ParquetTableWriter):
            # journaled before the snapshot is published, as an incremental run's are
            staged = writer.close_partial()
            stamp = obj.updated_field
            if obj.name in self._fields_changed:  # a column came, went or changed type
                assert obj.id_field is not None  # a lake snapshot is kept by id
                fresh = [i for i in seen.table()[obj.id_field].to_pylist() if i is not None]
            elif stamp and stamp in old_stamps.column_names:
                fresh = _fresh(old_stamps, seen.table(), obj)
            else:  # no DATE_UPDATED_UTC to tell a change by (pipelines, countries): the rows
                fresh = _fresh_rows(read_earlier(path), pq.read_table(staged), obj.id_field)
            # the changed rows only, scanned batch by batch (a stamped snapshot is not read whole);
            # pyarrow.dataset imports pandas, a third of a second a run that needs neither
            import pyarrow.dataset as ds

            rows = (
                ds.dataset(staged, format="parquet").to_table(
                    filter=pc.field(obj.id_field).isin(fresh)
                )
                if fresh
                else writer.schema.empty_table()
            )
            if rows.num_rows or deleted:
                self._write_changes(obj, rows, journaled, marks)
            publish(staged, path)
        else:
            try:  # a person may have saved it while the other objects were exported
                self._refuse_if_edited(obj.name, path)
            except InputError:
                for opened in (writer, base):
                    if opened is not None:
                        opened.abort()
                raise
            if base is not None:  # first: a CSV in place is the one its base was written with
                try:
                    base.commit()
                except BaseException:  # a full disk: the file itself is not written either
                    writer.abort()
                    raise
            writer.commit()
            self._remember_fingerprint(path)
        self._seen[obj.name] = seen
        self._warn_bad_values(obj.name, converter)
        self.result.warnings += writer.warnings(obj.name)
        stamp = obj.updated_field
        if fresh is None and old_stamps is not None and stamp in old_stamps.column_names:
            fresh = _fresh(old_stamps, seen.table(), obj)  # counted: new, or stamped anew
        result = ObjectResult(
            obj.name, "full", rows=writer.rows, file=self._file(path), high_water_mark=marks.mark()
        )
        if before is not None:
            result.new = len(seen.id_set() - before)
            result.deleted, result.confirm_requests = deleted, confirmed
            result.deletes_checked = True
        if fresh is not None:  # the earlier file's stamps against the records read
            result.changed, result.changes_checked = len(fresh) - result.new, True
        return result

    async def _incremental(
        self, obj: ObjectType, path: Path, since: datetime, brief: bool
    ) -> ObjectResult:
        after = changed_after(since)
        params: dict[str, Any] = {"updated_after_utc": after}
        if brief:
            params["brief"] = "true"
        marks = _Marks(obj.updated_field)
        records: list[dict[str, Any]] = []
        self.progress.start(f"{obj.name} (changes)")
        try:
            async for page in self.client.iter_pages(
                f"{obj.endpoint}/Search", params, key=obj.id_field
            ):
                if not records and page.skip == 0:
                    await self._check_fits(obj, page, brief)
                self._on_page(page, marks, obj.name)
                records.extend(page.records)  # only the changes: small next to the collection
        finally:
            self.progress.finish()
        schema = await self._schema(obj, brief)
        converter = PageConverter(schema)
        changed = _dedupe(await asyncio.to_thread(converter.to_table, records), obj.id_field)
        merged = changed
        entry = self.manifest["objects"].get(obj.name) or {}
        old = iso_instant(entry.get("high_water_mark"))
        old_mark = as_text(old) if old is not None else None
        # without the file (or onto one that is itself partial) the result holds only the
        # records changed since then: said in the manifest, so --incremental does not build
        # on it (it lost every record not changed since)
        starts = [as_text(since)] + (
            [str(entry["partial_since"])] if entry.get("partial_since") else []
        )
        partial = min(starts) if not _exists(path) or len(starts) > 1 else None
        new = modified = deleted = confirmed = 0
        gone: set[int] = set()
        assert obj.id_field is not None
        if _exists(path):
            try:
                existing = conform(read_earlier(path, key=obj.id_field, of=obj.name), schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                # a custom field's type changed (text to number …): the file's older values
                # cannot be carried over, and the server has them in the new type
                self.result.warnings.append(
                    f"{obj.name}: the earlier file's values of a field whose type changed do "
                    f"not read as the new type ({str(exc)[:80]}); exported in full this time"
                )
                return await self._full(obj, path, brief)
            keep = pc.invert(pc.is_in(existing[obj.id_field], value_set=changed[obj.id_field]))
            merged = pa.concat_tables([existing.filter(keep), changed]).sort_by(obj.id_field)
            new, modified, fresh = _new_and_changed(existing, changed, obj)
        else:
            new, fresh = changed.num_rows, changed
        if self.options.detect_deletes:
            live = await self._live_ids(obj)
            checked = await self._gone(obj, set(merged[obj.id_field].to_pylist()) - live)
            gone, confirmed = checked.gone, checked.requests
            if gone:
                merged = merged.filter(
                    pc.invert(pc.is_in(merged[obj.id_field], value_set=pa.array(sorted(gone))))
                )
            self._record_deleted(obj.name, gone)
            deleted = len(gone)
        if self._lake_changes() and (fresh.num_rows or deleted):
            # journaled before the snapshot: a run stopped in between leaves a change file
            # the next run's overlap repeats (an upsert twice is the same upsert)
            self._write_changes(obj, fresh, gone, marks)
        if self.table_fmt == "delta" and _exists(path):
            await asyncio.to_thread(merge_delta, path, fresh, gone, obj.id_field, merged)
        else:
            self._refuse_if_edited(obj.name, path)  # saved while other objects were exported?
            _write_whole(
                open_writer(path, schema, self.table_fmt, self.options.csv_dialect), merged
            )
            self._remember_fingerprint(path)
        self._seen[obj.name] = seen = _Seen(obj)
        seen.add(merged)
        self._warn_bad_values(obj.name, converter)
        mark = max(filter(None, [marks.mark(), old_mark]), default=None)
        return ObjectResult(
            obj.name,
            "incremental",
            rows=merged.num_rows,
            changed=modified,
            new=new,
            deleted=deleted,
            deletes_checked=self.options.detect_deletes,
            confirm_requests=confirmed,
            file=self._file(path),
            high_water_mark=mark,
            partial_since=partial,
        )

    def _write_changes(
        self, obj: ObjectType, changed: pa.Table, gone: set[int], marks: _Marks
    ) -> None:
        """The lake layout's change file of this run: `contacts/_changes/run=<UTC>/
        part-00000.parquet`, append-only, each row with `_op` (`upsert`: the record as it is now;
        `delete`: only its id) and `_high_water_mark` (the newest DATE_UPDATED_UTC the run saw).
        A reader that takes each file once (Auto Loader) gets every change exactly there."""
        assert obj.id_field is not None
        deletes = pa.Table.from_pylist([{obj.id_field: i} for i in sorted(gone)], changed.schema)
        rows = pa.concat_tables([changed, deletes])
        ops = ["upsert"] * changed.num_rows + ["delete"] * deletes.num_rows
        moment = iso_instant(marks.mark())
        rows = rows.append_column("_op", pa.array(ops, pa.string())).append_column(
            pa.field("_high_water_mark", pa.timestamp("s", tz="UTC")),
            pa.array(
                [moment.replace(tzinfo=UTC) if moment else None] * rows.num_rows,
                pa.timestamp("s", tz="UTC"),
            ),
        )
        folder = self._table_path(obj.name).parent / CHANGES
        folder = _own_folder(_own_folder(folder) / f"run={self.run_id}")
        _write_whole(open_writer(folder / "part-00000.parquet", rows.schema, "parquet"), rows)
        self.result.change_files.append(self._file(folder / "part-00000.parquet"))

    def _write_links(self) -> None:
        """`links.parquet`, from the LINKS of every object file in the directory: what the
        record bodies already carried, at no request. (Since v3.0 some links come only from
        the per-record Links endpoint, which costs a request per record.)"""
        tables = []
        for name, entry in sorted(self.manifest["objects"].items()):
            obj = OBJECTS.get(name)
            path = self.out_dir / str(entry.get("file"))
            if obj is None or obj.field("LINKS") is None or entry.get("format") not in TABLES:
                continue
            if name in self._seen:  # exported by this run: gathered as its pages passed
                tables.extend(self._seen[name].links)
                continue
            if not _exists(path):
                continue
            earlier = read_earlier(
                path, [obj.id_field or "", "LINKS"], key=obj.id_field, of=obj.name
            )
            if "LINKS" in earlier.column_names:  # a --brief export has no nested arrays
                tables.append(_links_of(name, earlier))
        rows = pa.concat_tables(tables) if tables else LINKS_SCHEMA.empty_table()
        path = self._table_path("links")
        writer = open_writer(path, LINKS_SCHEMA, "parquet")
        for batch in rows.combine_chunks().to_batches():
            writer.write(batch)
        writer.commit()
        self.manifest["links"] = {"file": self._file(path), "rows": rows.num_rows}

    def _subs_since(self, names: list[str]) -> dict[tuple[str, str], datetime]:
        """For an incremental run: per sub-collection and parent object, when it was last
        read for every record of that object. Only the records changed since (and new ones)
        are read again: a change to a record's links, comments, files, emails or state moves
        its DATE_UPDATED_UTC (an ASSUMPTION, docs/api.md §11, as singer-sdk's child streams
        assume), and a full export (without --incremental) reads every record's again."""
        since: dict[tuple[str, str], datetime] = {}
        for sub in self.options.with_:
            entry = self.manifest.get(sub) or {}
            if not isinstance(entry, dict) or not (self.out_dir / str(entry.get("file"))).exists():
                continue
            marks = entry.get("marks") or {}
            for obj in parents_of(sub, names):
                mark = marks.get(obj.name) if isinstance(marks, dict) else None
                if mark and self._since(obj) is not None:
                    moment = iso_instant(mark)  # a damaged mark: read them all
                    if moment is not None:
                        since[(sub, obj.name)] = moment.replace(tzinfo=UTC)
        return since

    async def _fetch_subcollections(self, names: list[str]) -> None:
        """`--with`: each asked sub-collection of every record this run's files hold (an
        incremental run: of the records changed since it was last read)."""
        fetcher = SubFetcher(
            self.client,
            self.out_dir,
            self.progress,
            self.options.files_dir,
            self.options.files_present,
            self.options.layout,
        )
        entries = self.manifest["objects"]
        for sub in self.options.with_:
            parents = []
            for obj in parents_of(sub, names):
                entry = entries.get(obj.name) or {}
                if entry.get("format") not in TABLES:
                    continue
                path = self.out_dir / str(entry["file"])
                seen = self._seen.get(obj.name)
                stamps = seen.table() if seen else _stamps_of(path, obj)
                mark = self._sub_since.get((sub, obj.name))
                only = changed_ids(stamps, obj, mark) if mark is not None else None
                ids = sorted(i for i in stamps[obj.id_field or ""].to_pylist() if i is not None)
                parents.append(Parent(obj, path, only, ids))
            meter = self.client.meter()
            refused, read = len(fetcher.unreadable), fetcher.read
            file, rows = await fetcher.fetch(sub, parents)
            self.manifest[sub] = self.result.sub_collections[sub] = {
                "file": file,
                "rows": rows,
                "per_record": [p.obj.name for p in parents],
                "incremental": [p.obj.name for p in parents if p.only is not None],
                "records_read": fetcher.read - read,
                "requests": meter.requests,
                "unreadable": len(fetcher.unreadable) - refused,
                # what it covers: every record changed up to its object's high-water mark
                "marks": {
                    p.obj.name: mark
                    for p in parents
                    if (mark := (entries.get(p.obj.name) or {}).get("high_water_mark"))
                },
            }
        for failure in fetcher.failed_downloads:
            self.result.warnings.append(f"--files-dir: {failure}; not downloaded")
        self.result.warnings += [f"--files-dir: {odd}" for odd in fetcher.size_mismatches]
        unreadable = fetcher.write_unreadable()
        self.manifest.pop("unreadable", None)
        if unreadable:
            self.manifest["unreadable"] = {"file": UNREADABLE, "rows": unreadable}
            by_sub = Counter(r["collection"] for r in fetcher.unreadable)
            records = len({(r["object"], r["id"]) for r in fetcher.unreadable})
            self.result.warnings.append(
                f"--with: {records:,} record(s) the API user may not read were "
                f"skipped ({', '.join(f'{n:,} for {s}' for s, n in by_sub.items())}: HTTP 403 "
                f"{fetcher.unreadable[0]['message']!r}); listed in {UNREADABLE}"
            )

    async def _live_ids(self, obj: ObjectType, why: str = "ids, for deletions") -> set[int]:
        """Every id Insightly has for this object: one listing, `brief=true`, 500 a request.
        `why`: its progress bar's label."""
        assert obj.id_field is not None
        ids: set[int] = set()
        params = {"brief": "true"} if obj.brief else {}
        self.progress.start(f"{obj.name} ({why})")
        try:
            async for page in self.client.iter_pages(obj.endpoint, params, key=obj.id_field):
                self._on_page(page, _Marks(None), obj.name)
                ids.update(i for r in page.records if (i := record_id(r, obj.id_field)) is not None)
        finally:
            self.progress.finish()
        return ids

    async def _deleted_since_read(
        self, obj: ObjectType, seen: _Seen, count: int | None
    ) -> tuple[set[int], int]:
        """Records read, then deleted by someone else before the list was read to its end:
        a last count below the records read says there are some, one more listing of the
        ids (`brief=true`, 500 a request) says which, and each one's GET confirms it (404).
        With the GETs asked. A check that fails, or a second listing that disagrees with the
        count, leaves the file as read, with a warning: it never costs the export. A stop
        (the quota or the run's budget spent) stops the run before the object is published."""
        if obj.id_field is None or count is None or not _one_by_one(obj):
            return set(), 0
        held = seen.id_set()
        if len(held) <= count:
            return set(), 0
        meter = self.client.meter()
        why = f"the last count ({count:,}) was below the {len(held):,} records read"
        try:
            since_read = held - await self._live_ids(obj, "ids, for records deleted since read")
            listing = meter.requests
            if not since_read:  # a count that lies low would double every export's bill unseen
                self.client.stats.notices.append(
                    f"{obj.name}: {why}, but listing the ids again ({listing:,} requests) "
                    "found every one of them: none was left out"
                )
                return set(), 0
            if not _plausible(len(since_read), len(held) - count):
                # not a GET for every record on the word of a listing the count belies
                self.result.warnings.append(
                    f"{obj.name}: {why}, but listing the ids again left out {len(since_read):,} "
                    "of them: not trusted, and none was left out of the file (the next export "
                    "checks again)"
                )
                return set(), 0
            checked = await self._gone(obj, since_read, read=True)
        except ApiError as exc:  # a stop (quota, budget, Ctrl-C) stops the run, as anywhere
            self.result.warnings.append(
                f"{obj.name}: {why}; which were deleted since could not be checked ({exc}), so "
                "the file holds every record read (the next export checks again)"
            )
            return set(), 0
        if checked.gone:
            self.client.stats.notices.append(
                f"{obj.name}: {len(checked.gone):,} record(s) read were deleted in Insightly "
                f"before the export ended ({why}); left out of the file, found by listing the "
                f"ids again and asking for each ({listing:,} + {checked.requests:,} requests)"
            )
        return checked.gone, checked.requests

    def _leave_out(
        self, obj: ObjectType, writer: TableWriter, base: TableWriter | None, ids: set[int]
    ) -> TableWriter:
        """The writer of `obj`'s file without the records read, then deleted before the
        export ended. Parquet and Delta take them out of what they staged; a CSV or XLSX
        file is written again from its Parquet copy (`base`), without them."""
        assert obj.id_field is not None
        if isinstance(writer, ParquetTableWriter | DeltaTableWriter):
            writer.leave_out(obj.id_field, ids)
            return writer
        assert isinstance(base, ParquetTableWriter)
        writer.abort()  # the partial file goes, and a new one under its name is written
        writer = open_writer(writer.path, base.schema, self.table_fmt, self.options.csv_dialect)
        try:
            base.leave_out(obj.id_field, ids, copy_to=writer)
        except BaseException:
            writer.abort()
            raise
        return writer

    async def _ask_each(self, obj: ObjectType, ids: list[int]) -> dict[int, dict[str, Any] | str]:
        """Each record by its own GET (one request a record): the record, or `deleted`
        (the API's own 404), `unreadable` (403), `other` (an answer that is not the record
        asked for, or a 404 a proxy or gateway answered: no evidence either way)."""

        async def ask(rid: int) -> dict[str, Any] | str:
            try:
                reply = await self.client.get(f"{obj.endpoint}/{rid}")
            except NotFoundError as exc:
                return "deleted" if exc.from_api else "other"
            except ForbiddenError:
                return "unreadable"
            data = reply.data
            if not isinstance(data, dict) or record_id(data, obj.id_field or "") != rid:
                return "other"  # another record, or none: no evidence either way
            return data

        return dict(zip(ids, await gather_all(*(ask(r) for r in ids)), strict=True))

    async def _missed(
        self, obj: ObjectType, seen: _Seen, count: int | None, unkeyed: int = 0
    ) -> list[dict[str, Any]]:
        """Records the pages left out: a last count above the records read says there may
        be some (a server whose pages come short, records made while the list was read), one
        more listing of the ids (`brief=true`, 500 a request) says which, and each one's GET
        brings it. What the listing cannot find is warned of: the file may lack records (ones
        this user may not read, if Insightly counts them). A check that fails leaves the file
        as read, with a warning; a stop stops the run. `unkeyed`: records read but left out
        (no integer id, or an id read before), which the count counts too."""
        if obj.id_field is None or count is None or not _one_by_one(obj):
            return []
        held = seen.id_set()
        if len(held) + unkeyed >= count:
            return []
        meter = self.client.meter()
        why = f"the last count ({count:,}) was above the {len(held):,} records read"
        try:
            missing = sorted(await self._live_ids(obj, "ids, for records left out") - held)
            listing = meter.requests
            gap = count - len(held) - unkeyed  # what the count says the pages left out
            if not _plausible(len(missing), gap, never_read_of=len(held)):
                self.result.warnings.append(
                    f"{obj.name}: {why}, but listing the ids again gave {len(missing):,} not "
                    "read: not trusted, none asked for, and the file may lack records (the "
                    "next export checks again)"
                )
                return []
            answers = await self._ask_each(obj, missing)
        except ApiError as exc:
            self.result.warnings.append(
                f"{obj.name}: {why}; which were left out could not be checked ({exc}): the "
                "file may lack records (the next export checks again)"
            )
            return []
        found = [a for a in answers.values() if isinstance(a, dict)]
        if found:
            self.client.stats.notices.append(
                f"{obj.name}: {len(found):,} record(s) the pages left out were found ({why}) by "
                f"listing the ids again and asking for each ({listing:,} + "
                f"{meter.requests - listing:,} requests); written"
            )
        if short := gap - len(found):
            self.result.warnings.append(
                f"{obj.name}: {why}, and listing the ids again found "
                + (f"{len(found):,} more" if found else "no more")
                + f": {short:,} record(s) may be missing from the file (ones this user may not "
                "read, or a server whose pages come short)"
            )
        return found

    async def _gone(self, obj: ObjectType, unlisted: set[int], *, read: bool = False) -> _Checked:
        """Which records a listing no longer shows Insightly has really deleted, each asked
        by its own GET (one request a record): 404 is deleted; 403 is a record this user
        may no longer see, and 200 one the listing missed (with its record): neither is.
        `read`: records this run read (in the file already), which a second listing left out."""
        if not unlisted or not _one_by_one(obj):
            # a list keyed by a name (countries, currencies) has no GET of one: what it no
            # longer lists is gone from the file, not recorded as deleted (the request was 400)
            return _Checked(set(), [], 0)
        meter = self.client.meter()
        ids = sorted(unlisted)
        answers = await self._ask_each(obj, ids)
        live = [a for a in answers.values() if isinstance(a, dict)]
        unreadable = sum(a == "unreadable" for a in answers.values())
        other = sum(a == "other" for a in answers.values())
        which = (
            "read that a second listing no longer shows" if read else "the listing no longer shows"
        )
        if live or unreadable:
            self.result.warnings.append(
                f"{obj.name}: {len(live) + unreadable:,} of {len(ids):,} record(s) {which} are "
                f"still in Insightly ({unreadable:,} this user may not read, {len(live):,} the "
                "listing missed"
                + ("): kept in the file" if read else ", now written): not recorded as deleted")
            )
        if other:
            self.result.warnings.append(
                f"{obj.name}: {other:,} record(s) {which} were answered with another record than "
                "the one asked for, or with a 404 that is not the API's (a proxy's or a "
                "gateway's page): "
                + ("kept in the file" if read else "not recorded as deleted, not written")
            )
        gone = {r for r, a in answers.items() if a == "deleted"}
        return _Checked(gone, live, meter.requests)

    def _record_deleted(self, name: str, ids: set[int]) -> None:
        """Journal deletions in `_deleted.parquet` (object, id, detected_at), atomically, each
        (object, id) once: a run stopped between this and publishing the object's file finds
        them again, and they are not added twice."""
        if not ids:
            return
        path = self.out_dir / DELETED
        try:
            old = conform(pq.read_table(path), DELETED_SCHEMA) if path.exists() else None
        except (pa.ArrowException, OSError) as exc:
            raise InputError(
                f"{path} cannot be read ({str(exc)[:80]}); the deletions found are not lost "
                "(the object's file still has them) but cannot be journaled",
                hint="Move the damaged file away (keep it if it holds deletions you need), "
                "then run again.",
            ) from None
        if old is not None:
            mine = old.filter(pc.equal(old["object"], name))["id"].to_pylist()
            ids = ids - set(mine)
        if not ids:
            return
        # the server's clock when it answered, not this machine's (issue 22)
        now = self.client.server_now().replace(microsecond=0)
        rows = pa.table(
            {"object": [name] * len(ids), "id": sorted(ids), "detected_at": [now] * len(ids)},
            schema=DELETED_SCHEMA,
        )
        if old is not None:
            rows = pa.concat_tables([old, rows])
        writer = open_writer(path, DELETED_SCHEMA, "parquet")
        writer.write(rows.combine_chunks().to_batches()[0])
        writer.commit()

    def _on_page(self, page: Page, marks: _Marks, name: str) -> None:
        if page.skip == 0 and page.total is not None:
            self.progress.set_total(page.total)
        marks.add(page.records, self.client.last_server_time)
        if page.skip == 0 and marks.future is not None:
            self.result.warnings.append(
                f"{name}: a record's {marks.field} ({marks.future}) is later than this "
                f"machine's clock by more than {UNSURE.total_seconds() / 60:.0f} minutes, and "
                f"the server sends no Date header: the mark is held at {marks.started}, so the "
                "next incremental run reads what changed since then again"
            )
        self.progress.advance(len(page.records))

    def _warn_bad_values(self, name: str, converter: PageConverter) -> None:
        if converter.bad_ids:
            self.result.warnings.append(
                f"{name}: {converter.bad_ids} record(s) without an id (a whole number from 1 up) were left out"
            )
        if converter.duplicate_ids:
            self.result.warnings.append(
                f"{name}: {converter.duplicate_ids} record(s) came twice across pages (the same "
                "id); written once"
            )
        for column, count in sorted(converter.bad_values.items()):
            if column not in converter.schema.names:  # CUSTOMFIELDS: no column of its own
                self.result.warnings.append(
                    f"{name}: {count} record(s) whose {column} is no list: their custom fields "
                    "were kept as null"
                )
                continue
            kind = converter.schema.field(column).type
            # a nested list's whole struct type is no help to a person: "a list" is
            nested = pa.types.is_list(kind) and pa.types.is_struct(kind.value_type)
            dtype = "a list" if nested else kind
            self.result.warnings.append(
                f"{name}.{column}: {count} value(s) did not fit {dtype} and were kept as null"
            )

    # ---------------------------------------------------------------- manifest
    def _base_path(self, name: str) -> Path:
        """`_base/NAME.parquet`: the records as exported, beside a CSV or XLSX a person may edit;
        importing the edited file compares each cell with it (a three-way merge)."""
        return _own_folder(self.out_dir / BASE_DIR) / f"{name}.parquet"

    def _planned_path(self, name: str) -> Path:
        """Where `_path` puts a table, its folder not made."""
        if self.table_fmt == "delta" and name not in (CUSTOM_FIELDS, CUSTOM_OBJECTS):
            return self.out_dir / name
        return self.out_dir / table_file(name, self.ext, self.options.layout)

    def _path(self, name: str) -> Path:
        if self.table_fmt == "delta" and name not in (CUSTOM_FIELDS, CUSTOM_OBJECTS):
            return self._table_path(name, "delta").parent  # the table's folder: contacts/
        return self._table_path(name, self.ext)

    def _table_path(self, stem: str, ext: str = "parquet") -> Path:
        """A table's file: `contacts.parquet`, or in the lake layout `contacts/part-00000.parquet`
        (its folder made here, never through a symbolic link)."""
        path = self.out_dir / table_file(stem, ext, self.options.layout)
        if path.parent != self.out_dir:
            _own_folder(path.parent)
        return path

    def _file(self, path: Path) -> str:
        """A file's name in the manifest: its path under the export folder."""
        return path.relative_to(self.out_dir).as_posix()

    def _record(self, outcome: ObjectResult) -> None:
        if outcome.status == "skipped":
            return
        schema = self._schemas[outcome.name]
        counted = outcome.counts()
        was = self.manifest["objects"].get(outcome.name)
        earlier = was.get("file") if isinstance(was, dict) else None
        if isinstance(earlier, str) and earlier != outcome.file:
            stale = self.out_dir / earlier
            if stale.resolve().is_relative_to(self.out_dir.resolve()) and _exists(stale):
                self.result.warnings.append(
                    f"{outcome.name}: {earlier[:80]}, which an earlier export wrote, is left as "
                    f"it was (not updated, and no longer in {MANIFEST}): the folder's "
                    f"{outcome.name} are in {outcome.file} now"
                )
        self.manifest["objects"][outcome.name] = {
            "file": outcome.file,
            "format": self.options.fmt
            if outcome.name in (CUSTOM_FIELDS, CUSTOM_OBJECTS)
            else self.table_fmt,
            "rows": outcome.rows,
            "mode": outcome.status,
            **{k: counted.get(k) for k in ("changed", "new", "deleted")},  # None: not counted
            "high_water_mark": outcome.high_water_mark,
            **({"partial_since": outcome.partial_since} if outcome.partial_since else {}),
            "requests": outcome.requests,
            "brief": outcome.name not in (CUSTOM_FIELDS, CUSTOM_OBJECTS)
            and self._brief(self._type_of(outcome.name)),
            "exported_utc": utc_now(),
            "run": self._run_id,  # as its Parquet file says (META_RUN)
            "schema": describe(schema),
            "custom_field_definitions": self.definitions.get(outcome.name, []),
        }
        if outcome.name in self.custom_objects:
            self.manifest["objects"][outcome.name]["definition"] = self.custom_objects[outcome.name]
        self._save_manifest()

    def _save_manifest(self) -> None:
        if limits := self.client.learned_limits() or self.limits:
            self.manifest["limits"] = limits
        self.manifest["quota"] = {
            "limit": self.client.quota.limit,
            "remaining": self.client.quota.remaining,
        }
        write_json_atomic(self.out_dir / MANIFEST, self.manifest)


async def _write_late(
    records: list[dict[str, Any]],
    converter: PageConverter,
    tables: tuple[TableWriter | None, ...],
    seen: _Seen,
) -> None:
    """Records found after the pages (by their own GET) into the file, and its base."""
    if not records:
        return
    batch = await asyncio.to_thread(converter.to_batch, records)
    for table in tables:
        if table is not None:
            await asyncio.to_thread(table.write, batch)
    seen.add(batch)


def _plausible(unexpected: int, gap: int, *, never_read_of: int | None = None) -> bool:
    """Whether a second listing's `unexpected` ids (deleted since read, or never read) are few
    enough to ask for one by one: about what the count's `gap` says and, for ids never read
    (which a lying listing could invent by the million), at most 1% of the `never_read_of`
    records read. Not a GET storm on the word of a count or a listing that lies."""
    most = _TRUSTED_SLACK * gap
    if never_read_of is not None:
        most = min(most, never_read_of // 100)
    return unexpected <= _TRUSTED_EXTRA + most


def _no_link(folder: Path) -> None:
    """Refused if the export's own folder is a symbolic link: it could lead anywhere, and
    the files would be written there."""
    if folder.is_symlink():
        raise InputError(
            f"{folder} is a symbolic link; the export's own folders are never written through one",
            hint="Remove the link (the export makes the folder), then run again.",
        )


def _own_folder(folder: Path) -> Path:
    """A folder of the export's own, made if missing; never one that is a symbolic link."""
    _no_link(folder)
    folder.mkdir(exist_ok=True)
    return folder


def _fingerprint(path: Path) -> dict[str, Any]:
    """What a file was when this tool wrote it: its size and time (the quick check) and a
    digest of its bytes (a copied folder has new times and the same bytes)."""
    stat = path.stat()
    return {
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": sha256_file(path),
        "utc": utc_now(),
    }


def _edited(path: Path, written: dict[str, Any]) -> bool:
    """Whether the file is no longer the one this tool wrote (`_fingerprint`)."""
    stat = path.stat()
    if stat.st_size == written.get("bytes") and stat.st_mtime_ns == written.get("mtime_ns"):
        return False
    return sha256_file(path) != written.get("sha256")


def _one_by_one(obj: ObjectType) -> bool:
    """Whether a record of `obj` can be asked for by its id: not a list keyed by a name."""
    return not any(f.name == obj.id_field and f.type != "integer" for f in obj.fields)


# a second listing of ids may leave out more records than the count says went (others are
# deleted while it pages): up to twice as many, and 50 besides, are asked for one by one;
# beyond that the listing is not trusted with a GET for each (a server answering an empty
# listing would cost a request a record)
_TRUSTED_SLACK, _TRUSTED_EXTRA = 2, 50


class _TooBig(Exception):
    """An object whose pages this run's budget cannot read whole (see _check_fits)."""

    def __init__(self, name: str, records: int, requests: int, left: int, most: int) -> None:
        """`requests`: its pages after the first; `left`: what the run had left for them;
        `most`: what a run with its whole budget has left for them."""
        super().__init__(name)
        self.name, self.records, self.requests = name, records, requests
        self.left, self.most = left, most

    def __str__(self) -> str:
        return (
            f"{self.name}: its {self.records:,} records need at least {self.requests:,} more "
            f"page requests after the first, and this run had {self.left:,} left"
        )


@dataclass(frozen=True)
class _Checked:
    """Records no longer listed, each asked for: the deleted, the live (written), the cost."""

    gone: set[int]
    live: list[dict[str, Any]]
    requests: int


# the stops a later run waits out: it goes on with the export (Exporter._round_begun)
_WAITS = frozenset({StopReason.QUOTA, StopReason.RESERVE, StopReason.BUDGET})

# how far this machine's clock may be from the server's when no Date header says
UNSURE = timedelta(minutes=10)


class _Marks:
    """The high-water mark: the newest DATE_UPDATED_UTC seen, but never later than the moment
    the scan started (server clock). A record changed while the scan ran may have been read in
    its old version; capping the mark makes the next incremental run fetch it again."""

    def __init__(self, updated_field: str | None) -> None:
        self.field = updated_field
        self.newest: str | None = None
        self.started: str | None = None
        self.begun = False
        self.future: str | None = None  # a stamp later than this machine's clock allows

    def add(self, records: list[dict[str, Any]], server_time: datetime | None) -> None:
        """The newest moment of the page, in one form whatever form the server wrote it in
        (`…T…Z`, an offset, fractions: docs/api.md §6), so marks compare as moments. The first
        page also says when the scan started, by the server's clock: its Date header, or
        without one the newest stamp of that page, written before the scan began, though
        never later than this machine's clock less UNSURE (which alone may be ahead)."""
        if self.field is None:
            return
        moments = (iso_instant(r.get(self.field)) for r in records)
        latest = max((m for m in moments if m is not None), default=None)
        newest = as_text(latest) if latest is not None else None
        if newest and (self.newest is None or newest > self.newest):
            self.newest = newest
        if not self.begun:
            self.begun = True
            if server_time is not None:
                self.started = as_text(server_time.astimezone(UTC))
            elif newest is not None:
                # no Date header: the first page's newest stamp, though never later than
                # this machine's clock allows (it may be off by as much as UNSURE): one
                # record stamped in the future (a server's bug, an import's bad clock)
                # made it the mark, and every edit before that stamp was missed for good
                believable = as_text(datetime.now(UTC) - UNSURE)
                self.started = min(newest, believable)
                self.future = newest if newest > as_text(datetime.now(UTC) + UNSURE) else None

    def mark(self) -> str | None:
        if self.newest is None:
            return None
        return min(self.newest, self.started) if self.started else self.newest


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """An older file in today's schema: new columns as nulls, dropped ones gone, types cast."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            try:
                columns.append(table[f.name].cast(f.type))
            except pa.ArrowInvalid:  # an older file's timestamp where a calendar day is now
                columns.append(table[f.name].cast(f.type, safe=False))
        else:
            columns.append(pa.nulls(table.num_rows, type=f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _links_of(name: str, table: pa.Table) -> pa.Table:
    """One row per link of each record: (object, id) and the link's own fields."""
    id_field = table.column_names[0]
    links = table["LINKS"].combine_chunks()
    ids = pc.take(table[id_field].combine_chunks(), pc.list_parent_indices(links))
    items = pc.list_flatten(links)

    def part(field: str, dtype: pa.DataType) -> pa.Array:
        if items.type.get_field_index(field) < 0:
            return pa.nulls(len(items), dtype)
        return pc.struct_field(items, field).cast(dtype)

    return pa.table(
        {
            "object": pa.array([name] * len(items), pa.string()),
            "id": ids.cast(pa.int64()),
            "link_id": part("LINK_ID", pa.int64()),
            "linked_object": part("LINK_OBJECT_NAME", pa.string()),
            "linked_id": part("LINK_OBJECT_ID", pa.int64()),
            "role": part("ROLE", pa.string()),
            "details": part("DETAILS", pa.string()),
            "relationship_id": part("RELATIONSHIP_ID", pa.int64()),
            "is_forward": part("IS_FORWARD", pa.bool_()),
        },
        schema=LINKS_SCHEMA,
    )


class _Seen:
    """What an object's export wrote, gathered as its pages pass (its ids, DATE_UPDATED_UTC and
    links): what comes after — deletions, links.parquet, --with — never reads the file back."""

    def __init__(self, obj: ObjectType) -> None:
        self.obj = obj
        self.columns = [c for c in (obj.id_field, obj.updated_field) if c]
        self.parts: list[pa.Table] = []
        self.links: list[pa.Table] = []  # LINKS_SCHEMA tables

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        names = batch.schema.names
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self.parts.append(table.select([c for c in self.columns if c in names]))
        if "LINKS" in names and self.obj.id_field in names:
            self.links.append(_links_of(self.obj.name, table.select([self.obj.id_field, "LINKS"])))

    def table(self) -> pa.Table:
        """The ids (and DATE_UPDATED_UTC) of every record written."""
        if not self.parts:
            return pa.table({c: pa.array([], pa.int64()) for c in self.columns[:1]})
        return pa.concat_tables(self.parts, promote_options="permissive")

    def leave_out(self, ids: set[int]) -> None:
        """Forget the records taken out of the file (read, then deleted)."""
        key = self.obj.id_field
        assert key is not None
        gone = pa.array(sorted(ids), pa.int64())

        def without(table: pa.Table, column: str) -> pa.Table:
            return table.filter(pc.invert(pc.is_in(table[column], value_set=gone)))

        self.parts = [without(t, key) for t in self.parts]
        self.links = [without(t, "id") for t in self.links]

    def id_set(self) -> set[int]:
        if self.obj.id_field is None or not self.parts:
            return set()
        return {i for i in self.table()[self.obj.id_field].to_pylist() if i is not None}


def _write_whole(writer: TableWriter, table: pa.Table) -> None:
    """A table through a writer: committed whole, or aborted (nothing half-made is left)."""
    try:
        for batch in table.to_batches(max_chunksize=50_000):
            writer.write(batch)
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def _fresh(old: pa.Table, now: pa.Table, obj: ObjectType) -> list[int]:
    """The ids of `now` (ids and DATE_UPDATED_UTC) that `old` lacks or has in another version."""
    assert obj.id_field is not None
    stamp = obj.updated_field
    before = dict(
        zip(
            old[obj.id_field].to_pylist(),
            old[stamp].to_pylist() if stamp and stamp in old.column_names else [None] * len(old),
            strict=True,
        )
    )
    ids = now[obj.id_field].to_pylist()
    stamps = (
        now[stamp].to_pylist() if stamp and stamp in now.column_names else [object()] * len(ids)
    )
    return [i for i, t in zip(ids, stamps, strict=True) if i not in before or before[i] != t]


def _fresh_rows(old: pa.Table, now: pa.Table, id_field: str | None) -> list[int]:
    """For an object without DATE_UPDATED_UTC: the ids of `now` whose row `old` lacks or holds
    otherwise, value by value (a run with no change writes no change). A digest of each old
    row is kept, not the row: a block of rows at a time is made Python values."""
    assert id_field is not None
    common = [c for c in now.column_names if c in old.column_names]

    def digests(table: pa.Table) -> Iterator[tuple[Any, bytes]]:
        for batch in table.select(common).to_batches(max_chunksize=10_000):
            for row in batch.to_pylist():
                yield row[id_field], hashlib.blake2b(repr(row).encode(), digest_size=16).digest()

    before = dict(digests(old))
    return [rid for rid, digest in digests(now) if before.get(rid) != digest]


def _stamps_of(path: Path, obj: ObjectType) -> pa.Table:
    """An object file's ids and DATE_UPDATED_UTC: one written by an earlier run."""
    if not _exists(path):
        return pa.table({obj.id_field or "id": pa.array([], pa.int64())})
    return read_earlier(
        path, [c for c in (obj.id_field, obj.updated_field) if c], key=obj.id_field, of=obj.name
    )


def _earlier_stamps(path: Path, obj: ObjectType) -> pa.Table | None:
    """The ids and DATE_UPDATED_UTC an earlier export's Parquet file holds (None: no such
    file, or not this object's: a full run then finds no deletions or changes by it)."""
    if not _exists(path):
        return None
    try:
        return _stamps_of(path, obj)
    except InputError:
        return None  # not ours to read: nothing to compare


def _exists(path: Path) -> bool:
    """An earlier run's table: a file, or a Delta table's folder with its log."""
    return is_delta_table(path) if path.is_dir() else path.exists()


def _new_and_changed(
    existing: pa.Table, fetched: pa.Table, obj: ObjectType
) -> tuple[int, int, pa.Table]:
    """Of the records an incremental run fetched: how many the file did not have, how many it
    had in another version, and those records (the overlap second re-reads some that did not
    change: they are not changes)."""
    assert obj.id_field is not None
    fresh = set(_fresh(existing, fetched, obj))
    known = set(existing[obj.id_field].to_pylist())
    ids = fetched[obj.id_field].to_pylist()  # one row per id (_dedupe)
    new = sum(1 for i in ids if i not in known)
    mask = pa.array([i in fresh for i in ids], pa.bool_())
    return new, len(fresh) - new, fetched.filter(mask)


def _dedupe(table: pa.Table, id_field: str | None) -> pa.Table:
    """Keep the last version of each id (pages can repeat a record that moved)."""
    if id_field is None or table.num_rows == 0:
        return table
    ids = table[id_field].to_pylist()
    last = {rid: n for n, rid in enumerate(ids)}
    if len(last) == len(ids):
        return table
    return table.take(sorted(last.values()))


def _rows(entry: dict[str, Any]) -> int:
    rows = entry.get("rows")
    return rows if isinstance(rows, int) and rows > 0 else 0  # a hand-edited manifest: none


def check_options(opts: ExportOptions) -> None:
    """Options that cannot go together, refused before anything is said or asked."""
    if (opts.incremental or opts.since) and opts.fmt != "parquet":
        raise InputError(
            "--incremental and --since merge into Parquet files",
            hint=f"Leave out --format for incremental runs (Parquet), or export {opts.fmt.upper()} "
            "in full (without --incremental or --since).",
        )
    if opts.with_ and opts.fmt != "parquet":
        raise InputError(
            "--with writes Parquet (the per-record files join the objects' Parquet files)",
            hint="Leave out --format, or export the sub-collections in a second run.",
        )


def deletion_cost(options: ExportOptions) -> int:
    """About how many requests `--detect-deletes` adds: one id listing of each object the
    earlier export has rows of, 500 ids a request (an estimate: counts move)."""
    folders = [options.out_dir]
    if options.account_partition and options.out_dir.is_dir():  # the account is not known yet
        folders += sorted(d for d in options.out_dir.glob("account=*") if d.is_dir())
    objects: dict[str, Any] = {}
    for folder in folders:
        for name, entry in read_manifest(folder)["objects"].items():
            if _rows(entry) >= _rows(objects.get(name) or {}):
                objects[name] = entry
    asked = {n.lower() for n in resolve_objects(options.objects)}
    total = 0
    for name, entry in objects.items():
        if asked and name.lower() not in asked:
            continue
        try:
            obj = OBJECTS.get(name) or custom_object(name)
        except InputError:
            continue
        if obj.searchable and obj.updated_field:
            total += max(1, -(-_rows(entry) // 500))
    return total


async def extract_objects(
    client: InsightlyClient,
    options: ExportOptions,
    progress: Progress | None = None,
    announce: Callable[[SubPlan], None] | None = None,
    result: ExportResult | None = None,
) -> ExportResult:
    """`result`: filled as the export goes, so a run that stops (quota, Ctrl-C) still says
    which account and which objects and files it wrote."""
    return await Exporter(client, options, progress or NullProgress(), announce, result).run()
