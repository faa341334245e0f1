"""The alerts HTTP API on the worker's web server, token-authenticated, in Alertmanager's JSON style.

    GET    /api/alerts                      list; filters: state, rule, owner, severity, entity, key,
                                            filter (a matcher, repeatable), limit
    GET    /api/alerts/{fingerprint}        one alert with its history (transitions and notifications)
    POST   /api/alerts/{fingerprint}/ack    {"comment": "...", "by": "..."}  acknowledge
    POST   /api/alerts/{fingerprint}/resolve {"comment": "..."}             close by hand
    GET    /api/silences                    list (?state=active|pending|expired)
    POST   /api/silences                    {"matchers": [...], "startsAt", "endsAt", "createdBy", "comment"}
    GET    /api/silences/{id}               one silence
    DELETE /api/silences/{id}               expire it now

Every request needs `Authorization: Bearer <token>` with a token from the
alerts file's `api.tokens`; the token's name is recorded as who acted
(`by` in a body is recorded alongside it). No valid token: 401. A token
without the `write` scope gets 403 for every call that changes something.

`require_tokens` puts the same check in front of every page of the worker's
web server (Faust's own ones, the order timeline, the status, any page added
later): only the paths it is told are open (/metrics, /healthz) answer without
a token, and every method but GET/HEAD/OPTIONS needs `write`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import faust
from aiohttp import web as aioweb
from faust.web import View

from alerts import matchers as m
from alerts.clock import Clock, from_env, now_of
from alerts.config import AlertsConfig, ApiToken, load_alerts_config
from alerts.inhibit import Labelled, inhibited
from alerts.labels import row_labels
from alerts.owners import Directory
from alerts.schema import OPEN_STATES, STATES
from alerts.silence import SILENCE_STATES, SilenceError, Silences
from alerts.store import AlertStore, StoredAlert
from orderwatch.config import Settings

MAX_LIST = 5000
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # every other method changes something: `write`
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="orderwatch"'}


class Unauthorized(Exception):
    """No valid token: HTTP 401."""


class Forbidden(Exception):
    """A valid token without the scope the call needs: HTTP 403."""


def scope_of(method: str) -> str:
    return "read" if method.upper() in READ_METHODS else "write"


def alert_json(a: StoredAlert, inhibited_by: str | None = None, directory: Directory | None = None) -> dict[str, Any]:
    """An alert: the stored fields, plus Alertmanager-style labels, annotations and status; with the
    owners directory, `owner` is the person's id (however the ERP wrote it) and `ownerName` their name."""
    out = a.to_dict()
    am_state = "resolved" if a.state == "resolved" else "suppressed" if (a.state == "silenced" or inhibited_by) \
        else "active"
    out.update(
        labels=row_labels(a), annotations={"title": a.title, "summary": a.summary},
        startsAt=a.starts_at.isoformat(), endsAt=a.resolved_at.isoformat() if a.resolved_at else None,
        updatedAt=a.last_change.isoformat(),
        status={"state": am_state, "silencedBy": [a.silenced_by] if a.silenced_by else [],
                "inhibitedBy": [inhibited_by] if inhibited_by else [],
                "acknowledgedBy": a.acked_by},
    )
    if directory is not None:
        out["owner"] = directory.canonical(a.owner)
        out["labels"]["owner"] = out["owner"] or ""
        out["ownerName"] = directory.display(a.owner)
    return out


class AlertsApi:
    """The handlers; `attach` registers them as pages on a Faust app."""

    def __init__(self, store: AlertStore, config: AlertsConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.silences = Silences(store)

    # --- authentication -----------------------------------------------------------

    def token_of(self, request: Any) -> ApiToken:
        """The request's token; Unauthorized if there is no valid one."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send Authorization: Bearer <token>")
        if not self.config.tokens:
            raise Unauthorized("the API is disabled: the alerts file has no api.tokens")
        found = None
        for t in self.config.tokens:  # every token compared, in constant time: no timing hint
            if hmac.compare_digest(t.token.encode(), token.strip().encode()):
                found = t
        if found is None:
            raise Unauthorized("invalid token")
        return found

    def authorize(self, request: Any, scope: str) -> str:
        """The name of the request's token if it has `scope`; Unauthorized (401) or Forbidden (403)."""
        token = self.token_of(request)
        if not token.allows(scope):
            raise Forbidden(f"token {token.name!r} has the scopes {', '.join(sorted(token.scopes))}; "
                            f"{request.method} {request.path} needs {scope!r}")
        return token.name

    @staticmethod
    def unauthorized(web: Any, exc: Unauthorized | Forbidden) -> Any:
        if isinstance(exc, Forbidden):
            return web.json({"error": str(exc)}, status=403)
        return web.json({"error": str(exc)}, status=401, headers=_CHALLENGE)

    async def guarded(self, web: Any, request: Any, handler: Callable[..., Any], *args: Any) -> Any:
        try:
            actor = self.authorize(request, scope_of(request.method))
        except (Unauthorized, Forbidden) as exc:
            return self.unauthorized(web, exc)
        try:
            return await handler(web, request, actor, *args)
        except (ValueError, SilenceError) as exc:
            return web.json({"error": str(exc)}, status=400)

    # --- alerts ---------------------------------------------------------------------

    def _inhibited(self) -> dict[str, str]:
        if not self.config.inhibit_rules:
            return {}
        open_alerts = self.store.list(state=list(OPEN_STATES))
        return inhibited(self.config.inhibit_rules, [Labelled(a.fingerprint, row_labels(a)) for a in open_alerts])

    async def list_alerts(self, web: Any, request: Any, actor: str) -> Any:
        q = request.query
        states = [s for v in q.getall("state", []) for s in v.split(",") if s]
        unknown = set(states) - set(STATES)
        if unknown:
            raise ValueError(f"unknown state {', '.join(sorted(unknown))}; states: {', '.join(STATES)}")
        filters = [m.parse(f) for f in q.getall("filter", [])]
        text = q.get("limit", str(MAX_LIST))
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"limit is a whole number from 1 to {MAX_LIST}, got {text!r}")
        limit = min(int(text), MAX_LIST)

        def load() -> list[dict[str, Any]]:
            d = self.config.directory
            alerts = self.store.list(state=states or None, rule=q.get("rule"),
                                     severity=q.get("severity"), entity=q.get("entity"), key=q.get("key"))
            if q.get("owner"):  # the person, by any of their names
                alerts = [a for a in alerts if d.canonical(a.owner) == d.canonical(q["owner"])]
            muted = self._inhibited()
            chosen = [a for a in alerts
                      if m.match_all(filters, {**row_labels(a), "owner": d.canonical(a.owner) or ""})][:limit]
            return [alert_json(a, muted.get(a.fingerprint), d) for a in chosen]

        return web.json(await asyncio.to_thread(load))

    async def show_alert(self, web: Any, request: Any, actor: str, fingerprint: str) -> Any:
        def load() -> dict[str, Any] | None:
            a = self.store.get(fingerprint)
            if a is None:
                return None
            out = alert_json(a, self._inhibited().get(a.fingerprint), self.config.directory)
            out["history"] = [e.to_dict() for e in self.store.events(fingerprint)]
            return out

        found = await asyncio.to_thread(load)
        if found is None:
            return web.json({"error": f"no alert {fingerprint}"}, status=404)
        return web.json(found)

    async def _act(self, web: Any, request: Any, actor: str, fingerprint: str, action: str) -> Any:
        body = await _body(request)
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ValueError("comment is text")
        by = body.get("by")
        # The token says which system acted; `by` says for which person (both are kept).
        who = f"{by} (via {actor})" if isinstance(by, str) and by.strip() and by != actor else actor
        at = now_of(self.clock)
        act = self.store.acknowledge if action == "ack" else self.store.resolve
        changed = await asyncio.to_thread(act, [fingerprint], who, comment, at)
        current = await asyncio.to_thread(self.store.get, fingerprint)
        if current is None:
            return web.json({"error": f"no alert {fingerprint}"}, status=404)
        if not changed:
            return web.json({"error": f"alert {fingerprint} is {current.state}: nothing to {action}",
                             "alert": alert_json(current, directory=self.config.directory)}, status=409)
        return web.json(alert_json(current, directory=self.config.directory))

    async def ack(self, web: Any, request: Any, actor: str, fingerprint: str) -> Any:
        return await self._act(web, request, actor, fingerprint, "ack")

    async def resolve(self, web: Any, request: Any, actor: str, fingerprint: str) -> Any:
        return await self._act(web, request, actor, fingerprint, "resolve")

    # --- silences ---------------------------------------------------------------------

    async def list_silences(self, web: Any, request: Any, actor: str) -> Any:
        now = now_of(self.clock)
        state = request.query.get("state")
        if state is not None and state not in SILENCE_STATES:
            raise ValueError(f"unknown silence state {state}; states: {', '.join(SILENCE_STATES)}")
        found = await asyncio.to_thread(self.silences.list, now, state)
        return web.json([s.to_dict(now) for s in found])

    async def add_silence(self, web: Any, request: Any, actor: str) -> Any:
        body = await _body(request)
        now = now_of(self.clock)
        raw = body.get("matchers")
        if not isinstance(raw, list) or not raw:
            raise ValueError("matchers is a non-empty list of {name, value, isRegex, isEqual}")
        parsed = [y for x in raw for y in ([m.from_dict(x)] if isinstance(x, dict) else m.parse_list(x))]
        starts = _time(body.get("startsAt"), now, "startsAt")
        if body.get("endsAt") is not None:
            ends = _time(body["endsAt"], now, "endsAt")
        elif "duration" in body:
            from alerts.yamlcheck import parse_duration

            ends = starts + timedelta(seconds=parse_duration(body["duration"]))
        else:
            raise ValueError("give endsAt (ISO 8601) or duration (e.g. 2h)")
        by, comment = body.get("createdBy") or actor, body.get("comment", "")
        if not isinstance(by, str) or not isinstance(comment, str):
            raise ValueError("createdBy and comment are text")  # noqa: TRY004 - answered as 400, as every bad field
        who = f"{by} (via {actor})" if by != actor else actor
        silence = await asyncio.to_thread(self.silences.add, parsed, starts, ends, who, comment, now)
        return web.json({"silenceID": silence.id, "silence": silence.to_dict(now)})

    async def show_silence(self, web: Any, request: Any, actor: str, silence_id: str) -> Any:
        found = await asyncio.to_thread(self.silences.get, silence_id)
        if found is None:
            return web.json({"error": f"no silence {silence_id}"}, status=404)
        return web.json(found.to_dict(now_of(self.clock)))

    async def expire_silence(self, web: Any, request: Any, actor: str, silence_id: str) -> Any:
        now = now_of(self.clock)
        found = await asyncio.to_thread(self.silences.expire, silence_id, now)
        if found is None:
            return web.json({"error": f"no silence {silence_id}"}, status=404)
        return web.json(found.to_dict(now))

    # --- the order timeline -------------------------------------------------------------

    async def order_page(self, web: Any, request: Any, entity: str, key: str, state: Mapping[str, Any] | None,
                         not_here: str | None = None) -> Any:
        """The order's state (from the engine) with its alerts and their history: the audit trail.

        Needs a token with `read`, as every page with order or alert data.
        """
        try:
            self.authorize(request, "read")
        except (Unauthorized, Forbidden) as exc:
            return self.unauthorized(web, exc)
        if state is None:
            return web.json({"error": not_here or f"{entity} {key} is not held by this worker"}, status=404)
        alerts = await asyncio.to_thread(self.order_alerts, entity, key)
        return web.json({**state, "alerts": alerts})

    def order_alerts(self, entity: str, key: str) -> list[dict[str, Any]]:
        """Every alert an order has had, each with its history (blocking)."""
        out = []
        for a in self.store.list(entity=entity, key=key):
            doc = alert_json(a, directory=self.config.directory)
            doc["history"] = [e.to_dict() for e in self.store.events(a.fingerprint)]
            out.append(doc)
        return out


async def _body(request: Any) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body is a JSON object")  # noqa: TRY004 - a client mistake: HTTP 400
    return body


def _time(value: Any, default: datetime, name: str) -> datetime:
    if value is None:
        return default
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name} is an ISO 8601 time with offset, not {value!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"{name} needs a UTC offset (e.g. 2025-03-05T08:00:00+08:00)")
    return dt


Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def faust_pages_off(app: faust.App) -> None:
    """Turn off Faust's built-in pages (/table/<table>/<key>/ serves whole order states, /router/,
    /graph/, the statistics at /, /performance/). Call before any page is added: the web server
    object reads these settings when it is created. Faust then serves {"status": "OK"} at /."""
    if "web" in app.__dict__:
        raise RuntimeError("faust_pages_off must run before the first page is added")
    for setting in ("web_router_enabled", "web_tables_enabled", "web_graph_enabled", "web_stats_enabled",
                    "web_metrics_enabled"):
        setattr(app.conf, setting, False)


Guard = Callable[[aioweb.Request, Handler], Awaitable[aioweb.StreamResponse]]


def require_tokens(app: faust.App, api: AlertsApi, open_paths: Collection[str],
                   guarded_by: Mapping[str, Guard] | None = None) -> None:
    """Answer every request to the app's web server 401 without a valid token (403 without the scope
    its method needs), except the paths in `open_paths`, before any page handler runs. Unknown
    paths too: nobody without a token learns which pages exist. `guarded_by` hands the paths
    under a prefix to another guard (the console's: a session or a token, console/web.py)."""
    allowed = frozenset(open_paths)
    others = dict(guarded_by or {})

    @aioweb.middleware
    async def check_token(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        for prefix, guard in others.items():
            if request.path == prefix or request.path.startswith(prefix + "/"):
                return await guard(request, handler)
        if request.path not in allowed:
            try:
                api.authorize(request, scope_of(request.method))
            except Unauthorized as exc:
                return aioweb.json_response({"error": str(exc)}, status=401, headers=_CHALLENGE)
            except Forbidden as exc:
                return aioweb.json_response({"error": str(exc)}, status=403)
        return await handler(request)

    app.web.web_app.middlewares.append(check_token)  # type: ignore[attr-defined]


def attach(app: faust.App, store: AlertStore, settings: Settings, config: AlertsConfig | None = None,
           clock: Clock | None = None) -> AlertsApi:
    """Register the alerts API on the worker's Faust web server; returns it (for `order_page`)."""
    api = AlertsApi(store, config if config is not None else load_alerts_config(settings.alerts),
                    clock or from_env())
    g = api.guarded

    class AlertsView(View):
        async def get(self, request: Any) -> Any:
            return await g(self, request, api.list_alerts)

    class AlertView(View):
        async def get(self, request: Any, fingerprint: str) -> Any:
            return await g(self, request, api.show_alert, fingerprint)

    class AckView(View):
        async def post(self, request: Any, fingerprint: str) -> Any:
            return await g(self, request, api.ack, fingerprint)

    class ResolveView(View):
        async def post(self, request: Any, fingerprint: str) -> Any:
            return await g(self, request, api.resolve, fingerprint)

    class SilencesView(View):
        async def get(self, request: Any) -> Any:
            return await g(self, request, api.list_silences)

        async def post(self, request: Any) -> Any:
            return await g(self, request, api.add_silence)

    class SilenceView(View):
        async def get(self, request: Any, silence_id: str) -> Any:
            return await g(self, request, api.show_silence, silence_id)

        async def delete(self, request: Any, silence_id: str) -> Any:
            return await g(self, request, api.expire_silence, silence_id)

    for path, view in (("/api/alerts", AlertsView), ("/api/alerts/{fingerprint}", AlertView),
                       ("/api/alerts/{fingerprint}/ack", AckView), ("/api/alerts/{fingerprint}/resolve", ResolveView),
                       ("/api/silences", SilencesView), ("/api/silences/{silence_id}", SilenceView)):
        app.page(path, name=f"alerts.{view.__name__}")(view)
    return api
