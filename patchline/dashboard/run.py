"""`patchline dashboard --mqtt URL [--port 8080]`: serve the live page until SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import logging
from pathlib import Path

from patchline.dashboard.auth import BasicAuth, is_loopback, load_auth_file
from patchline.dashboard.feed import DashboardFeed
from patchline.dashboard.server import make_app
from patchline.dashboard.state import DashboardState
from patchline.errors import ConfigError, PatchlineError
from patchline.mqtt.broker import BrokerSettings

log = logging.getLogger("patchline.dashboard")


def dashboard_auth(host: str, auth_file: Path | None, no_auth: bool) -> BasicAuth | None:
    """The login the dashboard asks for: the auth file's users, or none on loopback or with an
    explicit --no-auth; ConfigError (one sentence) for another address without either."""
    if auth_file is not None and no_auth:
        raise ConfigError("give either --auth-file or --no-auth, not both.")
    if auth_file is not None:
        return BasicAuth(load_auth_file(auth_file))
    if no_auth or is_loopback(host):
        return None
    raise ConfigError(f"serving the dashboard on {host} (beyond this machine) needs --auth-file FILE (users with "
                      f"hashed passwords: add one with --add-user NAME), or --no-auth to serve it to anyone.")


def run_dashboard(mqtt_url: str, port: int = 8080, host: str = "127.0.0.1", line: str | None = None,
                  auth_file: Path | None = None, no_auth: bool = False, **broker_options) -> int:
    """Serve the dashboard on host:port, fed from the broker at mqtt_url; returns 0 when stopped.

    broker_options: username, password, tls_ca, tls_cert, tls_key, tls_insecure (as BrokerSettings.from_url).
    The broker may be down at start or go away later: the page says so and the feed keeps trying.
    A host other than loopback needs `auth_file` (HTTP Basic, auth.py) or an explicit `no_auth`.
    """
    from aiohttp import web

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, not {port}.")
    auth = dashboard_auth(host, auth_file, no_auth)
    settings = BrokerSettings.from_url(mqtt_url, **broker_options)
    state = DashboardState()
    feed = DashboardFeed(settings, state, line)
    app = make_app(state, auth)

    async def stop_feed(_app):
        feed.close()

    app.on_cleanup.append(stop_feed)
    feed.start()
    try:
        web.run_app(app, host=host, port=port, handle_signals=True, shutdown_timeout=2.0,
                    print=lambda _text: print(f"patchline dashboard: http://{host}:{port}/ (broker "
                                              f"{settings.address}; {'login required' if auth else 'no login'}); "
                                              f"Ctrl-C stops it", flush=True))
    except OSError as exc:
        feed.close()
        if exc.errno == errno.EADDRINUSE:
            raise PatchlineError(f"port {port} on {host} is already in use; pass another --port.") from None
        raise PatchlineError(f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}.") from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return 0
