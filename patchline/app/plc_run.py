"""A run as an inspection station a PLC talks to: the station, its protocol servers and the run's hooks.

`PlcSink` joins the station (patchline/plc/station.py) to a run:
- at the source, `admit(frame)` (the stream option "admit") lets a frame in or holds it back (a
  triggered camera between triggers) and tags it: the line of the camera's recipe
  (`frame.judge_line`), the trigger it answers and the recipe number (`frame.tags`, so the verdict
  payload carries "trigger" and "recipe");
- every verdict goes to the station (it answers the trigger, marks a late one); a trigger not answered
  by its deadline comes back as a verdict-like payload through the run's router, so MQTT publishes it;
- each camera's status tells the station whether the camera is delivering;
- `start()` registers the cameras, starts the station's clock and the protocol servers (Modbus TCP, OPC UA),
  with a broker the MQTT trigger / recipe listener, and with a trigger folder its poller (plc_folder.py);
  `close()` stops them (a waiting trigger is answered NG / STOPPED, the heartbeat stops).
"""

from __future__ import annotations

import logging

from patchline.app.sinks import Sink, Verdict
from patchline.plc.station import Station

log = logging.getLogger(__name__)

ONLINE_STATES = ("online", "drift")


def plc_counters(state) -> dict:
    """A camera's station counters as its MQTT status carries them: mode, recipe, triggers accepted,
    results given, overruns, deadline misses, late verdicts, refused writes (plc/state.CameraState)."""
    return {"mode": state.mode, "recipe": state.recipe, "triggers": state.trigger_id, "results": state.results,
            "overruns": state.overruns, "deadline_misses": state.deadline_misses, "late": state.late,
            "refused_writes": state.refused_writes}


class PlcSink(Sink):
    """The station of one run and the servers that show it. options: run_settings.PlcOptions;
    broker: the run's BrokerSettings (None: no MQTT triggers / recipes)."""

    def __init__(self, options, broker=None):
        self.options = options
        self.broker = broker
        self.station = Station(options.station)
        self.servers: list = []  # protocol adapters with close()
        self.requests = None
        self.folder = None  # the trigger folder's poller (plc_folder.py)

    @property
    def recipe_lines(self) -> list[str]:
        """Every line a recipe may choose (the post-process loads their banks at start)."""
        return list(dict.fromkeys(self.station.recipes.values()))

    def admit(self, frame) -> bool:
        """The stream's admit hook: False holds the frame back; True lets it in, tagged."""
        admission = self.station.admit(frame.camera, frame.timestamp)
        if admission is None:
            return False
        if admission.line is not None:
            frame.judge_line = admission.line
        if admission.trigger_id is not None:
            frame.tags["trigger"] = admission.trigger_id
        if self.station.recipes:
            frame.tags["recipe"] = admission.recipe
        return True

    def start(self, camera_lines: dict[str, str], on_miss) -> None:
        """Register the cameras ({camera: the line its stream judges}), then start the station and its
        servers. on_miss(payload): where deadline answers go (the run's router)."""
        for camera, line in camera_lines.items():
            self.station.add_camera(camera, line)
        self.station.on_miss = on_miss
        self.station.start()
        try:
            if self.options.modbus is not None:
                from patchline.plc.modbus import ModbusServer

                host, port = self.options.modbus
                self.servers.append(ModbusServer(self.station, host, port).start())
            if self.options.opcua is not None:
                from patchline.plc.opcua import OpcUaServer

                host, port = self.options.opcua
                self.servers.append(OpcUaServer(self.station, host, port, self.options.opcua_security).start())
            if self.broker is not None:
                from patchline.app.plc_requests import MqttRequests

                self.requests = MqttRequests(self.station, self.broker).start()
            if self.options.trigger_folder is not None:
                from patchline.app.plc_folder import FolderTriggers

                self.folder = FolderTriggers(self.station, self.options.trigger_folder).start()
        except BaseException:
            self.close()
            raise

    def verdict(self, verdict: Verdict) -> None:
        self.station.on_verdict(verdict.payload)

    def status(self, camera: str, state: str, extra: dict) -> None:
        """Tell the station whether the camera is alive, and add its trigger counters to the status the
        later sinks (MQTT) publish: extra["plc"] (see plc_counters)."""
        self.station.set_online(camera, state in ONLINE_STATES)
        counters = self.station.states().get(camera)
        if counters is not None:
            extra["plc"] = plc_counters(counters)

    def close(self, timeout: float | None = None) -> None:
        if self.requests is not None:
            self.requests.close()
            self.requests = None
        if self.folder is not None:
            self.folder.close()
            self.folder = None
        self.station.close()
        for server in self.servers:
            server.close()
        self.servers = []

    def summary_lines(self) -> list[str]:
        rows = []
        for camera, st in self.station.states().items():
            rows.append(f"  plc {camera} ({st.mode}, recipe {st.recipe}, line {st.line}): {st.trigger_id} triggers, "
                        f"{st.results} answers, {st.overruns} overruns, {st.deadline_misses} deadline misses, "
                        f"{st.late} late verdicts, {st.refused_writes} refused writes")
        if self.station.refused_other:
            rows.append(f"  plc: {self.station.refused_other} refused writes naming no camera")
        return rows
