"""Row pairing: which row of the file as it is now is which row of the file as it was.

A pure function over row fingerprints (`row_digests`): no database, no API. Run an import again
after editing its file and each row finds its earlier self by content — an unchanged row has the
same digest; an edited row keeps the same header and at least half of its cells; anything else
is new. Rows of the old file that nothing claims were removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

CELL_HEX = 8  # characters of each cell's fingerprint in a row digest
MAX_PAIRING_SCAN = 2_000  # unpaired earlier rows searched for each edited row, at most


def row_digests(frame: Any) -> list[str]:
    """A fingerprint of each row: the header's, then 8 hex characters per cell, so a row is
    known again after edits (all equal) and an edit can be told from a different row (most
    cells still equal)."""
    import pandas as pd

    header = hashlib.sha256("\0".join(map(str, frame.columns)).encode()).hexdigest()[:CELL_HEX]
    columns = [
        pd.util.hash_array(frame[name].astype(str).to_numpy(dtype=object)) & 0xFFFFFFFF
        for name in frame.columns
    ]
    return (
        [header + "".join(f"{c:08x}" for c in cells) for cells in zip(*columns, strict=True)]
        if columns
        else [header] * len(frame)
    )


def mostly_same(a: str, b: str) -> bool:
    """Is row digest `b` an edit of `a`: same header, at least half of the cells unchanged?"""
    if a[:CELL_HEX] != b[:CELL_HEX] or len(a) != len(b):
        return False
    cells = range(CELL_HEX, len(a), CELL_HEX)
    same = sum(a[i : i + CELL_HEX] == b[i : i + CELL_HEX] for i in cells)
    return same > 0 and 2 * same >= len(cells)


@dataclass(frozen=True)
class Pairing:
    carried: dict[int, int] = field(default_factory=dict)  # new row -> old row, same content
    edited: dict[int, int] = field(default_factory=dict)  # new row -> the old row it edits
    removed: list[int] = field(default_factory=list)  # old rows nothing claimed
    new: list[int] = field(default_factory=list)  # new rows that are no old row


def pair_rows(old: dict[int, str], digests: list[str]) -> Pairing:
    """Pair the old file's rows (`old`: row -> digest, in row order) with the new file's.

    Equal digests pair first, in order (of several equal rows, the first with the first). Then
    each unpaired new row looks for an edit of itself: at its own place first, then — unless
    more than MAX_PAIRING_SCAN old rows are unpaired, when only its place is looked at — among
    every unpaired old row. A changed header pairs no edits: every changed row is new."""
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
    for i in fresh if header_kept else []:
        candidates = [i] if i in old and i not in claimed else []
        if scan:
            candidates += [r for r in pool if r not in claimed and r != i]
        match = next((r for r in candidates if mostly_same(old[r], digests[i])), None)
        if match is not None:
            edited[i] = match
            claimed.add(match)
    return Pairing(
        carried=carried,
        edited=edited,
        removed=[row for row in old if row not in claimed],
        new=[i for i in fresh if i not in edited],
    )
