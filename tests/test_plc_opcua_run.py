"""`patchline run --opcua`: the shipped pipeline on a trained line (ONNX Runtime + faiss), frames from a
looping folder at a camera's pace, and a real asyncua client as the PLC / SCADA: the handshake answers
OK and NG frames with their verdicts, a recipe switch and an unknown recipe, the client leaving and
coming back mid-run, and the command line itself."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from asyncua import Client, ua
from plc_support import OTHER, line, running, stop_station  # noqa: F401  (line: the trained lines brick, brick-b)

from patchline.app.run_settings import PlcOptions, RunSettings
from patchline.app.sinks import Sink
from patchline.mqtt.local_broker import free_port
from patchline.plc.opcua_nodes import NAMESPACE_URI
from patchline.plc.state import StationConfig
from pipeline_support import LINE, REPO, patchline

SHIPPED = REPO / "pipeline" / "folder_layer2_layer3.pipeline"


class Collect(Sink):
    """Every verdict payload the run's sinks see."""

    def __init__(self):
        self.payloads = []

    def verdict(self, verdict):
        self.payloads.append(dict(verdict.payload))

    def of_trigger(self, trigger_id: int) -> list[dict]:
        return [p for p in list(self.payloads) if p.get("trigger") == trigger_id]


class Scada:
    """An asyncua client on one camera's object."""

    def __init__(self, client: Client, ns: int, camera: str = "cam"):
        self.client, self.ns, self.camera = client, ns, camera

    @classmethod
    async def connect(cls, port: int, timeout: float = 120.0, secure: dict | None = None) -> "Scada":
        """secure: {"cert", "key", "server", "user", "password"} for a signed and encrypted session as a user."""
        deadline = time.monotonic() + timeout
        while True:
            client = Client(f"opc.tcp://127.0.0.1:{port}", timeout=10)
            if secure:
                from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

                await client.set_security(SecurityPolicyBasic256Sha256, str(secure["cert"]), str(secure["key"]),
                                          server_certificate=str(secure["server"]))
                client.set_user(secure["user"])
                client.set_password(secure["password"])
            try:
                await client.connect()
                return cls(client, await client.get_namespace_index(NAMESPACE_URI))
            except (OSError, asyncio.TimeoutError):
                assert time.monotonic() < deadline, f"no OPC UA server on port {port}"
                await asyncio.sleep(0.2)

    async def read(self, *names: str) -> dict:
        return {n: await self.client.get_node(ua.NodeId(f"{self.camera}.{n}", self.ns)).read_value() for n in names}

    async def call(self, method: str, *args):
        obj = self.client.get_node(ua.NodeId(self.camera, self.ns))
        return await obj.call_method(ua.QualifiedName(method, self.ns), *args)

    async def until(self, predicate, *names: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while not predicate(values := await self.read(*names)):
            assert time.monotonic() < deadline, f"timed out; {values}"
            await asyncio.sleep(0.005)
        return values

    async def inspect(self) -> dict:
        """TriggerInspection, wait for ResultReady with this trigger's answer, read, AcknowledgeResult."""
        trigger = await self.call("TriggerInspection")
        assert trigger > 0
        names = ("ResultReady", "AnsweredTrigger", "Result", "ResultText", "ErrorCode", "Score", "Threshold",
                 "ResultLine", "Busy")
        values = await self.until(lambda v: v["ResultReady"] and v["AnsweredTrigger"] == trigger, *names)
        assert await self.call("AcknowledgeResult") is True
        return values

    async def close(self) -> None:
        await self.client.disconnect()


def test_the_run_answers_ok_and_ng_frames_switches_recipes_and_keeps_going_for_a_returning_client(line, monkeypatch):
    monkeypatch.chdir(line.workdir)
    port, collect = free_port(), Collect()
    station = StationConfig(True, 2.0, 0.5, ((1, LINE), (2, OTHER)))
    settings = RunSettings(SHIPPED, (str(line.frames),), camera="cam", line=LINE, loop_folder=True, folder_fps=25.0,
                           quiet=True, plc=PlcOptions(station, opcua=("127.0.0.1", port)))

    async def scenario():
        scada = await Scada.connect(port)
        await scada.until(lambda v: v["Alive"], "Alive", timeout=60)
        seen = set()
        for _ in range(80):
            values = await scada.inspect()
            payload, = collect.of_trigger(values["AnsweredTrigger"])  # one verdict answers each trigger
            want = {"good": "OK", "defect": "NG"}.get(payload["verdict"], "NG")
            assert values["ResultText"] == want and payload["result"] == want and not values["Busy"]
            if payload["verdict"] != "error":
                assert values["Score"] == pytest.approx(payload["score"]) and values["ErrorCode"] == 0
                assert values["Threshold"] == pytest.approx(payload["threshold"])
            assert values["ResultLine"] == LINE == payload["line"]
            seen.add(want)
            if {"OK", "NG"} <= seen:
                break
        assert {"OK", "NG"} <= seen

        assert await scada.call("SelectRecipe", ua.Variant(2, ua.VariantType.UInt16)) is True
        values = await scada.inspect()
        assert values["ResultLine"] == OTHER and collect.of_trigger(values["AnsweredTrigger"])[0]["line"] == OTHER
        assert await scada.call("SelectRecipe", ua.Variant(9, ua.VariantType.UInt16)) is False
        assert (await scada.read("Recipe", "Line", "RefusedWrites")) == {"Recipe": 2, "Line": OTHER, "RefusedWrites": 1}

        await scada.call("TriggerInspection")  # and goes away before the answer
        await scada.close()
        back = await Scada.connect(port)
        values = await back.until(lambda v: v["ResultReady"], "ResultReady", "ResultText", "AnsweredTrigger")
        assert collect.of_trigger(values["AnsweredTrigger"])[0]["result"] == values["ResultText"]
        assert await back.call("AcknowledgeResult") is True
        assert (await back.inspect())["ResultLine"] == OTHER
        await back.close()

    with running(settings, [collect]):
        asyncio.run(scenario())


@pytest.mark.parametrize("secure", [False, True], ids=["anonymous", "certificate-and-users"])
def test_the_command_line_serves_opcua(line, tmp_path, secure):
    port = free_port()
    options, login = [], None
    if secure:  # the station's certificate from `patchline opcua-cert`, a user file, the client's own certificate
        from patchline.dashboard.auth import add_user
        from patchline.plc.opcua_security import make_certificate

        subprocess.run(patchline("opcua-cert", "--out", str(tmp_path / "station"), "--host", "127.0.0.1"), check=True,
                       capture_output=True, timeout=120)
        add_user(tmp_path / "users", "plc1", "line-3-plc-pass")
        server_cert, server_key = tmp_path / "station" / "server-cert.der", tmp_path / "station" / "server-key.pem"
        options = ["--opcua-cert", str(server_cert), "--opcua-key", str(server_key), "--opcua-users",
                   str(tmp_path / "users")]
        cert, key = make_certificate(tmp_path / "client", "127.0.0.1")
        login = {"cert": cert, "key": key, "server": server_cert, "user": "plc1", "password": "line-3-plc-pass"}
    proc = subprocess.Popen(patchline("run", str(SHIPPED), "--source", str(line.frames), "--loop", "--fps", "25",
                                      "--camera", "cam", "--line", LINE, "--triggered", "--deadline-ms", "2000",
                                      "--opcua", f"opc.tcp://127.0.0.1:{port}", *options),
                            cwd=line.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def scenario():
        scada = await Scada.connect(port, secure=login)
        try:
            values = await scada.inspect()
            assert values["ResultText"] in ("OK", "NG") and values["ResultLine"] == LINE
        finally:
            await scada.close()

    try:
        asyncio.run(scenario())
    finally:
        out, err = stop_station(proc)
    assert proc.returncode == 0, err[-3000:]
    assert "OPC UA server on opc.tcp://127.0.0.1" in err
    assert "plc cam (triggered, recipe 0, line brick): 1 triggers, 1 answers" in out
