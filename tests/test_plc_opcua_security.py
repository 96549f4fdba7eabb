"""The station's OPC UA server with a certificate, users and trusted clients (patchline/plc/opcua_security.py),
against real asyncua clients on loopback: only a user of the users file with its password gets a session
(signed and encrypted, or signed), anonymous and plain-channel clients are refused, a trust folder keeps out
other clients' certificates; bad security options are one sentence before anything listens; `patchline
opcua-cert` writes a certificate the server takes."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from conftest import free_port

from patchline.dashboard.auth import add_user
from patchline.errors import ConfigError
from patchline.plc.opcua import OpcUaServer
from patchline.plc.opcua_nodes import NAMESPACE_URI
from patchline.plc.opcua_security import OpcUaSecurity, make_certificate
from patchline.plc.state import StationConfig
from patchline.plc.station import Station

pytestmark = pytest.mark.runtime
PASSWORD = "line-3-plc-pass"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Server and two client certificates, and a users file with user plc1."""
    root = tmp_path_factory.mktemp("opcua-keys")
    out = {"server": make_certificate(root / "server", "127.0.0.1"), "a": make_certificate(root / "a", "127.0.0.1"),
           "b": make_certificate(root / "b", "127.0.0.1"), "root": root}
    add_user(root / "users", "plc1", PASSWORD)
    (root / "trust").mkdir()
    (root / "trust" / "a.der").write_bytes(out["a"][0].read_bytes())
    return out


def serve(security: OpcUaSecurity):
    station = Station(StationConfig(True, deadline_s=2.0, heartbeat_s=0.2))
    station.add_camera("cam1", "mono")
    station.start()
    return station, OpcUaServer(station, "127.0.0.1", free_port(), security).start()


async def session(server, keys, user=None, password=None, client="a", mode=ua.MessageSecurityMode.SignAndEncrypt):
    """'ok <trigger id>' when the client gets a session and can trigger, else the refusal's class name."""
    c = Client(server.url, timeout=5)
    if client is not None:
        cert, key = keys[client]
        await c.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), server_certificate=str(keys["server"][0]),
                             mode=mode)
    if user is not None:
        c.set_user(user)
        c.set_password(password)
    try:
        async with c:
            ns = await c.get_namespace_index(NAMESPACE_URI)
            trigger = await c.get_node(ua.NodeId("cam1", ns)).call_method(ua.QualifiedName("TriggerInspection", ns))
            return f"ok {trigger}"
    except Exception as exc:  # noqa: BLE001 - the refusal is the answer
        return type(exc).__name__


def test_only_a_user_of_the_file_with_its_password_gets_a_session_on_a_secure_channel(keys):
    station, server = serve(OpcUaSecurity(*keys["server"], users=keys["root"] / "users").check())
    try:
        async def scenario():
            return [await session(server, keys, "plc1", PASSWORD),
                    await session(server, keys, "plc1", PASSWORD, mode=ua.MessageSecurityMode.Sign),
                    await session(server, keys, "plc1", "not-the-password"),
                    await session(server, keys, "intruder", PASSWORD),
                    await session(server, keys),                                   # anonymous
                    await session(server, keys, "plc1", PASSWORD, client=None)]    # plain channel
        results = asyncio.run(scenario())
    finally:
        server.close()
        station.close()
    # the second session's trigger is refused as an overrun (0): the first one is still waiting for a frame
    assert results[0] == "ok 1" and results[1] == "ok 0", results
    assert results[2] == results[3] == "BadUserAccessDenied", results
    assert results[4] == "BadIdentityTokenRejected", results
    assert results[5] == "UaError", results  # no endpoint without security is offered


def test_a_trust_folder_keeps_out_other_clients_certificates(keys):
    station, server = serve(OpcUaSecurity(*keys["server"], trust=keys["root"] / "trust").check())
    try:
        async def scenario():
            return [await session(server, keys, client="a"), await session(server, keys, client="b")]
        trusted, other = asyncio.run(scenario())
    finally:
        server.close()
        station.close()
    assert trusted == "ok 1" and not other.startswith("ok"), (trusted, other)


def test_bad_security_options_are_one_sentence_naming_the_option(keys, tmp_path):
    cert, key = keys["server"]
    other_key = keys["b"][1]
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00not a certificate")
    cases = [
        (OpcUaSecurity(cert=cert), "--opcua-cert and --opcua-key go together"),
        (OpcUaSecurity(users=keys["root"] / "users"), "--opcua-users needs --opcua-cert and --opcua-key"),
        (OpcUaSecurity(trust=keys["root"] / "trust"), "--opcua-trust needs --opcua-cert"),
        (OpcUaSecurity(cert, other_key), "is not the private key of --opcua-cert"),
        (OpcUaSecurity(garbage, key), "is not an X.509 certificate"),
        (OpcUaSecurity(cert, garbage), "is not an unencrypted private key"),
        (OpcUaSecurity(cert, key, users=garbage), "--opcua-users"),
        (OpcUaSecurity(cert, key, trust=tmp_path), "holds no client certificate"),
    ]
    for security, words in cases:
        with pytest.raises(ConfigError, match=words.replace("-", r"\-").replace(".", r"\.")):
            security.check()


def test_the_opcua_cert_command_writes_a_certificate_the_server_takes_and_a_private_key(tmp_path, keys):
    done = subprocess.run([sys.executable, "-m", "patchline.cli", "opcua-cert", "--out", str(tmp_path / "station"),
                           "--host", "127.0.0.1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cert, key = tmp_path / "station" / "server-cert.der", tmp_path / "station" / "server-key.pem"
    assert f"--opcua-cert {cert} --opcua-key {key}" in done.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    station, server = serve(OpcUaSecurity(cert, key).check())
    try:
        mine = {**keys, "server": (cert, key)}
        assert asyncio.run(session(server, mine)) == "ok 1"  # anonymous, but only over the secure channel
    finally:
        server.close()
        station.close()
    bad = subprocess.run([sys.executable, "-m", "patchline.cli", "opcua-cert", "--out", str(tmp_path / "x"),
                          "--host", "bad host/name"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "is not a host name or address" in bad.stderr and "Traceback" not in bad.stderr


def test_after_a_wrong_password_the_next_try_within_a_second_is_refused_unchecked(keys):
    from patchline.dashboard.auth import BasicAuth, load_auth_file
    from patchline.plc.opcua_security import FileUsers

    now = [100.0]
    users = FileUsers(BasicAuth(load_auth_file(keys["root"] / "users")), clock=lambda: now[0])
    assert users.get_user(None, "plc1", PASSWORD) is not None
    assert users.get_user(None, "plc1", "guess-1") is None
    now[0] += 0.5
    assert users.get_user(None, "plc1", PASSWORD) is None, "within a second of a wrong password: not even checked"
    now[0] += 0.6
    assert users.get_user(None, "plc1", PASSWORD) is not None
    assert users.get_user(None, "nobody", "x") is None and users.get_user(None, "nobody", "y") is None
