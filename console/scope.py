"""Who sees which alert: what routing gives a person, and their team's for a manager.

A person sees an alert when they own it, when the routing tree addresses it to them (`to`,
`fallback`, or an escalation step the alert has reached), or to a team they belong to; a
manager also sees the alerts of the people and teams they manage. Somebody who is not in
the owners directory sees nothing. Machines (API tokens) see everything.
"""

from __future__ import annotations

from alerts import escalation
from alerts.config import AlertsConfig
from alerts.labels import row_labels
from alerts.owners import Directory, Person, Recipient
from alerts.recipients import AlertContext
from alerts.store import StoredAlert


def audience(config: AlertsConfig, alert: StoredAlert) -> set[str]:
    """The ids of the people who see `alert` on their console."""
    d = config.directory
    ctx = context(config, alert)
    recipients: list[Recipient] = []
    if config.route is not None:
        for route in config.route.match(ctx.labels):
            if route.to:
                recipients += ctx.resolve(route.to) or ctx.first(route.fallback)
            steps = escalation.levels(route, alert.escalate)
            for step in steps[:alert.escalation_level]:
                recipients += ctx.resolve(step.to)
    people: set[str] = {ctx.person.id} if ctx.person else set()
    for r in recipients:
        if r.kind == "person":
            people.add(r.id)
        elif r.id in d.teams:  # a team addressed by routing: its members and its manager
            team = d.teams[r.id]
            people.update(d.members_of(team))
            if team.manager:
                people.add(team.manager)
    for pid in list(people):  # managers see their people's alerts, up the chain
        people.update(_managers(d, d.people.get(pid)))
    return people


def context(config: AlertsConfig, alert: StoredAlert) -> AlertContext:
    """The alert's owner, team and labels as the dispatcher routes them."""
    ctx = AlertContext(config.directory, alert.owner, row_labels(alert))
    ctx.labels = {**ctx.labels, "owner_known": "true" if ctx.person else "false",
                  "owner_team": ctx.team.id if ctx.team else ""}
    return ctx


def _managers(d: Directory, person: Person | None) -> set[str]:
    out: set[str] = set()
    while person is not None and person.id not in out:
        boss = d.manager_of(person)
        if boss is None or boss.id in out:
            break
        out.add(boss.id)
        person = boss
    return out


def sees(config: AlertsConfig, person: str, alert: StoredAlert) -> bool:
    return person in audience(config, alert)
