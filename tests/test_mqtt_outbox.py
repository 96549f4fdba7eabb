"""The outbox's drop policy and in-flight window, without a broker (the publisher's bookkeeping)."""

from pathlib import Path

from patchline.mqtt.outbox import Outbox


def _verdict(box: Outbox, i: int):
    return box.message("verdict", "patchline/l/c/verdict", str(i).encode())


def test_verdicts_beyond_the_bound_drop_the_oldest_first():
    box = Outbox(max_verdicts=3, max_alarms=10, window=64)
    for i in range(5):
        box.add_verdict(_verdict(box, i))
    assert box.counts["dropped_verdicts"] == 2
    assert [m.data for m in box.take()] == [b"2", b"3", b"4"]


def test_alarms_beyond_the_bound_return_their_spool_files_oldest_first():
    box = Outbox(max_verdicts=10, max_alarms=2, window=64)
    dropped = []
    for i in range(4):
        dropped += box.add_alarm(box.message("alarm", "patchline/l/c/alarm", b"a", path=Path(f"/spool/{i}.json")))
    assert dropped == [Path("/spool/0.json"), Path("/spool/1.json")]
    assert box.counts["dropped_alarms"] == 2 and box.spooled() == 2


def test_take_interleaves_by_age_and_respects_the_window_with_statuses_first():
    box = Outbox(window=4)
    box.add_verdict(_verdict(box, 0))
    box.add_alarm(box.message("alarm", "patchline/l/c/alarm", b"a1"))
    box.add_verdict(_verdict(box, 2))
    box.add_verdict(_verdict(box, 3))
    status = box.message("status", "patchline/l/c/status", b"s", retain=True)
    work = box.take([status])
    assert [m.data for m in work] == [b"s", b"0", b"a1", b"2"]  # window 4: the newest verdict waits
    assert box.pending() == 4  # three results being handed + one still queued
    for mid, msg in enumerate(work):
        assert box.handed(msg, mid) is None
    assert not box.has_results_to_send()  # the window is full until acknowledgements come
    assert box.acked(1) is work[1] and box.counts["delivered"] == 1
    assert box.has_results_to_send()


def test_an_acknowledgement_before_the_hand_over_is_not_lost():
    box = Outbox()
    box.add_verdict(_verdict(box, 0))
    (msg,) = box.take()
    assert box.acked(7) is None  # PUBACK raced ahead of publish() returning
    assert box.handed(msg, 7) is msg
    assert box.pending(include_status=True) == 0 and box.counts["delivered"] == 1


def test_close_counts_queued_and_unacknowledged_verdicts_as_dropped_and_keeps_alarms():
    box = Outbox()
    box.add_verdict(_verdict(box, 0))
    box.add_alarm(box.message("alarm", "patchline/l/c/alarm", b"a", path=Path("spool/000001.json")))
    first, second = box.take()
    box.handed(first, 1)
    box.handed(second, 2)
    box.add_verdict(_verdict(box, 3))
    box.add_alarm(box.message("alarm", "patchline/l/c/alarm", b"b"))  # the spool could not write this one
    assert box.drop_undelivered() == (2, 1, 1)  # verdicts dropped, alarms kept in the spool, alarms lost
    assert box.counts["dropped_verdicts"] == 2 and box.counts["lost_alarms"] == 1
