"""Sada's storage layer: SQLModel tables, database opening and migrations, and the Store."""

from storage.db import (
    Database,
    DatabaseUnavailable,
    NotFound,
    SchemaOutdated,
    StorageError,
    current_revision,
    display_url,
    head_revision,
    to_async_url,
    upgrade,
)
from storage.models import Answer, Contact, FlowVersion, SurveySession
from storage.repo import Store

__all__ = [
    "Answer",
    "Contact",
    "Database",
    "DatabaseUnavailable",
    "FlowVersion",
    "NotFound",
    "SchemaOutdated",
    "StorageError",
    "Store",
    "SurveySession",
    "current_revision",
    "display_url",
    "head_revision",
    "to_async_url",
    "upgrade",
]
