"""API → Arrow → Parquet/CSV: schemas, conversion, atomic writers, incremental state, manifest."""

from insightly_etl.extract.export import ExportOptions, ExportResult, extract_objects

__all__ = ["ExportOptions", "ExportResult", "extract_objects"]
