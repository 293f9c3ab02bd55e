"""Files we write: formula escaping that round-trips, headers included, no key in them."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from insightly_etl.cli.common import RedactingFilter
from insightly_etl.config import Secret
from insightly_etl.files import write_csv
from insightly_etl.load.readers import read_table

VALUES = ["=1+2", "'+44 20 7946 0000", "''=x", "plain", "-5", "@SUM(A1)", "it's"]


def test_escaping_round_trips_even_values_that_already_start_with_an_apostrophe(
    tmp_path: Path,
) -> None:
    path = write_csv(pd.DataFrame({"=HYPERLINK(1)": VALUES}), tmp_path / "x.csv")
    text = path.read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == "'=HYPERLINK(1)"  # the header too
    assert text[1:] == ["'=1+2", "''+44 20 7946 0000", "'''=x", "plain", "'-5", "'@SUM(A1)", "it's"]
    back = read_table(path).frame
    assert back.columns.tolist() == ["=HYPERLINK(1)"]
    assert back["=HYPERLINK(1)"].tolist() == VALUES


def test_no_known_key_reaches_a_results_file_or_a_log_line(tmp_path: Path) -> None:
    key = "k3y-for-files-test-5d1e"
    Secret(key)
    path = write_csv(pd.DataFrame({"BACKGROUND": [f"echo {key}"]}), tmp_path / "p.csv")
    assert key not in path.read_text(encoding="utf-8-sig")
    record = logging.LogRecord("httpcore", logging.DEBUG, "", 0, "headers %s", (f"k={key}",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "headers k=***"


def test_updates_are_sent_in_groups_of_two_seconds_each_reread_first() -> None:
    from insightly_etl.load.execute import send_groups
    from insightly_etl.load.plan import PlannedRow

    creates = [PlannedRow(i, i + 2, "create") for i in range(50)]
    updates = [PlannedRow(i, i + 2, "update") for i in range(50, 95)]
    groups = list(send_groups(creates + updates, 200, rate=10))
    assert [len(g) for g in groups] == [20, 20, 20, 20, 15]  # the batch holds updates
    assert [len(g) for g in send_groups(creates, 200, rate=10)] == [50]  # creates: one batch


def test_rows_end_in_the_dialect_s_eol_on_a_pyarrow_without_the_option() -> None:
    """Older pyarrow writes LF only: each row's LF becomes CRLF, a line break inside a quoted
    cell stays, however the writer cuts its writes."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from insightly_etl.extract.writers import _EndOfLine

    table = pa.table({"a": ['one\nline "two"', "x"], "b": ["q", 'say "hi"\n']})
    plain = io.BytesIO()
    pacsv.write_csv(table, plain)
    # what pyarrow's own `eol="\r\n"` writes
    expected = b'"a","b"\r\n"one\nline ""two""","q"\r\n"x","say ""hi""\n"\r\n'
    for cut in (1, 3, 7, len(plain.getvalue())):
        out = io.BytesIO()
        sink = _EndOfLine(out, b"\r\n")
        data = plain.getvalue()
        for start in range(0, len(data), cut):
            sink.write(data[start : start + cut])
        assert out.getvalue() == expected, cut


def test_a_file_written_in_frames_is_one_csv_with_one_header_and_every_cell_escaped(
    tmp_path: Path,
) -> None:
    key = "k3y-for-frames-test-77aa"
    Secret(key)
    frames = [
        pd.DataFrame({"line": [2, 3], "new": ["=1+2", 7]}),  # object: text and a number
        pd.DataFrame({"line": [4], "new": [f"echo {key}"]}),
        pd.DataFrame({"line": pd.Series([], dtype="int64"), "new": pd.Series([], dtype=object)}),
        pd.DataFrame({"line": [5], "new": pd.array(["@x"], dtype="string")}),
    ]
    path = write_csv(iter(frames), tmp_path / "plan.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfline,new\r\n") or raw.startswith(b"\xef\xbb\xbfline,new\n")
    assert raw.count(b"\xef\xbb\xbf") == 1  # one BOM, at the start
    assert path.read_text(encoding="utf-8-sig").splitlines() == [
        "line,new",
        "2,'=1+2",
        "3,7",
        "4,echo ***",
        "5,'@x",
    ]


def test_a_file_that_cannot_be_made_is_named_as_asked_not_by_its_partial_name(
    tmp_path: Path,
) -> None:
    """`report --html /proc/x.html` said `/proc/.x.html.partial: No such file or directory`."""
    import pytest

    for target in (tmp_path / "no" / "r.html", Path("/proc/r.html")):
        with pytest.raises(OSError) as failed:
            write_csv(pd.DataFrame({"a": [1]}), target)
        assert failed.value.filename == str(target)


def test_a_full_disk_names_the_file_being_written(tmp_path, full_disk) -> None:
    """`Error: No space left on device` named no file: the manifest it was writing."""
    import errno

    import insightly_etl.files as files

    full_disk(files, 0)
    target = tmp_path / "_manifest.json"
    with pytest.raises(OSError) as full:
        files.write_json_atomic(target, {"objects": {}})
    assert (full.value.errno, full.value.filename) == (errno.ENOSPC, str(target))
    assert list(tmp_path.iterdir()) == []
