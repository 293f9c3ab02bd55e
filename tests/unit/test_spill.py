"""Validated values spilled to disk (load/spill.py) read back as the values held: every row,
every column, of the types validation gives, and nothing named left in the temporary folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from insightly_etl.errors import TemporaryFolderError
from insightly_etl.load import readers, spill
from insightly_etl.load.account import AccountFacts
from insightly_etl.load.mapping import parse_mapping
from insightly_etl.load.source import SourceFile
from insightly_etl.load.spill import SpilledValues, rows_of
from insightly_etl.load.validate import ABSENT
from insightly_etl.sandbox.synth import custom_field_definitions

TEXT = pd.StringDtype("pyarrow")


def frame(start: int, n: int) -> pd.DataFrame:
    """Rows of every type validation gives, NA in each column now and then."""
    rows = range(start, start + n)
    return pd.DataFrame(
        {
            "FIRST_NAME": pd.array([None if r % 5 == 0 else f"Łódź {r}" for r in rows], TEXT),
            "Discount__c": pd.array([None if r % 3 == 0 else r / 4 for r in rows], "Float64"),
            "OWNER_USER_ID": pd.array([None if r % 4 == 0 else r for r in rows], "Int64"),
            "Newsletter__c": pd.array(
                [None if r % 7 == 0 else r % 2 == 0 for r in rows], "boolean"
            ),
        }
    )


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_blocks_of_any_size_read_back_as_added_in_batches_of_their_own(
    private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "BATCH_ROWS", 4)
    whole = pd.concat([frame(0, 3), frame(3, 10), frame(13, 1), frame(14, 5)], ignore_index=True)
    values = SpilledValues()
    for start, n in ((0, 3), (3, 10), (13, 1), (14, 5)):
        values.add(frame(start, n))
    assert os.listdir(private_tmp) == []  # the file has no name: nothing to find or to leave
    values.finish()

    assert len(values) == 19 and list(values) == list(whole.columns)
    for start, stop in ((0, 4), (3, 9), (16, 19), (8, 40), (0, 19), (5, 5)):
        pd.testing.assert_frame_equal(
            values.read_rows(start, stop), whole.iloc[start:stop].reset_index(drop=True)
        )
    for name in whole.columns:
        pd.testing.assert_series_equal(values[name], whole[name])
    assert rows_of(values, 2, 6).equals(rows_of(whole, 2, 6).reset_index(drop=True))


def test_values_cannot_be_added_once_finished_nor_read_before(private_tmp: Path) -> None:
    values = SpilledValues()
    with pytest.raises(ValueError, match="no values were added"):
        values.finish()
    values.add(frame(0, 2))
    with pytest.raises(ValueError, match="values read before they were finished"):
        values.read_rows(0, 1)
    with pytest.raises(ValueError, match="values read before they were finished"):
        values["FIRST_NAME"]
    with pytest.raises(ValueError, match=r"columns \['FIRST_NAME'\], not \['FIRST_NAME', "):
        values.add(frame(2, 2)[["FIRST_NAME"]])
    values.finish()
    with pytest.raises(ValueError, match="values added after they were finished"):
        values.add(frame(2, 2))


def test_blocks_of_no_row_read_back_as_no_row(private_tmp: Path) -> None:
    values = SpilledValues()
    values.add(frame(0, 0))
    values.finish()
    assert len(values) == 0
    pd.testing.assert_frame_equal(values.read_rows(0, 4096), frame(0, 0))
    pd.testing.assert_series_equal(values["OWNER_USER_ID"], frame(0, 0)["OWNER_USER_ID"])


def test_a_file_validated_in_blocks_spills_its_values_and_reads_each_row_as_held(
    private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = private_tmp / "people.csv"
    lines = [
        f"Name {i},{'' if i % 6 == 0 else f'{i}.5'},{'yes' if i % 2 else 'no'},{'Gold' if i % 3 else ''}"
        for i in range(200)
    ]
    path.write_text("Name,Discount,Newsletter,Tier\n" + "\n".join(lines) + "\n")
    mapping = parse_mapping(
        {
            "object": "contacts",
            "columns": {
                "Name": "FIRST_NAME",
                "Discount": "Discount__c",
                "Newsletter": "Newsletter__c",
                "Tier": "Customer_Tier__c",
            },
        },
        source="m.yaml",
    )
    facts = AccountFacts(custom_field_definitions()["Contacts"], {})
    held = SourceFile.read(path).validate(mapping, facts)
    monkeypatch.setattr(readers, "BLOCK_BYTES", 500)
    monkeypatch.setattr(readers, "TAIL_BYTES", 64)
    monkeypatch.setattr(spill, "BATCH_ROWS", 16)
    source = SourceFile.read(path)
    assert not source.whole
    spilled = source.validate(mapping, facts)

    assert isinstance(held.values, pd.DataFrame) and isinstance(spilled.values, SpilledValues)
    assert list(spilled.table.frame.columns) == ["Discount"]  # only the text planning reads
    assert [spilled.row(r) for r in range(200)] == [held.row(r) for r in range(200)]
    assert spilled.row(6) == {"FIRST_NAME": "Name 6", "Newsletter__c": False}
    assert spilled.row(7) == {
        "FIRST_NAME": "Name 7",
        "Discount__c": 7.5,
        "Newsletter__c": True,
        "Customer_Tier__c": "Gold",
    }
    assert spilled.cell(199, "Discount__c") == 199.5 and spilled.cell(0, "Discount__c") is ABSENT
    assert spilled.cell(3, "Customer_Tier__c") is ABSENT  # rows read out of order too


@pytest.mark.parametrize("rows", [5, 5000])
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # closed quietly
def test_a_full_temporary_folder_is_named_with_what_to_do(
    private_tmp: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    """/dev/full: every write fails as a full disk's does — while rows are added (5,000), or
    only when the last of them and the file's footer are (5)."""
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: open("/dev/full", "w+b"))  # noqa: SIM115
    values = SpilledValues()
    with pytest.raises(TemporaryFolderError) as caught:
        values.add(frame(0, rows))
        values.finish()
    assert str(caught.value) == (
        f"{private_tmp} (the temporary folder, TMPDIR): cannot hold the file's validated "
        "values: No space left on device"
    )
    assert caught.value.hint == (
        "Free some space there, or set TMPDIR to a folder with room (about 6 bytes a cell of "
        "the file, and for a dry run 300 bytes a row: its copy of the checkpoint is there too), "
        "then run again: this run sent nothing."
    )
    assert caught.value.exit_code == 74
