"""The station as an OPC UA server (patchline/plc/opcua.py) with a real asyncua client on loopback as
the SCADA / PLC: the node tree and its types, the trigger → result → acknowledge handshake for OK and
NG answers (by writes, by method calls, seen through a subscription), an unknown recipe refused, a
client that disconnects and comes back mid-run, and bad writes refused with a status and counted.
Frames and verdicts reach the station the way the run hands them over (admit at the source,
on_verdict at the end); `patchline run --opcua` itself is tested at the end of the file."""

from __future__ import annotations

import asyncio
import time

import pytest
from asyncua import Client, ua
from conftest import free_port

from patchline.errors import ConfigError, PatchlineError
from patchline.plc.opcua import OpcUaServer
from patchline.plc.opcua_nodes import NAMESPACE_URI, opcua_endpoint
from patchline.plc.state import StationConfig
from patchline.plc.station import Station

pytestmark = pytest.mark.runtime
V = ua.VariantType


@pytest.fixture
def plc():
    """A triggered two-camera station with recipes 1 = mono, 2 = poly, served on a free loopback port."""
    station = Station(StationConfig(True, deadline_s=2.0, heartbeat_s=0.2, recipes=((1, "mono"), (2, "poly"))))
    station.add_camera("cam1", "mono")
    station.add_camera("cam2", "poly")
    station.start()
    server = OpcUaServer(station, "127.0.0.1", free_port()).start()
    yield station, server
    server.close()
    station.close()


def judge(station: Station, camera: str, verdict: str, score: float, frame_id: int) -> None:
    """One frame through the station as the run passes it: admitted at the source, its verdict at the end."""
    admission = station.admit(camera, time.time())
    assert admission is not None and admission.trigger_id is not None
    station.on_verdict({"camera": camera, "line": admission.line, "verdict": verdict, "score": score,
                        "threshold": 2.0, "frame_id": frame_id, "trigger": admission.trigger_id})


class Plc:
    """The client side: a node of a camera by name, method calls, reads."""

    def __init__(self, client: Client, ns: int):
        self.client, self.ns = client, ns

    def node(self, camera: str, name: str):
        return self.client.get_node(ua.NodeId(f"{camera}.{name}", self.ns))

    async def read(self, camera: str, *names: str) -> dict:
        return {name: await self.node(camera, name).read_value() for name in names}

    async def call(self, camera: str, method: str, *args):
        obj = self.client.get_node(ua.NodeId(camera, self.ns))
        return await obj.call_method(ua.QualifiedName(method, self.ns), *args)

    async def write(self, camera: str, name: str, value, kind: ua.VariantType):
        await self.node(camera, name).write_value(ua.DataValue(ua.Variant(value, kind)))

    async def until(self, camera: str, name: str, expected, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while (value := await self.node(camera, name).read_value()) != expected:
            assert time.monotonic() < deadline, f"{camera}.{name} is {value!r}, not {expected!r}"
            await asyncio.sleep(0.01)


async def connect(server: OpcUaServer) -> tuple[Client, Plc]:
    client = Client(f"opc.tcp://127.0.0.1:{server.port}", timeout=10)
    await client.connect()
    return client, Plc(client, await client.get_namespace_index(NAMESPACE_URI))


def test_each_camera_is_an_object_of_typed_variables_and_only_the_commands_are_writable(plc):
    station, server = plc

    async def scenario():
        client, p = await connect(server)
        try:
            root = client.get_node(ua.NodeId("Patchline", p.ns))
            names = {(await child.read_browse_name()).Name for child in await root.get_children()}
            assert names == {"cam1", "cam2", "Recipes"}
            assert await client.get_node(ua.NodeId("Patchline.Recipes", p.ns)).read_value() == ["1=mono", "2=poly"]
            types = {name: (await p.node("cam1", name).read_data_value()).Value.VariantType
                     for name in ("Result", "ErrorCode", "Score", "ResultReady", "Heartbeat", "FrameId", "Line", "Recipe")}
            assert types == {"Result": V.UInt16, "ErrorCode": V.UInt16, "Score": V.Double, "ResultReady": V.Boolean,
                             "Heartbeat": V.UInt32, "FrameId": V.UInt64, "Line": V.String, "Recipe": V.UInt16}
            writable = set()
            for child in await client.get_node(ua.NodeId("cam1", p.ns)).get_children():
                if await child.read_node_class() == ua.NodeClass.Variable:
                    if (await child.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value & ua.AccessLevel.CurrentWrite.mask:
                        writable.add((await child.read_browse_name()).Name)
            assert writable == {"Trigger", "Acknowledge", "Recipe"}
            assert await p.read("cam1", "Mode", "Line", "Recipe", "ResultText") == \
                {"Mode": "triggered", "Line": "mono", "Recipe": 1, "ResultText": "NONE"}
        finally:
            await client.disconnect()

    asyncio.run(scenario())


def test_the_handshake_for_an_ok_and_an_ng_part_seen_through_a_subscription(plc):
    station, server = plc

    class Seen:
        def __init__(self):
            self.changes = []

        def datachange_notification(self, node, value, data):
            self.changes.append(value)

    async def scenario():
        client, p = await connect(server)
        try:
            seen = Seen()
            subscription = await client.create_subscription(20, seen)
            await subscription.subscribe_data_change(p.node("cam1", "ResultReady"))
            # OK: the PLC writes Trigger, the part is judged good, the PLC reads and acknowledges
            await p.write("cam1", "Trigger", True, V.Boolean)
            await p.until("cam1", "Busy", True)
            assert (await p.read("cam1", "TriggerId", "Trigger")) == {"TriggerId": 1, "Trigger": False}
            judge(station, "cam1", "good", 1.25, 41)
            await p.until("cam1", "ResultReady", True)
            assert await p.read("cam1", "Busy", "Result", "ResultText", "ErrorCode", "Score", "Threshold", "FrameId",
                                "AnsweredTrigger", "ResultLine") == \
                {"Busy": False, "Result": 1, "ResultText": "OK", "ErrorCode": 0, "Score": 1.25, "Threshold": 2.0,
                 "FrameId": 41, "AnsweredTrigger": 1, "ResultLine": "mono"}
            await p.write("cam1", "Acknowledge", True, V.Boolean)
            await p.until("cam1", "ResultReady", False)
            # NG: the same through the methods
            assert await p.call("cam1", "TriggerInspection") == 2
            await p.until("cam1", "Busy", True)
            judge(station, "cam1", "defect", 3.5, 42)
            await p.until("cam1", "ResultReady", True)
            assert await p.read("cam1", "ResultText", "Result", "ErrorCode", "Score", "AnsweredTrigger") == \
                {"ResultText": "NG", "Result": 2, "ErrorCode": 0, "Score": 3.5, "AnsweredTrigger": 2}
            assert await p.call("cam1", "AcknowledgeResult") is True
            await p.until("cam1", "ResultReady", False)
            deadline = time.monotonic() + 5
            while seen.changes[-4:] != [True, False, True, False] and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert seen.changes[-4:] == [True, False, True, False], seen.changes  # the subscriber saw each edge
            assert (await p.read("cam2", "Results"))["Results"] == 0  # the other camera is untouched
        finally:
            await client.disconnect()

    asyncio.run(scenario())


def test_an_unknown_recipe_is_refused_and_the_recipe_in_use_stays(plc):
    station, server = plc

    async def scenario():
        client, p = await connect(server)
        try:
            assert await p.call("cam1", "SelectRecipe", ua.Variant(2, V.UInt16)) is True
            await p.until("cam1", "Line", "poly")
            assert await p.call("cam1", "SelectRecipe", ua.Variant(7, V.UInt16)) is False
            await p.until("cam1", "ResultText", "ERROR")
            assert await p.read("cam1", "ErrorText", "Recipe", "Line", "ResultReady") == \
                {"ErrorText": "UNKNOWN_RECIPE", "Recipe": 2, "Line": "poly", "ResultReady": True}
            with pytest.raises(ua.UaStatusCodeError, match="BadOutOfRange"):
                await p.write("cam1", "Recipe", 9, V.UInt16)
            await p.write("cam1", "Recipe", 1, V.UInt16)  # a known one, by writing the variable
            await p.until("cam1", "Line", "mono")
            await p.until("cam1", "RefusedWrites", 2)
            await p.call("cam1", "TriggerInspection")
            await p.until("cam1", "Busy", True)
            judge(station, "cam1", "good", 0.5, 7)  # the next frame is judged with the recipe's line
            await p.until("cam1", "ResultReady", True)
            assert (await p.read("cam1", "ResultLine"))["ResultLine"] == "mono"
        finally:
            await client.disconnect()

    asyncio.run(scenario())


def test_a_client_that_disconnects_mid_handshake_finds_the_result_when_it_comes_back(plc):
    station, server = plc

    async def first():
        client, p = await connect(server)
        await p.call("cam2", "TriggerInspection")
        await p.until("cam2", "Busy", True)
        await client.disconnect()  # the PLC goes away before the answer

    async def second():
        client, p = await connect(server)
        try:
            await p.until("cam2", "ResultReady", True)
            assert await p.read("cam2", "ResultText", "AnsweredTrigger", "FrameId") == \
                {"ResultText": "NG", "AnsweredTrigger": 1, "FrameId": 9}
            assert await p.call("cam2", "AcknowledgeResult") is True
            beat = (await p.read("cam2", "Heartbeat"))["Heartbeat"]
            await p.call("cam2", "TriggerInspection")  # and the station goes on with the next part
            await p.until("cam2", "Busy", True)
            judge(station, "cam2", "good", 0.2, 10)
            await p.until("cam2", "ResultText", "OK")
            assert (await p.read("cam2", "Heartbeat"))["Heartbeat"] >= beat
        finally:
            await client.disconnect()

    asyncio.run(first())
    judge(station, "cam2", "defect", 4.0, 9)
    asyncio.run(second())


@pytest.mark.parametrize("name, value, kind, status", [
    ("Score", 1.0, V.Double, "BadNotWritable"),
    ("ResultReady", True, V.Boolean, "BadNotWritable"),
    ("Heartbeat", 5, V.UInt32, "BadNotWritable"),
    ("Trigger", "yes", V.String, "BadTypeMismatch"),
    ("Trigger", 5, V.Int32, "BadTypeMismatch"),
    ("Acknowledge", 2.0, V.Double, "BadTypeMismatch"),
    ("Trigger", [True, True], V.Boolean, "BadTypeMismatch"),
    ("Recipe", 0, V.UInt16, "BadOutOfRange"),
    ("Recipe", 70000, V.Int32, "BadOutOfRange"),
    ("Recipe", -1, V.Int16, "BadOutOfRange"),
    ("Recipe", 1.0, V.Double, "BadOutOfRange"),
    ("Recipe", "1", V.String, "BadOutOfRange"),
])
def test_a_bad_write_is_refused_with_a_status_counted_and_changes_nothing(plc, name, value, kind, status):
    station, server = plc

    async def scenario():
        client, p = await connect(server)
        try:
            before = await p.read("cam1", "Busy", "Recipe", "Score", "Heartbeat", "TriggerId")
            with pytest.raises(ua.UaStatusCodeError, match=status):
                await p.write("cam1", name, value, kind)
            await p.until("cam1", "RefusedWrites", 1)
            after = await p.read("cam1", "Busy", "Recipe", "Score", "TriggerId")
            assert after == {k: before[k] for k in after}
            assert station.state("cam1").refused_writes == 1 and station.state("cam2").refused_writes == 0
            # the server still answers: a full handshake after the bad write
            await p.write("cam1", "Trigger", 1, V.Byte)
            await p.until("cam1", "Busy", True)
            judge(station, "cam1", "good", 1.0, 1)
            await p.until("cam1", "ResultText", "OK")
        finally:
            await client.disconnect()

    asyncio.run(scenario())


def test_bad_method_calls_and_attribute_writes_are_refused_and_counted(plc):
    station, server = plc

    async def scenario():
        client, p = await connect(server)
        try:
            with pytest.raises(ua.UaStatusCodeError, match="BadInvalidArgument"):
                await p.call("cam1", "SelectRecipe", ua.Variant("two", V.String))
            with pytest.raises(ua.UaStatusCodeError, match="BadArgumentsMissing"):
                await p.call("cam1", "SelectRecipe")
            with pytest.raises(ua.UaStatusCodeError, match="BadTooManyArguments"):
                await p.call("cam1", "TriggerInspection", ua.Variant(1, V.UInt16))
            with pytest.raises(ua.UaStatusCodeError):  # renaming a node: not the client's to do
                await p.node("cam1", "Score").write_attribute(
                    ua.AttributeIds.DisplayName, ua.DataValue(ua.Variant(ua.LocalizedText("x"), V.LocalizedText)))
            await p.until("cam1", "RefusedWrites", 4)
            assert (await p.node("cam1", "Score").read_display_name()).Text == "Score"
        finally:
            await client.disconnect()

    asyncio.run(scenario())


def test_an_address_in_use_is_one_sentence(plc):
    station, server = plc
    with pytest.raises(PatchlineError, match=r"cannot serve OPC UA on opc.tcp://127.0.0.1:\d+: "):
        OpcUaServer(station, "127.0.0.1", server.port).start()


@pytest.mark.parametrize("text, expected", [
    ("opc.tcp://0.0.0.0:4840", ("0.0.0.0", 4840)),
    ("opc.tcp://127.0.0.1:48400/patchline", ("127.0.0.1", 48400)),
    ("opc.tcp://plc-gw", ("plc-gw", 4840)),
])
def test_the_endpoint_url(text, expected):
    assert opcua_endpoint(text) == expected


@pytest.mark.parametrize("text", ["http://0.0.0.0:4840", "opc.tcp://:4840", "opc.tcp://h:99999", "opc.tcp://h:0", "4840",
                                  "opc.tcp://user:pw@h:4840"])
def test_a_bad_endpoint_url_is_one_sentence(text):
    with pytest.raises(ConfigError, match="--opcua"):
        opcua_endpoint(text)
