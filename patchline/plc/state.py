"""What a PLC sees of one camera: result codes, error codes and the camera's state snapshot.

The numbers are part of the contract with the PLC (docs/plc.md lists them); never renumber them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Result(IntEnum):
    """The answer to a trigger (or, on a free-running camera, to its last frame)."""

    NONE = 0   # nothing answered yet
    OK = 1     # the frame is good
    NG = 2     # reject: a defect, or no trustworthy verdict in time (the error code says which)
    ERROR = 3  # the station refused a request (the error code says which); no part was judged


class Code(IntEnum):
    """Why a result is NG or ERROR (0 with OK, and with NG for a real defect)."""

    NONE = 0
    DEADLINE = 1        # no verdict by the deadline: the chain was too slow or dropped the frame
    CAMERA_OFFLINE = 2  # the deadline passed while the camera was not delivering frames
    FRAME_ERROR = 3     # the frame failed in the chain (unreadable, model or bank error)
    UNKNOWN_RECIPE = 4  # a recipe number the run was not given; the current recipe stays
    STOPPED = 5         # the run ended before the trigger was answered


@dataclass(frozen=True)
class CameraState:
    """One camera as a PLC sees it, at one instant (an immutable copy; take a new one after a change).

    mode "free": every frame is judged; "triggered": only the first frame captured after each trigger.
    alive: frames arrive and the chain answers them (the heartbeat counts only while alive).
    busy: a trigger waits for its answer. result_ready: a result is there and not yet acknowledged.
    result / code / score / threshold / frame_id / line: the last answer (score None before the first).
    trigger_id: the last accepted trigger; answered_trigger: the one the current result answers (0: none).
    results: answers given; overruns: triggers refused because one was still waiting;
    deadline_misses: triggers answered NG by the deadline timer; late: verdicts that came after it;
    refused_writes: bad writes from outside (out of range, read-only, unknown recipe) ignored.
    """

    camera: str
    line: str
    recipe: int
    mode: str
    alive: bool = False
    heartbeat: int = 0
    busy: bool = False
    result_ready: bool = False
    result: Result = Result.NONE
    code: Code = Code.NONE
    score: float | None = None
    threshold: float | None = None
    frame_id: int = 0
    result_line: str | None = None
    trigger_id: int = 0
    answered_trigger: int = 0
    results: int = 0
    overruns: int = 0
    deadline_misses: int = 0
    late: int = 0
    refused_writes: int = 0

    @property
    def triggered(self) -> bool:
        return self.mode == "triggered"


@dataclass
class Pending:
    """A trigger waiting for its answer: its id, when it was accepted (wall clock, to compare with a
    frame's capture time), when it is due (monotonic), and whether a frame has been admitted for it."""

    trigger_id: int
    accepted_at: float
    due: float
    source: str
    claimed: bool = False


@dataclass
class CameraRecord:
    """The station's mutable record of one camera (guarded by the station's lock)."""

    state: CameraState
    pending: Pending | None = None
    last_frame: float | None = None        # monotonic time the source last delivered a frame
    unanswered_since: float | None = None  # monotonic time of the first admission since the last verdict
    online: bool = True
    next_trigger: int = 0


@dataclass(frozen=True)
class Admission:
    """A frame the station lets into the chain: the line to judge it with, its recipe, and the
    trigger it answers (None on a free-running camera's ordinary frame)."""

    line: str | None
    recipe: int
    trigger_id: int | None = None


@dataclass(frozen=True)
class StationConfig:
    """How the station answers: triggered or free-running cameras, the deadline of a trigger, the
    heartbeat's period, and the recipes ({number: line}) a PLC may choose from (numbers 1 … 65535)."""

    triggered: bool = False
    deadline_s: float = 0.2
    heartbeat_s: float = 1.0
    recipes: tuple[tuple[int, str], ...] = ()

    def check(self) -> "StationConfig":
        """Return self, or raise ConfigError naming the value that cannot be used."""
        from patchline.errors import ConfigError
        from patchline.names import check_name

        for flag, value, low in (("--deadline-ms", self.deadline_s, 0.001), ("--heartbeat-ms", self.heartbeat_s, 0.01)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= 60):
                shown = f"{value * 1000:g} ms" if isinstance(value, (int, float)) else repr(value)
                raise ConfigError(f"{flag} must be between {low * 1000:g} and 60000 ms, got {shown}.")
        seen = set()
        for number, line in self.recipes:
            if not (isinstance(number, int) and 1 <= number <= 65535):
                raise ConfigError(f"--recipe: the recipe number must be 1 … 65535, got {number}.")
            if number in seen:
                raise ConfigError(f"--recipe {number} is given twice.")
            seen.add(number)
            check_name(line, "line")
        return self

    @property
    def recipe_map(self) -> dict[int, str]:
        return dict(self.recipes)
