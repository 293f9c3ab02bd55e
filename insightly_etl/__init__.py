"""insightly-etl: bulk export and import for Insightly CRM (API v3.1)."""

__version__ = "0.1.0"
