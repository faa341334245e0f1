"""Connectors: read the systems a company already runs, emit canonical change records."""

from connectors.base import BookmarkStore, Connector, Notice, PollResult
from connectors.config import ConnectorConfig, Context, build_connector, load_config
from connectors.debezium import DebeziumConfig, DebeziumConnector
from connectors.spreadsheet import SpreadsheetConfig, SpreadsheetConnector
from connectors.sql import SqlConfig, SqlConnector
from connectors.webhook import WebhookConfig, WebhookConnector

__all__ = [
    "BookmarkStore",
    "Connector",
    "ConnectorConfig",
    "Context",
    "DebeziumConfig",
    "DebeziumConnector",
    "Notice",
    "PollResult",
    "SpreadsheetConfig",
    "SpreadsheetConnector",
    "SqlConfig",
    "SqlConnector",
    "WebhookConfig",
    "WebhookConnector",
    "build_connector",
    "load_config",
]
