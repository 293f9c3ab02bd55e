"""Files into Insightly: `validate`, `fields`, `mapping draft` and `import`."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import click

from insightly_etl.cli.common import (
    ApiOptions,
    Context,
    LocalPath,
    Location,
    account_options,
    api_options,
    choice_option,
    echo_accounting,
    fields_from_option,
    file_options,
    main,
    mapping_options,
    note_outcome,
    pick_account,
    plural,
    progress,
    results_option,
    rows_text,
    run_with_api,
    stop_on_signals,
)
from insightly_etl.load.states import (
    OUTCOMES,
    OnConflict,
    OnDuplicate,
    OnDuplicateEmail,
    OnMatch,
    Stop,
    choices,
)
from insightly_etl.summary import utc_text


def _facts(ctx: Context, mapping: Any, fields_from: Path | None, api: ApiOptions) -> Any:
    """Definitions and lookups: from an export directory (no request) or the API."""
    from insightly_etl.load.account import facts_from_api, facts_from_export

    if fields_from is not None:
        return facts_from_export(fields_from, mapping)

    async def go(client: Any) -> Any:
        return await facts_from_api(client, mapping)

    return run_with_api(ctx, api, go)


def _as_asked(mapping: Any, date_order: str | None, csv_dialect: str | None) -> Any:
    """The mapping with what the command line says about the file: its date order, and the
    decimal mark of an `export --csv-dialect` file (a mapping's own `decimal:` wins)."""
    if date_order:
        mapping = replace(mapping, date_order=date_order)
    if csv_dialect and mapping.decimal is None:
        mapping = replace(mapping, decimal="," if csv_dialect == "excel-eu" else ".")
    return mapping


def _echo_groups(groups: list[Any], unit: str, *, err: bool = False) -> None:
    """Validation errors grouped by column and kind, with an example each."""
    if not groups:
        return
    wide = max(9, *(len(g.kind) for g in groups))  # "spreadsheet error" is 17
    click.echo(f"  {'column':<24} {'kind':<{wide}} {'count':>7}  example", err=err)
    for g in groups:
        click.echo(
            f"  {g.column:<24} {g.kind:<{wide}} {g.count:>7,}  {unit} {g.example_line}: "
            f"{g.example}",
            err=err,
        )


def _local(file: Path | str) -> tuple[Path, Path | None, str]:
    """FILE as a local path; where its results go when it is in object storage (the current
    folder; beside FILE otherwise: None); and the name its results and checkpoint are named
    by: the file's own, or for an object the whole URI made a file name
    (`s3://acme/drop/people.csv` -> `acme_drop_people.csv`), so two objects of one name in
    two places never share a checkpoint. An object is downloaded for the command's duration
    (click closes it when the command ends)."""
    if isinstance(file, Path):
        return file, None, file.name
    from insightly_etl.extract.remote import downloaded

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", file.split("://", 1)[1]).strip("._") or "object"
    return click.get_current_context().with_resource(downloaded(file)), Path.cwd(), name


def _read(file: Path, encoding: str | None, delimiter: str | None, sheet: str | None) -> Any:
    from insightly_etl.load.readers import read_table

    return read_table(file, encoding=encoding, delimiter=delimiter, sheet=sheet)


@main.command()
@click.argument("file", type=Location(dir_okay=False, path_type=Path))
@mapping_options
@click.option(
    "--rejects",
    type=LocalPath(dir_okay=False, path_type=Path),
    help="Where to write the rejected rows  [default: NAME.rejects.csv beside FILE]",
)
@fields_from_option(
    "Take field definitions and lookups from this export directory: no API request."
)
@choice_option(
    "--on-duplicate",
    choices(OnDuplicate),
    "As import's: rows sharing a match key with different values are refused (error: exit 1, "
    "import sends none of them), or import sends the first or the last of them.",
)
@file_options
@api_options
@click.pass_obj
def validate(
    ctx: Context,
    file: Path | str,
    mapping_file: Path | None,
    object_name: str | None,
    rejects: Path | None,
    fields_from: Path | None,
    on_duplicate: OnDuplicate,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    date_order: str | None,
    csv_dialect: str | None,
    api: ApiOptions,
) -> None:
    """Check every row of FILE against the account's fields, without writing anything.

    Exit 0: every row is valid; 1: some rows were rejected (see the rejects file), or share a
    match key with different values, which import sends none of; 2: the file or the mapping
    cannot be used.
    """
    from insightly_etl.files import write_csv
    from insightly_etl.load.check import check_file
    from insightly_etl.load.mapping import read_mapping
    from insightly_etl.load.report import default_rejects_path

    mapping = read_mapping(mapping_file, object_name=object_name)
    mapping = _as_asked(mapping, date_order, csv_dialect)
    if csv_dialect and not delimiter:
        delimiter = ";" if csv_dialect == "excel-eu" else ","
    file, here, name = _local(file)
    check = check_file(
        file,
        mapping,
        lambda: _facts(ctx, mapping, fields_from, api),  # once the file's start reads
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        on_duplicate=on_duplicate,
        progress=progress(quiet=False),  # on a terminal: a bar of rows (millions take a while)
    )
    for note in check.notes:
        click.echo(f"Note: {note}", err=True)
    for warning in check.warnings:
        click.echo(f"Warning: {warning}", err=True)
    total = check.rows + check.bad_rows
    how = f" ({check.encoding}, {check.delimiter!r} delimited)" if check.encoding else ""
    click.echo(
        f"{file.name}: {plural(total, 'row')} read{how}: {total - check.rejected:,} valid, "
        f"{check.rejected:,} rejected"
        + (
            f"; {check.refused:,} of them share a match key (import sends none of them)"
            if check.refused
            else ""
        )
    )
    _echo_groups(check.groups, check.unit)
    path = rejects or default_rejects_path(file)
    if here is not None and rejects is None:
        path = here / f"{Path(name).stem}.rejects.csv"
    if ctx.summary is not None:
        ctx.summary.count(
            mapping.object, rows=total, valid=total - check.rejected, rejected=check.rejected
        )
    if check.rejected:
        if ctx.summary is not None:
            ctx.summary.files = [str(path)]
        write_csv(check.rejects, path, sep=check.results_sep)  # the file's: cells read the same
        click.echo(f"Rejected rows, with their {check.unit} numbers and errors: {path}")
        sys.exit(1)
    if path.exists():  # an earlier run's, fixed since: never taken for fresh results
        path.unlink()
        click.echo(f"Removed {path}: no row is rejected now.", err=True)
    if check.refused:  # each valid, but a pipeline's import would stop at them (exit 1)
        sys.exit(1)


@main.command()
@click.argument("object_name", metavar="OBJECT")
@click.option("--all", "show_all", is_flag=True, help="Also list read-only fields.")
@fields_from_option("Take custom-field definitions from this export directory: no API request.")
@api_options
@click.pass_obj
def fields(
    ctx: Context, object_name: str, show_all: bool, fields_from: Path | None, api: ApiOptions
) -> None:
    """List the fields of OBJECT an import can write: API name, label, type, required, max length, options."""
    from insightly_etl.api.registry import get_object
    from insightly_etl.load.fields import field_specs
    from insightly_etl.load.mapping import read_mapping

    mapping = read_mapping(None, object_name=object_name)
    facts = _facts(ctx, mapping, fields_from, api)
    specs = field_specs(get_object(mapping.object), facts.definitions)
    click.echo(f"{'field':<28} {'label':<26} {'type':<13} {'req':<4} {'max':>5}  options")
    for spec in specs.values():
        if not spec.writable and not show_all:
            continue
        kind = spec.api_type + ("" if spec.writable else " (read-only)")
        req = "yes" if spec.required else ""
        options = ", ".join(spec.options) or (
            f"ids of {spec.join_object} (map with lookup:)" if spec.join_object else ""
        )
        if spec.via:  # sent after the record's write, through its own endpoint
            step = {"pipeline": "…/Pipeline", "state": "…/StateChange"}[spec.via]
            options = f"{options + '; ' if options else ''}a step: PUT {step}"
        click.echo(
            f"{spec.name:<28} {spec.label[:26]:<26} {kind:<13} {req:<4} {spec.max_length or '':>5}  {options}"
        )


@main.group()
def mapping() -> None:
    """Mapping files: which spreadsheet column goes to which Insightly field."""


@mapping.command("schema")
def mapping_schema_command() -> None:
    """Print the JSON Schema of mapping files (editors check a mapping with it as it is
    typed; mappings/mapping.schema.json is this, and `examples` writes it)."""
    import json

    from insightly_etl.api.registry import OBJECTS
    from insightly_etl.load.mapping import mapping_schema

    click.echo(json.dumps(mapping_schema(list(OBJECTS)), indent=2, ensure_ascii=False))


@mapping.command("draft")
@click.argument("file", type=LocalPath(dir_okay=False, path_type=Path))
@click.option("--object", "object_name", required=True, help="The object type the file holds.")
@fields_from_option("Take custom-field definitions from this export directory: no API request.")
@file_options
@api_options
@click.pass_obj
def mapping_draft(
    ctx: Context,
    file: Path,
    object_name: str,
    fields_from: Path | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    date_order: str | None,
    csv_dialect: str | None,
    api: ApiOptions,
) -> None:
    """Print a starting mapping for FILE: headers matched to field names and labels."""
    from insightly_etl.api.registry import get_object
    from insightly_etl.load.draft import draft_mapping
    from insightly_etl.load.fields import field_specs
    from insightly_etl.load.mapping import read_mapping

    target = read_mapping(None, object_name=object_name)
    table = _read(file, encoding, delimiter, sheet)
    facts = _facts(ctx, target, fields_from, api)
    click.echo(
        draft_mapping(
            table, target.object, field_specs(get_object(target.object), facts.definitions)
        ),
        nl=False,
    )


# ---------------------------------------------------------------- import


STEP_WORDS = {
    "read": "read",
    "pipeline": "pipeline",
    "stage": "stage",
    "unpipeline": "pipeline removed",
    "state": "state",
    "link": "link",
}


def _step_text(counts: dict[str, int]) -> str:
    """`2 pipeline, 5 stage, 3 link`: the step kinds with a count."""
    return ", ".join(f"{counts[k]:,} {w}" for k, w in STEP_WORDS.items() if counts.get(k))


def _print_quota_plan(plan: Any) -> None:
    """The plan, before anything is sent: what changed since the last run, notes, counts,
    requests, and planning's warnings (a warning printed after the writes warned of nothing)."""
    if plan.since_last_run:
        click.echo(f"Since the last run: {plan.since_last_run}.", err=True)
    for note in plan.notes:  # as validate says them: a column left out is never a surprise
        click.echo(f"Note: {note}", err=True)
    for warning in plan.warnings:
        click.echo(f"Warning: {warning}", err=True)
    left = f"{plan.remaining:,}" if plan.remaining is not None else "unknown"
    click.echo(
        f"Plan: {plan.creates:,} to create, {plan.updates:,} to update, {plan.unchanged:,} unchanged (no request), "
        f"{plan.rejected:,} rejected, {plan.duplicates:,} duplicate, {plan.skipped:,} skipped, {plan.failed:,} failed"
        + (f"; {plan.done_before:,} done by earlier runs" if plan.done_before else "")
        + (
            f"; {plan.conflict_rows:,} of them with a conflict kept, which end failed (see "
            "Conflicts)"
            if plan.conflict_rows and not plan.overwritten
            else ""
        ),
        err=True,
    )
    click.echo(
        f"Requests: {plan.requests_needed:,} needed ("
        + (
            f"{plan.planning_requests:,} spent on planning"
            + (f", by {plan.strategy}" if plan.strategy != "none" else "")
            if plan.planning_requests
            else "none spent on planning"
        )
        + "); "
        f"{left} left today, reserve {plan.reserve:,}; this run sends up to {plan.this_run:,}, about {plan.seconds:,.0f}s.",
        err=True,
    )
    if plan.steps:
        click.echo(
            f"Steps: {_step_text(plan.steps)} request(s) after the records' own writes.", err=True
        )
    if plan.artefacts:
        kept = sum(sum(by_why.values()) for by_why in plan.artefacts.values())
        click.echo(
            f"Artefacts: {kept:,} cell(s) differ from Insightly only as a spreadsheet program "
            "re-saves values; left as they are (action 'artefact' in NAME.plan.csv; a column "
            "with 'artefacts: send' sends them):",
            err=True,
        )
        for name, by_why in plan.artefacts.items():
            whys = "; ".join(f"{n:,} ({why})" for why, n in by_why.items())
            click.echo(f"  {name}: {whys}", err=True)
    if plan.conflicts:
        rows = sum(plan.conflicts.values())
        click.echo(
            f"Conflicts: {rows:,} field(s) changed both in the file and in Insightly since the "
            + (
                "export; the file's value is sent, as --on-conflict overwrite says (action "
                "'conflict' in NAME.plan.csv):"
                if plan.overwritten
                else "export; Insightly's value is kept (action 'conflict' in NAME.plan.csv; "
                "--on-conflict overwrite sends the file's):"
            ),
            err=True,
        )
        click.echo(
            "  " + ", ".join(f"{name} {n:,}" for name, n in plan.conflicts.items()), err=True
        )
    if plan.not_sent:
        click.echo("Not sent: what the file takes out, the mapping leaves alone:", err=True)
        for name, by_what in plan.not_sent.items():
            whats = "; ".join(f"{n:,} {what}" for what, n in by_what.items())
            click.echo(f"  {name}: {whats}", err=True)
    if plan.failures:
        click.echo("Failed (every one is in NAME.errors.csv):", err=True)
        for failure in plan.failures:
            click.echo(f"  {failure}", err=True)
    if plan.examples:
        click.echo("Changes (every one is in NAME.plan.csv):", err=True)
        for example in plan.examples:
            click.echo(f"  {example}", err=True)


@main.command("import")
@click.argument("file", type=Location(dir_okay=False, path_type=Path))
@mapping_options
@click.option(
    "--checkpoint",
    type=LocalPath(dir_okay=False, path_type=Path),
    help="The resumable state of this import  [default: FILE.checkpoint.sqlite; for a FILE in "
    "object storage, NAME.checkpoint.sqlite in the current folder]",
)
@results_option(
    "NAME.success.csv, NAME.errors.csv … go  [default: beside FILE; the current folder for a "
    "FILE in object storage]"
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and plan (reads only), print the quota plan, write NAME.plan.csv (every field's value now and after); send no write and leave the checkpoint as it was.",
)
@click.option(
    "--batch-size",
    default=200,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Rows per batch. Updates go in groups of about 2 s of requests, each preceded by one re-read of what changed since (so a concurrent edit is not written back).",
)
@choice_option(
    "--on-match",
    choices(OnMatch),
    "What to do with a row whose match key finds an existing record.",
)
@click.option(
    "--create-missing/--no-create-missing",
    default=True,
    show_default=True,
    help="Create a record for a row whose match key finds none.",
)
@click.option(
    "--skip-duplicates",
    is_flag=True,
    help="Without a match key: skip rows Insightly's own importer would call duplicates of existing records.",
)
@choice_option(
    "--on-duplicate",
    choices(OnDuplicate),
    "Rows of the file sharing a match key with different values: send none and report the "
    "group (error), or send the first or the last of them. Identical rows are sent once.",
)
@choice_option(
    "--on-duplicate-email",
    choices(OnDuplicateEmail),
    "A row that would give a contact or lead an e-mail (an organisation a name) another "
    "record already has, in the account or on another row, when rows are not matched by it: "
    "send it and report it (warn), leave it out (skip), or fail it (error).",
)
@click.option(
    "--blank",
    "blank_mode",
    type=click.Choice(["skip", "clear"]),
    help="An empty cell: leave the field alone (skip, the mapping's default) or clear it "
    "(clear), for every column of this run, whatever the mapping says.",
)
@choice_option(
    "--on-conflict",
    choices(OnConflict),
    "A file with DATE_UPDATED_UTC (an edited export) whose record changed in Insightly "
    "since: leave the record alone and report the conflict (skip), or overwrite it. With a "
    "base (--base, or _base/ beside an exported file) only the fields changed on both sides "
    "conflict, and overwrite sends only those the file changed.",
)
@click.option(
    "--base",
    type=LocalPath(dir_okay=False, exists=True, path_type=Path),
    help="The export FILE is an edited copy of (Parquet, CSV or XLSX): only the cells changed "
    "relative to it are sent  [default: _base/OBJECT.parquet beside FILE, which export writes "
    "with --format csv|xlsx]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@account_options
@file_options
@api_options
@click.pass_obj
def import_(
    ctx: Context,
    file: Path | str,
    mapping_file: Path | None,
    object_name: str | None,
    checkpoint: Path | None,
    results_dir: Path | None,
    dry_run: bool,
    batch_size: int,
    on_match: OnMatch,
    create_missing: bool,
    skip_duplicates: bool,
    on_duplicate: OnDuplicate,
    on_duplicate_email: OnDuplicateEmail,
    on_conflict: OnConflict,
    blank_mode: str | None,
    base: Path | None,
    quiet: bool,
    accounts_file: Path | None,
    account_name: str | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    date_order: str | None,
    csv_dialect: str | None,
    api: ApiOptions,
) -> None:
    """Create and update records from FILE within the daily quota; run again to resume.

    Exit 0: every row created, updated or unchanged; 1: some rows rejected or failed (see
    NAME.errors.csv); 75: stopped for quota, or another run holds the checkpoint — run the
    same command later to continue; 2: a bad file, mapping or option; 130: interrupted
    (Ctrl-C); 143: terminated (SIGTERM).
    """
    from insightly_etl.load.importer import ImportOptions, load_file
    from insightly_etl.load.mapping import read_mapping
    from insightly_etl.load.source import SourceFile

    api = pick_account(ctx, api, accounts_file, account_name) or api

    mapping = read_mapping(mapping_file, object_name=object_name)
    mapping = _as_asked(mapping, date_order, csv_dialect)
    if blank_mode:  # the run's word on empty cells, for every column
        rules = tuple(replace(r, blank=blank_mode) for r in mapping.columns)
        mapping = replace(mapping, blank=blank_mode, columns=rules)
    if csv_dialect and not delimiter:
        delimiter = ";" if csv_dialect == "excel-eu" else ","
    file, here, name = _local(file)
    source = SourceFile.read(
        file, encoding=encoding, delimiter=delimiter, sheet=sheet, progress=progress(quiet)
    )
    # a rehearsal against the sandbox keeps its own journal: the real account's run must not
    # take the sandbox's rows for done
    # (and one file imported into several accounts of accounts.yaml keeps one per account)
    tag = ".sandbox" if api.use_sandbox else f".{account_name}" if account_name else ""
    journal = f"{name}{tag}.checkpoint.sqlite"
    options = ImportOptions(
        file=file,
        mapping_file=mapping_file,
        checkpoint=checkpoint
        or (here / journal if here else None)
        or (file.with_name(journal) if tag else None),
        results_dir=results_dir or here,
        # and results of its own: NAME.success.csv holds the real account's record ids
        results_name=f"{Path(name).stem}{tag}" if tag or here else None,
        dry_run=dry_run,
        batch_size=batch_size,
        on_match=on_match,
        create_missing=create_missing,
        skip_duplicates=skip_duplicates,
        on_duplicate=on_duplicate,
        on_duplicate_email=on_duplicate_email,
        on_conflict=on_conflict,
        base=base,
        account_name=account_name,
    )

    received: list[int] = []  # the signal that stopped the run, for its exit code

    async def go(client: Any) -> Any:
        stop = asyncio.Event()
        with stop_on_signals(asyncio.get_running_loop(), stop) as signals:
            try:
                return await load_file(
                    client,
                    options,
                    source,
                    mapping,
                    stop=stop,
                    progress=progress(quiet),
                    announce=_print_quota_plan,
                )
            finally:
                received.extend(signals)

    result = run_with_api(ctx, api, go)
    note_outcome(ctx.summary, result.outcome, result.files, result.account)
    if ctx.summary is not None:
        c = result.counts
        created, updated = result.this_run
        ctx.summary.dry_run = result.dry_run
        ctx.summary.count(
            mapping.object,
            **{k: getattr(c, k) for k in OUTCOMES},
            created_this_run=created,
            updated_this_run=updated,
        )
        if result.retry_not_before is not None:  # from every run's requests, not only this one's
            ctx.summary.retry_not_before = utc_text(result.retry_not_before)
    if result.plan is None:  # stopped before its plan was said: said now
        if result.since_last_run:
            click.echo(f"Since the last run: {result.since_last_run}.", err=True)
        for warning in result.warnings:
            click.echo(f"Warning: {warning}", err=True)
    c = result.counts
    quota = (
        f"{result.quota_remaining:,} of {result.quota_limit:,}" if result.quota_limit else "unknown"
    )
    click.echo(
        f"{file.name} -> {mapping.object}: {rows_text(asdict(c))}"
        + (  # the counts are the file's: say what this run wrote when earlier runs did too
            f" (this run: {result.this_run[0]:,} created, {result.this_run[1]:,} updated)"
            if result.written_before != (0, 0)
            else ""
        )
        + f"; {result.requests:,} requests; quota left today {quota}"
        + (" (dry run: nothing sent)" if result.dry_run else "")
    )
    steps = _step_text(c.steps())
    if steps or c.steps_failed or c.steps_left:
        click.echo(
            "Steps: "
            + (f"{steps} done" if steps else "none needed a request")
            + (f", {c.steps_failed:,} failed" if c.steps_failed else "")
            + (f", {c.steps_left:,} left" if c.steps_left else "")
        )
    if result.account:
        click.echo(f"  account: {result.account}")
    if result.rejections:  # why rows were rejected, as validate shows it
        click.echo("Rejected rows, by column (every one is in NAME.rejects.csv):", err=True)
        _echo_groups(result.rejections, source.table.unit, err=True)
    if result.files:
        click.echo("Results: " + ", ".join(str(p) for p in result.files))
    for warning in result.late_warnings:
        click.echo(f"Warning: {warning}", err=True)
    echo_accounting(result.stats)
    if c.unknown and not result.dry_run:
        click.echo(
            f"{c.unknown:,} rows' answers were lost and what they made is not found yet (a "
            "search index may lag); they are not sent again. Settle them later with: "
            f"insightly-etl reconcile {options.checkpoint_path}",
            err=True,
        )
    if result.outcome.stopped == Stop.QUOTA:
        click.echo(f"Stopped: {result.outcome.message}", err=True)
        if result.outcome.hint:
            click.echo(f"Hint: {result.outcome.hint}", err=True)
        click.echo(
            f"{c.left:,} rows left"
            + (f" and {c.steps_left:,} steps" if c.steps_left else "")
            + ". Run the same command again to continue"
            + (f": {result.quota_frees}." if result.quota_frees else "."),
            err=True,
        )
    elif result.outcome.stopped == Stop.RECORD_LIMIT:
        click.echo(f"Stopped creating: {result.outcome.message}", err=True)
        if result.outcome.hint:
            click.echo(f"Hint: {result.outcome.hint}", err=True)
        click.echo(
            f"{c.left:,} rows left to create (in NAME.unprocessed.csv); updates went on.",
            err=True,
        )
    elif result.outcome.stopped == Stop.INTERRUPTED:
        click.echo(
            f"Interrupted: {c.left:,} rows left"
            + (f" and {c.steps_left:,} steps" if c.steps_left else "")
            + "; run the same command again to continue.",
            err=True,
        )
        if received and received[0] == signal.SIGTERM:
            sys.exit(143)  # 128 + SIGTERM, as a shell reports a process it terminated
    sys.exit(result.exit_code)
