"""The team and analysis pages over real HTTP, on the demo's data.

The demo ERP's change records (orderwatch/demo.py, examples/demo/connectors.yaml: the purchase
and sales orders, stock and invoices whose dates are days from today; the branch office's sheet
is left out, so that the hand computation does not depend on how its dates are written) go
through the engine's own code
on simulated time (engine/simulate.py: the live pipeline's apply_record and rule evaluation) to
the order states a worker holds and the alerts it stores; three acknowledgements are added at
chosen delays. The worker's web server (alerts API, console, token guard) serves them on
127.0.0.1, and the figures are compared with the hand computation written out below.
"""

from __future__ import annotations

import io
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import faust
import pytest
from openpyxl import load_workbook

from alerts.api import attach as attach_api
from alerts.api import faust_pages_off, require_tokens
from alerts.business import tally
from alerts.store import AlertStore
from console.web import PREFIX
from console.web import attach as attach_console
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.simulate import Simulation, sort_records
from engine.state import EntityState
from orderwatch.broker import free_port
from orderwatch.config import Settings
from orderwatch.demo import _DEMO_OWNERS, demo_records
from tests.alerts_helpers import HOUR, Clock, config
from tests.test_alerts_api import Server
from tests.test_console import SECRET, Browser, Site

TOKEN = "analysis-wall-token-0123456789"
ALERTS = f"""
console: {{secret: {SECRET}}}
api:
  tokens:
    - {{name: wall-screen, token: {TOKEN}, scopes: [read]}}
{_DEMO_OWNERS}
"""


@dataclass
class DemoSite(Site):
    states: list[EntityState]

    def json(self, who: str, path: str) -> Any:
        browser = Browser(self.base)
        if who == "token":
            reply = browser.get(path, html=False, token=TOKEN)
        else:
            assert browser.get(self.link(who)).status == 302
            reply = browser.get(path, html=False)
        assert reply.status == 200, reply.text
        return reply.json()


@pytest.fixture
def demo_site(tmp_path: Path) -> Iterator[DemoSite]:
    now = time.time()
    records = [r for r in demo_records(tmp_path / "demo") if r.source.startswith("demo-erp")]
    sim = Simulation(Evaluator(load_rules(list(Settings().rules)), name="analysis-test"))
    sim.feed(sort_records(records))
    sim.advance(now)
    store_url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    store = AlertStore(store_url)
    store.apply(sim.take_events())

    def ack(key: str, who: str, after: float) -> None:
        found = store.list(key=key)
        assert found, key
        store.acknowledge([found[0].fingerprint], who, "on it", found[0].starts_at + timedelta(seconds=after))

    ack("PO-2025-0042", "li.wei", 2 * HOUR)
    ack("PO-2025-0044", "li.wei", 6 * HOUR)
    ack("AR-2025-0301", "zhao.min", 0.5 * HOUR)
    states = list(sim.states.values())
    cfg = config(ALERTS)
    clock = Clock(now)
    app = faust.App(f"analysis-test-{free_port()}", broker="kafka://127.0.0.1:1", web_enabled=True)
    faust_pages_off(app)
    api = attach_api(app, store, Settings(), config=cfg, clock=clock)
    console = attach_console(app, store, cfg, api, clock, states=lambda: states)
    require_tokens(app, api, open_paths=("/healthz",), guarded_by={PREFIX: console.guard})
    server = Server(app)
    try:
        yield DemoSite(server, store, clock, cfg, store_url, states)
    finally:
        server.close()
        store.close()


def download(site: DemoSite, path: str, browser: Browser | None = None) -> tuple[Any, bytes]:
    """Bytes of a page: with the token, or with a signed-in browser's session cookie."""
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())} if browser else {
        "Authorization": f"Bearer {TOKEN}"}
    req = urllib.request.Request(site.base + path, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers, resp.read()


def figures(tally_doc: dict[str, Any]) -> tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(orders, (on time, judged), (complete, judged), (accurate, judged)) of one tally."""
    return (tally_doc["orders"], *((tally_doc[r]["good"], tally_doc[r]["judged"])
                                   for r in ("on_time", "complete", "accurate")))  # type: ignore[return-value]


def by_group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {row["group"]: figures(row) for row in rows}


# The hand computation. The demo ERP's orders, as of today (dates as days from today; "—" not judged):
#
#   order         party                      owner         status              due    done  on time  complete  alert?
#   PO-2025-0042  华东五金 Huadong Hardware   li.wei        open                -12    -     late     —         yes
#   PO-2025-0043  Acme Bearings               anna.schmidt  received            -20    none  —        120/120 ✓ no
#   PO-2025-0044  苏州精密 Suzhou Precision    li.wei        confirmed           +5     -     —        —         yes
#   PO-2025-0045  Nordic Steel AB             anna.schmidt  open                -3     -     late     —         yes
#   PO-2025-0046  深圳电子 Shenzhen Electr.    zhang.min     partially_received  -2     -     late     —         yes
#   PO-2025-0047  (cancelled: counts nowhere)
#   PO-2025-0048  Lyon Packaging SARL         zhang.min     open                +14    -     —        —         no
#   PO-2025-0049  深圳电子 Shenzhen Electr.    zhang.min     open                +21    -     —        —         yes
#   PO-2025-0050  Lyon Packaging SARL         anna.schmidt  sent                +25    -     —        —         yes
#   SO-2025-0101  上海百货 Shanghai Stores    amy.chen      open                -2     -     late     —         yes
#   SO-2025-0102  Big Retail GmbH             tom.keller    delivered           -8     -7    late     no qty    yes
#   SO-2025-0103  上海百货 Shanghai Stores    amy.chen      open                +6     -     —        —         no
#   SO-2025-0104  Big Retail GmbH             tom.keller    open                +30    -     —        —         yes
#
# Period dates: late open orders by their due date (-12 at the earliest); SO-0102 by its
# completion (-7); the rest (finished without a date, open and not due) by their last change,
# today. So the last 30 days, the last 90 and all hold the same 12 orders:
#   on time 0 of 5 (PO-0042, -0045, -0046, SO-0101, -0102), complete 1 of 1 (PO-0043),
#   accurate 3 of 12 (PO-0043, PO-0048, SO-0103)
THIRTY = (12, (0, 5), (1, 1), (3, 12))
ALL = THIRTY
SUPPLIERS_30 = {
    "Acme Bearings": (1, (0, 0), (1, 1), (1, 1)),
    "Lyon Packaging SARL": (2, (0, 0), (0, 0), (1, 2)),
    "Nordic Steel AB": (1, (0, 1), (0, 0), (0, 1)),
    "华东五金 Huadong Hardware": (1, (0, 1), (0, 0), (0, 1)),
    "深圳电子 Shenzhen Electronics": (2, (0, 1), (0, 0), (0, 2)),
    "苏州精密 Suzhou Precision": (1, (0, 0), (0, 0), (0, 1)),
}
CUSTOMERS_30 = {
    "Big Retail GmbH": (2, (0, 1), (0, 0), (0, 2)),
    "上海百货 Shanghai Stores": (2, (0, 1), (0, 0), (1, 2)),
}
OWNERS_30 = {
    "amy.chen": (2, (0, 1), (0, 0), (1, 2)),         # SO-0101 late; SO-0103 accurate
    "anna.schmidt": (3, (0, 1), (1, 1), (1, 3)),     # PO-0043 complete and accurate, PO-0045 late, PO-0050
    "li.wei": (2, (0, 1), (0, 0), (0, 2)),           # PO-0042 late, PO-0044 changed by zhou.kai
    "tom.keller": (2, (0, 1), (0, 0), (0, 2)),       # SO-0102 late, SO-0104 awaiting approval
    "zhang.min": (3, (0, 1), (0, 0), (1, 3)),        # PO-0046 late, PO-0048 accurate, PO-0049 over limit
}
# Overdue invoices (not paid, due before today), what is still owed:
#   AR-2025-0301 receivable CNY 86000 − 0 due -10 → 0–30;  AR-2025-0302 receivable CNY 30000 − 10000
#   due -4 → 0–30;  AP-2025-0088 payable EUR 36400 due -5 → 0–30.  (AR-2025-0303 is due in 2 days,
#   AP-2025-0089 is paid.)
AGEING = {("payable", "EUR"): (1, 36400), ("receivable", "CNY"): (2, 106000)}
# The 18 alerts the rule packs raise on the demo ERP, all started within the last two hours:
#   delay 8 (po-delivery-overdue ×2, po-partially-received, po-confirmation-overdue,
#   so-shipment-overdue, so-delivered-not-accepted, so-delivered-not-invoiced, so-approval-pending),
#   payment 5 (invoice-overdue ×2, invoice-partially-paid-overdue, invoice-due-soon,
#   customer-overdue-total), stock 3, unapproved_change 2.
FAMILIES = {"delay": 8, "payment": 5, "stock": 3, "unapproved_change": 2}
# Acknowledged: li.wei after 2 h and 6 h → median 4 h; zhao.min after 30 min.
ACKS = {"li.wei": (2, 4 * 3600), "zhao.min": (1, 1800)}


def test_the_analysis_of_the_demo_matches_the_hand_computation(demo_site: DemoSite) -> None:
    doc = demo_site.json("token", "/console/analysis?format=json")
    r30, r90, rall = doc["rates"]["30"], doc["rates"]["90"], doc["rates"]["all"]
    assert figures(r30["total"]) == THIRTY and figures(r90["total"]) == THIRTY and figures(rall["total"]) == ALL
    assert by_group(r30["supplier"]) == SUPPLIERS_30
    assert by_group(r30["customer"]) == CUSTOMERS_30
    assert by_group(r30["owner"]) == OWNERS_30
    assert r30["total"]["accurate"]["rate"] == 0.25 and r30["total"]["on_time"]["rate"] == 0.0
    assert r30["supplier"][1]["on_time"]["rate"] is None  # Lyon Packaging: nothing judged, not 0%
    assert {(r["direction"], r["currency"]): (r["count"], r["amount"]) for r in doc["ageing"]["rows"]} == AGEING
    assert all(r["buckets"]["0-30"]["count"] == r["count"] for r in doc["ageing"]["rows"])
    weekly = doc["weekly"]
    assert len(weekly["weeks"]) == 13
    assert {f: sum(counts) for f, counts in weekly["families"].items()} == FAMILIES
    assert {a["person"]: (a["acknowledged"], a["median_seconds"]) for a in doc["acknowledgement"]} == ACKS


def test_the_rates_over_all_orders_are_the_business_gauges_numbers(demo_site: DemoSite) -> None:
    doc = demo_site.json("token", "/console/analysis?format=json")
    gauges = tally(demo_site.states, demo_site.clock.now)  # what /metrics serves for these states
    for entity in ("purchase_order", "sales_order"):
        mine = doc["gauges"][entity]
        assert mine["completed"] == gauges["orderwatch_orders_completed"].get((entity,), 0)
        assert mine["completed_on_time"] == gauges["orderwatch_orders_completed_on_time"].get((entity,), 0)
        assert mine["overdue"] == gauges["orderwatch_orders_overdue"].get((entity,), 0)
    judged = sum(g["completed"] + g["overdue"] for g in doc["gauges"].values())
    on_time = sum(g["completed_on_time"] for g in doc["gauges"].values())
    assert (on_time, judged) == (0, 5) == (doc["rates"]["all"]["total"]["on_time"]["good"],
                                            doc["rates"]["all"]["total"]["on_time"]["judged"])
    overdue_invoices = sum(r["count"] for r in doc["ageing"]["rows"])
    assert overdue_invoices == gauges["orderwatch_orders_overdue"][("invoice",)] == 3


def test_the_workbook_holds_the_same_numbers(demo_site: DemoSite) -> None:
    headers, body = download(demo_site, "/console/analysis.xlsx")
    assert "spreadsheetml" in headers["Content-Type"] and "attachment" in headers["Content-Disposition"]
    doc = demo_site.json("token", "/console/analysis?format=json")
    book = load_workbook(io.BytesIO(body))
    assert book.sheetnames == ["Rates", "Ageing", "Weekly", "Acknowledgement"]
    rates = list(book["Rates"].iter_rows(values_only=True))
    assert rates[0][:5] == ("Period", "By", "Group", "Name", "Orders")
    rows = {(r[0], r[1], r[2] or ""): r[4:] for r in rates[1:]}  # an empty cell reads as None
    for period, label in (("30", "30 days"), ("all", "all")):
        total = doc["rates"][period]["total"]
        assert rows[(label, "Total", "")] == (total["orders"], *(
            v for rate in ("on_time", "complete", "accurate") for v in (
                total[rate]["judged"], total[rate]["good"], total[rate]["rate"])))
        for row in doc["rates"][period]["supplier"]:
            got = rows[(label, "Supplier", row["group"])]
            assert (got[0], got[1], got[2], got[4], got[5]) == (
                row["orders"], row["on_time"]["judged"], row["on_time"]["good"], row["complete"]["judged"],
                row["complete"]["good"])
    assert rows[("30 days", "Total", "")][:7] == (12, 5, 0, 0.0, 1, 1, 1.0)
    assert book["Rates"]["H2"].number_format == "0.0%"
    ageing = {(r[0], r[1]): (r[2], r[3]) for r in list(book["Ageing"].iter_rows(values_only=True))[1:]}
    assert ageing == {("Payable", "EUR"): (1, 36400), ("Receivable", "CNY"): (2, 106000)}
    weekly = list(book["Weekly"].iter_rows(values_only=True))
    assert len(weekly) == 14 and weekly[-1][0] == doc["weekly"]["weeks"][-1]
    assert {name: sum(row[i] for row in weekly[1:]) for i, name in enumerate(weekly[0]) if i >= 2} == {
        "delay": 8, "payment": 5, "stock": 3, "unapproved change": 2}
    acks = {r[0]: (r[2], r[3]) for r in list(book["Acknowledgement"].iter_rows(values_only=True))[1:]}
    assert acks == ACKS

    _, zh = download(demo_site, "/console/analysis.xlsx?lang=zh")
    assert load_workbook(io.BytesIO(zh)).sheetnames == ["比率", "账龄", "每周异常", "确认时长"]


def test_a_manager_sees_the_team_others_themselves_and_strangers_nothing(demo_site: DemoSite) -> None:
    # wang.fang manages the purchasing team: li.wei and herself (she owns stock, no orders).
    manager = demo_site.json("wang.fang", "/console/analysis?format=json")["rates"]["all"]
    assert sorted(by_group(manager["owner"])) == ["li.wei"]
    assert figures(manager["total"]) == (2, (0, 1), (0, 0), (0, 2))  # PO-2025-0042, PO-2025-0044
    assert sorted(by_group(manager["supplier"])) == ["华东五金 Huadong Hardware", "苏州精密 Suzhou Precision"]
    assert manager["customer"] == []
    team = demo_site.json("wang.fang", "/console/team?format=json")
    assert [p["id"] for p in team["people"]] == ["wang.fang", "li.wei"]  # most open first
    # Hers: the three stock alerts; his: PO-2025-0042 and PO-2025-0044, both acknowledged.
    assert [(p["open"], p["acknowledged"]) for p in team["people"]] == [(3, 0), (2, 2)]
    assert team["totals"]["ages"]["lt1d"] == 5
    # Escalations still to come: stock-projected-shortfall escalates to the manager after 2 days
    # (li.wei acknowledged his two, which stops theirs).
    waiting = [(e["key"], e["level"], e["to"]) for e in team["escalations"]]
    assert waiting == [("BOLT-M8@SH1", 1, ["manager"])]
    assert 0 < team["escalations"][0]["due_in_seconds"] <= 2 * 86400

    li = demo_site.json("li.wei", "/console/analysis?format=json")
    assert sorted(by_group(li["rates"]["all"]["owner"])) == ["li.wei"]
    assert {f: sum(c) for f, c in li["weekly"]["families"].items()} == {"delay": 1, "unapproved_change": 1}
    assert li["ageing"]["rows"] == [] and [a["person"] for a in li["acknowledgement"]] == ["li.wei"]
    assert [p["id"] for p in demo_site.json("li.wei", "/console/team?format=json")["people"]] == ["li.wei"]
    browser = Browser(demo_site.base)
    assert browser.get(demo_site.link("li.wei")).status == 302
    _, body = download(demo_site, "/console/analysis.xlsx?lang=en", browser)
    sheet = list(load_workbook(io.BytesIO(body))["Rates"].iter_rows(values_only=True))[1:]
    assert {r[2] for r in sheet if r[1] == "Owner"} == {"li.wei"}  # his workbook: his figures only

    zhao = demo_site.json("zhao.min", "/console/analysis?format=json")
    assert zhao["rates"]["all"]["total"]["orders"] == 0  # a finance clerk owns no orders…
    assert [(r["direction"], r["amount"]) for r in zhao["ageing"]["rows"]] == [("receivable", 106000)]  # …invoices

    # Somebody not in the owners directory cannot sign in; without a session nothing answers.
    stranger = Browser(demo_site.base)
    assert stranger.get(demo_site.link("somebody.else")).status == 401
    for path in ("/console/team", "/console/analysis", "/console/analysis.xlsx"):
        assert stranger.get(path, html=False).status == 401
        assert stranger.get(path).status == 302
    everyone = demo_site.json("token", "/console/team?format=json")
    assert {"anna.schmidt", "zhang.min", "li.wei", "zhao.min"} <= {p["id"] for p in everyone["people"]}
    assert everyone["totals"]["open"] == 18


def test_the_pages_render_in_both_languages(demo_site: DemoSite) -> None:
    browser = Browser(demo_site.base)
    assert browser.get(demo_site.link("wang.fang")).status == 302
    zh = browser.get("/console/analysis")
    assert zh.status == 200 and "归档与分析" in zh.text and "准时率" in zh.text and "<svg" in zh.text
    assert "华东五金 Huadong Hardware" in zh.text and 'href="?period=90"' in zh.text
    assert 'class="on" aria-current="true">全部' in browser.get("/console/analysis?period=all").text
    en = browser.get("/console/analysis?lang=en")
    assert "On time" in en.text and "Exceptions per family per week" in en.text
    team = browser.get("/console/team?lang=zh")
    assert "团队" in team.text and "李伟" in team.text
    finance = Browser(demo_site.base)
    assert finance.get(demo_site.link("zhao.min")).status == 302
    ageing = finance.get("/console/analysis?lang=en").text.split('id="ageing"', 1)[1].split("</section>", 1)[0]
    assert "Receivable" in ageing and "106,000" in ageing and 'class="meter"' in ageing


def test_periods_buckets_lines_and_aliases_on_orders_the_demo_lacks() -> None:
    """The edges the demo does not reach, on states made for them (as of 2025-06-30)."""
    from datetime import UTC, datetime

    from console.analysis import analysis_page, holdings
    from console.pages import Viewer

    def order(entity: str, key: str, ts: str = "2025-06-30T08:00:00+00:00", **fields: Any) -> dict[str, Any]:
        return {"entity": entity, "key": key, "fields": fields, "ts": ts, "deleted": False}

    states = [
        # Received 40 days ago, on time, complete line by line: in 90 days, not in 30.
        order("purchase_order", "P1", status="received", supplier="S", buyer="LW", expected_date="2025-05-22",
              received_date="2025-05-21", lines=[{"qty": 5, "received_qty": 5}, {"qty": 2, "received_qty": 3}]),
        # Received on time at 23:00 on its due day (a time counts as its day), one line short.
        order("purchase_order", "P2", status="closed", supplier="S", buyer="li.wei", expected_date="2025-06-20",
              received_date="2025-06-20T23:00:00+00:00", lines=[{"qty": 5, "received_qty": 4}, {"qty": 1}]),
        # Due today: not late yet, not judged; counted by its last change.
        order("purchase_order", "P3", status="open", supplier="S", buyer="li.wei", expected_date="2025-06-30"),
        # Shipped a day late with the whole quantity (in the period by its shipping day).
        order("sales_order", "S1", status="shipped", customer="C", sales_rep="amy", promised_date="2025-06-01",
              shipped_date="2025-06-02", qty=10, shipped_qty=10),
        # Deleted and cancelled orders count nowhere.
        {**order("sales_order", "S2", status="open", customer="C", promised_date="2025-01-01"), "deleted": True},
        order("sales_order", "S3", status="cancelled", customer="C", promised_date="2025-06-01"),
        # Invoices 30, 31, 61, 91 days overdue, and one due today (not overdue).
        *[order("invoice", f"I{d}", status="open", direction="receivable", amount=100 * d, paid_amount=d,
                currency="CNY", clerk="LW", due_date=(date(2025, 6, 30) - timedelta(days=d)).isoformat())
          for d in (30, 31, 61, 91, 0)],
    ]
    cfg = config("owners:\n  people:\n    li.wei: {name: 李伟, aliases: [LW]}\n    amy: {name: Amy}\n")
    now = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)

    def analysis(viewer: Viewer) -> dict[str, Any]:  # two workers' shares, one order held by both
        shares = [holdings(states[:3], cfg, viewer, now), holdings(states[2:], cfg, viewer, now)]
        return analysis_page(shares, [], cfg, viewer, now)

    doc = analysis(Viewer("machine"))
    r30, r90 = doc["rates"]["30"]["total"], doc["rates"]["90"]["total"]
    # 30 days: P2 (done 06-20, on time, incomplete), P3 (not judged), S1 (done 06-02, late, complete).
    assert figures(r30) == (3, (1, 2), (1, 2), (3, 3))
    # 90 days adds P1 (done 05-21: on time, complete: 5/5 and 3/2 ≥ ordered).
    assert figures(r90) == (4, (2, 3), (2, 3), (4, 4))
    assert by_group(doc["rates"]["90"]["owner"]) == {  # the alias LW is li.wei
        "li.wei": (3, (2, 2), (1, 2), (3, 3)), "amy": (1, (0, 1), (1, 1), (1, 1))}
    assert doc["gauges"]["sales_order"] == {"completed": 1, "completed_on_time": 0, "overdue": 0}
    buckets = doc["ageing"]["rows"][0]["buckets"]
    assert {b: (c["count"], c["amount"]) for b, c in buckets.items()} == {
        "0-30": (1, 2970), "31-60": (1, 3069), "61-90": (1, 6039), "90+": (1, 9009)}
    assert doc["weekly"]["weeks"][-1] == "2025-W27"  # Monday 2025-06-30
    li = analysis(Viewer("li.wei", cfg.directory.people["li.wei"]))
    assert li["rates"]["90"]["total"]["orders"] == 3 and len(li["ageing"]["rows"]) == 1  # his, via the alias
    amy = analysis(Viewer("amy", cfg.directory.people["amy"]))
    assert amy["rates"]["90"]["total"]["orders"] == 1 and amy["ageing"]["rows"] == []


def test_a_worker_that_does_not_answer_is_named_not_silently_missing(
        demo_site: DemoSite, monkeypatch: pytest.MonkeyPatch) -> None:
    import console.web

    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setattr(console.web, "peers", lambda app: [nobody])
    doc = demo_site.json("token", "/console/analysis?format=json")
    assert doc["workers"] == {"answered": 1, "missing": [nobody]}
    assert figures(doc["rates"]["30"]["total"]) == THIRTY  # this worker's share, all of the demo here
    browser = Browser(demo_site.base)
    assert browser.get(demo_site.link("li.wei")).status == 302
    page = browser.get("/console/analysis?lang=en").text
    assert "Incomplete: these workers did not send their orders:" in page and nobody in page


def test_a_share_is_given_only_for_a_valid_ticket(demo_site: DemoSite) -> None:
    from console import share
    from console.pages import Viewer

    li = Viewer("li.wei", demo_site.config.directory.people["li.wei"])
    now = demo_site.clock.now

    def held(ticket: str) -> tuple[int, Any]:
        reply = Browser(demo_site.base).get("/console/analysis/held", html=False, headers={share.HEADER: ticket})
        return reply.status, reply.json()

    status, doc = held(share.ticket(li, SECRET, now))
    assert status == 200 and {o["key"] for o in doc["orders"]} == {"PO-2025-0042", "PO-2025-0044"}  # li.wei's
    assert held(share.ticket(li, SECRET, now - share.TTL - 1))[0] == 401  # expired
    assert held(share.ticket(li, "another-secret-0123456789abcdef0123", now))[0] == 401
    good = share.ticket(li, SECRET, now)
    assert held(good[:-2] + ("AA" if not good.endswith("AA") else "BB"))[0] == 401  # altered
    assert held(share.ticket(Viewer("somebody.else", None), SECRET, now))[0] == 200  # a machine's: all
    stranger = Viewer("nobody", demo_site.config.directory.people["li.wei"].__class__("nobody", "Nobody"))
    assert held(share.ticket(stranger, SECRET, now))[0] == 401  # not in the directory
    # The ticket opens the share page only.
    reply = Browser(demo_site.base).get("/console/analysis?format=json", html=False,
                                        headers={share.HEADER: share.ticket(li, SECRET, now)})
    assert reply.status == 401
