"""Row pairing (load/checkpoint/pairing.py) as a pure function: which row of an edited file is
which row of the file an earlier run imported."""

import pandas as pd

from insightly_etl.load.checkpoint.pairing import (
    CELL_HEX,
    MAX_PAIRING_SCAN,
    Digests,
    Pairing,
    _cell_hex,
    pair_rows,
    row_digests,
)


def digests(rows: list[list[str]], header: tuple[str, ...] = ("Name", "Email", "City")) -> Digests:
    return row_digests(pd.DataFrame(rows, columns=list(header)))


OLD = [
    ["Ada", "ada@x.example", "London"],
    ["Bob", "bob@x.example", "Leeds"],
    ["Cy", "cy@x.example", "York"],
]


def old_rows(rows: list[list[str]] = OLD) -> dict[int, str]:
    return dict(enumerate(digests(rows)))


def test_digests_held_as_numbers_read_as_the_text_checkpoints_keep() -> None:
    """The text is the one checkpoints of every version hold: the header's 8 characters,
    then 8 of each cell (_cell_hex); read one by one, in order, by slices and joined."""
    made = digests(OLD)
    header = made[0][:CELL_HEX]
    assert made.cells.nbytes == 3 * 3 * 4 and len(made) == 3
    assert made[1] == header + "".join(_cell_hex(c) for c in OLD[1])
    assert list(made) == [made[0], made[1], made[2]] and made[-1] == made[2]
    joined = Digests.joined([made[:1], made[1:]])
    assert list(joined) == list(made) and list(made[1:]) == [made[1], made[2]]
    no_column = row_digests(pd.DataFrame(index=range(2)))
    assert list(no_column) == [no_column[0]] * 2 and len(no_column[0]) == CELL_HEX


def test_the_same_file_pairs_every_row_with_itself() -> None:
    assert pair_rows(old_rows(), digests(OLD)) == Pairing(carried={0: 0, 1: 1, 2: 2})


def test_moved_rows_keep_their_earlier_selves_and_equal_rows_pair_in_order() -> None:
    new = [OLD[2], OLD[0], OLD[0], OLD[1]]
    twice = [OLD[0], *OLD]  # Ada twice in the old file too
    assert pair_rows(old_rows(twice), digests(new)) == Pairing(carried={0: 3, 1: 0, 2: 1, 3: 2})


def test_an_edit_keeps_at_least_half_of_its_cells_anything_else_is_new() -> None:
    new = [
        ["Ada", "ada@x.example", "Paris"],  # one cell of three changed: an edit of row 0
        ["Bobby", "bob@y.example", "Leeds"],  # two of three: not an edit, a new row
        OLD[2],
    ]
    assert pair_rows(old_rows(), digests(new)) == Pairing(
        carried={2: 2}, edited={0: 0}, removed=[1], new=[1]
    )


def test_an_edit_is_found_wherever_it_moved() -> None:
    new = [OLD[1], OLD[2], ["Ada", "ada@x.example", "Paris"]]
    assert pair_rows(old_rows(), digests(new)) == Pairing(carried={0: 1, 1: 2}, edited={2: 0})


def test_a_row_whose_match_key_is_an_earlier_rows_is_that_row_however_edited() -> None:
    """Keyed by e-mail (column 1): Bob's row, moved and with every other cell changed, is
    Bob's row edited; a row with an empty key is paired by its cells alone."""
    new = [["Robert", "bob@x.example", "Paris"], ["Ada", "", "London"], OLD[2]]
    assert pair_rows(old_rows(), digests(new), key=(1,)) == Pairing(
        carried={2: 2}, edited={0: 1, 1: 0}
    )
    assert pair_rows(old_rows(), digests(new)) == Pairing(
        carried={2: 2}, edited={1: 0}, removed=[1], new=[0]
    )


def test_a_changed_header_pairs_no_edits() -> None:
    renamed = digests([["Ada", "ada@x.example", "Paris"]], ("Name", "E-mail", "City"))
    assert pair_rows(old_rows(), renamed) == Pairing(removed=[0, 1, 2], new=[0])


def test_many_unpaired_rows_look_for_their_edit_in_place_only() -> None:
    many = [[f"P{i}", f"p{i}@x.example", "Town"] for i in range(MAX_PAIRING_SCAN + 2)]
    new = [[name, email, "City"] for name, email, _ in many]  # every row edited, in place
    new[0], new[1] = new[1], new[0]  # two swapped: in place they are not edits of each other
    pairing = pair_rows(old_rows(many), digests(new))
    assert len(pairing.edited) == MAX_PAIRING_SCAN
    assert (pairing.removed, pairing.new) == ([0, 1], [0, 1])


def test_an_empty_old_file_makes_every_row_new() -> None:
    assert pair_rows({}, digests(OLD)) == Pairing(new=[0, 1, 2])


def test_empty_cells_are_no_evidence_that_two_rows_are_one() -> None:
    people = [["Alan", "", ""], ["Grace", "", ""]]
    replaced = [["Zoe", "", ""], ["Grace", "", ""]]
    # one filled cell each side, different: not half the same (the empty ones do not count)
    assert pair_rows(old_rows(people), digests(replaced)) == Pairing(
        carried={1: 1}, removed=[0], new=[0]
    )


def test_with_identifying_columns_a_different_person_is_never_an_edit() -> None:
    header = ("First", "Last", "City", "Tier", "Owner")
    old = dict(enumerate(digests([["Alan", "Turing", "Wilmslow", "Gold", "Ann"]], header)))
    other = digests([["Zoe", "Quinn", "Wilmslow", "Gold", "Ann"]], header)  # 3 of 5 the same
    assert pair_rows(old, other) == Pairing(edited={0: 0})  # cells alone: an edit
    assert pair_rows(old, other, identity=((0, 1),)) == Pairing(removed=[0], new=[0])
    moved = digests([["Alan", "Turing", "Leeds", "Gold", "Ann"]], header)
    assert pair_rows(old, moved, identity=((0, 1),)) == Pairing(edited={0: 0})
    unnamed = digests([["", "", "Leeds", "Gold", "Ann"]], header)  # nothing says who: not him
    assert pair_rows(old, unnamed, identity=((0, 1),)) == Pairing(removed=[0], new=[0])
    namesake = digests([["Zoe", "Turing", "Wilmslow", "Gold", "Ann"]], header)  # same surname
    assert pair_rows(old, namesake, identity=((0, 1),)) == Pairing(removed=[0], new=[0])


def test_a_shared_phone_or_mailbox_never_makes_another_person_an_edit() -> None:
    """Alan Turing replaced by Zoe Quinn, who has the same switchboard phone: the phone's group
    agreed in full, so Alan's record was overwritten with Zoe."""
    header = ("First", "Last", "Email", "Phone", "Title")
    groups = ((0, 1), (2,), (3,))
    names = ((0, 1),)
    old = dict(enumerate(digests([["Alan", "Turing", "", "+44 20 7946 0000", "Eng"]], header)))
    zoe = digests([["Zoe", "Quinn", "", "+44 20 7946 0000", "Eng"]], header)
    assert pair_rows(old, zoe, groups, names) == Pairing(removed=[0], new=[0])
    shared = dict(enumerate(digests([["Bob", "Smith", "info@acme.example", "", "Sales"]], header)))
    carol = digests([["Carol", "Jones", "info@acme.example", "", "Sales"]], header)
    assert pair_rows(shared, carol, groups, names) == Pairing(removed=[0], new=[0])
    # his own e-mail fixed, or a phone added: his name agrees, an edit
    fixed = digests([["Bob", "Smith", "bob@acme.example", "+1 202 555 0199", "Sales"]], header)
    assert pair_rows(shared, fixed, groups, names) == Pairing(edited={0: 0})
    # a name's typo fixed is another name: refused by the import, never guessed (a key says)
    typo = digests([["Bob", "Smtih", "info@acme.example", "", "Sales"]], header)
    assert pair_rows(
        dict(enumerate(typo)),
        digests([["Bob", "Smith", "info@acme.example", "", "Sales"]], header),
        groups,
        names,
    ) == Pairing(removed=[0], new=[0])
    # no name on either side: the phone still says who
    unnamed = dict(enumerate(digests([["", "", "", "+44 20 7946 0000", "Eng"]], header)))
    moved = digests([["", "", "", "+44 20 7946 0000", "Lead"]], header)
    assert pair_rows(unnamed, moved, groups, names) == Pairing(edited={0: 0})
