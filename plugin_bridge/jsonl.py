"""`recast-bridge json`: requests in, events out, one JSON object per line (schema: protocol.py).

Why a reader thread plus one worker per edit: a host must be able to send `cancel` while an edit
runs, and see progress as it happens. Output lines are written whole under a lock and flushed, so
a host reading line by line never sees a torn message. Bad input gets an error line and the bridge
reads on; end of input waits for running edits to report, then exits 0.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from plugin_bridge import __version__
from plugin_bridge.client import RecastClient
from plugin_bridge.edit import EditSpec, check_spec, run_edit
from plugin_bridge.errors import BridgeError, Cancelled
from plugin_bridge.protocol import (
    MAX_LINE_BYTES,
    OPS,
    PROTOCOL_VERSION,
    ProtocolError,
    check_request,
    error_event,
    event,
    request_id,
)
from protos.recast.v1 import engine_pb2 as pb


def info_fields(info: pb.EngineInfo) -> dict:
    return {
        "engine_version": info.version,
        "api_version": info.api_version,
        "device": info.device,
        "models": [m.name for m in info.models],
        "active_model": next((m.name for m in info.models if m.active), ""),
        "pipeline_ready": info.pipeline_ready,
        "queued_jobs": info.queued_jobs,
        "model_loaded": info.model_loaded,  # false after an idle unload: the next job loads it again
        "keep_alive_seconds": info.keep_alive_seconds,
        "idle_exit_seconds": info.idle_exit_seconds,  # 0: the daemon stays up
    }


def job_event_fields(ev: pb.JobEvent) -> tuple[str, dict] | None:
    """A daemon job event as a bridge event (None for those hosts need not see)."""
    kind = ev.WhichOneof("event")
    if kind == "queued":
        return "queued", {"position": ev.queued.position}
    if kind == "started":
        return "started", {}
    if kind == "progress":
        p = ev.progress
        return "progress", {"stage": p.stage, "step": p.step, "total": p.total,
                            "eta_seconds": round(p.eta_seconds, 3)}
    if kind == "result_frame":
        return "frame", {"frame_index": ev.result_frame.frame_index}
    return None


class _Running:
    """An edit in flight: its thread, its job id once known, and its cancel flag."""

    def __init__(self) -> None:
        self.job_id: str | None = None
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None


class JsonBridge:
    def __init__(self, connect: Callable[[], RecastClient], out: IO[str]):
        self._connect = connect
        self._out = out
        self._out_lock = threading.Lock()
        self._closed = False
        self._client: RecastClient | None = None
        self._client_lock = threading.Lock()
        self._running: dict[Any, _Running] = {}
        self._running_lock = threading.Lock()

    # --- output -----------------------------------------------------------------------------------

    def emit(self, message: dict) -> None:
        """Write one whole line; once the host stops reading, further output is dropped (jobs go on)."""
        line = json.dumps(message, separators=(",", ":"), default=str)
        with self._out_lock:
            if self._closed:
                return
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):
                self._closed = True

    def client(self) -> RecastClient:
        with self._client_lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    # --- input ------------------------------------------------------------------------------------

    def serve(self, lines: IO[str]) -> int:
        for raw in lines:
            self.handle_line(raw)
        self.drain()
        if self._client is not None:
            self._client.close()
        return 0

    def drain(self) -> None:
        with self._running_lock:
            threads = [r.thread for r in self._running.values() if r.thread is not None]
        for t in threads:
            t.join()

    def handle_line(self, raw: str) -> None:
        if not raw.strip():
            return
        obj: Any = None
        try:
            if len(raw.encode("utf-8", "replace")) > MAX_LINE_BYTES:
                raise ProtocolError("INVALID_REQUEST", f"request: longer than {MAX_LINE_BYTES} bytes")
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                raise ProtocolError("PARSE_ERROR", f"request: not JSON ({exc})") from None
            req = check_request(obj)
            getattr(self, f"_op_{req['op']}")(req)
        except ProtocolError as exc:
            self.emit(error_event(request_id(obj), exc.code, exc.message, exc.field))
        except BridgeError as exc:
            self.emit(error_event(request_id(obj), exc.code, exc.message, exc.field))
        except Exception as exc:  # a bug in the bridge: report it, keep serving
            self.emit(error_event(request_id(obj), "INTERNAL", f"bridge: {type(exc).__name__}: {exc}"))

    # --- operations -------------------------------------------------------------------------------

    def _op_hello(self, req: dict) -> None:
        fields: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "bridge_version": __version__, "ops": list(OPS)}
        try:
            fields["engine"] = info_fields(self.client().info())
        except BridgeError as exc:
            fields["engine"] = None
            fields["engine_error"] = exc.to_dict()
        self.emit(event(req.get("id"), "hello", **fields))

    def _op_info(self, req: dict) -> None:
        self.emit(event(req.get("id"), "info", **info_fields(self.client().info())))

    def _op_cancel(self, req: dict) -> None:
        target = req["target"]
        with self._running_lock:
            running = self._running.get(target)
        if running is None or running.thread is None or not running.thread.is_alive():
            raise ProtocolError("INVALID_REQUEST", f"target: no edit with id {target!r} is running", "target")
        running.cancel.set()
        if running.job_id is not None:
            self.client().cancel(running.job_id)
        self.emit(event(req.get("id"), "ack", target=target, job_id=running.job_id))

    def _op_edit(self, req: dict) -> None:
        rid = req.get("id")
        output = req.get("output", {})
        spec = EditSpec(
            source=[Path(p) for p in req["source"]] if isinstance(req["source"], list) else Path(req["source"]),
            fps=float(req.get("fps", 0.0)),
            target_image=Path(req["target_image"]),
            source_prompt=req["source_prompt"],
            target_prompt=req["target_prompt"],
            start_frame=req.get("start_frame", 0),
            end_frame=req.get("end_frame", 0),
            settings=req.get("settings", {}),
            output_format=output.get("format", "png"),
            output_dir=Path(output["path"]) if output.get("path") else None,
            name=req.get("name", ""),
        )
        check_spec(spec)  # a typo is answered at once, before any daemon is found or started
        running = _Running()
        with self._running_lock:
            existing = self._running.get(rid)
            if rid is not None and existing is not None and existing.thread is not None and existing.thread.is_alive():
                raise ProtocolError("INVALID_REQUEST", f"id: an edit with id {rid!r} is still running", "id")
            self._running[rid] = running
        running.thread = threading.Thread(target=self._edit, args=(rid, spec, running), name=f"edit-{rid}",
                                          daemon=True)
        running.thread.start()

    def _edit(self, rid: Any, spec: EditSpec, running: _Running) -> None:
        def on_job(job: pb.Job) -> None:
            with self._running_lock:
                running.job_id = job.job_id
            self.emit(event(rid, "accepted", job_id=job.job_id, clip_id=job.clip_id))

        def on_event(ev: pb.JobEvent) -> None:
            converted = job_event_fields(ev)
            if converted is not None:
                self.emit(event(rid, converted[0], job_id=ev.job_id, **converted[1]))

        try:
            result = run_edit(self.client(), spec, on_event=on_event, on_job=on_job, cancel=running.cancel)
            self.emit(event(rid, "result", **result.to_dict()))
        except Cancelled:
            self.emit(event(rid, "cancelled", job_id=running.job_id))
        except BridgeError as exc:
            self.emit(error_event(rid, exc.code, exc.message, exc.field))
        except Exception as exc:
            self.emit(error_event(rid, "INTERNAL", f"bridge: {type(exc).__name__}: {exc}"))


def run(connect: Callable[[], RecastClient], stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    return JsonBridge(connect, stdout or sys.stdout).serve(stdin or sys.stdin)
