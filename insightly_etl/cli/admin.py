"""Looking after an import: `status` (read-only), `reconcile` and `undo`; `examples` to start
from."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import asdict
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
    global_options,
    main,
    note_outcome,
    pick_account,
    results_option,
    rows_text,
    run_with_api,
    stop_on_signals,
)
from insightly_etl.load.states import Stop


@main.command()
@click.argument("checkpoint", type=LocalPath(dir_okay=False, path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read only: list in NAME.undo.csv what undo would delete, restore or leave alone.",
)
@results_option("NAME.undo.csv goes  [default: beside CHECKPOINT]")
@api_options
@click.pass_obj
def undo(
    ctx: Context,
    checkpoint: Path,
    dry_run: bool,
    results_dir: Path | None,
    api: ApiOptions,
) -> None:
    """Reverse the import recorded in CHECKPOINT: delete the records it created and give back
    the values it overwrote — only where nobody changed them since (those are listed as
    conflicts). Resumable: run it again after a stop.

    Exit 0: undone; 1: some records or fields left alone as conflicts, refused, or whose
    answer was lost (see NAME.undo.csv; the next undo reads those records first); 75: stopped
    for quota — run it again later; 130: interrupted.
    """
    from insightly_etl.load.undo import undo_import

    if ctx.summary is not None:
        ctx.summary.dry_run = dry_run  # however it ends

    async def go(client: Any) -> Any:
        stop = asyncio.Event()
        with stop_on_signals(asyncio.get_running_loop(), stop):
            return await undo_import(
                client,
                checkpoint,
                dry_run=dry_run,
                results_dir=results_dir,
                stop=stop,
                announce=lambda text: click.echo(text, err=True),  # the bill, before reading
            )

    result = run_with_api(ctx, api, go)
    c = result.counts
    note_outcome(ctx.summary, result.outcome, result.files, result.account)
    if ctx.summary is not None:
        ctx.summary.count(result.object_name, **asdict(c))
    done = (
        f"{c.deleted:,} created records deleted, {c.restored:,} records restored"
        if not dry_run
        else f"would delete {c.deleted:,} created records and restore {c.restored:,}"
    )
    click.echo(
        f"{checkpoint.name}: {done}, {c.conflict:,} left alone as conflicts"
        + (
            f" ({c.fields_restored:,} field(s) of them {'would be ' if dry_run else ''}"
            "restored, changed by nobody since)"
            if c.fields_restored
            else ""
        )
        + f", {c.gone:,} already gone, {c.failed:,} failed"
        + (f", {c.left:,} left" if c.left else "")
        + (
            f" (earlier runs: {e.deleted:,} deleted, {e.restored:,} restored, {e.conflict:,} "
            f"conflicts, {e.gone:,} gone, {e.nothing:,} as before already)"
            if (e := result.earlier) is not None
            else ""
        )
        + f"; {result.requests:,} requests"
        + (" (dry run: nothing changed)" if dry_run else "")
    )
    click.echo("Results: " + ", ".join(str(p) for p in result.files))
    if result.outcome.stopped == Stop.QUOTA:
        click.echo(f"Stopped: {result.outcome.message}", err=True)
        click.echo("Run the same command again to continue.", err=True)
    elif result.outcome.stopped == Stop.INTERRUPTED:
        click.echo("Interrupted; run the same command again to continue.", err=True)
    sys.exit(result.exit_code)


@main.command()
@click.argument("checkpoint", type=LocalPath(dir_okay=False, path_type=Path))
@api_options
@click.pass_obj
def reconcile(ctx: Context, checkpoint: Path, api: ApiOptions) -> None:
    """Settle the rows of the import recorded in CHECKPOINT whose answers were lost: each
    create is looked for again among the newest records and those changed since it was sent.
    Found: done, with its record (undo can delete it). Not found 15 minutes after it was sent
    (by the server's clock): never made, planned again for the next import run. Otherwise it
    stays unknown and is not sent: run this again later (a search index may lag).

    Exit 0: nothing left unknown; 75: some still unknown — run it again later; 1: some match
    more than one record equally (two rows alike, both lost) — a person must tell.
    """
    from insightly_etl.load.reconcile import RESEND_MINUTES, reconcile_checkpoint

    async def go(client: Any) -> Any:
        return await reconcile_checkpoint(client, checkpoint)

    c = run_with_api(ctx, api, go)
    if ctx.summary is not None:
        ctx.summary.count(checkpoint.name, **asdict(c))
    click.echo(
        f"{checkpoint.name}: {c.found:,} found (done, with their records), {c.not_made:,} never "
        f"made (planned again: the next import run sends them), {c.unknown:,} still unknown"
        + (f"; {c.updates:,} updates are re-read by the next import run" if c.updates else "")
        + (
            f"; {c.ambiguous:,} cannot be told: records resemble them equally, or in part "
            "(never sent again; the import's NAME.errors.csv names the records: check them in "
            "Insightly)"
            if c.ambiguous
            else ""
        )
    )
    if c.unknown:
        click.echo(
            f"Still unknown: sent less than {RESEND_MINUTES} minutes ago (by the server's clock), "
            "too recently to say it was never made. Run the same command again later (the "
            "import's NAME.errors.csv lists them, state unknown, as of its last run).",
            err=True,
        )
    sys.exit(c.exit_code)


@main.command()
@click.argument("checkpoint", type=LocalPath(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print it as one JSON object (insightly_etl/schemas/status.schema.json).",
)
@account_options
@global_options
@click.pass_obj
def status(
    ctx: Context,
    checkpoint: Path,
    as_json: bool,
    accounts_file: Path | None,
    account_name: str | None,
) -> None:
    """Show an import's progress from its checkpoint file: done, failed and left, by action.
    Reads the file only: no request, nothing changed. With --account: refused unless the
    import was run for that account."""
    from insightly_etl.load.history import dumps, read_history
    from insightly_etl.load.reconcile import RESEND_MINUTES

    pick_account(ctx, None, accounts_file, account_name)
    h = read_history(checkpoint)
    if account_name and h.account_name != account_name:
        raise click.UsageError(
            f"{checkpoint} is an import for "
            + (
                f"account {h.account_name!r}"
                if h.account_name
                else "no account of an accounts file"
            )
            + f", not {account_name!r}"
        )
    if as_json:
        click.echo(dumps(h))
        return
    click.echo(f"{checkpoint}: {h.source} -> {h.object} (started {h.created_utc} UTC)")
    if h.account:
        click.echo(f"  account: {h.account}")
    # the import's own words (each row by its last write), then by the write that made each
    # row's record: a record created and since updated is a create there, as undo reads it
    click.echo(f"  rows, by their last write: {rows_text(h.outcomes)}")
    if h.undo:  # said beside the writes it reversed, not only after the runs
        undone = ", ".join(f"{n:,} {state}" for state, n in h.undo.items())
        click.echo(f"  undo: {undone} (of the writes above, by `insightly-etl undo`)")
    click.echo("  rows, by the write that made or first changed their record (what undo reverses):")
    click.echo(f"  {'action':<10} {'state':<10} {'rows':>8}")
    for r in h.rows:
        click.echo(f"  {r['action'] or '-':<10} {r['state']:<10} {r['rows']:>8,}")
    if h.steps:  # pipeline, stage, state, link; "already": none was needed
        click.echo(f"  {'step':<10} {'state':<10} {'steps':>8}")
        for r in h.steps:
            click.echo(f"  {r['step'] or '-':<10} {r['state']:<10} {r['steps']:>8,}")
    click.echo(f"  {len(h.runs)} run(s), {h.requests:,} requests in all")
    if h.runs:
        last = h.runs[-1]
        kind = f" ({last['kind']})" if last.get("kind") else ""  # none before version 2
        click.echo(
            f"  last run{kind}: {last['started_utc']} -> "
            f"{last['finished_utc'] or '(did not finish)'}, {last['requests']} requests, "
            f"{last['outcome'] or 'killed or running'}"
        )
    if h.unsettled:
        click.echo(
            "  in_flight / unknown: writes sent whose answer never came. They are never "
            f"sent again blindly: `insightly-etl reconcile {checkpoint}` (or the next run) "
            f"looks for each; one still not found {RESEND_MINUTES} minutes after it was sent "
            "was never made."
        )


@main.command()
@click.argument("directory", type=LocalPath(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files already there.")
def examples(directory: Path, force: bool) -> None:
    """Write the sample files, their mappings and the example makefiles into DIRECTORY (the
    README's first steps run from there)."""
    from insightly_etl.files import write_examples

    written, kept = write_examples(directory, force=force)
    for path in written:
        click.echo(path)
    for path in kept:
        click.echo(f"kept (already there): {path}", err=True)
    click.echo(
        f"{len(written)} file(s) written to {directory}"
        + (f", {len(kept)} kept as they were (--force overwrites them)" if kept else ""),
        err=True,
    )


@main.command()
@click.argument("path", type=Location(path_type=Path))
@click.option(
    "--html",
    "html_out",
    required=True,
    type=LocalPath(dir_okay=False, path_type=Path),
    help="Write the page here: one self-contained HTML file that works offline.",
)
@global_options
@click.pass_obj
def report(ctx: Context, path: Path | str, html_out: Path) -> None:
    """Draw a run as a page people can look at: PATH is an import's checkpoint (requests over
    time against the limit, quota per day, rows by outcome, rejects by column and reason, the
    first rejects) or an export folder, local or s3://… (rows, changes and deletions per
    object). Every number is on the page as text too. Needs the report extra:
    pip install 'insightly-etl[report]'."""
    from insightly_etl.report import build_report

    summary = build_report(path, html_out)
    if ctx.summary is not None:
        ctx.summary.objects, ctx.summary.account = summary.objects, summary.account
        ctx.summary.files = [str(html_out)]
    click.echo(f"Report: {html_out}", err=True)
