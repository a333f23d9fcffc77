"""Job states, defined once from the contract's `JobState`, and the Watch events that set them.

The engine, the SDK, the JSON bridge and the studio all read these tables instead of spelling states
out, so a state added to the proto reaches every side through one place.
"""

from __future__ import annotations

from protos.recast.v1 import engine_pb2 as pb

# JobState number → lower-case name: "queued", "running", "succeeded", "failed", "cancelled", …
STATE_NAMES: dict[int, str] = {number: name.removeprefix("JOB_STATE_").lower()
                               for name, number in pb.JobState.items()}
ACTIVE_STATES = (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)  # waiting in the queue or on the worker
ENDED_STATES = tuple(n for n in STATE_NAMES if n not in ACTIVE_STATES and n != pb.JOB_STATE_UNSPECIFIED)
RESUMABLE_STATES = (pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED, pb.JOB_STATE_INTERRUPTED)  # ResumeJob takes these

# The JobEvent kinds (the contract's `event` oneof) that end a job, with the state each leaves. Only the
# current attempt's terminal event ends a Watch stream.
TERMINAL_EVENTS: dict[str, int] = {
    "finished": pb.JOB_STATE_SUCCEEDED,
    "failed": pb.JOB_STATE_FAILED,
    "cancelled": pb.JOB_STATE_CANCELLED,
    "interrupted": pb.JOB_STATE_INTERRUPTED,
}
# Every JobEvent kind that moves a job to a state (previews and result frames do not).
EVENT_STATES: dict[str, int] = {
    "queued": pb.JOB_STATE_QUEUED,
    "started": pb.JOB_STATE_RUNNING,
    "progress": pb.JOB_STATE_RUNNING,
    **TERMINAL_EVENTS,
}


def state_name(state: int) -> str:
    """The state's name ("unspecified" for a number this contract does not know)."""
    return STATE_NAMES.get(state, STATE_NAMES[pb.JOB_STATE_UNSPECIFIED])
