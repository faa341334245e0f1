"""Imported first by every bench script: run as `python bench/X.py`, the bench folder is
first on sys.path, and bench/connectors.py would shadow the `connectors` package."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))
