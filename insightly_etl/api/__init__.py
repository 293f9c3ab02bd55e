"""Talking to Insightly: the async client, pacing, retries, paging, the object registry."""

from insightly_etl.api.client import InsightlyClient, Page, Reply

__all__ = ["InsightlyClient", "Page", "Reply"]
