"""The states an alert can be in (a module of its own: the CLI needs them without SQLAlchemy)."""

OPEN_STATES = ("firing", "acknowledged", "silenced")
STATES = (*OPEN_STATES, "resolved")
