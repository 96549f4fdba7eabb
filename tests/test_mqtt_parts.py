"""The Publisher's parts, each alone, without a broker: the retained-state keeper, the delivery pump
and the wills."""

from __future__ import annotations

import json
import threading

import pytest

from patchline.mqtt.outbox import Outbox
from patchline.mqtt.pump import DeliveryPump
from patchline.mqtt.retained import MAX_SNAPSHOTS, RetainedState
from patchline.mqtt.wills import will_payload

pytestmark = pytest.mark.runtime


def _statuses(messages) -> dict:
    return {m.topic: json.loads(m.data) for m in messages if m.topic.endswith("/status")}


def test_the_retained_state_sends_what_changed_once_and_everything_again_after_a_reconnect():
    outbox, state = Outbox(), RetainedState("L1", "host-1")
    state.starting(["a", "b"])
    first = _statuses(state.take(outbox))
    assert {t: p["state"] for t, p in first.items()} == {"patchline/L1/a/status": "starting",
                                                        "patchline/L1/b/status": "starting"}
    assert state.pending() == 0 and state.take(outbox) == []
    state.set_status("a", "reconnecting", {"reason": "timeout", "fps": 3.0})
    state.set_status("a", "online", {})  # the reason belonged to the old state; fps lasts
    (only,) = _statuses(state.take(outbox)).values()
    assert only["state"] == "online" and only["fps"] == 3.0 and "reason" not in only and only["host"] == "host-1"
    state.set_bank("v2")
    sent = state.take(outbox)
    assert [m.topic for m in sent if m.retain] == ["patchline/L1/a/status", "patchline/L1/b/status", "patchline/L1/bank"]
    assert all(p["bank_version"] == "v2" for p in _statuses(sent).values())
    state.reconnected()
    assert state.pending() == 3  # two statuses and the bank
    state.offline(["a", "b"], "closed")
    assert {p["reason"] for p in _statuses(state.take(outbox)).values()} == {"closed"}


def test_the_retained_state_holds_at_most_max_snapshots_and_counts_the_dropped():
    outbox, state = Outbox(), RetainedState("L1", "h")
    for i in range(MAX_SNAPSHOTS + 3):
        state.add_snapshot(outbox.message("snapshot", "patchline/L1/a/snapshot", bytes([i])))
    assert state.dropped_snapshots == 3 and state.pending() == MAX_SNAPSHOTS
    assert state.take(outbox)[0].data == bytes([3])  # the oldest went first


def test_the_pump_sends_only_while_connected_and_reports_each_acknowledgement_once():
    cond, outbox = threading.Condition(), Outbox(window=4)
    sent, delivered = [], []

    def send(msg):
        sent.append(msg)
        return 0, len(sent)  # rc, mid

    def take():
        return outbox.take()

    pump = DeliveryPump(cond, outbox, send, take, outbox.has_results_to_send, delivered.append)
    for i in range(6):
        outbox.add_verdict(outbox.message("verdict", "patchline/L1/a/verdict", bytes([i])))
    pump.start()
    with cond:
        assert not cond.wait_for(lambda: sent, 0.3)  # not connected: nothing leaves
        pump.connected = True
        cond.notify_all()
        assert cond.wait_for(lambda: len(sent) == 4, 5)  # the window: four unacknowledged at most
    for mid in (1, 2, 3, 4):
        pump.acked(mid)
    with cond:
        assert cond.wait_for(lambda: len(sent) == 6, 5)
    pump.acked(5)
    pump.acked(6)
    pump.acked(6)  # a duplicate acknowledgement is not a second delivery
    pump.stop()
    assert [m.data for m in delivered] == [bytes([i]) for i in range(6)]
    assert outbox.counts["delivered"] == 6 and outbox.pending() == 0


def test_a_will_says_offline_connection_lost_for_its_camera():
    assert json.loads(will_payload("L1", "cam2", "host-1")) == {
        "state": "offline", "camera": "cam2", "line": "L1", "reason": "connection lost", "host": "host-1"}
