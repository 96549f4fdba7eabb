"""The OPC UA node map of the station (docs/plc.md, "OPC UA"): what each camera's variables hold,
their types, which a client may write and what a write may carry. No server in here (opcua.py).

Every node of a camera has the string NodeId `<camera>.<Name>` in the namespace NAMESPACE_URI, under
the object `Patchline/<camera>`. The variables in VARIABLES are written by the server from the
station's state, in this order (the result before ResultReady, so a client that sees ResultReady
true reads the result it belongs to). Trigger, Acknowledge and Recipe may also be written by a
client; the methods TriggerInspection(), AcknowledgeResult() and SelectRecipe(recipe) do the same as calls.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from asyncua import ua

from patchline.errors import ConfigError
from patchline.plc.state import CameraState

NAMESPACE_URI = "urn:patchline:plc"
DEFAULT_PORT = 4840
U32 = 0xFFFFFFFF
V = ua.VariantType


def _u32(value: int) -> int:
    return max(0, min(U32, int(value)))


# name, variant type, value from a CameraState (in the order the server writes them)
VARIABLES: tuple[tuple[str, ua.VariantType, object], ...] = (
    ("Mode", V.String, lambda s: s.mode),
    ("Line", V.String, lambda s: s.line),
    ("Recipe", V.UInt16, lambda s: s.recipe & 0xFFFF),
    ("Result", V.UInt16, lambda s: int(s.result)),
    ("ResultText", V.String, lambda s: s.result.name),
    ("ErrorCode", V.UInt16, lambda s: int(s.code)),
    ("ErrorText", V.String, lambda s: s.code.name),
    ("Score", V.Double, lambda s: float(s.score) if s.score is not None else 0.0),
    ("Threshold", V.Double, lambda s: float(s.threshold) if s.threshold is not None else 0.0),
    ("FrameId", V.UInt64, lambda s: max(0, int(s.frame_id))),
    ("ResultLine", V.String, lambda s: s.result_line or ""),
    ("TriggerId", V.UInt32, lambda s: _u32(s.trigger_id)),
    ("AnsweredTrigger", V.UInt32, lambda s: _u32(s.answered_trigger)),
    ("Results", V.UInt32, lambda s: _u32(s.results)),
    ("Overruns", V.UInt32, lambda s: _u32(s.overruns)),
    ("DeadlineMisses", V.UInt32, lambda s: _u32(s.deadline_misses)),
    ("LateVerdicts", V.UInt32, lambda s: _u32(s.late)),
    ("RefusedWrites", V.UInt32, lambda s: _u32(s.refused_writes)),
    ("Busy", V.Boolean, lambda s: bool(s.busy)),
    ("ResultReady", V.Boolean, lambda s: bool(s.result_ready)),
    ("Alive", V.Boolean, lambda s: bool(s.alive)),
    ("Heartbeat", V.UInt32, lambda s: _u32(s.heartbeat)),
)
COMMANDS = (("Trigger", V.Boolean), ("Acknowledge", V.Boolean))  # write true: do it; they always read false
WRITABLE = {"Trigger", "Acknowledge", "Recipe"}
INTEGER_TYPES = {V.SByte, V.Byte, V.Int16, V.UInt16, V.Int32, V.UInt32, V.Int64, V.UInt64}


def node_id(camera: str, name: str, ns: int) -> ua.NodeId:
    """The NodeId of a camera's node: string id `<camera>.<name>` in namespace index `ns`."""
    return ua.NodeId(f"{camera}.{name}" if name else camera, ns)


def values_of(state: CameraState) -> list[tuple[str, ua.VariantType, object]]:
    """(name, variant type, value) of every variable of one camera's state, in write order."""
    return [(name, kind, value(state)) for name, kind, value in VARIABLES]


def opcua_endpoint(text: str) -> tuple[str, int]:
    """(host, port) of an `opc.tcp://HOST[:PORT]` URL (port 4840 when none); ConfigError otherwise."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(f"--opcua {text!r} is not an opc.tcp://HOST:PORT URL (the port must be 1 … 65535).") from None
    if parts.scheme != "opc.tcp" or not parts.hostname or port == 0:
        raise ConfigError(f"--opcua {text!r} is not an opc.tcp://HOST:PORT URL, e.g. opc.tcp://0.0.0.0:4840.")
    if parts.username or parts.password:
        raise ConfigError("--opcua takes no user or password in the URL: the server accepts anonymous sessions "
                          "(docs/plc.md says how to keep it on the plant network).")
    return parts.hostname, DEFAULT_PORT if port is None else port


def command_value(name: str, variant: ua.Variant | None) -> tuple[object, str | None]:
    """(value, None) when a client's write of `variant` to writable variable `name` may be applied,
    else (None, why in one sentence). Trigger / Acknowledge take a Boolean (or an integer 0 / 1),
    Recipe an integer 1 … 65535."""
    kind = variant.VariantType if variant is not None else V.Null
    value = variant.Value if variant is not None else None
    if isinstance(value, (list, tuple)) or getattr(variant, "Dimensions", None):
        return None, f"{name} takes one value, not an array"
    if name in ("Trigger", "Acknowledge"):
        if kind == V.Boolean:
            return bool(value), None
        if kind in INTEGER_TYPES and value in (0, 1):
            return bool(value), None
        return None, f"{name} takes true or false, not {kind.name} {str(value)[:40]}"
    if kind not in INTEGER_TYPES:
        return None, f"Recipe takes a whole number 1 … 65535, not {kind.name} {str(value)[:40]}"
    if not 1 <= int(value) <= 65535:
        return None, f"recipe {value} is not a recipe number (1 … 65535)"
    return int(value), None
