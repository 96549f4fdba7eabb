"""The station as a Modbus TCP server (pymodbus): one block of 16 holding registers per camera.

Camera i (in the run's camera order) owns registers 16*i … 16*i+15 (docs/plc.md has the map and a
worked handshake). Every read is answered from the station's state at that instant (the block is
refreshed inside pymodbus's request handler), so a result is visible to the PLC the moment the
station has it. Writes go to three registers only — trigger, acknowledge, recipe — and are checked
before the station sees them: a write to a read-only register, a value out of range, or a bit
(coil) write is refused with a Modbus exception and counted (`refused_writes`), never applied.
The server runs its own asyncio loop in a thread; any device id (unit id) is answered.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from patchline.errors import PatchlineError
from patchline.plc.state import CameraState
from patchline.plc.station import Station

log = logging.getLogger(__name__)

BLOCK = 16
(HEARTBEAT, STATUS, TRIGGER, BUSY, RESULT_READY, RESULT, ERROR_CODE, SCORE, THRESHOLD, RESULTS, RECIPE,
 ACKNOWLEDGE, TRIGGER_ID, OVERRUNS, DEADLINE_MISSES, REFUSED_WRITES) = range(BLOCK)
NAMES = ("heartbeat", "status", "trigger", "busy", "result_ready", "result", "error_code", "score_x100",
         "threshold_x100", "results", "recipe", "acknowledge", "trigger_id", "overruns", "deadline_misses",
         "refused_writes")
WRITABLE = {TRIGGER: "trigger", ACKNOWLEDGE: "acknowledge", RECIPE: "recipe"}
BIT_WRITES = (5, 15)  # write coil(s): no register of the map is a bit


def _u16(value) -> int:
    return int(value) & 0xFFFF


def _x100(value: float | None) -> int:
    """A score as hundredths, clipped to 0 … 65535 (0 when there is none)."""
    if value is None:
        return 0
    return max(0, min(65535, int(round(value * 100))))


def registers_of(state: CameraState) -> list[int]:
    """The 16 register values of one camera's state (docs/plc.md: the register map)."""
    status = (1 if state.alive else 0) | (2 if state.triggered else 0)
    return [_u16(state.heartbeat), status, 0, int(state.busy), int(state.result_ready), int(state.result),
            int(state.code), _x100(state.score), _x100(state.threshold), _u16(state.results), _u16(state.recipe),
            0, _u16(state.answered_trigger), _u16(state.overruns), _u16(state.deadline_misses),
            _u16(state.refused_writes)]


def _check_bindable(host: str, port: int) -> None:
    """PatchlineError in the system's words when (host, port) cannot be listened on (in use, no such address)."""
    import socket

    if port == 0:
        return
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        raise PatchlineError(f"cannot serve Modbus TCP on {host or '0.0.0.0'}:{port}: {exc.strerror or exc}.") from None
    finally:
        probe.close()


class ModbusServer:
    """The station's Modbus TCP server on (host, port); `start()` listens (PatchlineError when it cannot),
    `close()` stops it. `port` is the bound port after start (useful with port 0)."""

    def __init__(self, station: Station, host: str = "", port: int = 502):
        self.station, self.host, self.port = station, host, port
        self.cameras = station.cameras
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._listening = False

    def start(self, timeout: float = 10.0) -> "ModbusServer":
        """Listen in a thread of its own; returns once listening (PatchlineError if it cannot)."""
        _check_bindable(self.host, self.port)
        ready, failure = threading.Event(), []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name="plc-modbus", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            self.close()
            why = failure[0] if failure else "it did not start in time"
            raise PatchlineError(f"cannot serve Modbus TCP on {self.host or '0.0.0.0'}:{self.port}: {why}.")
        log.info("Modbus TCP server on %s:%d: %d camera block(s) of %d registers", self.host or "0.0.0.0",
                 self.port, len(self.cameras), BLOCK)
        return self

    def close(self) -> None:
        """Stop serving (connected clients are dropped)."""
        loop, server = self._loop, self._server
        if self._listening and loop is not None and server is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5.0)
        self._listening = False
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _serve(self, ready: threading.Event, failure: list) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        async def main():
            block = SimData(0, count=BLOCK * max(1, len(self.cameras)), values=0, datatype=DataType.REGISTERS)
            self._server = ModbusTcpServer(SimDevice(0, simdata=[block], action=self._action),
                                           address=(self.host, self.port))
            try:
                await self._server.serve_forever(background=True)
            except (OSError, RuntimeError) as exc:
                failure.append(getattr(exc, "strerror", None) or str(exc) or "the address is not usable")
                ready.set()
                return
            sockets = getattr(self._server.transport, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
            self._listening = True
            ready.set()
            await self._server.serving

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        except Exception as exc:  # the server must not take the run down
            log.exception("the Modbus server stopped")
            failure.append(str(exc))
            ready.set()
        finally:
            self._loop.close()

    async def _action(self, function_code: int, start: int, address: int, count: int, registers: list,
                      values) -> int | None:
        """pymodbus's hook on every request: refresh the block before a read, check and apply a write."""
        from pymodbus.constants import ExcCodes

        if values is None:
            self._refresh(registers, start, address - start, count)
            return None
        if function_code in BIT_WRITES:
            self.station.refuse(None, f"function {function_code} (write coil) at {address}: no register is a bit",
                                "modbus")
            return ExcCodes.ILLEGAL_FUNCTION
        problem = self._check_write(address, list(values))
        if problem is not None:
            camera, what, code = problem
            self.station.refuse(camera, what, "modbus")
            return ExcCodes.ILLEGAL_ADDRESS if code == "address" else ExcCodes.ILLEGAL_VALUE
        for i, value in enumerate(values):
            values[i] = self._apply(address + i, int(value))
        return None

    def _refresh(self, registers: list, first: int, offset: int, count: int) -> None:
        """Write the current state of every camera whose block overlaps [offset, offset+count) into `registers`."""
        states = self.station.states()
        for index in range(offset // BLOCK, (offset + count - 1) // BLOCK + 1):
            if index < len(self.cameras) and self.cameras[index] in states:
                at = index * BLOCK - first
                registers[at:at + BLOCK] = registers_of(states[self.cameras[index]])

    def _camera(self, register: int) -> tuple[str | None, int]:
        index, offset = divmod(register, BLOCK)
        return (self.cameras[index] if index < len(self.cameras) else None), offset

    def _check_write(self, address: int, values: list) -> tuple[str | None, str, str] | None:
        """(camera, why, "address" | "value") for the first register of a write that may not take its
        value, or None when the whole write is acceptable."""
        for i, value in enumerate(values):
            camera, offset = self._camera(address + i)
            if camera is None:
                return None, f"register {address + i} belongs to no camera", "address"
            if offset not in WRITABLE:
                return camera, f"register {address + i} ({NAMES[offset]}) is read-only", "address"
            if offset in (TRIGGER, ACKNOWLEDGE) and value not in (0, 1):
                return camera, f"{NAMES[offset]} takes 0 or 1, not {value}", "value"
            if offset == RECIPE and not 1 <= value <= 65535:
                return camera, f"recipe {value} is not a recipe number (1 … 65535)", "value"
        return None

    def _apply(self, register: int, value: int) -> int:
        """Pass one checked write to the station; what the register holds afterwards."""
        camera, offset = self._camera(register)
        if offset == TRIGGER:
            if value:
                self.station.trigger(camera, "modbus")
            return 0
        if offset == ACKNOWLEDGE:
            if value:
                self.station.acknowledge(camera, "modbus")
            return 0
        self.station.select_recipe(camera, value, "modbus")
        return _u16(self.station.state(camera).recipe)
