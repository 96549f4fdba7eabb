"""The dashboard's web side (aiohttp): the page, a server-sent event stream of the state, snapshots.

Routes: GET /            the page (page.html; it never needs a reload)
        GET /events      text/event-stream: the whole view as JSON on every change, a ping every 10 s
        GET /state       the same view once, as JSON
        GET /snapshot/N  an alarm's JPEG received on …/snapshot, by the name its alarm gives
Broker credentials stay here: the page talks to this server only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources

from aiohttp import web

from patchline.dashboard.state import DashboardState

log = logging.getLogger("patchline.dashboard")
PUSH_INTERVAL_S = 0.25
PING_INTERVAL_S = 10.0


def _page() -> str:
    return resources.files("patchline.dashboard").joinpath("page.html").read_text()


def make_app(state: DashboardState) -> web.Application:
    """The aiohttp application serving `state`."""
    page = _page()

    async def index(_request):
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def view(_request):
        return web.json_response(state.view(), headers={"Cache-Control": "no-store"})

    async def snapshot(request):
        data = state.snapshot(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound(text="no such snapshot here (only those published while the dashboard ran)")
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    async def events(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        sent, quiet = None, 0.0
        try:
            while True:
                if state.version != sent:
                    current = state.view()
                    sent = current["version"]
                    await response.write(f"data: {json.dumps(current)}\n\n".encode())
                    quiet = 0.0
                elif quiet >= PING_INTERVAL_S:
                    await response.write(b": ping\n\n")  # keeps proxies and the browser's stream open
                    quiet = 0.0
                await asyncio.sleep(PUSH_INTERVAL_S)
                quiet += PUSH_INTERVAL_S
        except ConnectionResetError:
            pass  # the page went away
        return response

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/state", view), web.get("/events", events),
                    web.get("/snapshot/{name}", snapshot)])
    return app
