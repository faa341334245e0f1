"""Connectors: read the systems a company already runs, emit canonical change records."""

from connectors.base import BookmarkStore, Connector, PollResult
from connectors.config import ConnectorConfig, build_connector, load_config
from connectors.spreadsheet import SpreadsheetConfig, SpreadsheetConnector
from connectors.sql import SqlConfig, SqlConnector

__all__ = [
    "BookmarkStore",
    "Connector",
    "ConnectorConfig",
    "PollResult",
    "SpreadsheetConfig",
    "SpreadsheetConnector",
    "SqlConfig",
    "SqlConnector",
    "build_connector",
    "load_config",
]
