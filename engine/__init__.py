"""The engine: entity state, YAML rules compiled to durable_rules, deadlines, alert transitions."""
