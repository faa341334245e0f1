"""orderwatch: watches orders in the systems a company already runs and routes exceptions to their owners."""

__version__ = "0.1.0"
