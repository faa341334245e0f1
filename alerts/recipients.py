"""Recipient specs (`owner`, `manager`, `team`, `person:<id>`, `team:<id>`) → people and teams.

Resolved against the owners directory for one alert: `owner` is the
alert's owner (a field of the order); `manager` and `team` climb from there;
if the owner is unknown, they climb from the team the alert fell back to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from alerts.owners import Directory, Person, Recipient, Team
from alerts.route import expand


class AlertContext:
    """The owners-directory view of one alert."""

    def __init__(self, directory: Directory, owner: str | None, labels: Mapping[str, str]) -> None:
        self.directory = directory
        self.labels = labels
        self.person: Person | None = directory.person(owner)
        self.team: Team | None = directory.team_of(self.person)

    def resolve(self, specs: Iterable[str]) -> list[Recipient]:
        """Every recipient the specs name, without duplicates, in order."""
        out: dict[str, Recipient] = {}
        for spec in specs:
            for r in self._one(expand(spec, self.labels)):
                out.setdefault(r.ref, r)
        return list(out.values())

    def first(self, specs: Iterable[str]) -> list[Recipient]:
        """The recipients of the first spec that names anybody (for `fallback`)."""
        for spec in specs:
            found = self._one(expand(spec, self.labels))
            if found:
                if self.team is None:
                    # An unknown owner fell back to a team: escalation climbs from that team.
                    self.team = next((self.directory.team(r.id) for r in found if r.kind == "team"), None)
                return found
        return []

    def _one(self, spec: str) -> list[Recipient]:
        d = self.directory
        if spec == "owner":
            return [self.person.recipient()] if self.person else []
        if spec == "manager":
            manager = d.manager_of(self.person, self.team)
            return [manager.recipient()] if manager else []
        if spec == "team":
            return [d.team_recipient(self.team)] if self.team else []
        kind, _, ident = spec.partition(":")
        if kind in ("person", "id"):
            person = d.person(ident)
            if person:
                return [person.recipient()]
        if kind in ("team", "id"):
            team = d.team(ident)
            if team:
                return [d.team_recipient(team)]
        return []
