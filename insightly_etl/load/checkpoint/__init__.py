"""The import checkpoint: one SQLite file that survives `kill -9` at any instant.

    store.py    the file: schema and versions (PRAGMA user_version), opening, metadata, runs
    lock.py     one run at a time on a checkpoint
    rows.py     the rows' journal: every row's state, the body sent, before-images for undo
    steps.py    the steps' journal (pipeline, stage, state, links)
    undo.py     undo's journal
    rerun.py    carrying a checkpoint over to an edited file or mapping
    pairing.py  which row of the edited file is which row of the old one (a pure function)

States, actions and stop reasons are the enums of load/states.py.
"""

from insightly_etl.load.checkpoint.pairing import Digests, row_digests
from insightly_etl.load.checkpoint.rerun import RerunChanges, mapping_fingerprint
from insightly_etl.load.checkpoint.rows import CreatedRow, FieldChange, RowEntry, Written
from insightly_etl.load.checkpoint.steps import StepEntry
from insightly_etl.load.checkpoint.store import DAMAGE, VERSION, Checkpoint, damaged

__all__ = [
    "DAMAGE",
    "VERSION",
    "Checkpoint",
    "CreatedRow",
    "Digests",
    "FieldChange",
    "RerunChanges",
    "RowEntry",
    "StepEntry",
    "Written",
    "damaged",
    "mapping_fingerprint",
    "row_digests",
]
