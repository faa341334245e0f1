"""The label set that matchers see (routes, silences, inhibition): the rule's labels plus identity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def alert_labels(rule: str, entity: str, key: str, severity: str, owner: str | None,
                 labels: Mapping[str, str] | None) -> dict[str, str]:
    """`alertname`/`rule`, `entity`, `key`, `severity` and `owner` always exist; a rule's own
    labels (family, supplier, department…) come first and cannot override them."""
    out = {str(k): "" if v is None else str(v) for k, v in (labels or {}).items()}
    out.update(alertname=rule, rule=rule, entity=entity, key=key, severity=severity, owner=owner or "")
    return out


def row_labels(row: Any) -> dict[str, str]:
    """The labels of a stored alert (an AlertRow or a StoredAlert)."""
    return alert_labels(row.rule, row.entity, row.key,
                        row.severity, row.owner, row.labels)
