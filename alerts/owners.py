"""The owners directory: people and teams, who manages whom, how to reach each of them.

An alert's `owner` (a field of the order, e.g. the buyer) is looked up here by
id or alias; escalation climbs from the owner to their manager, then to
their team. The YAML shape:

    people:
      li.wei: {name: 李伟, email: li.wei@example.com, language: zh, team: purchasing,
               timezone: Asia/Shanghai, quiet_hours: "22:00-08:00", aliases: [李伟, E1001],
               chat: {dingtalk: "13800000001", wecom: LiWei, feishu: ou_1, slack: U01, teams: li.wei@example.com},
               password_hash: "$argon2id$v=19$m=65536,t=3,p=4$..."}   # optional: console password sign-in
    teams:
      purchasing: {name: 采购部, manager: wang.fang, email: purchasing@example.com, aliases: [采购]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.quiet import QuietHours, parse_range
from alerts.yamlcheck import (
    Problems,
    as_map,
    check_keys,
    get_choice,
    get_str,
    get_str_list,
    pos_at,
)
from orderwatch.yamlsrc import Map

LANGUAGES = ("zh", "en")
CHAT_KINDS = ("dingtalk", "wecom", "feishu", "slack", "teams")
_PERSON_KEYS = {"name", "email", "language", "timezone", "quiet_hours", "team", "manager", "chat",
                "receivers", "aliases", "password_hash"}
_TEAM_KEYS = {"name", "email", "language", "timezone", "manager", "members", "receivers", "aliases", "chat"}


@dataclass(frozen=True)
class Recipient:
    """Someone a notification is addressed to: a person or a team (its mailbox, its members)."""

    kind: str  # "person" | "team"
    id: str
    name: str
    emails: tuple[str, ...] = ()
    language: str = "en"
    timezone: str = "UTC"
    chat: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    receivers: tuple[str, ...] = ()
    quiet: QuietHours | None = field(default=None, hash=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "emails": list(self.emails),
                "language": self.language, "timezone": self.timezone, "chat": dict(self.chat)}


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str | None = None
    language: str = "en"
    timezone: str = "UTC"
    quiet: QuietHours | None = None
    team: str | None = None
    manager: str | None = None
    chat: dict[str, str] = field(default_factory=dict)
    receivers: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    # argon2id hash for the console's password sign-in (`orderwatch alerts hash-password`); None: links only
    password_hash: str | None = field(default=None, repr=False)

    def recipient(self) -> Recipient:
        return Recipient("person", self.id, self.name, (self.email,) if self.email else (), self.language,
                         self.timezone, dict(self.chat), self.receivers, self.quiet)


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    manager: str | None = None
    email: str | None = None
    language: str | None = None
    timezone: str = "UTC"
    members: tuple[str, ...] = ()
    receivers: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    chat: dict[str, str] = field(default_factory=dict)


@dataclass
class Directory:
    people: dict[str, Person] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    default_language: str = "en"

    def __post_init__(self) -> None:
        self._person_alias = {a.casefold(): p.id for p in self.people.values()
                              for a in (p.id, *p.aliases, *((p.email,) if p.email else ()))}
        self._team_alias = {a.casefold(): t.id for t in self.teams.values() for a in (t.id, *t.aliases)}

    def person(self, name: str | None) -> Person | None:
        """A person by id or alias (case does not matter: ERPs spell names many ways)."""
        if not name:
            return None
        pid = self._person_alias.get(str(name).strip().casefold())
        return self.people.get(pid) if pid else None

    def canonical(self, owner: str | None) -> str | None:
        """The one name of an owner however the ERP wrote it (id, alias, login, email): the person's
        id when the directory knows them, else the value as given (an unknown owner stays visible)."""
        if owner is None or not str(owner).strip():
            return None
        person = self.person(owner)
        return person.id if person else str(owner).strip()

    def display(self, owner: str | None, language: str = "en") -> str:
        """How people see an owner: the person's name, or the raw value marked unknown."""
        if not owner:
            return "-"
        person = self.person(owner)
        if person is not None:
            return person.name
        return f"{owner}(未知)" if language == "zh" else f"{owner} (unknown)"

    def team(self, name: str | None) -> Team | None:
        if not name:
            return None
        tid = self._team_alias.get(str(name).strip().casefold())
        return self.teams.get(tid) if tid else None

    def team_of(self, person: Person | None) -> Team | None:
        if person is None:
            return None
        if person.team:
            return self.teams.get(person.team)
        return next((t for t in self.teams.values() if person.id in t.members), None)

    def manager_of(self, person: Person | None, team: Team | None = None) -> Person | None:
        """A person's own manager, else their team's manager (never themselves)."""
        candidates = [person.manager if person else None, (team or self.team_of(person) or Team("", "")).manager]
        for pid in candidates:
            if pid and (person is None or pid != person.id):
                return self.people.get(pid)
        return None

    def team_recipient(self, team: Team) -> Recipient:
        """A team as an addressee: its own mailbox, else every member's address."""
        members = [self.people[m] for m in self.members_of(team) if m in self.people]
        emails = (team.email,) if team.email else tuple(p.email for p in members if p.email)
        language = team.language or self.default_language  # the file's `language`, not a member's
        return Recipient("team", team.id, team.name, emails, language, team.timezone, dict(team.chat),
                         team.receivers, None)

    def members_of(self, team: Team) -> list[str]:
        return sorted(set(team.members) | {p.id for p in self.people.values() if p.team == team.id})


def _zone(node: Map, problems: Problems, default: str) -> str:
    name = get_str(node, "timezone", problems, default) or default
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.add(node.at("timezone"), f"unknown time zone {name!r} (use an IANA name like Asia/Shanghai)")
        return "UTC"
    return name


def _chat(node: Map, problems: Problems) -> dict[str, str]:
    if "chat" not in node:
        return {}
    chat = as_map(node["chat"], node.at("chat"), "chat", problems)
    if chat is None:
        return {}
    check_keys(chat, CHAT_KINDS, problems, "chat")
    return {k: str(v) for k, v in chat.items() if k in CHAT_KINDS and v is not None}


def _quiet(node: Map, problems: Problems, zone: str) -> QuietHours | None:
    if "quiet_hours" not in node:
        return None
    texts = get_str_list(node, "quiet_hours", problems)
    ranges = []
    for text in texts:
        try:
            ranges.append(parse_range(text))
        except ValueError as exc:
            problems.add(node.at("quiet_hours"), f"quiet_hours: {exc}")
    return QuietHours(tuple(ranges), ZoneInfo(zone)) if ranges else None


def _password_hash(node: Map, pid: str, problems: Problems) -> str | None:
    value = get_str(node, "password_hash", problems)
    if value is not None and not value.startswith(("$argon2id$", "$argon2i$")):
        problems.add(node.at("password_hash"), f"password_hash of {pid} is not an argon2 hash: make one with "
                     "`orderwatch alerts hash-password` (never write the password itself here)")
        return None
    return value


def parse_directory(doc: Map, problems: Problems, default_language: str, default_timezone: str) -> Directory:
    """Read `people:` and `teams:`; cross-references (team, manager, members) are checked."""
    check_keys(doc, {"people", "teams"}, problems, "the owners directory")
    people: dict[str, Person] = {}
    teams: dict[str, Team] = {}
    raw_people = as_map(doc.get("people", Map()), doc.at("people"), "people", problems) if "people" in doc else None
    for pid, entry in (raw_people or {}).items():
        node = as_map(entry, raw_people.at(pid), f"person {pid}", problems)  # type: ignore[union-attr]
        if node is None:
            continue
        check_keys(node, _PERSON_KEYS, problems, f"person {pid}")
        zone = _zone(node, problems, default_timezone)
        email = get_str(node, "email", problems)
        if email is not None and "@" not in email:
            problems.add(node.at("email"), f"email of {pid} is not an address: {email!r}")
        people[pid] = Person(
            id=pid, name=get_str(node, "name", problems, pid) or pid, email=email,
            language=get_choice(node, "language", LANGUAGES, problems, default_language),
            timezone=zone, quiet=_quiet(node, problems, zone), team=get_str(node, "team", problems),
            manager=get_str(node, "manager", problems), chat=_chat(node, problems),
            receivers=tuple(get_str_list(node, "receivers", problems)),
            aliases=tuple(get_str_list(node, "aliases", problems)),
            password_hash=_password_hash(node, pid, problems),
        )
    raw_teams = as_map(doc["teams"], doc.at("teams"), "teams", problems) if "teams" in doc else None
    for tid, entry in (raw_teams or {}).items():
        node = as_map(entry, raw_teams.at(tid), f"team {tid}", problems)  # type: ignore[union-attr]
        if node is None:
            continue
        check_keys(node, _TEAM_KEYS, problems, f"team {tid}")
        language = get_choice(node, "language", LANGUAGES, problems, "") if "language" in node else None
        teams[tid] = Team(
            id=tid, name=get_str(node, "name", problems, tid) or tid, manager=get_str(node, "manager", problems),
            email=get_str(node, "email", problems), language=language or None,
            timezone=_zone(node, problems, default_timezone),
            members=tuple(get_str_list(node, "members", problems)),
            receivers=tuple(get_str_list(node, "receivers", problems)),
            aliases=tuple(get_str_list(node, "aliases", problems)), chat=_chat(node, problems),
        )
    _check_references(raw_people, raw_teams, people, teams, problems)
    return Directory(people, teams, default_language)


def _check_references(raw_people: Map | None, raw_teams: Map | None, people: dict[str, Person],
                      teams: dict[str, Team], problems: Problems) -> None:
    known_people = ", ".join(sorted(people)) or "(none)"
    for p in people.values():
        node = raw_people[p.id] if raw_people is not None else None
        if p.team and p.team not in teams:
            problems.add(pos_at(node, "team"), f"{p.id}: team {p.team!r} is not in teams; known: "
                         f"{', '.join(sorted(teams)) or '(none)'}")
        if p.manager and p.manager not in people:
            problems.add(pos_at(node, "manager"), f"{p.id}: manager {p.manager!r} is not in people; known: {known_people}")
    for t in teams.values():
        node = raw_teams[t.id] if raw_teams is not None else None
        if t.manager and t.manager not in people:
            problems.add(pos_at(node, "manager"), f"team {t.id}: manager {t.manager!r} is not in people; known: {known_people}")
        for m in t.members:
            if m not in people:
                problems.add(pos_at(node, "members"), f"team {t.id}: member {m!r} is not in people; known: {known_people}")
