"""Alerts: the lifecycle store, routing and delivery of the engine's alert transitions."""
