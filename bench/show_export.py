"""Print what an export wrote: one line per file, read back with pyarrow (used by `make demo`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq


def main(directory: str) -> None:
    out = Path(directory)
    manifest = json.loads((out / "_manifest.json").read_text("utf-8"))
    print(f"{'file':<32} {'rows':>8} {'columns':>8}  high-water mark")
    for _name, entry in sorted(manifest["objects"].items()):
        path = out / entry["file"]
        if entry["format"] == "parquet":
            meta = pq.read_metadata(path)
            rows, columns = meta.num_rows, meta.num_columns
        else:
            rows, columns = entry["rows"], len(entry["schema"])
        print(f"{entry['file']:<32} {rows:>8,} {columns:>8}  {entry['high_water_mark'] or '-'}")
    links = manifest.get("links")
    if links:
        print(
            f"{links['file']:<32} {links['rows']:>8,} {'9':>8}  (every record's LINKS, one row each)"
        )
    for name, entry in sorted(manifest["objects"].items()):
        if "definition" in entry and entry["format"] == "parquet":  # a custom object
            schema = pq.read_schema(out / entry["file"])
            label = entry["definition"].get("PLURAL_LABEL") or name
            print(f"\n{name} ({label}), read back with its types:")
            for field in schema:
                print(f"  {field.name:<24} {field.type}")
    quota = manifest.get("quota") or {}
    print(f"quota left today: {quota.get('remaining')} of {quota.get('limit')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "exports")
