"""Fix-and-rerun: carrying a checkpoint over to its file and mapping as they are now.

The file and the mapping are fingerprinted (sha256), and every row too. Run again after editing
the file and each row finds its earlier state by its content (pairing.py): unchanged rows keep
it (done rows cost nothing), edited rows are planned again (keeping the record id an earlier run
created, so an edit becomes an update, never a second record), new rows are planned, vanished
rows are set aside in `removed_rows` and never touched. After a mapping change every row is
planned again against Insightly's current state (diff-based: what is already there costs no
write). Refused only where it is unsafe: another object, or rows whose outcome is still unknown
and whose content changed (they are settled first, with the file as it was).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from insightly_etl.errors import CheckpointError
from insightly_etl.files import utc_now
from insightly_etl.load.checkpoint.pairing import (
    Identity,
    alike_somewhere,
    by_record_ids,
    key_cells,
    pair_rows,
)
from insightly_etl.load.states import UNDONE, UNSETTLED, Action, RowState, UndoState

if TYPE_CHECKING:
    from insightly_etl.load.checkpoint.store import Checkpoint


def mapping_fingerprint(mapping_file: Path | None, object_name: str) -> str:
    text = mapping_file.read_bytes() if mapping_file else b"(no mapping)"
    return hashlib.sha256(text + b"\0" + object_name.encode()).hexdigest()


@dataclass
class RerunChanges:
    """What changed since the last run on this checkpoint."""

    edited: int = 0
    new: int = 0
    removed: int = 0
    file_changed: bool = False
    mapping_changed: bool = False
    undone: int = 0  # rows an undo had reversed, imported again now

    def describe(self) -> str | None:
        parts = []
        if self.file_changed:
            parts.append(
                f"{self.edited:,} row(s) edited, {self.new:,} new, {self.removed:,} removed "
                "(removed rows are left alone in Insightly)"
            )
        if self.mapping_changed:
            parts.append("the mapping changed: every row is compared with Insightly again")
        if self.undone:
            parts.append(f"the import was undone: its {self.undone:,} row(s) are imported again")
        return "; ".join(parts) or None


def bind(
    store: Checkpoint,
    *,
    file_sha: str,
    mapping_sha: str,
    object_name: str,
    source: str,
    digests: Sequence[str],
    lines: list[int],
    keyed: bool = True,
    identity: Identity = (),
    naming: Identity = (),
    key: tuple[int, ...] = (),
    id_key: bool = False,
) -> RerunChanges:
    """Tie a new checkpoint to its file and mapping, or carry an existing one over to the
    file and mapping as they are now."""
    known = store.meta("file_sha256")
    if known is None:
        store.remember(
            file_sha256=file_sha,
            mapping_sha256=mapping_sha,
            object=object_name,
            source=source,
            created_utc=utc_now(),
        )
        store.rows.register(zip(range(len(lines)), lines, digests, strict=True))
        return RerunChanges()
    if store.meta("object") != object_name:
        raise CheckpointError(
            f"{store.path} belongs to an import of {store.meta('object')}, not {object_name}: "
            "resuming would mix two imports",
            hint="Name another checkpoint with --checkpoint for this import.",
        )
    undone = _forget_undo(store)  # before rows are renumbered: its journal is by row
    changes = RerunChanges()
    if known != file_sha:
        changes = _rekey(store, digests, lines, keyed, identity, source, naming, key, id_key)
    else:
        store.rows.register(zip(range(len(lines)), lines, digests, strict=True))
    changes.undone = undone
    if store.meta("mapping_sha256") != mapping_sha:
        changes.mapping_changed = True
        with store.transaction() as db:  # diffed again: what is already there costs no write
            db.execute(
                "UPDATE rows SET state=? WHERE state IN (?, ?)",
                (RowState.PLANNED, RowState.DONE, RowState.SKIPPED),
            )
    store.remember(file_sha256=file_sha, mapping_sha256=mapping_sha, source=source)
    store.rows.reload()  # renumbered, replanned: the records done rows hold are asked again
    return changes


def _forget_undo(store: Checkpoint) -> int:
    """After `undo`, running the import again imports again: rows whose record undo deleted
    create it anew, rows undo restored are compared with Insightly again."""
    undone = store.undo.states()
    if not undone:
        return 0
    gone = (UndoState.DELETED, UndoState.GONE)
    with store.transaction() as db:
        db.executemany(
            "UPDATE rows SET state=?, action=NULL, record_id=NULL, created=0, payload=NULL"
            " WHERE row=?",
            ((RowState.PLANNED, r) for r, s in undone.items() if s in gone),
        )
        db.executemany(
            "UPDATE rows SET state=? WHERE row=? AND state=?",
            ((RowState.PLANNED, r, RowState.DONE) for r, s in undone.items() if s not in gone),
        )
        # a record set aside by its row (rows.moved: negative keys) that undo went through;
        # a row that took it since holds a record undo deleted (planned anew) or restored
        # (compared again)
        replanned = {r for r in undone if r >= 0}
        for key, state in undone.items():
            if key >= 0 or state not in UNDONE:
                continue
            found = db.execute("SELECT record_id FROM moved_records WHERE id=?", (-key,)).fetchone()
            db.execute("DELETE FROM moved_records WHERE id=?", (-key,))
            if found is None:
                continue
            replanned |= {r for (r,) in db.execute("SELECT row FROM rows WHERE record_id=?", found)}
            if state in gone:
                db.execute(
                    "UPDATE rows SET state=?, action=NULL, record_id=NULL, created=0,"
                    " payload=NULL WHERE record_id=?",
                    (RowState.PLANNED, found[0]),
                )
            else:
                db.execute(
                    "UPDATE rows SET state=? WHERE record_id=? AND state=?",
                    (RowState.PLANNED, found[0], RowState.DONE),
                )
        db.execute("DELETE FROM undo")
    return len(replanned)


def _rekey(
    store: Checkpoint,
    digests: Sequence[str],
    lines: list[int],
    keyed: bool,
    identity: Identity = (),
    source: str = "",
    naming: Identity = (),
    key: tuple[int, ...] = (),
    id_key: bool = False,
) -> RerunChanges:
    """The rows of the file now (`source`), paired with the checkpoint's of its last run.
    `id_key`: the key is the record id."""
    earlier = store.meta("source")
    # the file being imported, and which the checkpoint was of when that is another
    named = source + (f" (the checkpoint is of {earlier})" if earlier and earlier != source else "")
    old = store.db.execute(
        "SELECT row, digest, state, record_id, action, line FROM rows ORDER BY row"
    ).fetchall()
    if old and any(d is None for _, d, *_ in old):
        raise CheckpointError(
            f"{store.path} was written by an older version that kept no row fingerprints, "
            f"and {named} changed since",
            hint="Resume with the file as it was, or start afresh with a new --checkpoint.",
        )
    by_row = {row: (state, rid, action) for row, _, state, rid, action, _ in old}
    digest_of = {row: digest for row, digest, *_ in old}
    line_of = {row: line for row, *_, line in old}
    pairing = pair_rows(digest_of, digests, identity, naming, key)
    if id_key and len(key) == 1:
        written = {r: by_row[r][1] for r in pairing.removed if by_row[r][1] is not None}
        pairing = by_record_ids(pairing, digests, key[0], written)
    created_gone = [
        r for r in pairing.removed if by_row[r][0] == RowState.DONE and by_row[r][1] is not None
    ]
    # rows with no key to say who they are: all of them without a match key, those whose
    # key is empty with one (an export's rows added by hand, with no id). A new row beside a
    # vanished one an earlier run wrote or found, either without a key, that shares a name,
    # an e-mail or a phone with it may be an edit pairing could not tell (a typo fixed): it
    # would be a second record. One that shares nothing is another person.
    new_keyless = {
        i for i in pairing.new if not keyed or (key and key_cells(digests[i], key) is None)
    }
    gone_keyless = {
        r for r in created_gone if not keyed or (key and key_cells(digest_of[r], key) is None)
    }
    doubtful = [
        (i, r)
        for i, r in alike_somewhere(
            {i: digests[i] for i in pairing.new}, {r: digest_of[r] for r in created_gone}, identity
        )
        if i in new_keyless or r in gone_keyless
    ]
    if doubtful:
        without = "without a match key" if not keyed else "with an empty match key"
        shown = "; ".join(
            f"line {lines[i]} and the earlier line {line_of[r]}, record {by_row[r][1]}"
            for i, r in doubtful[:3]
        )
        raise CheckpointError(
            f"{named}: {len(doubtful):,} new row(s) may be edits of rows of the last run that "
            f"are gone ({shown}{' …' if len(doubtful) > 3 else ''}); {without} an edit cannot "
            "be told from a new record, and sending them could create a second record",
            hint=(
                "Give those rows their key (the match column, or the record id named), or put "
                "the earlier rows back as they were and make the edit in Insightly."
                if keyed
                else "Put the earlier rows back as they were and make the edit in Insightly, "
                "or add a match key those rows kept unchanged (match: {column: Email, field: "
                "EMAIL_ADDRESS}, where the e-mail is as it was): a key they changed makes them "
                "new records."
            ),
        )
    unsettled = [
        row for row in (*pairing.edited.values(), *pairing.removed) if by_row[row][0] in UNSETTLED
    ]
    if unsettled:
        raise CheckpointError(
            f"{len(unsettled)} row(s) of the last run have an unknown outcome and changed in "
            f"{named} since",
            hint="Run once more with the file as it was (that settles them at no risk of a "
            "second record), then with the edited file.",
        )
    now = utc_now()
    run = store.next_run()
    kept = (Action.CREATE, Action.UPDATE, Action.UNCHANGED)
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO removed_rows SELECT line, action, state, record_id, digest, ? "
            "FROM rows WHERE row=?",
            ((run, row) for row in pairing.removed),
        )
        db.execute("UPDATE rows SET row = -1 - row")  # out of the way of the new numbers
        db.execute("UPDATE before_images SET row = -1 - row")
        db.execute("UPDATE steps SET row = -1 - row")
        for new, old_row in pairing.carried.items():
            db.execute("UPDATE rows SET row=?, line=? WHERE row=?", (new, lines[new], -1 - old_row))
            db.execute("UPDATE before_images SET row=? WHERE row=?", (new, -1 - old_row))
            db.execute("UPDATE steps SET row=? WHERE row=?", (new, -1 - old_row))
        for new, old_row in pairing.edited.items():
            state, rid, action = by_row[old_row]
            keep = rid if state == RowState.DONE and action in kept else None
            db.execute(
                "UPDATE rows SET row=?, line=?, digest=?, state=?, action=NULL, record_id=?,"
                " payload=NULL, status=NULL, message=NULL, not_applied=0, updated_utc=?"
                " WHERE row=?",
                (new, lines[new], digests[new], RowState.PLANNED, keep, now, -1 - old_row),
            )
            db.execute("UPDATE before_images SET row=? WHERE row=?", (new, -1 - old_row))
            db.execute("UPDATE steps SET row=? WHERE row=?", (new, -1 - old_row))
        db.execute("DELETE FROM rows WHERE row < 0")
        db.execute("DELETE FROM steps WHERE row < 0")
        # vanished rows' images (kept in removed_rows' spirit, not for undo: see undo.py)
        db.execute("DELETE FROM before_images WHERE row < 0")
        db.executemany(
            "INSERT OR IGNORE INTO rows (row, line, state, digest, updated_utc)"
            " VALUES (?, ?, ?, ?, ?)",
            ((i, lines[i], RowState.PLANNED, digests[i], now) for i in range(len(digests))),
        )
    return RerunChanges(
        edited=len(pairing.edited),
        new=len(pairing.new),
        removed=len(pairing.removed),
        file_changed=True,
    )
