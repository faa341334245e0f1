"""What `connectors check` learns about a source's columns while mapping its rows.

Two things a single row cannot tell: which day/month order a date column
holds (a text like 3/5/2025 reads both ways; 12/31/2025 only month-first), and
which values a `map:` lacks. The mapping reports each cell here only when a
check asks for it (`FieldMapping(observed=…)`); a running connector never does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from connectors.dates import DateStyle

_EXAMPLES = 3


@dataclass(slots=True)
class DateOrders:
    """The date texts of one column that put day and month before the year."""

    style: DateStyle | None
    month_only: list[str] = field(default_factory=list)
    day_only: list[str] = field(default_factory=list)
    both: list[str] = field(default_factory=list)
    neither: list[str] = field(default_factory=list)

    def lines(self, field_name: str, column: str) -> list[str]:
        """What a person should know about the column, in a sentence or two."""
        counts = [(len(self.month_only), "read only month-first", self.month_only),
                  (len(self.day_only), "read only day-first", self.day_only),
                  (len(self.both), "read either way", self.both),
                  (len(self.neither), "read neither way", self.neither)]
        seen = ", ".join(f"{n} {what} (e.g. {', '.join(map(repr, texts[:_EXAMPLES]))})"
                         for n, what, texts in counts if n)
        head = f"dates of field {field_name!r} (column {column!r}): {seen}"
        order = self.style.order if self.style else None
        decided = self.style is not None and (order or self.style.formats)
        if self.month_only and self.day_only:
            advice = "the column mixes both orders: fix the source, no setting reads it whole"
        elif not decided:
            if self.month_only:
                advice = "set monthfirst: true"
            elif self.day_only:
                advice = "set dayfirst: true"
            else:
                advice = "AMBIGUOUS: every value reads either way; say which with monthfirst: true or dayfirst: true"
        elif order == "monthfirst" and self.day_only:
            advice = "monthfirst is set, but some values read only day-first: is the column day-first?"
        elif order == "dayfirst" and self.month_only:
            advice = "dayfirst is set, but some values read only month-first: is the column month-first?"
        elif self.both and not (self.month_only or self.day_only):
            advice = f"ambiguous: every value reads either way; {self.style.describe() if self.style else ''} decides"
        else:
            advice = f"consistent with {self.style.describe() if self.style else 'the setting'}"
        return [head, "  " + advice]


@dataclass(slots=True)
class Observed:
    """Per (field, column): date orders seen and map misses, for one connector's check."""

    dates: dict[tuple[str, str], DateOrders] = field(default_factory=dict)
    misses: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    defaulted: set[tuple[str, str]] = field(default_factory=set)

    def date_text(self, field_name: str, column: str, text: str, seen: tuple[bool, bool],
                  style: DateStyle | None) -> None:
        orders = self.dates.setdefault((field_name, column), DateOrders(style))
        month, day = seen
        bucket = orders.both if month and day else orders.month_only if month else \
            orders.day_only if day else orders.neither
        bucket.append(text)

    def unmapped(self, field_name: str, column: str, text: str, defaulted: bool) -> None:
        self.misses.setdefault((field_name, column), Counter())[text] += 1
        if defaulted:
            self.defaulted.add((field_name, column))

    def lines(self) -> list[str]:
        """The report: a few lines per column worth a look."""
        out: list[str] = []
        for (name, column), orders in self.dates.items():
            out.extend(orders.lines(name, column))
        for (name, column), counts in self.misses.items():
            values = ", ".join(f"{text!r} ×{n}" for text, n in counts.most_common(10))
            more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
            then = "given the default" if (name, column) in self.defaulted else "dead letters"
            out.append(f"map of field {name!r} (column {column!r}) lacks {values}{more} ({then})")
        return out
