"""An import of a file read in blocks (load/source.py): the same records, counts and results
files as the file read whole, and a file that changes between two readings is never mixed."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from insightly_etl.errors import InputError, TemporaryFolderError
from insightly_etl.load import importer, plan, readers, spill
from insightly_etl.load.importer import ImportOptions, ImportResult, load_file
from insightly_etl.load.mapping import read_mapping
from insightly_etl.load.source import SourceFile
from insightly_etl.sandbox import Sandbox, SandboxConfig
from tests.conftest import KEY, Bars, sandbox_client

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "mappings" / "opportunities.yaml"
HEADER = (
    "Deal,Account,Amount,Currency,Probability,Expected close,Category,Competitor,Win chance %,Notes"
)
ACCOUNTS = ["Bright Partners GmbH", "Swift Partners Inc", "Prime Partners SA"]
EXISTING = [  # of the sandbox's opportunities
    r["OPPORTUNITY_NAME"]
    for r in Sandbox(SandboxConfig(api_key=KEY))
    .account.collections["Opportunities"]
    .records.values()
]


def deals(n: int) -> list[str]:
    """Opportunities: new ones, updates of the sandbox's own (`Fleet deal 4009`…), rejected
    ones (an account no one has, an amount that is no number), a long number a spreadsheet
    showed in scientific notation, and one deal twice with different values, far apart."""
    out = []
    for i in range(n):
        deal = EXISTING[i // 10] if i % 10 == 3 else f"Deal {i:04d}"
        account = "Nobody Ltd" if i % 37 == 11 else ACCOUNTS[i % 3]
        amount = "12,x" if i % 41 == 13 else "4.85E+04" if i == 77 else f"{1000 + i},50"
        notes = f'"Call {i}, then write"' if i % 7 == 0 else ""
        out.append(
            f"{deal},{account},{amount.replace(',', '.')},EUR,{i % 100},2027-03-{i % 28 + 1:02d},"
            f"Software,Acme,{i % 100},{notes}"
        )
    out[n * 3 // 4] = out[5].replace(",EUR,", ",USD,")  # Deal 0005 again, another currency
    return out


async def imported(
    sb: Sandbox, file: Path, *, results: Path, announce=None, max_requests=None, progress=None
) -> ImportResult:
    opts = ImportOptions(file=file, mapping_file=MAPPING, results_dir=results)
    async with sandbox_client(sb, max_requests=max_requests) as client:
        return await load_file(
            client,
            opts,
            SourceFile.read(file),
            read_mapping(MAPPING),
            announce=announce,
            progress=progress,
        )


def write_deals(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def opportunities(sb: Sandbox) -> dict[str, dict]:
    """By name, without ids: rows are sent several at a time, ids come in the order they land."""
    return {
        r["OPPORTUNITY_NAME"]: {
            k: v for k, v in r.items() if not k.startswith("DATE_") and k != "OPPORTUNITY_ID"
        }
        for r in sb.account.collections["Opportunities"].records.values()
    }


def without_ids(path: Path) -> list[str]:
    """A success file's lines without the record id (its last column)."""
    return [line.rsplit(",", 1)[0] for line in path.read_text(encoding="utf-8-sig").splitlines()]


@pytest.mark.slow
async def test_a_file_read_in_blocks_imports_as_the_file_read_whole(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = deals(300)
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole_dir.mkdir()
    cut_dir.mkdir()
    whole_file = write_deals(whole_dir / "deals.csv", lines)
    cut_file = write_deals(cut_dir / "deals.csv", lines)
    first, second = make_sandbox(), make_sandbox()
    whole = await imported(first, whole_file, results=whole_dir)
    assert SourceFile.read(whole_file).whole

    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    monkeypatch.setattr(spill, "BATCH_ROWS", 7)  # batches that are not the file's blocks
    source = SourceFile.read(cut_file)
    assert not source.whole and len(source.table.frame) == 0  # no cell is kept
    assert sum(1 for _ in source.read_blocks()) > 20
    cut = await imported(second, cut_file, results=cut_dir)

    assert (cut.counts, cut.requests, cut.exit_code) == (whole.counts, whole.requests, 1)
    assert (whole.counts.created, whole.counts.updated) == (255, 28)
    assert (whole.counts.rejected, whole.counts.duplicate) == (15, 2)
    assert opportunities(second) == opportunities(first)
    for name in ("plan", "errors", "rejects"):
        made = (cut_dir / f"deals.{name}.csv").read_bytes()
        assert made == (whole_dir / f"deals.{name}.csv").read_bytes(), name
    success = without_ids(cut_dir / "deals.success.csv")
    assert success == without_ids(whole_dir / "deals.success.csv") and len(success) == 1 + 283
    errors = (cut_dir / "deals.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[0] == f"line,state,status,message,{HEADER}"
    assert errors[1].startswith("7,duplicate,,") and errors[1].endswith("," + lines[5])
    assert len(errors) == 1 + 15 + 2

    sent = writes(second)
    again = await imported(second, cut_file, results=cut_dir)  # resumed: nothing left to send
    assert again.counts == cut.counts and writes(second) == sent


def writes(sb: Sandbox) -> int:
    return sum(n for (m, _, _), n in sb.stats.items() if m in ("POST", "PUT", "DELETE"))


async def test_a_file_changed_after_it_was_first_read_is_refused_before_any_write(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    file = write_deals(tmp_path / "deals.csv", deals(120))
    sb = make_sandbox()
    before = opportunities(sb)
    source = SourceFile.read(file)
    was = os.stat(file)
    edited = file.read_text().replace("Deal 0100", "Xeal 0100")  # as many bytes, same moment
    file.write_text(edited)
    os.utime(file, ns=(was.st_atime_ns, was.st_mtime_ns))
    opts = ImportOptions(file=file, mapping_file=MAPPING)
    async with sandbox_client(sb) as client:
        with pytest.raises(InputError) as refused:
            await load_file(client, opts, source, read_mapping(MAPPING))
    assert refused.value.args[0] == (
        f"{file}: changed while it was imported (it is read again, a block at a time, after "
        "it was first read)"
    )
    assert opportunities(sb) == before
    assert not (tmp_path / "deals.csv.checkpoint.sqlite").exists()


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # closed quietly
async def test_a_temporary_folder_that_cannot_hold_the_values_stops_the_run_before_any_write(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: open("/dev/full", "w+b"))  # noqa: SIM115
    sb = make_sandbox()
    before = opportunities(sb)
    with pytest.raises(TemporaryFolderError, match=r"No space left on device$"):
        await imported(sb, write_deals(tmp_path / "deals.csv", deals(120)), results=tmp_path)
    assert opportunities(sb) == before and writes(sb) == 0
    assert not (tmp_path / "deals.csv.checkpoint.sqlite").exists()  # no run to greet the next


async def test_a_file_in_blocks_of_no_value_imports_nothing(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its values spilled are no row: read back, not refused as a file never finished."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    file = write_deals(tmp_path / "deals.csv", [",,,,,,,,,"] * 500)
    assert not SourceFile.read(file).whole
    sb = make_sandbox()
    result = await imported(sb, file, results=tmp_path)
    assert (result.counts.created, result.counts.rejected, writes(sb)) == (0, 0, 0)


@pytest.mark.slow
async def test_results_of_a_file_changed_during_the_writes_give_lines_without_its_cells(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved again in a spreadsheet while the import sends: the rows sent are the rows read,
    and the results files say each row's line but not cells of a file that is no longer the
    one imported."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    file = write_deals(tmp_path / "deals.csv", deals(120))
    backup = tmp_path / "copy.csv"
    shutil.copy(file, backup)

    def saved_again(_plan: object) -> None:
        write_deals(file, [line.replace("Deal ", "Other ") for line in deals(60)])

    sb = make_sandbox()
    result = await imported(sb, file, results=tmp_path, announce=saved_again)
    counts = result.counts
    assert (counts.created, counts.updated, counts.rejected, counts.duplicate) == (101, 11, 6, 2)
    assert result.late_warnings == [
        f"{file}: changed while it was imported (it is read again, a block at a time, after it "
        "was first read): the results files give each row's line, not the file's cells"
    ]
    names = opportunities(sb)
    assert not [n for n in names if n.startswith("Other ")]  # the rows read first were sent
    assert len([n for n in names if n.startswith("Deal ")]) == 101
    errors = (tmp_path / "deals.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert errors[0] == "line,state,status,message"
    assert len(errors) == 1 + 6 + 2
    rejects = (tmp_path / "deals.rejects.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rejects[0] == "line,errors" and len(rejects) == 1 + 6


async def test_a_parquet_file_read_a_batch_at_a_time_imports_as_read_whole(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = deals(200)
    frame = pd.read_csv(io.StringIO("\n".join([HEADER, *lines])), dtype=str, keep_default_na=False)
    runs = []
    for name, batch in (("whole", 10**6), ("cut", 40)):
        folder = tmp_path / name
        folder.mkdir()
        file = folder / "deals.parquet"
        frame.to_parquet(file, index=False)
        monkeypatch.setattr(readers, "PARQUET_ROWS", batch)
        assert SourceFile.read(file).whole is (name == "whole")
        runs.append(await imported(make_sandbox(), file, results=folder, max_requests=None))
    whole, cut = runs
    assert cut.counts == whole.counts and whole.counts.rejected == 11
    for name in ("plan", "errors", "rejects"):
        made = (tmp_path / "cut" / f"deals.{name}.csv").read_bytes()
        assert made == (tmp_path / "whole" / f"deals.{name}.csv").read_bytes(), name


async def test_rows_left_by_a_stopped_run_are_listed_with_their_own_cells(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NAME.unprocessed.csv of a file read in blocks: each row's cells are read again from the
    block its line is in."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    lines = deals(150)
    file = write_deals(tmp_path / "deals.csv", lines)
    result = await imported(make_sandbox(), file, results=tmp_path, max_requests=60)
    assert result.outcome.stopped is not None and result.counts.left > 50
    with (tmp_path / "deals.unprocessed.csv").open(encoding="utf-8-sig", newline="") as f:
        left = list(csv.reader(f))
    with file.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert left[0] == ["line", *rows[0]] and len(left) == 1 + result.counts.left
    for entry in left[1:]:
        assert entry[1:] == rows[int(entry[0]) - 1], entry[0]


async def test_long_work_before_the_first_write_shows_its_progress(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading, validating and planning a million rows took two minutes with nothing on the
    screen: validation (of a file read in blocks), planning and NAME.plan.csv each show a bar
    of rows when there are enough of them."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    monkeypatch.setattr(plan, "SHOWN_FROM", 50)
    monkeypatch.setattr(importer, "SHOWN_FROM", 50)
    monkeypatch.setattr(importer, "_PLAN_BLOCK", 40)
    file = write_deals(tmp_path / "deals.csv", deals(300))
    reading = Bars()
    SourceFile.read(file, progress=reading)  # before any request, the first reading
    assert reading.shown == [["read deals.csv", None, "row", 300, True]]
    bars = Bars()
    result = await imported(make_sandbox(), file, results=tmp_path, progress=bars)
    planned = 300 - 15 - 2  # rejected, duplicates
    assert bars.shown == [
        ["validate deals.csv", 300, "row", 300, True],
        ["plan opportunities", planned, "row", planned, True],
        ["write deals.plan.csv", planned, "row", planned, True],
        ["import opportunities", planned, "row", planned, True],
    ]
    assert result.counts.created + result.counts.updated == planned


async def test_a_bar_ends_when_a_changed_file_stops_the_run_and_small_work_shows_none(
    make_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar is ended before the error is said (it was left half drawn above it); a file
    of one block, planned in fewer rows than a bar is for, shows none."""
    file = write_deals(tmp_path / "deals.csv", deals(120))
    bars = Bars()
    await imported(make_sandbox(), file, results=tmp_path, progress=bars)
    assert bars.shown == [["import opportunities", 112, "row", 112, True]]

    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    source = SourceFile.read(file)
    file.write_text(file.read_text().replace("Deal 0100", "Xeal 0100"))
    bars = Bars()
    opts = ImportOptions(file=file, mapping_file=MAPPING, results_dir=tmp_path / "again")
    async with sandbox_client(make_sandbox()) as client:
        with pytest.raises(InputError, match="changed while it was imported"):
            await load_file(client, opts, source, read_mapping(MAPPING), progress=bars)
    assert bars.shown[0][:2] == ["validate deals.csv", 120] and not bars.open
