"""Guards: when a time comparison can matter at all.

Each rule with time comparisons gets a guard rule — the rule with its time
comparisons left open — compiled next to it. A deadline wakes an entity only
while the guard of a rule using it holds, so a tick costs what is due, not
every date of every order (a received purchase order's expected date is no
deadline).
"""

from __future__ import annotations

from engine.conditions import All, AnyOf, Changed, Cmp, Cond, Lines, Not, Now

GUARD = "guard:"


def has_time(cond: Cond) -> bool:
    if isinstance(cond, Cmp):
        return isinstance(cond.operand, Now)
    if isinstance(cond, Changed):
        return cond.within is not None
    if isinstance(cond, Lines):
        return has_time(cond.cond)
    if isinstance(cond, Not):
        return has_time(cond.item)
    return any(has_time(item) for item in cond.items)


def guard(cond: Cond, positive: bool = True) -> Cond | bool:
    """The condition with its time comparisons left open: each is replaced by whichever truth
    value makes the whole more likely to hold. When the guard is false, no passing of time can
    make the rule hold (only a new record can), so its deadlines need not wake the entity up:
    ticks then cost what is relevant, not every date of every order."""
    if isinstance(cond, Not):
        inner = guard(cond.item, not positive)
        return (not inner) if isinstance(inner, bool) else Not(inner)
    if isinstance(cond, (All, AnyOf)):
        conj = isinstance(cond, All)
        parts: list[Cond] = []
        for item in cond.items:
            g = guard(item, positive)
            if isinstance(g, bool):
                if g != conj:
                    return g  # a false conjunct / a true disjunct decides
                continue
            parts.append(g)
        if not parts:
            return conj
        return parts[0] if len(parts) == 1 else (All(tuple(parts)) if conj else AnyOf(tuple(parts)))
    if not has_time(cond):
        return cond
    if isinstance(cond, Changed) and positive:
        return Changed(cond.spec, cond.after, None, cond.pos)  # a change must exist at all
    return positive
