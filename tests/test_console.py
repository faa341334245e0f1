"""The owners' console over real HTTP: signed link → session → my exceptions → acting.

The worker's web server (the Faust app's aiohttp application, wired as `orderwatch worker`
wires it: the alerts API, the console, the token guard) is served on 127.0.0.1 without a
broker, and requested like a browser would: cookies kept, redirects looked at, the CSRF
token read from the page's form.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import faust
import pytest

from alerts.api import attach as attach_api
from alerts.api import faust_pages_off, require_tokens
from alerts.silence import Silences
from alerts.store import AlertStore
from console import links
from console.web import PREFIX
from console.web import attach as attach_console
from orderwatch.broker import free_port
from orderwatch.config import Settings
from tests.alerts_helpers import DAY, HOUR, T0, Clock, config, event
from tests.test_alerts_api import Server

SECRET = "console-secret-for-tests-0123456789abcdef"
TOKEN = "erp-portal-token-0123456789"
READ_TOKEN = "wall-screen-token-0123456789"
ALERTS = f"""
console: {{secret: {SECRET}, session_ttl: 2h, link_ttl: 1d}}
api:
  tokens:
    - {{name: erp-portal, token: {TOKEN}}}
    - {{name: wall-screen, token: {READ_TOKEN}, scopes: [read]}}
owners:
  people:
    li.wei: {{name: 李伟, language: zh, team: purchasing, timezone: Asia/Shanghai}}
    chen.jie: {{name: Chen Jie, language: en, team: purchasing}}
    wang.fang: {{name: 王芳, language: zh}}
    zhao.min: {{name: Zhao Min, language: en, team: warehouse}}
    nobody.else: {{name: Nobody Else, language: en}}
  teams:
    purchasing: {{name: 采购部, manager: wang.fang}}
    warehouse: {{name: 仓库}}
receivers:
  - {{name: log, type: jsonl, path: sent.jsonl}}
route:
  receivers: [log]
  to: [owner]
  routes:
    - matchers: [family="stock"]
      to: [owner, team:warehouse]
"""


@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the test looks at each redirect itself


class Browser:
    """A client that keeps cookies and sends what a browser sends (Accept: text/html)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.set_cookie: list[str] = []
        self.opener = urllib.request.build_opener(_NoRedirect)

    def go(self, method: str, path: str, form: dict[str, str] | None = None, *, html: bool = True,
           token: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        url = path if path.startswith("http") else self.base + path
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, method=method, data=data)
        if html:
            req.add_header("Accept", "text/html,application/xhtml+xml")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if self.cookies:
            req.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with self.opener.open(req, timeout=10) as resp:
                reply = Reply(resp.status, resp.headers, resp.read().decode())
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, exc.headers, exc.read().decode())
        for header in reply.headers.get_all("Set-Cookie") or []:
            self.set_cookie.append(header)
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.go("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> Reply:
        return self.go("POST", path, form, **kw)


@dataclass
class Site:
    server: Server
    store: AlertStore
    clock: Clock
    config: Any
    store_url: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def link(self, person: str, target: str = "/console/", valid_for: float = HOUR, secret: str = SECRET) -> str:
        return links.signed_url(self.base, person, target, self.clock.now + valid_for, secret=secret)

    def signed_in(self, person: str) -> Browser:
        browser = Browser(self.base)
        reply = browser.get(self.link(person))
        assert reply.status == 302, reply.text
        return browser


PO1 = event("PO-1", owner="li.wei", severity="warning", since=T0 - 2 * DAY)
PO2 = event("PO-2", owner="chen.jie", severity="critical", since=T0 - HOUR,
            labels={"supplier": "Nordic Steel"})
PO3 = event("PO-3", owner="li.wei", severity="critical", since=T0 - 3 * HOUR, labels={"customer": "Hangzhou Ltd"})
STOCK = event("SKU-9@WH1", owner="li.wei", rule="stock-shortfall", severity="warning", since=T0 - 5 * HOUR,
              labels={"family": "stock"})
ORPHAN = event("PO-9", owner="somebody-unknown", severity="info")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from serve(tmp_path, monkeypatch, ALERTS)


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alerts: str) -> Iterator[Site]:
    """The worker's web server with the API and the console for this alerts file and the alerts above."""
    monkeypatch.chdir(tmp_path)
    store_url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    store = AlertStore(store_url)
    store.apply([PO1, PO2, PO3, STOCK, ORPHAN])
    cfg = config(alerts)
    clock = Clock()
    app = faust.App(f"console-test-{free_port()}", broker="kafka://127.0.0.1:1", web_enabled=True)
    faust_pages_off(app)  # as the worker does (orderwatch/app.py _add_web)
    api = attach_api(app, store, Settings(), config=cfg, clock=clock)
    console = attach_console(app, store, cfg, api, clock)
    require_tokens(app, api, open_paths=("/healthz",), guarded_by={PREFIX: console.guard})
    server = Server(app)
    try:
        yield Site(server, store, clock, cfg, store_url)
    finally:
        server.close()
        store.close()


def keys(doc: dict[str, Any]) -> list[str]:
    return [a["key"] for a in doc["alerts"]]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def test_a_signed_link_starts_a_session_and_my_exceptions_lists_the_persons_alerts(site: Site) -> None:
    browser = Browser(site.base)
    reply = browser.get(site.link("li.wei", f"/console/alerts/{PO1.fingerprint}"))
    assert reply.status == 302 and reply.location == f"/console/alerts/{PO1.fingerprint}"
    cookie = next(c for c in browser.set_cookie if c.startswith("orderwatch_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=7200" in cookie, cookie
    assert browser.get(reply.location).status == 200

    page = browser.get("/console/")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    assert "我的异常" in page.text and "李伟" in page.text  # li.wei reads Chinese
    assert "PO-1" in page.text and "PO-3" in page.text and "PO-2" not in page.text
    mine = browser.get("/console/?format=json").json()
    # Severity first (critical), then the oldest first; only what routing gives li.wei.
    assert keys(mine) == ["PO-3", "PO-1", "SKU-9@WH1"]
    assert mine["viewer"] == {"kind": "person", "id": "li.wei", "name": "李伟", "language": "zh",
                              "team": "purchasing"}
    assert mine["total"] == 3 and mine["counts"]["severity"] == {"warning": 2, "critical": 1}
    assert mine["counts"]["family"] == {"delay": 2, "stock": 1}
    assert mine["alerts"][1]["age_seconds"] == 2 * DAY and mine["alerts"][1]["since_local"] == "2025-03-01 09:00"
    assert browser.get("/console/", html=False).json()["version"] == mine["version"]  # Accept decides too

    filtered = browser.get("/console/?format=json&family=delay&severity=warning").json()
    assert keys(filtered) == ["PO-1"] and filtered["total"] == 3 and filtered["shown"] == 1
    assert keys(browser.get("/console/?format=json&customer=Hangzhou+Ltd").json()) == ["PO-3"]
    assert keys(browser.get("/console/?format=json&state=acknowledged").json()) == []
    fragment = browser.get("/console/?fragment=1&family=stock")
    assert "SKU-9@WH1" in fragment.text and "<html" not in fragment.text  # what the script swaps in


def test_a_manager_sees_the_team_routing_adds_a_team_and_nobody_else_sees_anything(site: Site) -> None:
    manager = site.signed_in("wang.fang").get("/console/?format=json").json()
    assert keys(manager) == ["PO-3", "PO-2", "PO-1", "SKU-9@WH1"]  # her team's, not the orphan
    assert keys(site.signed_in("chen.jie").get("/console/?format=json").json()) == ["PO-2"]
    # The stock route also addresses team:warehouse.
    assert keys(site.signed_in("zhao.min").get("/console/?format=json").json()) == ["SKU-9@WH1"]
    assert keys(site.signed_in("nobody.else").get("/console/?format=json").json()) == []
    # A machine with a token sees everything.
    everything = Browser(site.base).get("/console/?format=json", token=READ_TOKEN).json()
    assert sorted(keys(everything)) == ["PO-1", "PO-2", "PO-3", "PO-9", "SKU-9@WH1"]
    assert everything["viewer"] == {"kind": "token", "id": "wall-screen"}

    li = site.signed_in("li.wei")
    assert li.get(f"/console/alerts/{PO2.fingerprint}").status == 404
    assert li.get(f"/console/alerts/{PO2.fingerprint}?format=json").status == 404
    page = li.get("/console/")
    status = li.post(f"/console/alerts/{PO2.fingerprint}/ack", {"csrf": csrf_of(page.text), "comment": "mine?"})
    assert status.status == 404 and site.store.get(PO2.fingerprint).state == "firing"


def test_acknowledging_with_a_comment_is_recorded_under_the_person(site: Site) -> None:
    browser = site.signed_in("li.wei")
    page = browser.get(f"/console/alerts/{PO1.fingerprint}")
    assert page.status == 200 and "确认" in page.text
    reply = browser.post(f"/console/alerts/{PO1.fingerprint}/ack",
                         {"csrf": csrf_of(page.text), "comment": "供应商已确认周五发货",
                          "back": f"/console/alerts/{PO1.fingerprint}"})
    assert reply.status == 303 and reply.location == f"/console/alerts/{PO1.fingerprint}?done=ack"
    stored = site.store.get(PO1.fingerprint)
    assert (stored.state, stored.acked_by, stored.ack_comment) == ("acknowledged", "li.wei", "供应商已确认周五发货")
    after = browser.get(reply.location)
    assert "已确认。" in after.text and "供应商已确认周五发货" in after.text

    shown = subprocess.run([sys.executable, "-m", "orderwatch", "alerts", "show", PO1.fingerprint[:12],
                            "--store", site.store_url], check=False, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"acknowledged\s+by li\.wei\s+— 供应商已确认周五发货", shown.stdout), shown.stdout

    # Comment, snooze and resolve: the same store, the same history, the same person.
    csrf = csrf_of(page.text)
    assert browser.post(f"/console/alerts/{PO3.fingerprint}/comment",
                        {"csrf": csrf, "comment": "asked the customer"}).status == 303
    assert browser.post(f"/console/alerts/{PO3.fingerprint}/snooze",
                        {"csrf": csrf, "amount": "2", "unit": "days"}).status == 303
    snoozes = Silences(site.store).list(site.clock.dt)
    assert [(s.created_by, [str(x) for x in s.matchers], s.ends_at - s.starts_at) for s in snoozes] == \
        [("li.wei", ['entity="purchase_order"', 'key="PO-3"'], (site.clock.dt.replace(day=5) - site.clock.dt))]
    assert browser.post(f"/console/alerts/{PO3.fingerprint}/resolve",
                        {"csrf": csrf, "comment": "delivered"}, html=False).json()["alert"]["state"] == "resolved"
    history = [(e.state, e.actor, e.comment) for e in site.store.events(PO3.fingerprint)]
    assert history[-3:] == [("commented", "li.wei", "asked the customer"),
                            ("silenced", "li.wei", "snoozed from the console: purchase_order PO-3"),
                            ("resolved", "li.wei", "delivered")]
    # Acting twice is answered, not hidden.
    again = browser.post(f"/console/alerts/{PO3.fingerprint}/resolve", {"csrf": csrf}, html=False)
    assert again.status == 409 and "is resolved" in again.json()["error"]
    assert browser.post(f"/console/alerts/{PO1.fingerprint}/comment", {"csrf": csrf}, html=False).status == 400


def test_expired_altered_foreign_and_unknown_links_are_refused(site: Site) -> None:
    def refused(url: str) -> Reply:
        browser = Browser(site.base)
        reply = browser.get(url)
        assert reply.status == 401, (url, reply.status, reply.text)
        assert "orderwatch_session" not in browser.cookies
        assert browser.get("/console/", html=False).status == 401
        return reply

    expired = site.link("li.wei", valid_for=HOUR)
    site.clock.advance(HOUR + 1)
    assert "expired" in refused(expired).text
    good = site.link("li.wei")
    value = urllib.parse.unquote(good.split("t=", 1)[1])
    payload, signature = value.split(".")
    # Someone else's name in a real link's payload: the signature no longer holds.
    forged = links.b64encode(links.b64decode(payload).replace(b"li.wei", b"wang.fang"))
    assert "altered" in refused(f"{site.base}/console/signin?t={forged}.{signature}").text
    assert "altered" in refused(f"{site.base}/console/signin?t={payload}.{signature[:-2]}xx").text
    assert "altered" in refused(site.link("li.wei", secret="another-secret-0123456789abcdefghij")).text
    assert "not in the owners directory" in refused(site.link("ex.employee")).text
    assert refused(f"{site.base}/console/signin").status == 401
    # A link can only land on a console page: anything else lands on "my exceptions".
    reply = Browser(site.base).get(site.link("li.wei", "https://evil.example/"))
    assert reply.status == 302 and reply.location == "/console/"
    assert Browser(site.base).get(site.link("li.wei", "//evil.example/console")).location == "/console/"


def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    browser = site.signed_in("li.wei")
    other = site.signed_in("li.wei")  # the same person's other session has another token
    theirs = csrf_of(other.get("/console/").text)
    for form, headers in (({"comment": "x"}, {}), ({"comment": "x", "csrf": ""}, {}),
                          ({"comment": "x", "csrf": theirs[:-1] + "A"}, {}),
                          ({"comment": "x"}, {"X-CSRF-Token": "nonsense"})):
        reply = browser.go("POST", f"/console/alerts/{PO1.fingerprint}/ack", form, headers=headers)
        assert reply.status == 403 and "CSRF" in reply.text, (form, headers, reply.status)
    assert site.store.get(PO1.fingerprint).state == "firing"
    assert browser.post("/console/signout", {}).status == 403 and browser.cookies
    # The header works as the form field does (the page's script may use it).
    mine = csrf_of(browser.get("/console/").text)
    reply = browser.go("POST", f"/console/alerts/{PO1.fingerprint}/ack", {"comment": "ok"}, html=False,
                       headers={"X-CSRF-Token": mine})
    assert reply.status == 200 and site.store.get(PO1.fingerprint).acked_by == "li.wei"


def test_no_console_page_without_a_session_or_a_token(site: Site) -> None:
    router = site.server.runner.app.router
    routes = sorted({(r.method, r.resource.canonical) for r in router.routes()
                     if r.resource is not None and r.resource.canonical.startswith(PREFIX)})
    assert ("POST", "/console/alerts/{fingerprint}/{action}") in routes and len(routes) >= 7
    samples = {"fingerprint": PO1.fingerprint, "action": "ack", "name": "console.css",
               "entity": "purchase_order", "key": "PO-1"}
    paths = [(method, re.sub(r"\{(\w+)\}", lambda m: samples[m.group(1)], pattern)) for method, pattern in routes]
    paths += [("GET", "/console/no/such/page"), ("GET", f"/console/alerts/{PO1.fingerprint}?format=json")]
    for method, path in paths:
        form = {} if method == "POST" else None
        # An API client: 401 everywhere.
        reply = Browser(site.base).go(method, path, form, html=False)
        assert reply.status == 401, (method, path, reply.status)
        assert "PO-1" not in reply.text
        # A browser: pages redirect to the sign-in page; nothing changes.
        reply = Browser(site.base).go(method, path, form)
        if method in ("GET", "HEAD") and path != links.SIGNIN_PATH and "format=json" not in path:
            assert reply.status == 302 and reply.location.startswith("/console/signin?next="), (path, reply.status)
        else:
            assert reply.status == 401, (method, path, reply.status)
    assert site.store.get(PO1.fingerprint).state == "firing"

    # A session ends: after session_ttl the cookie no longer opens anything.
    browser = site.signed_in("li.wei")
    assert browser.get("/console/").status == 200
    site.clock.advance(2 * HOUR + 1)
    assert browser.get("/console/").status == 302 and browser.get("/console/", html=False).status == 401
    # A cookie signed with another secret (or edited) is no session either.
    browser.cookies["orderwatch_session"] = browser.cookies["orderwatch_session"][:-3] + "abc"
    assert browser.get("/console/", html=False).status == 401

    # Tokens keep working for machines, with their scopes.
    machine = Browser(site.base)
    assert machine.get("/console/?format=json", token=READ_TOKEN, html=False).status == 200
    denied = machine.post(f"/console/alerts/{PO1.fingerprint}/ack", {}, token=READ_TOKEN, html=False)
    assert denied.status == 403 and "needs 'write'" in denied.json()["error"]
    assert machine.post(f"/console/alerts/{PO1.fingerprint}/ack", {"comment": "by the portal"}, token=TOKEN,
                        html=False).json()["alert"]["acked_by"] == "erp-portal"
    assert machine.get("/console/", token="wrong-token-wrong-token").status == 401


def test_the_page_follows_the_persons_language_and_switches(site: Site) -> None:
    chen = site.signed_in("chen.jie")
    page = chen.get("/console/")
    assert "My exceptions" in page.text and 'lang="en"' in page.text
    switched = chen.get("/console/?lang=zh")
    assert "我的异常" in switched.text and 'lang="zh-CN"' in switched.text
    assert "我的异常" in chen.get("/console/").text  # the choice sticks (a cookie)
    assert "My exceptions" in chen.get("/console/?lang=en").text
    li = site.signed_in("li.wei")
    assert "我的异常" in li.get("/console/").text and "严重" in li.get("/console/").text
    assert ">English<" in li.get("/console/").text  # the switch names the other language


def test_static_files_ship_with_the_package_and_need_a_session(site: Site) -> None:
    browser = site.signed_in("li.wei")
    css = browser.get("/console/static/console.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]
    assert "fetch(" in browser.get("/console/static/console.js").text
    assert browser.get("/console/static/../web.py").status == 404
    assert Browser(site.base).get("/console/static/console.css", html=False).status == 401


def test_link_for_uses_the_alerts_file(site: Site) -> None:
    cfg = config(ALERTS + "external_url: https://orderwatch.example.com\n")
    url = links.link_for(cfg, "li.wei", f"/console/alerts/{PO1.fingerprint}", site.clock.now)
    assert url.startswith("https://orderwatch.example.com/console/signin?t=")
    link = links.verify(urllib.parse.unquote(url.split("t=", 1)[1]), secret=SECRET, now=site.clock.now + DAY - 1)
    assert (link.person, link.target) == ("li.wei", f"/console/alerts/{PO1.fingerprint}")
    with pytest.raises(links.BadLink, match="expired"):
        links.verify(urllib.parse.unquote(url.split("t=", 1)[1]), secret=SECRET, now=site.clock.now + DAY)
    assert datetime.fromtimestamp(link.expires, UTC) == datetime.fromtimestamp(site.clock.now + DAY, UTC)
    with pytest.raises(ValueError, match="the console has no secret"):  # a worker without one signs nobody in
        links.verify(urllib.parse.unquote(url.split("t=", 1)[1]), secret="", now=site.clock.now)


def test_both_languages_have_every_text() -> None:
    from console.i18n import CATALOGUE

    assert set(CATALOGUE["en"]) == set(CATALOGUE["zh"])


def test_the_console_secret_comes_from_the_file_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from orderwatch.yamlsrc import SourceError

    with pytest.raises(SourceError, match=r"alerts.yaml:2:.*console secret needs at least 32 characters"):
        config("console:\n  secret: short\n")
    with pytest.raises(SourceError, match="unknown key|not a key|session_tll"):
        config(f"console: {{secret: {SECRET}, session_tll: 2h}}\n")
    monkeypatch.setenv("ORDERWATCH_CONSOLE_SECRET", SECRET)
    assert config("language: zh\n").console.secret == SECRET
    assert config("console: {link_ttl: 3d}\n").console.link_ttl == 3 * DAY
    monkeypatch.delenv("ORDERWATCH_CONSOLE_SECRET")
    assert config("language: zh\n").console.secret == ""  # nobody signs in; tokens still work
