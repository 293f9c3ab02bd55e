"""`insightly-etl export`: every collection of the account to typed Parquet or CSV files."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import click

from insightly_etl.cli.common import (
    ApiOptions,
    Context,
    LocalPath,
    Location,
    api_options,
    choice_option,
    echo_accounting,
    for_account,
    log_json,
    main,
    note_client,
    plural,
    progress,
    refuse_connection_options,
    run_with_api,
    stop_on_signals,
)


@main.command()
@click.argument("objects", nargs=-1)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=Location(file_okay=False, path_type=Path),
    help="Directory for the files and _manifest.json: a local folder, or s3://bucket/prefix "
    "(gs://, abfs:// too), with the cloud's usual credentials in the environment.",
)
@choice_option(
    "--format",
    ["parquet", "csv", "xlsx"],
    "File format (xlsx: a workbook per object, one sheet, for spreadsheet users).",
    dest="fmt",
)
@click.option(
    "--csv-dialect",
    type=click.Choice(["excel", "excel-eu", "plain"]),
    default=None,
    help="With --format csv: excel (default: commas, CRLF, UTF-8 with a BOM so Excel shows "
    "accents right), excel-eu (semicolons and decimal commas, for European Excel), plain "
    "(commas, LF, no BOM: for programs).",
)
@click.option(
    "--incremental",
    is_flag=True,
    help="Fetch only records changed since the last export in --out and merge them in.",
)
@click.option(
    "--since",
    help="Fetch records changed after this UTC time (2026-11-01T00:00:00Z) and merge them in.",
)
@click.option(
    "--detect-deletes",
    is_flag=True,
    help="With --incremental: list every object's ids (500 a request) and move records deleted "
    "in Insightly out of the files into _deleted.parquet. A full export always does this.",
)
@click.option(
    "--layout",
    type=click.Choice(["flat", "lake"]),
    default=None,
    help="flat: contacts.parquet … in one folder. lake: a folder per table "
    "(contacts/part-00000.parquet) and, per run over an earlier export, append-only change "
    "files contacts/_changes/run=<UTC>/part-00000.parquet with an _op column (upsert, "
    "delete).  [default: flat; lake with --table-format delta]",
)
@click.option(
    "--table-format",
    type=click.Choice(["parquet", "delta"]),
    default="parquet",
    show_default=True,
    help="delta: each object a Delta Lake table (contacts/ with its _delta_log), in the lake "
    "layout: a full run writes a version, an incremental run MERGEs on the record id and "
    "deletes what --detect-deletes found (pip install 'insightly-etl[delta]').",
)
@click.option(
    "--account-partition",
    is_flag=True,
    help="With --layout lake: write under account=<the account's subdomain>/ (a Hive "
    "partition), so several accounts share one location.",
)
@click.option(
    "--brief",
    is_flag=True,
    help="Leave out nested arrays and custom fields (brief=true): smaller, faster.",
)
@click.option(
    "--with",
    "with_",
    metavar="NAME,…",
    help="Also export what only a request per record returns: links (every record's links, "
    "into links.parquet), state_history (every opportunity's state changes), comments (of "
    "emails, notes, tasks, tickets), emails (which emails each record has), files (every "
    "record's file attachments, into file_attachments.parquet). The cost is printed first; a "
    "run that would cross the quota minus --reserve is refused.",
)
@click.option(
    "--files-dir",
    type=Location(file_okay=False, path_type=Path),
    help="With --with files: download each attachment's content here (a folder or an "
    "s3://, gs://, abfs:// location), named by its file id (a request per file; files "
    "already there are not fetched again).",
)
@click.option(
    "--accounts",
    "accounts_file",
    type=LocalPath(dir_okay=False, exists=True, path_type=Path),
    help="Export every account of this accounts.yaml at once, each into --out/account=<name>/, "
    "paced on its own limits; one failing does not stop the others (see Many accounts).",
)
@click.option(
    "--account",
    "account_names",
    multiple=True,
    metavar="NAME",
    help="With --accounts: only this entry (repeatable), e.g. one task per account in an "
    "orchestrator.",
)
@click.option(
    "--overwrite-edited",
    is_flag=True,
    help="Write over a CSV or XLSX in --out that was changed since the export wrote it (by "
    "default such a run is refused, so edits not yet imported are not lost).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, no summary.")
@api_options
@click.pass_obj
def export(
    ctx: Context,
    objects: tuple[str, ...],
    out_dir: Path | str,
    fmt: str,
    csv_dialect: str | None,
    incremental: bool,
    since: str | None,
    detect_deletes: bool,
    layout: str | None,
    table_format: str,
    account_partition: bool,
    brief: bool,
    with_: str | None,
    files_dir: Path | str | None,
    accounts_file: Path | None,
    account_names: tuple[str, ...],
    overwrite_edited: bool,
    quiet: bool,
    api: ApiOptions,
) -> None:
    """Export OBJECTS (default: every object type) to typed Parquet or CSV files in --out.

    Object types: contacts organisations leads opportunities projects tasks events notes
    pipelines pipeline_stages users lead_sources lead_statuses opportunity_categories
    project_categories task_categories products pricebooks quotations countries currencies
    emails milestones pricebook_entries opportunity_line_items quotation_line_items prospects
    tickets file_categories opportunity_state_reasons relationships teams team_members
    activity_sets document_templates knowledge_articles knowledge_article_categories
    knowledge_article_folders forum_categories community_forums community_posts
    community_comments marketing_visits custom_fields custom_objects (US spellings and singulars work too), and the
    account's custom objects by their API name (Site__c): with no OBJECTS, every one
    `GET /CustomObjects` lists. One the account cannot read (HTTP 403/404) is skipped with a
    warning.
    """
    from insightly_etl.errors import InsightlyEtlError
    from insightly_etl.extract import ExportOptions, extract_objects
    from insightly_etl.extract.export import ExportResult, parse_since, resolve_objects
    from insightly_etl.extract.subcollections import parse_with

    if incremental and since:
        raise click.UsageError("--incremental and --since exclude each other")
    if csv_dialect and fmt != "csv":
        raise click.UsageError("--csv-dialect applies to --format csv")
    if table_format == "delta" and layout == "flat":
        raise click.UsageError("--table-format delta makes a folder per table: --layout lake")
    layout = layout or ("lake" if table_format == "delta" else "flat")
    if table_format == "delta" and fmt != "parquet":
        raise click.UsageError("--table-format delta writes Parquet: leave out --format")
    if account_partition and layout != "lake":
        raise click.UsageError("--account-partition goes with --layout lake")
    if detect_deletes and not (incremental or since):
        raise click.UsageError(
            "--detect-deletes goes with --incremental or --since (a full export always "
            "moves deleted records to _deleted.parquet)"
        )
    subs = parse_with(with_)
    if files_dir is not None and "files" not in subs:
        raise click.UsageError("--files-dir goes with --with files")
    names = resolve_objects(list(objects))
    since_at = parse_since(since) if since else None
    if account_names and accounts_file is None:
        raise click.UsageError("--account NAME picks an entry of --accounts FILE")
    asked: dict[str, Any] = {  # what every export of this command asks for, wherever it goes
        "objects": names,
        "fmt": fmt,
        "csv_dialect": csv_dialect or "excel",
        "incremental": incremental,
        "since": since_at,
        "brief": brief,
        "layout": layout,
        "table_format": table_format,
        "detect_deletes": detect_deletes,
        "with_": subs,
        "overwrite_edited": overwrite_edited,
    }
    if accounts_file is not None:
        if isinstance(out_dir, str) or files_dir is not None or api.use_sandbox:
            raise click.UsageError(
                "--accounts writes to a local --out (no object storage, --files-dir or "
                "--sandbox yet: point each account's url: at `insightly-etl sandbox --account …`)"
            )
        if account_partition:
            raise click.UsageError(
                "--accounts writes account=<name>/ already: leave out --account-partition"
            )
        export_many(
            ctx, api, accounts_file, account_names, ExportOptions(out_dir=out_dir, **asked), quiet
        )
        return
    where = str(out_dir)
    pull_partition = None
    partitions_beside: tuple[str, ...] = ()
    with contextlib.ExitStack() as stack:
        if isinstance(out_dir, str):  # object storage: the export runs in a staging folder
            from insightly_etl.extract.remote import staged

            stage = stack.enter_context(staged(where))
            out_dir, pull_partition = stage.folder, stage.pull_partition
            if not account_partition:
                partitions_beside = tuple(stage.partitions())
        files_present: dict[str, int] = {}
        if isinstance(files_dir, str):  # downloads gather here, then are uploaded
            from insightly_etl.extract.remote import collected

            files_dir, files_present = stack.enter_context(collected(files_dir))
        options = ExportOptions(
            out_dir=out_dir,
            **asked,
            account_partition=account_partition,
            files_dir=files_dir,
            files_present=files_present,
            pull_partition=pull_partition,
            location=where if where != str(out_dir) else None,
            partitions_beside=partitions_beside,
        )
        if detect_deletes and not quiet:
            from insightly_etl.extract.export import check_options, deletion_cost

            check_options(options)  # a run refused says no cost first
            cost = deletion_cost(options)
            click.echo(
                f"Detecting deletions costs about {plural(cost, 'request')} (every id of each "
                "object, 500 a request)."
                if cost or not (account_partition and where != str(out_dir))
                else "Detecting deletions costs one request per 500 ids of each object the "
                "account's partition holds (its size is read once the account is known).",
                err=True,
            )

        def announce(plan: Any) -> None:
            click.echo(f"{plan.describe()}.", err=True)  # even with --quiet: it is the bill

        received: list[int] = []  # Ctrl-C or SIGTERM: no new request; the summary is written
        so_far = ExportResult()  # what a run that stops wrote, for its summary

        async def go(client: Any) -> Any:
            stop = asyncio.Event()
            client.halt_on(stop)
            with stop_on_signals(asyncio.get_running_loop(), stop) as signals:
                try:
                    return await extract_objects(client, options, progress(quiet), announce, so_far)
                except (InsightlyEtlError, OSError):  # a stop, or a full disk: what it did
                    note_export(ctx.summary, so_far, where)
                    for warning in so_far.warnings:  # said before the error that ends it
                        click.echo(f"Warning: {warning}", err=True)
                    raise
                finally:
                    received.extend(signals)

        with stopped_by_signal(received):
            result = run_with_api(ctx, api, go)
    # published (object storage) before the summary says where it went
    note_export(ctx.summary, result, where)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not quiet:
        exported = [o for o in result.objects if o.status != "skipped"]
        rows = sum(o.rows for o in exported)
        quota = (
            f"{result.quota_remaining:,} of {result.quota_limit:,}"
            if result.quota_limit
            else "unknown"
        )
        click.echo(
            f"Exported {plural(len(exported), 'object type')}, {plural(rows, 'row')}, "
            f"{plural(result.requests, 'request')} in {result.seconds:.1f}s to {where.rstrip('/')}/ "
            f"(quota left today: {quota})",
            err=True,
        )
        if result.account:
            click.echo(f"  account: {result.account}", err=True)
        for o in exported:
            counted = o.counts()
            if "new" in counted:
                parts = [f"{o.new:,} new"]
                if "changed" in counted:
                    parts.append(f"{o.changed:,} changed")
                if "deleted" in counted:
                    confirm = (
                        f"; confirmed by GET: {plural(o.confirm_requests, 'request')}"
                        if o.confirm_requests
                        else ""
                    )
                    parts.append(  # the file named only when something went into it
                        f"{o.deleted:,} deleted (in _deleted.parquet{confirm})"
                        if o.deleted
                        else f"0 deleted ({confirm[2:]})"
                        if confirm
                        else "0 deleted"
                    )
                click.echo(f"  {o.name}: {', '.join(parts)}", err=True)
        for name, entry in result.sub_collections.items():
            refused = entry.get("unreadable")
            click.echo(
                f"  {name}: {plural(entry['rows'], 'row')} from "
                f"{plural(entry['requests'], 'request')} ({entry['file']})"
                + (f", {plural(refused, 'record')} not readable (403)" if refused else ""),
                err=True,
            )
        for file in result.change_files:
            click.echo(f"  changes: {file}", err=True)
        echo_accounting(result.stats)
    # an object the account cannot read is skipped in a whole-account export, but one the
    # user named is what the run was for: its refusal is the run's error
    for o in result.objects:
        if o.refusal is not None and o.name in options.objects:
            raise o.refusal


def note_export(summary: Any, result: Any, where: str) -> None:
    """An export's counts into the run summary (--summary-json)."""
    if summary is None:
        return
    summary.account = result.account
    for o in result.objects:
        if o.status != "skipped":
            summary.count(o.name, **o.counts())
    base = where.rstrip("/")
    summary.files = [f"{base}/{o.file}" for o in result.objects if o.file]
    summary.files += [str(f) for f in result.change_files]


def export_many(
    ctx: Context,
    api: ApiOptions,
    accounts_file: Path,
    names: tuple[str, ...],
    options: Any,
    quiet: bool,
) -> None:
    """`export --accounts`: every account at once; a line each; exit with the failures' code."""

    from insightly_etl.accounts import pick, read_accounts
    from insightly_etl.errors import InputError
    from insightly_etl.extract.accounts import export_accounts
    from insightly_etl.extract.export import resolve_objects
    from insightly_etl.progress import NullProgress, TqdmProgress
    from insightly_etl.summary import RunSummary, worst_exit

    entries = read_accounts(accounts_file)
    if names:  # in the order given, each once
        entries = [pick(entries, name, accounts_file) for name in dict.fromkeys(names)]
    for entry in entries:  # an unknown object type: refused before any request
        try:
            resolve_objects(list(entry.objects))
        except InputError as exc:
            raise InputError(
                f"{accounts_file}, account {entry.name!r}: {exc}", hint=exc.hint
            ) from None

    refuse_connection_options(ctx)

    def progress_for(entry: Any, i: int) -> Any:
        bars = not quiet and sys.stderr.isatty()
        return TqdmProgress(prefix=f"{entry.name}: ", position=i) if bars else NullProgress()

    received: list[int] = []

    async def every() -> Any:
        stop = asyncio.Event()

        def open_client(entry: Any) -> Any:  # each account's own, stopped by the one signal
            client = for_account(api, entry).client(entry.settings(), ctx.transport)
            client.halt_on(stop)
            return client

        with stop_on_signals(asyncio.get_running_loop(), stop) as signals:
            try:
                return await export_accounts(entries, options, open_client, progress_for)
            finally:
                received.extend(signals)

    runs = asyncio.run(every())
    summary = ctx.summary or RunSummary(command="export")
    for run in runs:
        mine = RunSummary(
            command="export", started_utc=summary.started_utc, account_name=run.entry.name
        )
        if run.client is not None:
            note_client(mine, run.client)
        if run.result is not None:
            note_export(mine, run.result, run.out_dir)
        mine.exit_code, mine.error = run.exit_code, run.error
        mine.stop_reason = run.stop_reason if run.exit_code else None
        mine.finished_utc = run.finished_utc
        summary.accounts.append(mine)
        if run.error is None and run.result is not None:
            rows = sum(c.get("rows", 0) for c in mine.objects.values())
            if not quiet:
                click.echo(
                    f"{run.entry.name}: exported {plural(len(mine.objects), 'object type')}, "
                    f"{plural(rows, 'row')}, {plural(mine.requests, 'request')} to "
                    f"{run.out_dir}/",
                    err=True,
                )
            for warning in run.result.warnings:
                click.echo(f"Warning: {run.entry.name}: {warning}", err=True)
        else:
            error = str(run.error).removeprefix(f"account {run.entry.name!r}: ")
            if ctx.log_format == "json":  # the code and the account as fields of their own
                log_json(
                    "error",
                    error,
                    hint=run.hint,
                    exit_code=run.exit_code,
                    account_name=run.entry.name,
                )
            else:
                click.echo(f"Error: {run.entry.name}: {error} (exit {run.exit_code})", err=True)
                if run.hint:
                    click.echo(f"Hint: {run.hint}", err=True)
    summary.add_up()
    if summary.error:
        click.echo(f"Error: {summary.error}.", err=True)
    code = worst_exit(a.exit_code for a in summary.accounts)
    sys.exit(143 if code == 130 and received and received[0] == signal.SIGTERM else code)


@contextlib.contextmanager
def stopped_by_signal(received: list[int]) -> Any:
    """Ctrl-C or SIGTERM stopped the export (no new request left, those in flight finished):
    exit 130, or 143 (128 + 15) for SIGTERM as a shell reports a terminated process (the
    summary says interrupted for either). What was written stays; a rerun goes on."""
    from insightly_etl.errors import Halted

    try:
        yield
    except Halted:
        if not received:
            raise
        terminated = received[0] == signal.SIGTERM
        click.echo(
            f"{'Terminated' if terminated else 'Interrupted'}: the export stopped; run the same "
            "command again to finish it.",
            err=True,
        )
        sys.exit(143 if terminated else 130)
