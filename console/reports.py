"""The team and analysis pages over HTTP (their figures: console/team.py, console/analysis.py).

    GET /console/team            open exceptions by owner and age, escalations waiting
    GET /console/analysis        rates, ageing, exceptions per week, time to acknowledge (charts)
    GET /console/analysis.xlsx   the same figures as a workbook
    GET /console/analysis/held   this worker's share of them (its partitions' orders)

Order states live on the worker that holds their partition: the analysis asks every other
worker of the group (Faust's table assignment gives their web addresses) for its share, with a
ticket naming the caller (console/share.py), and adds the shares up; a worker that does not
answer is named in the page (`workers.missing`) instead of silently missing.

Each page is also JSON (`?format=json` or `Accept: application/json`), behind the console's
guard like every console page: a session, or an API token (which sees everything).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from alerts.clock import now_of
from console import i18n, share
from console import report_texts as _texts  # noqa: F401  (adds the pages' texts to the catalogue)
from console.analysis import analysis_page, holdings
from console.charts import AGE_COLOURS, bar, portion, stacked, weekly_chart
from console.team import team_page
from console.web import VIEWER, Console, wants_html
from console.workbook import workbook

States = Callable[[], Iterable[Mapping[str, Any]]]
Peers = Callable[[], list[str]]  # the other workers' base URLs
HELD = "/console/analysis/held"
PEER_TIMEOUT = 10.0
log = logging.getLogger(__name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Reports:
    def __init__(self, console: Console, states: States | None, peers: Peers | None) -> None:
        self.console = console  # its store, config, clock and rendering
        self.states = states or (lambda: ())
        self.peers = peers or list

    async def _holdings(self, request: web.Request) -> dict[str, Any]:
        c = self.console
        held = list(self.states())  # taken on the event loop, where the engine changes them
        return await asyncio.to_thread(holdings, held, c.config, request[VIEWER], now_of(c.clock))

    async def _analysis(self, request: web.Request) -> dict[str, Any]:
        """This worker's share and every other worker's (asked with a ticket naming the caller)."""
        c = self.console
        mine, (others, missing) = await asyncio.gather(self._holdings(request), self._gather(request))
        doc = await asyncio.to_thread(analysis_page, [mine, *others], c.store.list(), c.config, request[VIEWER],
                                      now_of(c.clock))
        doc["workers"] = {"answered": 1 + len(others), "missing": missing}
        return doc

    async def _gather(self, request: web.Request) -> tuple[list[dict[str, Any]], list[str]]:
        urls = self.peers()
        if not urls:
            return [], []
        c = self.console
        headers = {"Accept": "application/json"}
        if c.secret:  # a ticket for the share pages only, never the caller's own credentials
            headers[share.HEADER] = share.ticket(request[VIEWER], c.secret, c.now())
        elif request.headers.get("Authorization"):  # no secret, so no sessions: a token's own header
            headers["Authorization"] = request.headers["Authorization"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT)) as session:
            answers = await asyncio.gather(*(self._ask(session, url, headers) for url in urls))
        return [a for a in answers if a is not None], [u for u, a in zip(urls, answers, strict=True) if a is None]

    @staticmethod
    async def _ask(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict[str, Any] | None:
        try:
            async with session.get(f"{url}{HELD}", headers=headers) as resp:
                doc = await resp.json() if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("analysis: no share from %s (%s)", url, exc)
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("orders"), list):
            log.warning("analysis: no share from %s (status or body)", url)
            return None
        return doc

    async def held(self, request: web.Request) -> web.StreamResponse:
        """This worker's share only (what `_gather` asks the others for)."""
        return self.console.json(await self._holdings(request))

    async def team(self, request: web.Request) -> web.StreamResponse:
        c = self.console
        doc = await asyncio.to_thread(lambda: team_page(c.store.list(state=["firing", "acknowledged", "silenced"]),
                                                        c.config, request[VIEWER], now_of(c.clock)))
        if not wants_html(request):
            return c.json(doc)
        return c.render(request, "team.html", page=doc, json_url="/console/team?format=json")

    async def analysis(self, request: web.Request) -> web.StreamResponse:
        c = self.console
        doc = await self._analysis(request)
        if not wants_html(request):
            return c.json(doc)
        period = request.query.get("period") if request.query.get("period") in doc["periods"] else "30"
        return c.render(request, "analysis.html", page=doc, period=period, bar=bar, stacked=stacked, portion=portion,
                        age_colours=AGE_COLOURS,
                        weekly_svg=weekly_chart(doc["weekly"], i18n.texts(c.language(request))),
                        json_url="/console/analysis?format=json")

    async def xlsx(self, request: web.Request) -> web.StreamResponse:
        doc = await self._analysis(request)
        body = await asyncio.to_thread(workbook, doc, i18n.texts(self.console.language(request)))
        return web.Response(body=body, content_type=XLSX, headers={
            "Content-Disposition": f'attachment; filename="orderwatch-analysis-{doc["today"]}.xlsx"',
            "Cache-Control": "no-store"})


def attach(router: web.UrlDispatcher, console: Console, states: States | None, peers: Peers | None = None) \
        -> Reports:
    reports = Reports(console, states, peers)
    router.add_get("/console/team", reports.team, name="console.team")
    router.add_get("/console/analysis", reports.analysis, name="console.analysis")
    router.add_get("/console/analysis.xlsx", reports.xlsx, name="console.analysis_xlsx")
    router.add_get(HELD, reports.held, name="console.analysis_held")
    return reports
