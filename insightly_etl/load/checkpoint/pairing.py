"""Row pairing: which row of the file as it is now is which row of the file as it was.

A pure function over row fingerprints (`row_digests`): no database, no API. Run an import again
after editing its file and each row finds its earlier self by content — an unchanged row has the
same digest; an edited row keeps the same header and at least half of its cells; anything else
is new. Rows of the old file that nothing claims were removed. Two empty cells are no evidence
that two rows are one, and where the mapping names the cells that say who a record is (the
name, the e-mail, the phone, the match key), one of those must agree in full and no name or
key may differ: replacing Alan Turing by Zoe Quinn in a file is a new row, never an edit of
Alan's, even where they share a switchboard phone; fixing Bob's e-mail is an edit (his name
agrees).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import numpy as np

CELL_HEX = 8  # characters of each cell's fingerprint in a row digest
MAX_PAIRING_SCAN = 2_000  # unpaired earlier rows searched for each edited row, at most


class Digests(Sequence[str]):
    """Rows' fingerprints (`row_digests`) held as numbers, 4 bytes a cell, and written as text
    only when one is read: a million rows' texts took 185 MB while the file was read."""

    _CHUNK = 65_536  # rows written as text at once when all are read in order

    def __init__(self, header: str, cells: np.ndarray) -> None:
        self.header = header
        self.cells = cells  # (rows, cells), uint32

    def __len__(self) -> int:
        return len(self.cells)

    @overload
    def __getitem__(self, at: int) -> str: ...
    @overload
    def __getitem__(self, at: slice) -> Digests: ...
    def __getitem__(self, at: int | slice) -> str | Digests:
        if isinstance(at, slice):
            return Digests(self.header, self.cells[at])
        raw: bytes = self.cells[at].astype(">u4").tobytes()
        return self.header + raw.hex()

    def __iter__(self) -> Iterator[str]:
        width = 4 * self.cells.shape[1]
        if not width:  # a file of no column: each row is the header's
            yield from itertools.repeat(self.header, len(self.cells))
            return
        for start in range(0, len(self.cells), self._CHUNK):
            raw = self.cells[start : start + self._CHUNK].astype(">u4").tobytes()
            for at in range(0, len(raw), width):
                yield self.header + raw[at : at + width].hex()

    @classmethod
    def joined(cls, parts: list[Digests]) -> Digests:
        """The parts' rows, in order (the blocks of one file: one header)."""
        import numpy as np

        return cls(parts[0].header, np.concatenate([p.cells for p in parts]))


def row_digests(frame: Any, blank: Callable[[Any], Any] | None = None) -> Digests:
    """A fingerprint of each row: the header's, then 8 hex characters per cell, so a row is
    known again after edits (all equal) and an edit can be told from a different row (most
    cells still equal). `blank`: a column's cells that hold nothing (spaces, invisible
    characters), fingerprinted as empty: a key of spaces is no key two rows share."""
    import numpy as np
    import pandas as pd

    def cells(column: Any) -> Any:
        text = column.astype(str).to_numpy(dtype=object)
        if blank is not None:
            text[blank(column.astype("string"))] = ""
        return (pd.util.hash_array(text) & 0xFFFFFFFF).astype(np.uint32)

    header = hashlib.sha256("\0".join(map(str, frame.columns)).encode()).hexdigest()[:CELL_HEX]
    columns = [cells(frame[name]) for name in frame.columns]
    shape = (len(frame), 0)
    return Digests(header, np.column_stack(columns) if columns else np.zeros(shape, np.uint32))


def _cell(digest: str, column: int) -> str:
    """The fingerprint of cell `column` in a row digest."""
    at = CELL_HEX * (column + 1)
    return digest[at : at + CELL_HEX]


def _cell_hex(text: str) -> str:
    import numpy as np
    import pandas as pd

    return f"{int(pd.util.hash_array(np.array([text], dtype=object))[0]) & 0xFFFFFFFF:08x}"


# a cell with nothing in it, as `astype(str)` writes an empty or missing value
EMPTY = frozenset(_cell_hex(t) for t in ("", "nan", "None", "<NA>", "NaT"))


Identity = tuple[tuple[int, ...], ...]  # groups of column positions: a name, an e-mail, a key


def likeness(
    a: str, b: str, identity: Identity = (), naming: Identity = (), key: tuple[int, ...] = ()
) -> int:
    """Is row digest `b` an edit of `a`: same header; of the cells filled on either side, at
    least half unchanged; when identifying groups of columns are named, one group equal in
    every cell and not empty; and no `naming` group (a person's name, the record's name, its
    key) filled on both sides and different — a switchboard phone or a shared mailbox that
    Alan Turing and Zoe Quinn both have does not make Zoe an edit of Alan. A row with a
    match `key` is who its key says, and planning judges an edited or filled-in one (plan.py
    _still_its_record), so names do not part it here (a key a spreadsheet re-saved, or one
    filled in, beside an edited name). How many cells are unchanged, or 0: not an edit."""
    if a[:CELL_HEX] != b[:CELL_HEX] or len(a) != len(b):
        return 0
    if key and (key_cells(a, key) is not None or key_cells(b, key) is not None):
        naming = ()

    columns = range(len(a) // CELL_HEX - 1)

    def agrees(group: tuple[int, ...]) -> bool:
        cells = [c for c in group if c in columns]
        return (
            bool(cells)
            and all(_cell(a, c) == _cell(b, c) for c in cells)
            and any(_cell(a, c) not in EMPTY for c in cells)
        )

    if identity and not any(agrees(group) for group in identity):
        return 0
    for group in naming:
        cells = [c for c in group if c in columns]
        filled = all(any(_cell(d, c) not in EMPTY for c in cells) for d in (a, b))
        if filled and any(_cell(a, c) != _cell(b, c) for c in cells):
            return 0
    compared = [c for c in columns if _cell(a, c) not in EMPTY or _cell(b, c) not in EMPTY]
    same = sum(_cell(a, c) == _cell(b, c) for c in compared)
    return same if same > 0 and 2 * same >= len(compared) else 0


def alike_somewhere(
    new: dict[int, str], gone: dict[int, str], identity: Identity
) -> list[tuple[int, int]]:
    """Pairs of a new row and a vanished one that share a cell saying who a record is (a
    name, an e-mail, a phone, a key), filled in on both: one may be an edit of the other
    that pairing could not tell (a name's typo fixed). Rows that share none are two people.
    Without identifying columns every pair may be one."""
    columns = sorted({c for group in identity for c in group})
    if not columns:
        return [(i, r) for i in new for r in gone]

    index: dict[tuple[int, str], list[int]] = {}
    for r, digest in gone.items():
        for c in columns:
            if (hexed := _cell(digest, c)) and hexed not in EMPTY:
                index.setdefault((c, hexed), []).append(r)
    pairs: dict[tuple[int, int], None] = {}
    for i, digest in new.items():
        for c in columns:
            if (hexed := _cell(digest, c)) and hexed not in EMPTY:
                pairs.update(((i, r), None) for r in index.get((c, hexed), ()))
    return list(pairs)


@dataclass(frozen=True)
class Pairing:
    carried: dict[int, int] = field(default_factory=dict)  # new row -> old row, same content
    edited: dict[int, int] = field(default_factory=dict)  # new row -> the old row it edits
    removed: list[int] = field(default_factory=list)  # old rows nothing claimed
    new: list[int] = field(default_factory=list)  # new rows that are no old row


def key_cells(digest: str, key: tuple[int, ...]) -> tuple[str, ...] | None:
    """The fingerprints of a row's match key cells (None: a part of it is empty)."""
    cells = tuple(_cell(digest, c) for c in key)
    return None if any(c in EMPTY or not c for c in cells) else cells


def pair_rows(
    old: dict[int, str],
    digests: Sequence[str],
    identity: Identity = (),
    naming: Identity = (),
    key: tuple[int, ...] = (),
) -> Pairing:
    """Pair the old file's rows (`old`: row -> digest, in row order) with the new file's.

    Equal digests pair first, in order (of several equal rows, the first with the first). Then
    each unpaired new row looks for an edit of itself: at its own place first, then — unless
    more than MAX_PAIRING_SCAN old rows are unpaired, when only its place is looked at — among
    every unpaired old row. A changed header pairs no edits: every changed row is new.
    `identity`: the groups of columns that say who a record is, `naming` those of them that
    name it (likeness). `key`: the match key's columns: a row whose key is an earlier
    row's, in full, is that row edited, however many other cells changed (keyed rows are
    who their key says: edited enough, the row was new, and a record a colleague deleted was
    made again)."""
    unclaimed: dict[str, list[int]] = {}
    for row in reversed(old):
        unclaimed.setdefault(old[row], []).append(row)
    carried: dict[int, int] = {}
    for i, digest in enumerate(digests):
        if unclaimed.get(digest):
            carried[i] = unclaimed[digest].pop()
    claimed = set(carried.values())
    first = next(iter(old.values()), None)
    header_kept = first is not None and bool(digests) and first[:CELL_HEX] == digests[0][:CELL_HEX]
    fresh = [i for i in range(len(digests)) if i not in carried]
    pool = [r for r in old if r not in claimed] if header_kept else []
    scan = len(pool) <= MAX_PAIRING_SCAN  # a few edits: look everywhere; many: in place
    edited: dict[int, int] = {}
    by_key: dict[tuple[str, ...], list[int]] = {}
    for r in reversed(pool) if key else []:
        if (cells := key_cells(old[r], key)) is not None:
            by_key.setdefault(cells, []).append(r)
    for i in fresh if header_kept else []:
        cells = key_cells(digests[i], key) if key else None
        same_key = by_key.get(cells, []) if cells is not None else []
        while same_key and same_key[-1] in claimed:
            same_key.pop()
        if same_key:
            edited[i] = same_key.pop()
            claimed.add(edited[i])
            continue
        candidates = [i] if i in old and i not in claimed else []
        if scan:
            candidates += [r for r in pool if r not in claimed and r != i]
        # the likest (its own place first among equals): of two namesakes, the row whose
        # e-mail was corrected is its own earlier row, not the other John Smith's
        scores = [(likeness(old[r], digests[i], identity, naming, key), r) for r in candidates]
        best = max(scores, key=lambda s: s[0], default=(0, -1))
        if best[0]:
            edited[i] = best[1]
            claimed.add(best[1])
    return Pairing(
        carried=carried,
        edited=edited,
        removed=[row for row in old if row not in claimed],
        new=[i for i in fresh if i not in edited],
    )


def by_record_ids(
    pairing: Pairing, digests: Sequence[str], column: int, record_ids: dict[int, int]
) -> Pairing:
    """New rows whose record id (`column`, the file's key) is the record a vanished row
    wrote: that row, edited (an export made again after rows were added by hand without an
    id carries their ids, and new dates and owners beside them)."""
    wanted = {_cell_hex(str(rid)): row for row, rid in record_ids.items()}
    found = {i: wanted[cell] for i in pairing.new if (cell := _cell(digests[i], column)) in wanted}
    if not found:
        return pairing
    taken = set(found.values())
    return Pairing(
        carried=pairing.carried,
        edited={**pairing.edited, **found},
        removed=[r for r in pairing.removed if r not in taken],
        new=[i for i in pairing.new if i not in found],
    )
