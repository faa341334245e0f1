"""The console's HTTP side: its pages under /console on the worker's web server, and their guard.

    GET  /console/signin?t=<signed link>   start a session for the person the link names
    GET  /console/signin                   the sign-in page (with a password form when someone has a password)
    POST /console/signin                   password sign-in: person, password, csrf (the form's own token)
    GET  /console/                         my exceptions (filters: family, severity, state, supplier, customer)
    GET  /console/alerts/{fingerprint}     one alert with its history and the actions (`?do=ack`: the
                                           acknowledgement ready, as notifications link to it)
    GET  /console/orders/{entity}/{key}    the order: fields, lines, timeline, link to the ERP
    POST /console/alerts/{fingerprint}/{ack|resolve|comment|snooze|reassign}
    POST /console/signout
    GET  /console/static/{name}            the stylesheet and the script

Every page is also JSON (`?format=json` or `Accept: application/json`). Without a session or an
API token nothing answers: 302 to the sign-in page for a browser, 401 for anything else. A request
with a session changes something only with the page's CSRF token; a request with a token needs the
`write` scope, as everywhere on the worker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import faust
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from alerts import matchers as m
from alerts.api import READ_METHODS, AlertsApi, Forbidden, Unauthorized, scope_of
from alerts.clock import Clock, now_of
from alerts.config import AlertsConfig
from alerts.silence import SilenceError, Silences
from alerts.store import AlertStore
from alerts.yamlcheck import parse_duration
from console import i18n, links, orders, pages, passwords, share
from console import session as sessions
from console.pages import Viewer

PREFIX = "/console"
STATIC = ("console.css", "console.js")
ACTIONS = ("ack", "resolve", "comment", "snooze", "reassign")
FORWARDED = "X-Orderwatch-Forwarded"  # a request one worker passed to another (never passed on again)
_KEY = getattr(web, "RequestKey", None)  # typed request keys (newer aiohttp); plain names before
VIEWER: Any = _KEY("orderwatch.console.viewer", Viewer) if _KEY else "orderwatch.console.viewer"
SESSION: Any = _KEY("orderwatch.console.session", sessions.Session) if _KEY else "orderwatch.console.session"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "") and request.query.get("format") != "json"


def safe_back(value: Any) -> str:
    return links.safe_target(value if isinstance(value, str) else None)


class Console:
    def __init__(self, store: AlertStore, config: AlertsConfig, api: AlertsApi, clock: Clock,
                 locate: orders.Locate | None = None) -> None:
        self.store, self.config, self.api, self.clock = store, config, api, clock
        self.locate = locate  # where an order's state is (engine/pipeline.py `get`, or another worker)
        self.silences = Silences(store)
        self.backoff = passwords.Backoff()  # failed password tries, per person and per address (signin_form)
        self.templates = Environment(loader=PackageLoader("console", "templates"),
                                     autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)

    @property
    def secret(self) -> str:
        return self.config.console.secret

    def now(self) -> float:
        return now_of(self.clock).timestamp()

    # --- the guard: a session or a token, before any console handler runs -------------

    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in share.SHARE_PATHS and request.headers.get(share.HEADER):  # another worker asks
            asked_by = share.viewer_of(request.headers[share.HEADER], self.secret, self.now(), self.config)
            if asked_by is None or request.method not in READ_METHODS:
                return web.json_response({"error": "this share ticket is expired, altered or signed with "
                                                   "another console secret"}, status=401)
            request[VIEWER] = asked_by
            return await handler(request)
        if request.headers.get("Authorization"):  # a machine: the API's tokens and scopes
            try:
                actor = self.api.authorize(request, scope_of(request.method))
            except Unauthorized as exc:
                return web.json_response({"error": str(exc)}, status=401,
                                         headers={"WWW-Authenticate": 'Bearer realm="orderwatch"'})
            except Forbidden as exc:
                return web.json_response({"error": str(exc)}, status=403)
            request[VIEWER] = Viewer(actor)
            return await handler(request)
        if request.path == links.SIGNIN_PATH and request.method == "POST":  # the form has its own CSRF token
            return await handler(request)
        found = sessions.read(request.cookies.get(sessions.COOKIE), self.secret, self.now())
        person = self.config.directory.person(found.person) if found else None
        if found is not None and person is not None and person.id == found.person:
            if request.method not in READ_METHODS and not found.csrf_ok(self.secret, await _csrf_sent(request)):
                return web.json_response({"error": "this request has no valid CSRF token: reload the page "
                                                   "and try again"}, status=403)
            request[VIEWER], request[SESSION] = Viewer(person.id, person), found
            return await handler(request)
        if request.path == links.SIGNIN_PATH:
            return await handler(request)
        if wants_html(request) and request.method in READ_METHODS:
            return web.Response(status=302, headers={
                "Location": f"{links.SIGNIN_PATH}?{urlencode({'next': request.path_qs})}"})
        return web.json_response({"error": "sign in with the link in one of your notifications, "
                                           "or send Authorization: Bearer <token>"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="orderwatch"'})

    # --- rendering -----------------------------------------------------------------------

    def language(self, request: web.Request) -> str:
        viewer: Viewer | None = request.get(VIEWER)
        own = viewer.person.language if viewer and viewer.person else None
        return i18n.pick(request.query.get("lang"), request.cookies.get(sessions.LANG_COOKIE), own,
                         self.config.language)

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        lang = self.language(request)
        found: sessions.Session | None = request.get(SESSION)
        other = "zh" if lang == "en" else "en"
        query = {k: v for k, v in request.query.items() if k not in ("lang", "done", "fragment")}
        html = self.templates.get_template(template).render(
            t=i18n.texts(lang), lang=lang, age=lambda s: i18n.age(s, lang),
            csrf=found.csrf(self.secret) if found else "", viewer=request.get(VIEWER),
            switch_url=f"{request.path}?{urlencode({**query, 'lang': other})}", done=request.query.get("done"),
            **context)
        response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
        response.headers["Cache-Control"] = "no-store"
        if request.query.get("lang") in i18n.LANGUAGES:
            response.set_cookie(sessions.LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Lax",
                                secure=self._secure(request), path=PREFIX)
        return response

    def _secure(self, request: web.Request) -> bool:
        return request.secure or self.config.external_url.startswith("https://")

    @staticmethod
    def json(doc: Any, status: int = 200) -> web.Response:
        return web.json_response(doc, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False),
                                 headers={"Cache-Control": "no-store"})

    # --- pages ---------------------------------------------------------------------------

    async def signin(self, request: web.Request) -> web.StreamResponse:
        value = request.query.get("t")
        if not value:
            if request.get(VIEWER) is not None:  # already signed in (or a token): go on
                raise web.HTTPFound(safe_back(request.query.get("next")))
            from console import signin_form  # it builds on this module

            return signin_form.page(self, request, 401, next_page=request.query.get("next"))
        try:
            link = links.verify(value, secret=self.secret, now=self.now())
        except ValueError as exc:  # BadLink, or no secret configured
            return self.render(request, "signin.html", status=401, reason=str(exc))
        person = self.config.directory.person(link.person)
        if person is None or person.id != link.person:
            return self.render(request, "signin.html", status=401,
                               reason=f"{link.person} is not in the owners directory")
        response = self.start_session(request, person.id, link.target, 302)
        response.headers["Referrer-Policy"] = "no-referrer"  # the link is a credential until it expires
        return response

    def start_session(self, request: web.Request, person: str, target: str, status: int) -> web.Response:
        started = sessions.start(person, self.now(), self.config.console.session_ttl)
        response = web.Response(status=status, headers={"Location": target})
        response.set_cookie(sessions.COOKIE, sessions.cookie_value(started, self.secret),
                            max_age=int(self.config.console.session_ttl), httponly=True, samesite="Lax",
                            secure=self._secure(request), path=PREFIX)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def signout(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(status=303, headers={"Location": links.SIGNIN_PATH})
        response.del_cookie(sessions.COOKIE, path=PREFIX)
        return response

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{PREFIX}/")

    async def mine(self, request: web.Request) -> web.StreamResponse:
        viewer: Viewer = request[VIEWER]
        doc = await asyncio.to_thread(pages.my_exceptions, self.store, self.config, viewer, request.query,
                                      now_of(self.clock), self.language(request))
        if not wants_html(request):
            return self.json(doc)
        base = {k: v for k, v in request.query.items() if k in pages.FILTERS}
        here = f"{PREFIX}/?{urlencode(base)}" if base else f"{PREFIX}/"
        return self.render(request, "list.html" if request.query.get("fragment") else "mine.html", page=doc,
                           filters=pages.FILTERS, back=here,
                           json_url=f"{PREFIX}/?{urlencode({**base, 'format': 'json'})}",
                           fragment_url=f"{PREFIX}/?{urlencode({**base, 'fragment': '1'})}")

    async def alert(self, request: web.Request) -> web.StreamResponse:
        viewer: Viewer = request[VIEWER]
        fp = request.match_info["fingerprint"]
        doc = await asyncio.to_thread(pages.alert_page, self.store, self.config, viewer, fp, now_of(self.clock),
                                      self.language(request))
        if doc is None:
            if wants_html(request):
                return self.render(request, "missing.html", status=404)
            return self.json({"error": f"no alert {fp} for {viewer.actor}"}, status=404)
        if not wants_html(request):
            return self.json(doc)
        return self.render(request, "alert.html", a=doc["alert"], back=f"{PREFIX}/alerts/{quote(fp)}",
                           ready=request.query.get("do"))

    async def order(self, request: web.Request) -> web.StreamResponse:
        """The order page; the order's state comes from the worker that holds its partition."""
        viewer: Viewer = request[VIEWER]
        entity, key = request.match_info["entity"], request.match_info["key"]
        state, elsewhere = self.locate(f"{entity}:{key}") if self.locate else (None, None)
        if state is None and elsewhere and not request.headers.get(FORWARDED):
            return await self._forward(request, elsewhere)
        doc = await asyncio.to_thread(orders.order_page, self.store, self.config, viewer, entity, key, state,
                                      now_of(self.clock), self.language(request))
        if doc is None:
            if wants_html(request):
                return self.render(request, "missing.html", status=404)
            return self.json({"error": f"no order {entity} {key} for {viewer.actor}"}, status=404)
        if not wants_html(request):
            return self.json(doc)
        return self.render(request, "order.html", o=doc, back=request.path)

    async def _forward(self, request: web.Request, base: str) -> web.StreamResponse:
        """Ask the worker that holds the order (same secret, same session cookie or token)."""
        headers = {k: v for k, v in request.headers.items() if k in ("Cookie", "Authorization", "Accept")}
        headers[FORWARDED] = "1"
        async with aiohttp.ClientSession() as client, \
                client.get(base.rstrip("/") + request.path_qs, headers=headers,
                           timeout=aiohttp.ClientTimeout(total=10)) as answer:
            body = await answer.read()
            return web.Response(body=body, status=answer.status, content_type=answer.content_type,
                                headers={"Cache-Control": "no-store", "X-Orderwatch-Served-By": base})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        body = resources.files("console").joinpath("static", name).read_bytes()
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(body=body, content_type=kind, charset="utf-8",
                            headers={"Cache-Control": "private, max-age=300"})

    # --- acting: the store's transitions, recorded under the viewer ----------------------

    async def act(self, request: web.Request) -> web.StreamResponse:
        viewer: Viewer = request[VIEWER]
        fp, action = request.match_info["fingerprint"], request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound()
        form = await _form(request)
        try:
            status, message = await asyncio.to_thread(self._act, viewer, fp, action, form)
        except (ValueError, SilenceError) as exc:
            status, message = 400, str(exc)
        if wants_html(request) and status == 200:
            back = safe_back(form.get("back"))
            raise web.HTTPSeeOther(f"{back}{'&' if '?' in back else '?'}done={action}")
        current = await asyncio.to_thread(self.store.get, fp) if status != 404 else None
        doc: dict[str, Any] = {"alert": pages.alert_doc(current, now_of(self.clock), pages.zone_of(self.config, viewer))} \
            if current is not None else {}
        if status != 200:
            doc["error"] = message
        return self.json(doc, status=status)

    def _act(self, viewer: Viewer, fp: str, action: str, form: dict[str, str]) -> tuple[int, str]:
        found = self.store.get(fp)
        if found is None or not pages.sees(self.config, viewer, found):
            return 404, f"no alert {fp} for {viewer.actor}"
        comment = (form.get("comment") or "").strip() or None
        at = now_of(self.clock)
        if action == "comment":
            if comment is None:
                raise ValueError("a comment needs some text")
            self.store.comment(fp, viewer.actor, comment, at)
            return 200, "commented"
        if action == "reassign":
            person = self.config.directory.person(form.get("to"))
            if person is None:
                raise ValueError(f"{form.get('to')!r} is not in the owners directory")
            if not self.store.reassign(fp, person.id, viewer.actor, comment, at):
                return 409, f"alert {fp} is {found.state}: only open alerts are reassigned"
            return 200, "reassigned"
        if action == "snooze":
            seconds = _duration(form)
            order = [m.make("entity", "=", found.entity), m.make("key", "=", found.key)]
            self.silences.add(order, at, at + timedelta(seconds=seconds), viewer.actor,
                              comment or f"snoozed from the console: {found.entity} {found.key}", at)
            return 200, "snoozed"
        do = self.store.acknowledge if action == "ack" else self.store.resolve
        if not do([fp], viewer.actor, comment, at):
            return 409, f"alert {fp} is {found.state}: nothing to {action}"
        return 200, action


def _duration(form: dict[str, str]) -> float:
    """Snooze length: `duration` (2h, 3d) or `amount` with `unit` (hours|days), up to 30 days."""
    if form.get("duration"):
        seconds = parse_duration(form["duration"])
    else:
        amount, unit = form.get("amount", ""), form.get("unit", "hours")
        if not amount.isdigit() or int(amount) < 1 or unit not in ("hours", "days"):
            raise ValueError("snooze for a whole number of hours or days (amount, unit), or a duration like 4h")
        seconds = int(amount) * (86400 if unit == "days" else 3600)
    if not 0 < seconds <= 30 * 86400:
        raise ValueError("snooze for up to 30 days")
    return seconds


async def _form(request: web.Request) -> dict[str, str]:
    """The request's fields: a form, or a JSON object (as the API takes)."""
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise web.HTTPBadRequest(text='{"error": "the body is not JSON"}', content_type="application/json") \
                from None
        return {str(k): str(v) for k, v in body.items() if v is not None} if isinstance(body, dict) else {}
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def _csrf_sent(request: web.Request) -> str | None:
    header = request.headers.get("X-CSRF-Token")
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get("csrf")
        return value if isinstance(value, str) else None
    return None


def peers(app: faust.App) -> list[str]:
    """The web addresses of the other workers holding table partitions (Faust's assignment)."""
    hosts = list(app.router.tables_metadata())  # empty before the first assignment
    own = urlsplit(str(app.conf.canonical_url)).netloc
    return sorted({str(h).rstrip("/") for h in hosts if urlsplit(str(h)).netloc != own})


def attach(app: faust.App, store: AlertStore, config: AlertsConfig, api: AlertsApi, clock: Clock,
           states: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
           locate: orders.Locate | None = None) -> Console:
    """Add the console's pages to the worker's web server; returns it (its `guard` protects /console).
    `states` gives the order states the worker holds (the engine's), for the analysis page; `locate`
    finds an order's state (here, or the address of the worker that holds it)."""
    from console import reports, signin_form  # they build on this module

    console = Console(store, config, api, clock, locate)
    router = app.web.web_app.router  # type: ignore[attr-defined]  # the aiohttp driver's
    router.add_get(links.SIGNIN_PATH, console.signin, name="console.signin")
    router.add_post(links.SIGNIN_PATH, lambda request: signin_form.post(console, request),
                    name="console.signin_password")
    router.add_post(f"{PREFIX}/signout", console.signout, name="console.signout")
    router.add_get(PREFIX, console.home, name="console.home")
    router.add_get(f"{PREFIX}/", console.mine, name="console.mine")
    router.add_get(PREFIX + "/alerts/{fingerprint}", console.alert, name="console.alert")
    router.add_post(PREFIX + "/alerts/{fingerprint}/{action}", console.act, name="console.act")
    router.add_get(PREFIX + "/orders/{entity}/{key}", console.order, name="console.order")
    router.add_get(PREFIX + "/static/{name}", console.static, name="console.static")
    reports.attach(router, console, states, lambda: peers(app))  # /console/team, /console/analysis(.xlsx)
    return console
