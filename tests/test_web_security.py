"""No order or alert data over HTTP without a token; a read-only token cannot change anything.

A real worker runs with an alerts file holding three tokens (read only,
write, and one written before scopes existed). The pages requested are
taken from the worker app's own route table (built the way `orderwatch
worker` builds it, Faust's built-in pages included), so a page added later
is checked without changing this test: every path without a token is 401,
except /metrics and /healthz; with the read token every state-changing
method is 403 with the reason; with a write token it works.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from orderwatch.app import build_worker
from orderwatch.config import Settings
from orderwatch.record import ChangeRecord
from tests.alerts_helpers import event
from tests.conftest import WorkerProc, wait_for
from tests.test_alerts_e2e import publish

pytestmark = pytest.mark.integration

READER = "reader-token-0123456789"
WRITER = "writer-token-0123456789"
LEGACY = "legacy-token-0123456789"  # no `scopes`: as before scopes existed, read and write
OPEN = {"/metrics", "/healthz"}
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
ALERTS_FILE = f"""
api:
  tokens:
    - {{name: wall-screen, token: {READER}, scopes: [read]}}
    - {{name: erp-portal, token: {WRITER}, scopes: [read, write]}}
    - {{name: old-script, token: {LEGACY}}}
"""


def routes(alerts: Path, app_id: str, tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path pattern) of every route the worker's web server serves, Faust's own included."""
    settings = Settings(app_id=app_id, broker="kafka://127.0.0.1:1", datadir=str(tmp_path / "routes"),
                        store=f"sqlite:///{tmp_path / 'routes.sqlite'}", alerts=str(alerts))
    worker = build_worker(settings)
    worker.app.web.init_server()  # what the worker does at start: Faust's blueprints join the table
    router = worker.app.web.web_app.router  # type: ignore[attr-defined]  # the aiohttp driver's
    found = sorted({(r.method, r.resource.canonical) for r in router.routes() if r.resource is not None})
    worker.store.close()
    return found


def fill(pattern: str, samples: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: samples.get(m.group(1), "sample"), pattern)


def call(method: str, url: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else (b"{}" if method not in READ_METHODS else None)
    req = urllib.request.Request(url, method=method, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def state(store: AlertStore, fingerprint: str) -> str | None:
    found = store.get(fingerprint)
    return found.state if found else None


def overdue_po(key: str) -> ChangeRecord:
    return ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": key, "op": "upsert",
        "ts": datetime.now(UTC).isoformat(), "seq": 1,
        "fields": {"status": "open", "expected_date": (date.today() - timedelta(days=9)).isoformat(),
                   "supplier": "Acme Bearings", "buyer": "li.wei"},
    })


def test_every_page_needs_a_token_and_a_read_token_cannot_write(
        broker: Any, app_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(ALERTS_FILE, encoding="utf-8")
    table = routes(alerts, app_id, tmp_path)
    assert ("GET", "/api/orders/{entity}/{key}") in table and ("POST", "/api/alerts/{fingerprint}/ack") in table
    assert ("GET", "/console/") in table and ("POST", "/console/alerts/{fingerprint}/{action}") in table

    monkeypatch.setenv("ORDERWATCH_ALERTS", str(alerts))
    store_url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    worker = WorkerProc(broker.url, app_id, tmp_path, store_url, token=READER)
    try:
        worker.wait_ready()
        publish(broker.bootstrap, app_id, [overdue_po("PO-1")])
        store = AlertStore(store_url)
        store.apply([event("PO-2")])  # an alert to act on
        fp = event("PO-2").fingerprint
        base = worker.url
        wait_for(lambda: call("GET", f"{base}/api/orders/purchase_order/PO-1", READER)[0] == 200, 60,
                 f"PO-1 in the engine; worker log:\n{worker.log()}")
        samples = {"entity": "purchase_order", "key": "PO-1", "fingerprint": fp, "silence_id": "no-such-silence",
                   "name": "order_state", "action": "ack"}
        requests = [(method, fill(pattern, samples)) for method, pattern in table]
        # Faust's own pages as they were served before, and a path nobody registered.
        requests += [("GET", "/table/order_state/purchase_order:PO-1/"), ("GET", "/table/"), ("GET", "/router/"),
                     ("GET", "/stats/"), ("GET", "/assignment/"), ("GET", "/graph/"), ("GET", "/performance/"),
                     ("GET", "/"), ("GET", "/no/such/page")]

        # No token, or a wrong one: 401 everywhere but /metrics and /healthz.
        for method, path in requests:
            for token in (None, "wrong-token-wrong-token"):
                status, body = call(method, base + path, token)
                if path in OPEN:
                    assert status == 200, (method, path, status)
                else:
                    assert status == 401, (method, path, token, status, body)
                    assert "PO-1" not in json.dumps(body), (method, path)
        assert call("GET", f"{base}/healthz", None) == (200, {"status": "ok"})

        # The read token reads, and every state-changing call is 403 with the reason.
        for method, path in requests:
            status, body = call(method, base + path, READER)
            if method in READ_METHODS:
                assert status not in (401, 403), (method, path, status, body)
            else:
                assert status == 403, (method, path, status, body)
                assert "needs 'write'" in body["error"] and "wall-screen" in body["error"], body
        assert state(store, fp) == "firing", "the read token changed nothing"
        status, order = call("GET", f"{base}/api/orders/purchase_order/PO-1", READER)
        assert status == 200 and order["fields"]["supplier"] == "Acme Bearings"

        # A write token (and a token without scopes, as before) acts.
        for method, path in requests:
            if method not in READ_METHODS:
                status, body = call(method, base + path, WRITER)
                assert status not in (401, 403), (method, path, status, body)
        assert state(store, fp) in ("acknowledged", "resolved")
        store.apply([event("PO-3")])
        status, acked = call("POST", f"{base}/api/alerts/{event('PO-3').fingerprint}/ack", LEGACY,
                             {"comment": "on it"})
        assert status == 200 and acked["acked_by"] == "old-script"
        status, created = call("POST", f"{base}/api/silences", WRITER,
                               {"matchers": ["supplier=\"Acme Bearings\""], "duration": "1h", "comment": "count"})
        assert status == 200, created
        assert call("DELETE", f"{base}/api/silences/{created['silenceID']}", READER)[0] == 403
        assert call("DELETE", f"{base}/api/silences/{created['silenceID']}", WRITER)[0] == 200
        store.close()
    finally:
        worker.stop()
