"""The team and analysis pages over HTTP (their figures: console/team.py, console/analysis.py).

    GET /console/team            open exceptions by owner and age, escalations waiting
    GET /console/analysis        rates, ageing, exceptions per week, time to acknowledge (charts)
    GET /console/analysis.xlsx   the same figures as a workbook

Each page is also JSON (`?format=json` or `Accept: application/json`), behind the console's
guard like every console page: a session, or an API token (which sees everything).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from alerts.clock import now_of
from console import i18n
from console import report_texts as _texts  # noqa: F401  (adds the pages' texts to the catalogue)
from console.analysis import analysis_page
from console.charts import AGE_COLOURS, bar, share, stacked, weekly_chart
from console.team import team_page
from console.web import VIEWER, Console, wants_html
from console.workbook import workbook

States = Callable[[], Iterable[Mapping[str, Any]]]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Reports:
    def __init__(self, console: Console, states: States | None) -> None:
        self.console = console  # its store, config, clock and rendering
        self.states = states or (lambda: ())

    def _analysis(self, request: web.Request) -> Any:
        c = self.console
        held = list(self.states())  # taken on the event loop, where the engine changes them
        return asyncio.to_thread(lambda: analysis_page(held, c.store.list(), c.config, request[VIEWER],
                                                       now_of(c.clock)))

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
        return c.render(request, "analysis.html", page=doc, period=period, bar=bar, stacked=stacked, share=share,
                        age_colours=AGE_COLOURS,
                        weekly_svg=weekly_chart(doc["weekly"], i18n.texts(c.language(request))),
                        json_url="/console/analysis?format=json")

    async def xlsx(self, request: web.Request) -> web.StreamResponse:
        doc = await self._analysis(request)
        body = await asyncio.to_thread(workbook, doc, i18n.texts(self.console.language(request)))
        return web.Response(body=body, content_type=XLSX, headers={
            "Content-Disposition": f'attachment; filename="orderwatch-analysis-{doc["today"]}.xlsx"',
            "Cache-Control": "no-store"})


def attach(router: web.UrlDispatcher, console: Console, states: States | None) -> Reports:
    reports = Reports(console, states)
    router.add_get("/console/team", reports.team, name="console.team")
    router.add_get("/console/analysis", reports.analysis, name="console.analysis")
    router.add_get("/console/analysis.xlsx", reports.xlsx, name="console.analysis_xlsx")
    return reports
