"""The alerts HTTP API as registered on a Faust app's web server, over real HTTP.

`alerts.api.attach` adds the pages to the Faust app the worker serves; here
the app's aiohttp application is served on a free port without a broker,
and requested with urllib like any client would.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest

from alerts.api import attach
from alerts.store import AlertStore
from orderwatch.broker import free_port
from orderwatch.config import Settings
from tests.alerts_helpers import Clock, config, event

TOKEN = "s3cret-token-for-tests"
READ_TOKEN = "read-only-token-for-tests"


class Server:
    def __init__(self, app: faust.App, port: int | None = None) -> None:
        import asyncio

        from aiohttp import web

        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app.web.web_app)

        async def start() -> None:
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def call(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method, data=data)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Server, AlertStore, Any, Clock]]:
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    store.apply([event("PO-1"), event("PO-2", labels={"supplier": "Nordic Steel"}),
                 event("SUP-ACME", rule="supplier-shutdown", labels={"family": "supplier"})])
    cfg = config(f"""
api:
  tokens:
    - {{name: erp-portal, token: {TOKEN}}}
    - {{name: wall-screen, token: {READ_TOKEN}, scopes: [read]}}
inhibit_rules:
  - {{source_matchers: [rule="supplier-shutdown"], target_matchers: [family="delay"], equal: [supplier]}}
""")
    clock = Clock()
    app = faust.App(f"api-test-{free_port()}", broker="kafka://127.0.0.1:1", web_enabled=True)
    handle = attach(app, store, Settings(), config=cfg, clock=clock)
    server = Server(app)
    try:
        yield server, store, handle, clock
    finally:
        server.close()
        store.close()


def test_no_valid_token_is_401_everywhere(api: Any) -> None:
    server, *_ = api
    fp = event("PO-1").fingerprint
    for method, path in (("GET", "/api/alerts"), ("GET", f"/api/alerts/{fp}"), ("POST", f"/api/alerts/{fp}/ack"),
                         ("POST", f"/api/alerts/{fp}/resolve"), ("GET", "/api/silences"),
                         ("POST", "/api/silences"), ("DELETE", "/api/silences/x")):
        for token in (None, "wrong-token-wrong-token"):
            status, body = server.call(method, path, {} if method == "POST" else None, token)
            assert status == 401, (method, path, token)
            assert body["error"] in ("send Authorization: Bearer <token>", "invalid token")


def test_a_read_token_reads_and_every_change_is_403_with_the_reason(api: Any) -> None:
    server, store, *_ = api
    fp = event("PO-1").fingerprint
    assert server.call("GET", "/api/alerts", token=READ_TOKEN)[0] == 200
    assert server.call("GET", f"/api/alerts/{fp}", token=READ_TOKEN)[0] == 200
    assert server.call("GET", "/api/silences", token=READ_TOKEN)[0] == 200
    silence = {"matchers": ['supplier="Acme Bearings"'], "duration": "1h", "comment": "stocktake"}
    for method, path, body in (("POST", f"/api/alerts/{fp}/ack", {}), ("POST", f"/api/alerts/{fp}/resolve", {}),
                               ("POST", "/api/silences", silence), ("DELETE", "/api/silences/x", None)):
        status, answer = server.call(method, path, body, READ_TOKEN)
        assert status == 403, (method, path)
        assert answer["error"] == f"token 'wall-screen' has the scopes read; {method} {path} needs 'write'"
    assert store.get(fp).state == "firing"
    assert server.call("GET", "/api/silences", token=READ_TOKEN)[1] == []


def test_pages_behind_require_tokens_need_one_and_a_worker_without_tokens_serves_none(tmp_path: Path) -> None:
    from alerts.api import faust_pages_off, require_tokens

    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    app = faust.App(f"api-guard-{free_port()}", broker="kafka://127.0.0.1:1", web_enabled=True)
    faust_pages_off(app)
    handle = attach(app, store, Settings(), config=config(""), clock=Clock())  # no api.tokens
    require_tokens(app, handle, open_paths=["/healthz"])

    @app.page("/healthz")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/added-later")  # a page nobody thought to protect
    async def later(web: Any, request: Any) -> Any:
        return web.json({"secret": "order data"})

    @app.page("/api/orders/{entity}/{key}")
    async def order(web: Any, request: Any, entity: str, key: str) -> Any:
        return await handle.order_page(web, request, entity, key, {"fields": {"supplier": "Acme"}})

    app.web.init_server()
    server = Server(app)
    try:
        assert server.call("GET", "/healthz", token=None) == (200, {"status": "ok"})
        for path in ("/added-later", "/api/orders/purchase_order/PO-1", "/table/", "/router/", "/"):
            for token in (None, TOKEN):
                status, body = server.call("GET", path, token=token)
                assert status == 401, (path, token)
                assert "order data" not in str(body) and "Acme" not in str(body)
        assert server.call("GET", "/added-later", token=TOKEN)[1]["error"] == (
            "the API is disabled: the alerts file has no api.tokens")
    finally:
        server.close()
        store.close()


def test_list_and_filter_alerts_in_alertmanager_style(api: Any) -> None:
    server, *_ = api
    status, alerts = server.call("GET", "/api/alerts?state=firing&filter=supplier%3D~%22Acme.*%22")
    assert status == 200
    assert sorted(a["key"] for a in alerts) == ["PO-1", "SUP-ACME"]
    po1 = next(a for a in alerts if a["key"] == "PO-1")
    assert po1["labels"]["alertname"] == "po-delivery-overdue"
    assert po1["status"] == {"state": "suppressed", "silencedBy": [], "inhibitedBy": [event("SUP-ACME", rule="supplier-shutdown").fingerprint],
                             "acknowledgedBy": None}
    assert server.call("GET", "/api/alerts?state=sleeping")[0] == 400
    # One matcher per `filter`, as Alertmanager's API: braces allowed, a list refused with the reason.
    status, alerts = server.call("GET", "/api/alerts?state=firing&filter=%7Bsupplier%3D~%22Acme.%2A%22%7D")
    assert status == 200 and sorted(a["key"] for a in alerts) == ["PO-1", "SUP-ACME"]
    status, body = server.call("GET", "/api/alerts?filter=supplier%3DAcme%2Crule%3Dx")
    assert status == 400 and "expected 1 matcher, found 2" in body["error"]
    status, body = server.call("GET", "/api/alerts?filter=supplier%3DAcme%7D")
    assert status == 400 and "0:14: }: expected opening brace" in body["error"]


def test_acknowledge_records_who_when_and_why(api: Any) -> None:
    server, _store, _, clock = api
    fp = event("PO-2").fingerprint
    status, alert = server.call("POST", f"/api/alerts/{fp}/ack", {"comment": "calling Nordic", "by": "li.wei"})
    assert status == 200 and alert["state"] == "acknowledged"
    assert alert["acked_by"] == "li.wei (via erp-portal)" and alert["acked_at"] == clock.dt.isoformat()
    status, again = server.call("POST", f"/api/alerts/{fp}/ack", {})
    assert status == 409 and "is acknowledged" in again["error"]
    status, shown = server.call("GET", f"/api/alerts/{fp}")
    assert [(h["event"], h["by"], h["comment"]) for h in shown["history"]] == [
        ("firing", "engine", None), ("acknowledged", "li.wei (via erp-portal)", "calling Nordic")]
    status, closed = server.call("POST", f"/api/alerts/{fp}/resolve", {"comment": "received"})
    assert status == 200 and closed["state"] == "resolved" and closed["resolved_by"] == "erp-portal"
    assert server.call("GET", "/api/alerts/0000000000000000")[0] == 404


def test_silences_crud(api: Any) -> None:
    server, store, _, clock = api
    status, created = server.call("POST", "/api/silences", {
        "matchers": [{"name": "supplier", "value": "Nordic.*", "isRegex": True, "isEqual": True}],
        "startsAt": clock.dt.isoformat(), "duration": "3h", "comment": "Nordic inventory count",
        "createdBy": "wang.fang"})
    assert status == 200, created
    sid = created["silenceID"]
    assert store.get(event("PO-2").fingerprint).state == "silenced"
    status, listed = server.call("GET", "/api/silences?state=active")
    assert [s["id"] for s in listed] == [sid] and listed[0]["createdBy"] == "wang.fang (via erp-portal)"
    assert server.call("GET", f"/api/silences/{sid}")[1]["comment"] == "Nordic inventory count"
    status, expired = server.call("DELETE", f"/api/silences/{sid}")
    assert status == 200 and expired["status"]["state"] == "expired"
    assert store.get(event("PO-2").fingerprint).state == "firing"
    bad = server.call("POST", "/api/silences", {"matchers": [{"name": "x", "value": ""}], "duration": "1h",
                                                "comment": "c"})
    assert bad[0] == 400 and "also match alerts without those labels" in bad[1]["error"]
    assert server.call("POST", "/api/silences", {"matchers": [], "comment": "c"})[0] == 400
    status, listed = server.call("POST", "/api/silences", {"matchers": ['{supplier="Nordic Steel",key="PO-2"}'],
                                                           "duration": "1h", "comment": "count"})
    assert status == 200 and [(x["name"], x["value"]) for x in listed["silence"]["matchers"]] == [
        ("supplier", "Nordic Steel"), ("key", "PO-2")]
    status, body = server.call("POST", "/api/silences", {"matchers": [{"name": "\udcff", "value": "x"}],
                                                         "duration": "1h", "comment": "c"})
    assert status == 400 and "label name" in body["error"]


def test_order_alerts_for_the_timeline(api: Any) -> None:
    _, store, handle, _clock = api
    store.acknowledge([event("PO-1").fingerprint], "li.wei", "chasing")
    (alert,) = handle.order_alerts("purchase_order", "PO-1")
    assert alert["rule"] == "po-delivery-overdue"
    assert [(h["event"], h["by"]) for h in alert["history"]] == [("firing", "engine"), ("acknowledged", "li.wei")]


def test_bad_query_and_body_values_are_400_with_the_reason(api: Any) -> None:
    server, *_ = api
    for query in ("limit=-1", "limit=abc", "limit=0"):
        status, body = server.call("GET", f"/api/alerts?{query}")
        assert status == 400 and body["error"].startswith("limit is a whole number"), query
    assert len(server.call("GET", "/api/alerts?limit=2")[1]) == 2
    status, body = server.call("GET", "/api/silences?state=bogus")
    assert status == 400 and "states: pending, active, expired" in body["error"]
    silence = {"matchers": ['supplier="Acme Bearings"'], "duration": "1h", "comment": "stocktake"}
    assert server.call("POST", "/api/silences", {**silence, "createdBy": ["li.wei"]})[0] == 400
    assert server.call("POST", "/api/silences", {**silence, "comment": 5})[0] == 400
    status, created = server.call("POST", "/api/silences", {**silence, "endsAt": None})  # null: not given
    assert status == 200, created


def test_the_link_in_a_message_lists_what_the_message_is_about(api: Any) -> None:
    from alerts.message import AlertItem, Notification
    from alerts.template import Renderer

    server, *_ = api

    def message(keys: list[str], group_labels: dict[str, str]) -> str:
        items = [AlertItem(fingerprint=event(k).fingerprint, rule="po-delivery-overdue", entity="purchase_order",
                           key=k, status="firing", state="firing", severity="warning", title="t", summary="s",
                           owner="li.wei", labels={}, starts_at="2025-03-03T01:00:00+00:00") for k in keys]
        n = Notification(receiver="buyers", group_key="g", group_labels=group_labels, recipient=None, language="en",
                         timezone="UTC", level=0, alerts=items, created_at="2025-03-03T01:00:00+00:00",
                         external_url="http://ow.example.com:6066/")
        return Renderer().footer(n).splitlines()[-1]

    one = message(["PO-2"], {"supplier": "Nordic Steel"})
    assert one == f"http://ow.example.com:6066/api/alerts/{event('PO-2').fingerprint}"
    assert server.call("GET", one.removeprefix("http://ow.example.com:6066"))[1]["key"] == "PO-2"
    group = message(["PO-1", "SUP-ACME"], {"supplier": "Acme Bearings"})
    status, listed = server.call("GET", group.removeprefix("http://ow.example.com:6066"))
    assert status == 200 and sorted(a["key"] for a in listed) == ["PO-1", "SUP-ACME"]
