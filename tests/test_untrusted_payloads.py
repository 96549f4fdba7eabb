"""Everything from the broker is untrusted (issue 21, items 2 and 5): one payload decoder with a
size bound, a nesting bound checked before the JSON parser, no NaN / Infinity, objects only; the
subscribers (`patchline alarms`, `patchline feedback --listen`, the dashboard's state) count or
answer a refused message and keep going. Real Mosquitto; generated hostile payloads (hypothesis)."""

from __future__ import annotations

import io
import json
import math
import queue
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import said
from patchline.app.alarms import format_alarm, run_alarms
from patchline.dashboard import state as dashboard_state
from patchline.dashboard.state import DashboardState
from patchline.mqtt.broker import BrokerSettings, connect_now, make_client
from patchline.mqtt.payload import MAX_PAYLOAD_BYTES, PayloadError, decode_payload
from patchline.mqtt.subscriber import Subscriber

NESTED = b"[" * 200_000 + b"]" * 200_000
DEEP_SMALL = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"  # small enough for the size bound: the depth bound refuses it
VERDICT = {"line": "L", "camera": "c", "frame_id": 1, "score": 2.5, "threshold": 2.0, "verdict": "defect",
           "region": {"bbox": [1, 2, 3, 4], "area": 4}, "source": "f.png", "timestamp": "t"}


@pytest.mark.parametrize("raw, reason", [
    (NESTED, "bytes"), (DEEP_SMALL, "nests deeper"), (b'{"score": NaN}', "NaN"), (b'{"score": -Infinity}', "Infinity"),
    (b'{"score": 1e999}', "out of range"), (b'{"n": ' + b"9" * 400 + b"}", "digits"), (b"[1, 2]", "not an object"),
    (b"\xff\xfe", "UTF-8"), (b'{"a": ', "not valid JSON"), (b"x" * (MAX_PAYLOAD_BYTES + 1), "bytes"),
])
def test_the_decoder_refuses_hostile_payloads_in_one_sentence(raw, reason):
    with pytest.raises(PayloadError, match=reason) as info:
        decode_payload(raw)
    assert "\n" not in str(info.value)


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert decode_payload(json.dumps({"s": "[" * 1000 + "{" * 1000}).encode())["s"].startswith("[[[")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30)


def _finite_everywhere(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite_everywhere(v) for v in value)
    if isinstance(value, dict):
        return all(_finite_everywhere(v) for v in value.values())
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda v: json.dumps(v).encode()),                      # NaN / Infinity / lists / scalars
    st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),               # nesting, closed
    st.integers(1, 20_000).map(lambda n: b'{"a":' + b"{" * n),                # nesting, never closed
    st.tuples(st.integers(0, 40), st.text(max_size=30)).map(
        lambda t: ('{"x":' + "[" * t[0] + json.dumps(t[1]) + "]" * t[0] + "}").encode()),
))
def test_generated_hostile_payloads_give_a_dict_of_finite_values_or_a_payload_error(raw):
    try:
        value = decode_payload(raw)
    except PayloadError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(value, dict) and _finite_everywhere(value)
    assert json.dumps(value, allow_nan=False)  # what the dashboard sends the browser


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["state", "fps", "dropped_frames", "reason", "score", "threshold", "region",
                                        "snapshot", "reasons", "drift", "frame_id", "source", "version", "verdict"]),
                       json_values, max_size=8),
       st.sampled_from(["status", "verdict", "alarm", "drift"]))
def test_the_dashboard_state_keeps_only_finite_bounded_fields_of_any_accepted_payload(payload, kind):
    state = DashboardState()
    raw = json.dumps(payload, allow_nan=True).encode()
    state.on_message(f"patchline/L/cam/{kind}", raw)
    state.on_message("patchline/L/bank", raw)
    text = json.dumps(state.view(), allow_nan=False)  # raises on NaN: the browser's JSON.parse would fail
    assert len(text) < 20_000


def test_the_dashboard_state_is_bounded_in_cameras_lines_and_snapshot_bytes():
    state = DashboardState()
    for i in range(dashboard_state.MAX_CAMERAS + 300):
        state.on_message(f"patchline/L{i % 7}/cam{i}/verdict", json.dumps(VERDICT).encode())
    for i in range(dashboard_state.MAX_LINES + 50):
        state.on_message(f"patchline/line{i}/bank", b'{"version": "' + b"v" * 5000 + b'"}')
    state.on_message("patchline/L/cam0/status", json.dumps({"state": "online", "reason": "r" * 100_000}).encode())
    state.on_message("patchline/L/bad name/verdict", json.dumps(VERDICT).encode())  # not a camera name: ignored
    state.on_message("patchline/L/cam1/status", NESTED)
    state.on_message("patchline/L/cam1/verdict", b'{"score": NaN}')
    view = state.view()
    # 300 too many verdict cameras, and L/cam0 (its status) one more: the longest silent ones are forgotten
    assert len(view["cameras"]) == dashboard_state.MAX_CAMERAS and view["forgotten_cameras"] == 301
    assert len(view["banks"]) == dashboard_state.MAX_LINES and all(len(v) <= 200 for v in view["banks"].values())
    assert view["refused"]["messages"] == 2 and "NaN" in view["refused"]["last_reason"]
    assert all(len(c["status"].get("reason", "")) <= 200 for c in view["cameras"])
    jpeg = b"\xff\xd8\xff\xfe" + (40).to_bytes(2, "big") + json.dumps({"name": "a.jpg"}).ljust(38).encode()
    for i in range(200):
        name = json.dumps({"name": f"s{i}.jpg"}).ljust(38).encode()
        state.on_message("patchline/L/c/snapshot", jpeg[:6] + name + b"\0" * 1_000_000)
    assert len(state.snapshots) <= dashboard_state.KEPT_SNAPSHOTS
    assert sum(map(len, state.snapshots.values())) <= dashboard_state.SNAPSHOT_BUDGET
    assert "keys" not in state.view(since=view["version"])  # nothing changed: no camera list resent


def _publish(url: str, topic: str, *payloads: bytes, retain: bool = False) -> None:
    settings_ = BrokerSettings.from_url(url)
    client = make_client(settings_, f"hostile-{threading.get_ident()}")
    connect_now(client, settings_)
    client.loop_start()
    try:
        for raw in payloads:
            client.publish(topic, raw, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_patchline_alarms_survives_nested_and_nan_alarms_and_prints_the_next_good_one(mosquitto_broker):
    url, out, result = mosquitto_broker.url, io.StringIO(), {}
    _publish(url, "patchline/L/cam1/alarm", NESTED, retain=True)          # arrive first, on subscription
    _publish(url, "patchline/L/cam2/alarm", b'{"score": NaN}', retain=True)
    with said("patchline.mqtt", "listening for alarms") as subscribed:
        thread = threading.Thread(target=lambda: result.setdefault("rc", run_alarms(url, count=1, timeout=30, out=out)))
        thread.start()
        assert subscribed.wait(15)
    hostile = {**VERDICT, "source": "\x1b[2J\x1b]0;pwned\x07evil.png", "region": {"bbox": ["a", None]}}
    _publish(url, "patchline/L/cam3/alarm", json.dumps(hostile).encode())
    thread.join(20)
    assert result.get("rc") == 0
    printed = out.getvalue()
    assert printed.count("\n") == 1 and "\x1b" not in printed and "\x07" not in printed
    assert "\\x1b[2J" in printed and "region=-" in printed and "camera=c" in printed


def test_format_alarm_never_writes_terminal_control_characters():
    line = format_alarm({"line": "L\x1b[31m", "camera": "c\r\n", "score": 3, "frame_id": "\x9b1m"}, "patchline/L/c/alarm")
    assert all(ch.isprintable() for ch in line)


def test_feedback_listener_answers_hostile_messages_with_an_error_and_keeps_listening(mosquitto_broker, tmp_path):
    from patchline.app.feedback import listen_for_feedback

    url = mosquitto_broker.url
    replies: queue.Queue = queue.Queue()
    messages = [NESTED, b'{"false_alarm": NaN, "id": "nan"}', b'{"false_alarm": ["/dev/zero"], "id": "zero"}',
                json.dumps({"false_alarm": ["x.png"] * 100, "id": "many"}).encode()]
    done: dict = {}
    with Subscriber(BrokerSettings.from_url(url), "patchline/L/feedback/reply",
                    lambda _t, raw, _r: replies.put(json.loads(raw))), \
            said("patchline.app.feedback", "listening for feedback") as subscribed:
        thread = threading.Thread(target=lambda: done.setdefault("rc", listen_for_feedback(
            BrokerSettings.from_url(url), "L", tmp_path / "banks", count=len(messages), timeout=60,
            image_roots=[tmp_path])))
        thread.start()
        assert subscribed.wait(15)
        _publish(url, "patchline/L/feedback", *messages)
        got = [replies.get(timeout=20) for _ in messages]
        thread.join(20)
    assert done.get("rc") == 0 and not thread.is_alive()
    assert [g["id"] for g in got] == [None, None, "zero", "many"]
    assert "bytes" in got[0]["error"] and "NaN" in got[1]["error"]
    assert "is not a frame this line kept" in got[2]["error"] and "1 to 32 names" in got[3]["error"]
    assert all("version" not in g for g in got)
