"""`validate` of a file of any size: a block of rows at a time (readers.iter_table), so five
million rows are checked in the memory of a few hundred thousand. What a report needs of
each block is kept — its errors, its rejected rows, what its rows write to the field that
identifies a person — and the rest of the block goes before the next is read.

A file only the exact reader reads right (not UTF-8, a ragged row, a line break in a value) is
checked whole, as before; either way the report is the same.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightly_etl.load.account import AccountFacts
from insightly_etl.load.identity import (
    compared,
    identity_rows,
    in_file_warnings,
    key_column,
    shared_rows,
)
from insightly_etl.load.mapping import Mapping
from insightly_etl.load.plan import CASE_WAY_OUT, OTHER_LETTERS, identifying_fields, ids_apart
from insightly_etl.load.readers import (
    NotPlain,
    SourceTable,
    iter_table,
    larger_than_a_block,
    read_table,
)
from insightly_etl.load.report import ErrorGroup, error_groups, rejects_frame
from insightly_etl.load.spill import rows_of
from insightly_etl.load.spreadsheet import LOST
from insightly_etl.load.validate import (
    ValidationResult,
    holding,
    keyless_text,
    update_only_text,
    validate_blocks,
)
from insightly_etl.progress import Progress, shown

EXAMPLES = 3


@dataclass
class FileCheck:
    """What `validate` reports of a whole file."""

    rows: int = 0  # rows read as rows (the rejected among them)
    bad_rows: int = 0  # lines that are no row (ragged)
    rejected: int = 0  # rows and lines rejected
    refused: int = 0  # valid rows import sends none of: they share a match key (_key_warnings)
    encoding: str | None = None
    delimiter: str | None = None
    results_sep: str = ","  # of its rejects file: the file's own (SourceTable.results_sep)
    unit: str = "line"
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    groups: list[ErrorGroup] = field(default_factory=list)
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)  # as NAME.rejects.csv has them


def check_file(
    path: Path,
    mapping: Mapping,
    facts: Callable[[], AccountFacts],
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    on_duplicate: str = "error",
    progress: Progress | None = None,
) -> FileCheck:
    """`facts` is asked for once the first block is read: a file that cannot be read costs
    no request, and a file read again whole asks no second time. `on_duplicate`: import's
    option (first|last send one of the rows sharing a key, so none is refused). `progress`:
    the rows checked, a block at a time."""
    facts = functools.cache(facts)
    label = f"validate {path.name}"
    big = larger_than_a_block(path)
    try:
        with shown(progress, label, when=big) as advance:
            tables = iter_table(path, encoding=encoding, delimiter=delimiter, sheet=sheet)
            return _check(tables, mapping, facts, on_duplicate, advance)
    except NotPlain:  # a block only the exact reader reads right: the file whole
        with shown(progress, label, when=big) as advance:  # counted from the start again
            whole = read_table(path, encoding=encoding, delimiter=delimiter, sheet=sheet)
            return _check([whole], mapping, facts, on_duplicate, advance)


def _check(
    tables: Iterable[SourceTable],
    mapping: Mapping,
    facts_of: Callable[[], AccountFacts],
    on_duplicate: str,
    advance: Callable[[int], None],
) -> FileCheck:
    out = FileCheck()
    groups: dict[tuple[str, str], ErrorGroup] = {}
    update_only: dict[str, tuple[int, list[int]]] = {}
    rejects: list[pd.DataFrame] = []
    identities: list[pa.Table] = []
    keyed: list[pa.Table] = []
    keyless: tuple[int, list[int]] = (0, [])  # rows with an empty key part, a few lines
    lost: tuple[int, str | None] = (0, None)  # rows with a `?` for a letter, the first
    first: ValidationResult | None = None
    for result in validate_blocks(tables, mapping, facts_of):
        table = result.table
        first = first or _shape_of(result)
        out.encoding, out.delimiter, out.unit = table.encoding, table.delimiter, table.unit
        out.results_sep = table.results_sep
        out.notes += [n for n in result.notes if n not in out.notes]
        for g in error_groups(result):
            seen = groups.get((g.column, g.kind))
            groups[(g.column, g.kind)] = replace(seen, count=seen.count + g.count) if seen else g
        for name, (count, lines) in result.update_only_rows(EXAMPLES).items():
            was, shown = update_only.get(name, (0, []))
            update_only[name] = (was + count, (shown + lines)[:EXAMPLES])
        rejected = rejects_frame(result)
        if len(rejected):
            rejects.append(rejected)
        if (rows := identity_rows(result, out.rows)) is not None:
            identities.append(rows)
        if (rows := _key_rows(result)) is not None:
            keyed.append(rows.filter(pc.is_valid(rows["key"])))
            empty = rows.filter(pc.is_null(rows["key"]))["line"]
            keyless = (keyless[0] + len(empty), (keyless[1] + empty[:EXAMPLES].to_pylist()))
        count, first_lost = _lost_letters(result)
        lost = (lost[0] + count, lost[1] or first_lost)
        out.rows += result.rows
        advance(result.rows)
        out.bad_rows += result.bad_rows
        out.rejected += len(result.rejected_rows) + result.bad_rows
    assert first is not None, "iter_table yields at least one table"
    out.groups = sorted(groups.values(), key=lambda g: (-g.count, g.column, g.kind))
    out.rejects = pd.concat(rejects, ignore_index=True) if rejects else rejects_frame(first)
    shared, out.refused = _key_warnings(first, keyed, EXAMPLES, chosen=on_duplicate != "error")
    out.warnings = [
        *update_only_text(first, update_only, EXAMPLES),
        *in_file_warnings(first, identities, EXAMPLES),
        *shared,
        *keyless_text(first, keyless[0], keyless[1][:EXAMPLES], EXAMPLES),
        *(
            [
                f"{lost[0]:,} valid row(s) have '?' inside a word in a name, e-mail or key "
                f"({lost[1]}), which is how a program saving in a single-byte code page writes "
                "a letter it cannot hold: import creates none of them (each may be an existing "
                "record whose letters were lost; a record it finds keeps Insightly's). Save "
                "the file as CSV UTF-8, or fix the cells"
            ]
            if lost[0]
            else []
        ),
    ]
    return out


def _has_lost_letter(column: pd.Series) -> np.ndarray:
    """LOST's test, a `?` touching a letter, only where a `?` is (a Python regex over five
    million names cost a fifth of validate's time)."""
    hit = holding(column, "?")
    for i in np.flatnonzero(hit):
        hit[i] = LOST.search(str(column.iat[i])) is not None
    return hit


def _lost_letters(result: ValidationResult) -> tuple[int, str | None]:
    """The valid rows whose name, e-mail or key holds a `?` a code page wrote for a letter
    (Planner._lost_characters: import creates none of them), and the first, as `line 3:
    LAST_NAME 'N??ez'`."""
    found = np.zeros(result.rows, dtype=bool)
    first: tuple[int, str, str] | None = None
    for name in identifying_fields(result) & set(result.values.columns):
        column = result.values[name]
        if not isinstance(column.dtype, pd.StringDtype):
            continue
        hit = _has_lost_letter(column)
        hit[result.rejected_rows] = False
        if hit.any():
            row = int(np.flatnonzero(hit)[0])
            if first is None or row < first[0]:
                first = (row, name, str(column.iat[row]))
            found |= hit
    if first is None:
        return 0, None
    row, name, value = first
    return int(found.sum()), f"{result.table.unit} {result.table.lines[row]}: {name} {value!r}"


def _key_rows(result: ValidationResult) -> pa.Table | None:
    """Each valid row, as (key, values, line): `key` null where a part of it is empty,
    `values` a hash of what the row writes, to tell rows that share a key and write alike
    (import sends them once) from rows that differ (import sends none). None without a
    match key."""
    if result.mapping.match is None:
        return None
    keys = key_column(result).reset_index(drop=True)
    kept = np.ones(len(keys), dtype=bool)
    kept[result.rejected_rows] = False
    rows = kept.nonzero()[0]
    key = pa.array(keys[kept].to_numpy(dtype=object, na_value=None), pa.string())
    written = key_column(result, fold=False).reset_index(drop=True)[kept]
    as_written = pa.array(written.to_numpy(dtype=object, na_value=None), pa.string())
    return pa.table(
        {
            "key": key,
            # as the file writes it, only where that is not the key compared (most are)
            "written": pc.if_else(pc.equal(as_written, key), None, as_written),
            "values": pa.array(_digests(result, rows), pa.uint64()),
            "line": pa.array(np.asarray(result.table.lines, dtype=np.int64)[rows]),
        }
    )


def _digests(result: ValidationResult, rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of what each row writes (its values, and the fields it clears), a
    column at a time: the frame hashed whole held every text of a block as a Python object."""
    digest = np.zeros(len(rows), dtype=np.uint64)
    columns = itertools.chain(
        (_as_compared(result, name, result.values[name].iloc[rows]) for name in result.values),
        (pd.Series(mask[rows]) for mask in result.cleared.values()),
    )
    for column in columns:
        hashed = pd.util.hash_pandas_object(column, index=False).to_numpy()
        digest = (digest * np.uint64(0x100000001B3)) ^ hashed  # FNV's prime; wraps at 2**64
    return digest


def _as_compared(result: ValidationResult, name: str, values: pd.Series) -> pd.Series:
    """Text as import compares two rows of one key (Planner._as_compared): NFC, spaces
    tidied, an e-mail in any case."""
    if not isinstance(values.dtype, pd.StringDtype):
        return values
    spec = result.specs.get(name)
    return compared(values, casefold=spec is not None and spec.is_email)


def _key_warnings(
    result: ValidationResult, tables: list[pa.Table], examples: int, *, chosen: bool
) -> tuple[list[str], int]:
    """The rows that share a match key with different values, which import refuses (exit 1)
    unless --on-duplicate names the one that wins (`chosen`): said by `validate` too, as
    import says them (`result`: one block's, for the key's fields); and how many rows import
    sends none of."""
    if not tables or result.mapping.match is None:
        return [], 0
    every = pa.concat_tables(tables)
    rows = every.filter(pa.array(shared_rows(every.column("key")))).to_pandas()
    rows = rows[rows.groupby("key")["values"].transform("nunique") > 1]
    if not len(rows):
        return [], 0
    rows = rows.sort_values("line", kind="stable")
    rows["written"] = rows["written"].fillna(rows["key"])
    match = result.mapping.match
    fields = [f for _, f in match.pairs]
    label = " + ".join(fields)
    differ: list[str] = []  # per key, as import says it
    cased: list[str] = []
    counts = [0, 0]
    for _, group in rows.groupby("key", sort=False):
        # as import names them: the first line of each different set of values
        firsts = group.drop_duplicates("values")
        where = f"{result.table.unit}s {', '.join(str(n) for n in firsts['line'])}"
        written = [w.split("\x1f") for w in dict.fromkeys(firsts["written"])]
        apart = next(
            (
                (name, [w[i] for w in written])
                for i, name in enumerate(fields)
                if not match.compare_given
                and ids_apart(result.specs.get(name), list(dict.fromkeys(w[i] for w in written)))
            ),
            None,
        )
        if apart is not None:
            name, ids = apart
            counts[1] += len(group)
            shown = " and ".join(repr(i) for i in dict.fromkeys(ids))
            cased.append(f"{where} have {name} {shown}")
        elif not chosen:
            counts[0] += len(group)
            differ.append(f"{where} share {label} {', '.join(written[0])}")
    out = []
    if differ:
        out.append(
            f"{counts[0]:,} row(s) share a match key with different values, and import sends "
            "none of them (fix the file, or choose with --on-duplicate first|last): "
            + "; ".join(differ[:examples])
            + (" …" if len(differ) > examples else "")
        )
    if cased:
        out.append(
            f"{counts[1]:,} row(s) have keys alike only ignoring case that read as ids, and "
            f"import sends none of them ({OTHER_LETTERS}; {CASE_WAY_OUT}): "
            + "; ".join(cased[:examples])
            + (" …" if len(cased) > examples else "")
        )
    return out, sum(counts)


def _shape_of(result: ValidationResult) -> ValidationResult:
    """A block's result with none of its rows: what the report needs of its columns."""
    table = replace(result.table, frame=result.table.frame.iloc[:0], lines=[], bad_rows=[])
    return replace(
        result, table=table, values=rows_of(result.values, 0, 0), errors=result.errors.iloc[:0]
    )
