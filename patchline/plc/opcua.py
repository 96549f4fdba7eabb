"""The station as an OPC UA server (asyncua): per camera an object with typed variables a SCADA or a
PLC can read or subscribe to, writable Trigger / Acknowledge / Recipe variables, and the methods
TriggerInspection(), AcknowledgeResult() and SelectRecipe(recipe). The node map is in opcua_nodes.py and docs/plc.md.

The server runs its own asyncio loop in a thread. The station's listener hands every change to that
loop, which writes the changed variables (newest state wins; the result before ResultReady), so
subscriptions see each change at their publishing interval. A client's write to a camera's node is
checked here before asyncua sees it: a write to a read-only variable, of the wrong type, or out of
range is refused with a Bad status code and counted on the station (`RefusedWrites`), never applied.
Every client is a plain user (no remote admin): the standard nodes keep their access levels. Who may
connect, and over what channel, is opcua_security.py's (anonymous on a plain channel unless the run
gives a certificate, users or trusted clients). At most MAX_CLIENTS connections and MAX_MESSAGE_BYTES
a message.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from asyncua import Server, ua
from asyncua.common.connection import TransportLimits
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeService

from patchline.errors import PatchlineError
from patchline.plc.opcua_nodes import COMMANDS, NAMESPACE_URI, WRITABLE, command_value, node_id, values_of
from patchline.plc.opcua_security import OpcUaSecurity
from patchline.plc.state import CameraState
from patchline.plc.station import Station

log = logging.getLogger(__name__)
SOURCE = "opcua"
MAX_CLIENTS = 32                   # SCADA, PLC, engineering station: a handful; more is a misbehaving client
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a request or answer (asyncua's default is 100 MB)


class _CheckedWrites(AttributeService):
    """asyncua's write service with the station's nodes checked first (see the module docstring)."""

    def __init__(self, aspace, check):
        super().__init__(aspace)
        self._check = check

    async def write(self, params: ua.WriteParameters, user: User = User(role=UserRole.Admin)) -> list[ua.StatusCode]:
        results = []
        for item in params.NodesToWrite:
            status = self._check(item) if user.role != UserRole.Admin else None
            if status is None:
                status = (await super().write(ua.WriteParameters(NodesToWrite=[item]), user))[0]
            results.append(status)
        return results


class OpcUaServer:
    """The station's OPC UA server at opc.tcp://host:port; `start()` listens (PatchlineError when it
    cannot), `close()` stops it. `namespace` is the index of NAMESPACE_URI once started."""

    def __init__(self, station: Station, host: str = "0.0.0.0", port: int = 4840,
                 security: OpcUaSecurity | None = None):
        self.station, self.host, self.port = station, host, port
        self.security = (security or OpcUaSecurity()).check()
        self.cameras = station.cameras
        self.url = f"opc.tcp://{host}:{port}"
        self.namespace = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._nodes: dict[ua.NodeId, tuple[str, str]] = {}  # node → (camera, variable name)
        self._written: dict[str, dict[str, object]] = {c: {} for c in self.cameras}  # what each node shows
        self._newest: dict[str, CameraState] = {}
        self._flush_scheduled = False

    def start(self, timeout: float = 30.0) -> "OpcUaServer":
        """Listen in a thread of its own; returns once clients can connect (PatchlineError if it cannot)."""
        logging.getLogger("asyncua").setLevel(logging.WARNING)  # it logs every call and session at INFO
        ready, failure = threading.Event(), []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name="plc-opcua", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            self.close()
            why = failure[0] if failure else "it did not start in time"
            raise PatchlineError(f"cannot serve OPC UA on {self.url}: {why}.")
        self.station.add_listener(self._on_change)
        for camera, state in self.station.states().items():
            self._on_change(camera, state)
        log.info("OPC UA server on %s: %d camera(s) under Objects/Patchline (namespace %s)", self.url,
                 len(self.cameras), NAMESPACE_URI)
        return self

    def close(self) -> None:
        """Stop serving (connected clients are dropped); the station's last state is written first."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            try:  # the loop may be ending on its own (a server that failed to start)
                if self._server is not None:
                    asyncio.run_coroutine_threadsafe(self._flush(), loop).result(5.0)
                loop.call_soon_threadsafe(stopped.set)
            except Exception:  # noqa: BLE001 - closing goes on
                log.debug("closing the OPC UA server's loop", exc_info=True)
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    # -- the server's thread ---------------------------------------------------------------------

    def _serve(self, ready: threading.Event, failure: list) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main(ready, failure))
        except Exception as exc:  # the server must not take the run down
            log.exception("the OPC UA server stopped")
            failure.append(str(exc))
            ready.set()
        finally:
            self._loop.close()

    async def _main(self, ready: threading.Event, failure: list) -> None:
        self._stopped = asyncio.Event()
        server = Server(user_manager=self.security.user_manager())
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("patchline inspection station")
        await self.security.apply(server)
        server.allow_remote_admin(False)
        server.iserver.max_connections = MAX_CLIENTS
        server.limits = TransportLimits(max_recv_buffer=65535, max_send_buffer=65535,
                                        max_chunk_count=MAX_MESSAGE_BYTES // 65535 + 1, max_message_size=MAX_MESSAGE_BYTES)
        server.iserver.attribute_service = _CheckedWrites(server.iserver.aspace, self._check_write)
        self.namespace = await server.register_namespace(NAMESPACE_URI)
        await self._build(server)
        try:
            await server.start()
        except (OSError, RuntimeError) as exc:
            failure.append(getattr(exc, "strerror", None) or str(exc) or "the address is not usable")
            ready.set()
            return
        self._server = server
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            self._server = None
            await server.stop()

    async def _build(self, server: Server) -> None:
        """Objects/Patchline/<camera>/… : the variables, the writable commands and the methods."""
        ns = self.namespace
        root = await server.nodes.objects.add_object(ua.NodeId("Patchline", ns), ua.QualifiedName("Patchline", ns))
        recipes = [f"{n}={line}" for n, line in sorted(self.station.recipes.items())]
        await root.add_variable(ua.NodeId("Patchline.Recipes", ns), ua.QualifiedName("Recipes", ns), recipes,
                                varianttype=ua.VariantType.String)
        for camera in self.cameras:
            obj = await root.add_object(node_id(camera, "", ns), ua.QualifiedName(camera, ns))
            for name, kind, value in [*values_of(self.station.state(camera)), *((n, k, False) for n, k in COMMANDS)]:
                var = await obj.add_variable(node_id(camera, name, ns), ua.QualifiedName(name, ns), value, varianttype=kind)
                if name in WRITABLE:
                    await var.set_writable()
                self._nodes[var.nodeid] = (camera, name)
            await self._add_methods(obj, camera)

    async def _add_methods(self, obj, camera: str) -> None:
        ns = self.namespace

        def arg(name: str, kind: ua.VariantType, text: str) -> ua.Argument:
            return ua.Argument(Name=name, DataType=ua.NodeId(kind.value), ValueRank=-1, ArrayDimensions=[],
                               Description=ua.LocalizedText(text))

        await obj.add_method(node_id(camera, "TriggerInspection", ns), ua.QualifiedName("TriggerInspection", ns),
                             self._method(camera, "trigger"), [],
                             [arg("TriggerId", ua.VariantType.UInt32, "the trigger's id; 0: refused (overrun)")])
        await obj.add_method(node_id(camera, "AcknowledgeResult", ns), ua.QualifiedName("AcknowledgeResult", ns),
                             self._method(camera, "acknowledge"), [],
                             [arg("WasReady", ua.VariantType.Boolean, "a result was ready")])
        await obj.add_method(node_id(camera, "SelectRecipe", ns), ua.QualifiedName("SelectRecipe", ns),
                             self._method(camera, "recipe"), [arg("Recipe", ua.VariantType.UInt16, "recipe number")],
                             [arg("Taken", ua.VariantType.Boolean, "false: not one of the run's recipes")])

    def _method(self, camera: str, what: str):
        async def call(_parent, *args):
            if len(args) != (1 if what == "recipe" else 0):
                self.station.refuse(camera, f"{what} called with {len(args)} arguments", SOURCE)
                return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing if not args else ua.StatusCodes.BadTooManyArguments)
            if what == "trigger":
                return [ua.Variant(self.station.trigger(camera, SOURCE), ua.VariantType.UInt32)]
            if what == "acknowledge":
                return [ua.Variant(self.station.acknowledge(camera, SOURCE), ua.VariantType.Boolean)]
            number, why = command_value("Recipe", args[0])
            if why is not None:
                self.station.refuse(camera, f"SelectRecipe: {why}", SOURCE)
                return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
            return [ua.Variant(self.station.select_recipe(camera, number, SOURCE), ua.VariantType.Boolean)]
        return call

    def _check_write(self, item: ua.WriteValue) -> ua.StatusCode | None:
        """A client's write to one of the station's nodes, checked and applied; None for other nodes."""
        known = self._nodes.get(item.NodeId)
        if known is None:
            return None
        camera, name = known
        if item.AttributeId != ua.AttributeIds.Value or name not in WRITABLE:
            self.station.refuse(camera, f"{name} is read-only", SOURCE)
            return ua.StatusCode(ua.StatusCodes.BadNotWritable)
        value, why = command_value(name, item.Value.Value if item.Value is not None else None)
        if why is not None:
            self.station.refuse(camera, why, SOURCE)
            return ua.StatusCode(ua.StatusCodes.BadOutOfRange if name == "Recipe" else ua.StatusCodes.BadTypeMismatch)
        if name == "Trigger" and value:
            self.station.trigger(camera, SOURCE)
        elif name == "Acknowledge" and value:
            self.station.acknowledge(camera, SOURCE)
        elif name == "Recipe" and not self.station.select_recipe(camera, value, SOURCE):
            return ua.StatusCode(ua.StatusCodes.BadOutOfRange)  # not one of the run's: counted by the station
        return ua.StatusCode()

    # -- state → nodes ------------------------------------------------------------------------------

    def _on_change(self, camera: str, state: CameraState) -> None:
        """The station's listener (any thread): keep the newest state and have the loop write it."""
        loop = self._loop
        self._newest[camera] = state
        if loop is None or self._flush_scheduled:
            return
        self._flush_scheduled = True
        try:
            loop.call_soon_threadsafe(lambda: loop.create_task(self._flush()))
        except RuntimeError:  # the loop has closed: the run is ending
            self._flush_scheduled = False

    async def _flush(self) -> None:
        """Write every camera's newest state into its variables (only the values that changed)."""
        self._flush_scheduled = False
        server = self._server
        if server is None:
            return
        for camera in self.cameras:
            state = self._newest.pop(camera, None)
            if state is None:
                continue
            shown = self._written[camera]
            for name, kind, value in values_of(state):
                if shown.get(name, object()) != value:
                    await server.write_attribute_value(node_id(camera, name, self.namespace),
                                                       ua.DataValue(ua.Variant(value, kind)))
                    shown[name] = value
