"""A plan keeps a planned create as its row number alone and makes it when read: the rows
come out in the file's order, creates and updates interleaved, and sending reads them a
batch at a time, not all at once."""

from collections.abc import Iterator

from insightly_etl.load.execute import send_groups
from insightly_etl.load.plan import PlannedRow, PlannedRows
from insightly_etl.load.states import Action


def _make(row: int) -> PlannedRow:
    return PlannedRow(row, row + 2, Action.CREATE, key=(f"k{row}",), built=False)


def test_creates_are_numbers_made_in_the_files_order_when_read() -> None:
    rows = PlannedRows(_make)
    rows.add_create(0)
    rows.append(PlannedRow(1, 3, Action.UPDATE, {"TITLE": "x"}, 71))
    rows.add_create(2)
    rows.add_create(3)
    rows.append(PlannedRow(4, 6, Action.UNCHANGED, record_id=72))
    rows.add_create(5)
    assert [(p.row, p.action) for p in rows] == [
        (0, "create"),
        (1, "update"),
        (2, "create"),
        (3, "create"),
        (4, "unchanged"),
        (5, "create"),
    ]
    assert [(p.line, p.key, p.built) for p in rows if p.action == Action.CREATE] == [
        (2, ("k0",), False),
        (4, ("k2",), False),
        (5, ("k3",), False),
        (7, ("k5",), False),
    ]
    assert [p.row for p in rows.built()] == [1, 4]  # only what planning built is held
    assert (len(rows), rows.count(Action.CREATE), rows.count(Action.UPDATE)) == (6, 4, 1)
    assert (rows.creates(), rows.last()) == ([0, 2, 3, 5], 5)
    first, again = next(iter(rows)), next(iter(rows))
    assert first == again and first is not again  # made anew: nothing sent is kept on it
    rows.drop({1, 3})
    assert [p.row for p in rows] == [0, 2, 4, 5]
    assert (rows.creates(), rows.count(Action.UPDATE)) == ([0, 2, 5], 0)


def test_an_empty_plan_has_no_last_row() -> None:
    rows = PlannedRows(_make)
    assert (list(rows), len(rows), rows.last(), rows.creates()) == ([], 0, -1, [])


def test_sending_reads_the_plan_a_batch_at_a_time() -> None:
    read: list[int] = []

    def writes() -> Iterator[PlannedRow]:
        for r in range(1_000):
            read.append(r)
            yield _make(r)

    groups = send_groups(writes(), 200, rate=10)
    assert len(next(groups)) == 200
    assert len(read) == 200  # not the thousand: the rest is made as it is sent
    assert [len(g) for g in groups] == [200, 200, 200, 200]
    assert len(read) == 1_000
