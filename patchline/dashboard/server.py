"""The dashboard's web side (aiohttp): the page, a server-sent event stream of the state, snapshots.

Routes: GET /            the page (page.html; it never needs a reload)
        GET /events      text/event-stream: the whole view as JSON first, then what changed (the
                         cameras changed since the last event), a ping every 10 s
        GET /state       the whole view once, as JSON
        GET /snapshot/N  an alarm's JPEG received on …/snapshot, by the name its alarm gives
Broker credentials stay here: the page talks to this server only. With an auth file every route
asks for HTTP Basic credentials (auth.py). The JSON sent holds finite numbers only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from importlib import resources

from aiohttp import web

from patchline.dashboard.auth import BasicAuth
from patchline.dashboard.state import DashboardState

log = logging.getLogger("patchline.dashboard")
PUSH_INTERVAL_S = 0.25
PING_INTERVAL_S = 10.0


def _page() -> str:
    return resources.files("patchline.dashboard").joinpath("page.html").read_text()


def _json(view: dict) -> str:
    return json.dumps(view, allow_nan=False, separators=(",", ":"))


def _login_required(auth: BasicAuth):
    @web.middleware
    async def check(request, handler):
        if not auth.allows(request.headers.get("Authorization")):
            raise web.HTTPUnauthorized(text="log in with a user of the dashboard's --auth-file.",
                                       headers={"WWW-Authenticate": 'Basic realm="patchline dashboard"'})
        return await handler(request)
    return check


def make_app(state: DashboardState, auth: BasicAuth | None = None) -> web.Application:
    """The aiohttp application serving `state`; with `auth`, only to its users."""
    page = _page()

    async def index(_request):
        nonce = secrets.token_urlsafe(16)  # only the page's own script runs, never an injected handler
        return web.Response(text=page.replace("{{nonce}}", nonce), content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": f"default-src 'self'; script-src 'nonce-{nonce}'; "
                                                                f"style-src 'self' 'unsafe-inline'; img-src 'self'; "
                                                                f"object-src 'none'; base-uri 'none'"})

    async def view(_request):
        return web.json_response(state.view(), dumps=_json, headers={"Cache-Control": "no-store"})

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
                    current = state.view(since=sent)
                    sent = current["version"]
                    await response.write(f"data: {_json(current)}\n\n".encode())
                    quiet = 0.0
                elif quiet >= PING_INTERVAL_S:
                    await response.write(b": ping\n\n")  # keeps proxies and the browser's stream open
                    quiet = 0.0
                await asyncio.sleep(PUSH_INTERVAL_S)
                quiet += PUSH_INTERVAL_S
        except ConnectionResetError:
            pass  # the page went away
        return response

    app = web.Application(middlewares=[_login_required(auth)] if auth is not None else [])
    app.add_routes([web.get("/", index), web.get("/state", view), web.get("/events", events),
                    web.get("/snapshot/{name}", snapshot)])
    return app
