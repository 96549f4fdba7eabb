"""Every MQTT topic patchline publishes or subscribes to (QoS 1):

    patchline/<line>/<camera>/verdict   every frame
    patchline/<line>/<camera>/alarm     defects only
    patchline/<line>/<camera>/status    retained: online / offline / reconnecting / drift …, counters
    patchline/<line>/<camera>/drift     retained: drift raised or cleared, with the window's statistics
    patchline/<line>/<camera>/snapshot  with --publish-snapshots: each alarm's JPEG (not retained)
    patchline/<line>/bank               retained: the live bank version
    patchline/<line>/feedback           operator feedback in: false alarms' images (app/feedback.py)
    patchline/<line>/feedback/reply     the new bank version, or why the feedback was refused
    patchline/<camera>/trigger          in, with a station: a verdict of the next frame (app/plc_requests.py)
    patchline/<camera>/recipe           in, with a station: {"recipe": N} selects recipe N's line
"""

from __future__ import annotations

from patchline.names import check_name

ROOT = "patchline"


def camera_topic(line: str, camera: str, kind: str) -> str:
    """`patchline/<line>/<camera>/<kind>` for kind verdict | alarm | status | drift | snapshot; names are checked."""
    return f"{ROOT}/{check_name(line, 'line')}/{check_name(camera, 'camera')}/{kind}"


def bank_topic(line: str) -> str:
    """`patchline/<line>/bank`: the retained live bank version."""
    return f"{ROOT}/{check_name(line, 'line')}/bank"


def feedback_topic(line: str) -> str:
    """`patchline/<line>/feedback`: operator feedback (false alarms) for the line's bank."""
    return f"{ROOT}/{check_name(line, 'line')}/feedback"


def host_status_topic(line: str, client_id: str) -> str:
    """Where a publisher with no camera keeps its will: `patchline/<line>/_host/<client id>/status`."""
    return f"{ROOT}/{check_name(line, 'line')}/_host/{client_id}/status"


def camera_filter(line: str | None, kind: str) -> str:
    """Subscription filter for every camera's `kind` messages of `line`, or of every line when None."""
    return f"{ROOT}/{'+' if line is None else check_name(line, 'line')}/+/{kind}"
