"""What a fact carries: the contract between the compiler and the engine that builds facts.

engine.compiler fills a FactSpec per entity from the rules; engine.facts builds each
state's fact from it and finds the state's next deadline from its flips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.calendar import BusinessCalendar, default
from engine.conditions import ChangeSpec, Cmp
from engine.expr import Expr
from engine.pattern import Pattern

NOW = "now__t"
NOW_B = "now__b"


def time_key(field: str, business: bool = False) -> str:
    return f"{field}__b" if business else f"{field}__t"


@dataclass(frozen=True, slots=True)
class Flip:
    """A time comparison `prop op now + offset`: its truth flips when now + offset reaches prop.

    `guards` names the guard rules (see `guard`) of the rules that use it: the flip matters
    only while one of them matches; None means it always matters."""

    prop: str
    offset: float
    business: bool
    line: bool
    guards: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class LineCheck:
    """A comparison between two fields of one line, computed in Python into `prop`."""

    prop: str
    cmp: Cmp


@dataclass(frozen=True, slots=True)
class NegatedPattern:
    """`not contains/matches`: `prop` holds whether `field` matches (computed by durable_rules too)."""

    prop: str
    field: str
    pattern: Pattern


@dataclass(frozen=True, slots=True)
class Computed:
    """An expression the engine computes into `prop` (absent when a field is missing or a divisor is 0)."""

    prop: str
    expr: Expr


@dataclass(frozen=True)
class FactSpec:
    values: frozenset[str]
    times: frozenset[str]
    btimes: frozenset[str]
    changes: tuple[ChangeSpec, ...]
    line_values: frozenset[str]
    line_times: frozenset[str]
    line_btimes: frozenset[str]
    line_checks: tuple[LineCheck, ...]
    negated_patterns: tuple[NegatedPattern, ...]
    computed: tuple[Computed, ...]
    flips: tuple[Flip, ...]
    now_business: bool
    uses_lines: bool
    # The calendar `bd` counts on for this entity's rules (its seconds/from_seconds are the
    # plain Monday–Friday arithmetic unless a rule names another calendar).
    calendar: BusinessCalendar = field(default_factory=default)

    def __post_init__(self) -> None:
        # (field, epoch property or None, business property or None), for building facts quickly.
        object.__setattr__(self, "time_props", tuple(
            (name, time_key(name) if name in self.times else None, time_key(name, True) if name in self.btimes else None)
            for name in sorted(self.times | self.btimes)))
        object.__setattr__(self, "line_time_props", tuple(
            (name, time_key(name) if name in self.line_times else None,
             time_key(name, True) if name in self.line_btimes else None)
            for name in sorted(self.line_times | self.line_btimes)))
