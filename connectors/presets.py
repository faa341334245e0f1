"""Presets: ready-made sql entries for ERPs whose schemas are public.

`preset: odoo.purchase_order` in an sql entry brings entity, query, key,
cursor, fields, lines, actor and lookback from `presets/odoo.yaml`; keys the
entry gives itself win, and its `fields` are added to (or replace single
fields of) the preset's. The preset files are plain connector entries: read
them to see exactly what is queried.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from orderwatch.yamlsrc import Map, Pos, load_file

PRESET_DIR = Path(__file__).resolve().parent / "presets"


@cache
def presets() -> dict[str, Map]:
    """Every shipped preset by its name `<file>.<entry>` (e.g. `erpnext.sales_order`)."""
    out: dict[str, Map] = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        doc = load_file(path)
        for name, entry in (doc or {}).items():
            out[f"{path.stem}.{name}"] = entry
    return out


def apply_preset(entry: Map, problems: list[tuple[Pos, str]]) -> Map | None:
    """The entry with its preset's keys filled in (positions kept, for error messages);
    None, with the problem recorded, for an unknown preset."""
    name = entry.get("preset")
    base = presets().get(name) if isinstance(name, str) else None
    if base is None:
        known = ", ".join(presets())
        problems.append((entry.at("preset"), f"unknown preset {name!r}; known: {known}"))
        return None
    if entry.get("type") != "sql":
        problems.append((entry.at("preset"), "presets are for type sql"))
        return None
    merged = Map()
    merged.pos, merged.key_pos = entry.pos, {}
    user_source = "table" in entry or "query" in entry
    for key, value in base.items():
        if key in ("table", "query") and user_source:
            continue  # the user's own source replaces the preset's
        merged[key], merged.key_pos[key] = value, base.at(key)
    for key, value in entry.items():
        if key == "preset":
            continue
        if key == "fields" and isinstance(value, Map) and isinstance(base.get("fields"), Map):
            value = _merge_fields(base["fields"], value)
        merged[key], merged.key_pos[key] = value, entry.at(key)
    return merged


def _merge_fields(base: Map, extra: Map) -> Map:
    out = Map()
    out.pos, out.key_pos = extra.pos, {}
    for source in (base, extra):
        for key, value in source.items():
            out[key], out.key_pos[key] = value, source.at(key)
    return out
