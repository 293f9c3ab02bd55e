"""Files into Insightly: readers, mappings, validation, planning, execution within the quota,
the checkpoint, results and undo."""
