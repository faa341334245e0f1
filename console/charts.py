"""Server-rendered SVG charts: no script, no build step; they scale to the page's width (a phone's too).

A chart is an <svg> with a viewBox and width 100%, so it shrinks with the screen instead of
making it scroll; every figure is also written as text next to it (and in the JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

COLOURS = {"delay": "#bf8700", "stock": "#8250df", "payment": "#0969da", "unapproved_change": "#cf222e"}
OTHER = ("#1a7f37", "#57606a", "#bc4c00", "#6e7781")


def colour(family: str, index: int) -> str:
    return COLOURS.get(family) or OTHER[index % len(OTHER)]


def bar(rate: float | None) -> Markup:
    """A horizontal bar for a rate (0…1); an empty track when nothing was judged."""
    width = 0.0 if rate is None else max(0.0, min(1.0, rate)) * 100
    fill = "#1a7f37" if rate is not None and rate >= 0.9 else "#bf8700" if rate is not None and rate >= 0.6 \
        else "#cf222e"
    return Markup(
        '<svg class="meter" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-hidden="true">'
        '<rect width="100" height="6" fill="#eaeef2"/>'
        f'<rect width="{width:.1f}" height="6" fill="{fill}"/></svg>')


def weekly_chart(weekly: dict[str, Any], t: Callable[[str], str]) -> Markup:
    """Stacked columns: one per week, a segment per family; a legend below."""
    weeks, families = weekly["weeks"], weekly["families"]
    totals = [sum(counts[i] for counts in families.values()) for i in range(len(weeks))]
    top = max([*totals, 1])
    w, h, pad, col = 260, 120, 14, 260 / max(len(weeks), 1)
    head = f'<svg class="chart" viewBox="0 0 {w} {h + 2 * pad}" role="img" aria-label="{escape(t("weekly"))}">'
    parts = [head]
    parts.append(f'<line x1="0" y1="{h + pad}" x2="{w}" y2="{h + pad}" stroke="#d0d7de" stroke-width=".5"/>')
    for i, week in enumerate(weeks):
        y = h + pad
        for j, (family, counts) in enumerate(families.items()):
            if not counts[i]:
                continue
            height = counts[i] / top * h
            y -= height
            parts.append(f'<rect x="{i * col + col * .15:.1f}" y="{y:.1f}" width="{col * .7:.1f}" '
                         f'height="{height:.1f}" fill="{colour(family, j)}">'
                         f'<title>{escape(week)} {escape(t(family))}: {counts[i]}</title></rect>')
        if totals[i]:
            parts.append(f'<text x="{i * col + col / 2:.1f}" y="{y - 2:.1f}" font-size="7" '
                         f'text-anchor="middle">{totals[i]}</text>')
        if (len(weeks) - 1 - i) % 2 == 0:  # every other week, ending with this one
            parts.append(f'<text x="{i * col + col / 2:.1f}" y="{h + 2 * pad - 3}" font-size="6" '
                         f'text-anchor="middle" fill="#57606a">{escape(week[-3:])}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{colour(f, j)}"></i>{escape(t(f))}</span>'
                     for j, f in enumerate(families))
    return Markup("".join(parts) + f'<p class="legend">{legend}</p>')


AGE_COLOURS = ("#bf8700", "#bc4c00", "#cf222e", "#82071e")


def stacked(order: list[str], buckets: dict[str, dict[str, float]], colours: tuple[str, ...] = AGE_COLOURS) \
        -> Markup:
    """One horizontal bar split in proportion to each bucket's amount (an ageing row), in `order`."""
    parts = [float(buckets[name]["amount"]) for name in order]
    total = sum(p for p in parts if p > 0) or 1.0
    x, rects = 0.0, []
    for i, part in enumerate(parts):
        if part <= 0:
            continue
        width = part / total * 100
        rects.append(f'<rect x="{x:.2f}" width="{width:.2f}" height="6" fill="{colours[i % len(colours)]}"/>')
        x += width
    return Markup('<svg class="meter" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-hidden="true">'
                  '<rect width="100" height="6" fill="#eaeef2"/>' + "".join(rects) + "</svg>")


def portion(value: float, top: float) -> Markup:
    """A bar for `value` against the largest of its kind (`top`), e.g. a median time."""
    width = 0.0 if top <= 0 else max(0.0, min(1.0, value / top)) * 100
    return Markup('<svg class="meter" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-hidden="true">'
                  f'<rect width="100" height="6" fill="#eaeef2"/><rect width="{width:.1f}" height="6" '
                  'fill="#0969da"/></svg>')
