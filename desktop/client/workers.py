"""Running SDK calls off the GUI thread and handing results back as Qt signals.

A call or stream may take seconds (uploads, frame streams) or minutes (Watch); the GUI thread only
ever receives finished Python objects through queued signal connections, so it never waits on the
network or on PNG decoding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from desktop.client.errors import friendly
from desktop.imaging import decode_png
from plugin_bridge.client import RecastClient
from plugin_bridge.errors import Cancelled, InvalidArgument, NotFound, from_rpc_error
from protos.recast.v1 import engine_pb2 as pb


class Task(QObject):
    """One blocking call on the thread pool: `done(result)` or `failed(message)` on the GUI thread.

    `fn` gets an `emit` callable to report partial results (`item` signal), e.g. streamed frames.
    """

    done = Signal(object)
    failed = Signal(str)
    item = Signal(object)

    _live: set[Task] = set()  # keeps running tasks alive until they report

    def __init__(self, fn: Callable[..., Any], *args: Any, streaming: bool = False) -> None:
        super().__init__()
        self._fn, self._args, self._streaming = fn, args, streaming

    def start(self, pool: QThreadPool | None = None) -> Task:
        Task._live.add(self)
        self.done.connect(lambda _r: Task._live.discard(self))
        self.failed.connect(lambda _m: Task._live.discard(self))
        (pool or QThreadPool.globalInstance()).start(_Runnable(self))
        return self

    def run(self) -> None:
        try:
            args = (*self._args, self.item.emit) if self._streaming else self._args
            result = self._fn(*args)
        except Exception as exc:  # every failure becomes a sentence for the status bar
            self.failed.emit(friendly(exc))
            return
        self.done.emit(result)


class _Runnable(QRunnable):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def run(self) -> None:
        self.task.run()


class WatchWorker(QThread):
    """Follows one job's Watch stream; re-attaches with `from_seq` after a lost connection, for as long
    as the studio runs (the SDK's `watch` gives up after a while; a studio waits for its engine).

    The stream is the SDK client's raw stub call, so `stop()` can cancel it from the GUI thread.
    Images are decoded here, so `event` carries ready numpy arrays: (job_id, JobEvent, images),
    images = {"image": rgb, "mask": grey} for preview, provisional-mask and result events.
    """

    event = Signal(str, object, object)
    lost = Signal(str, str)  # job_id, message: the engine went away (the worker keeps retrying)
    ended = Signal(str)

    def __init__(self, client_fn: Callable[[], RecastClient], job_id: str, from_seq: int = 0) -> None:
        super().__init__()
        self._client_fn, self.job_id, self.next_seq = client_fn, job_id, max(1, from_seq)
        self._stop = threading.Event()
        self._call: Any = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                request = pb.WatchRequest(job_id=self.job_id, from_seq=self.next_seq)
                call = self._client_fn().stub.Watch(request)
                with self._lock:
                    self._call = call
                if self._stop.is_set():
                    call.cancel()
                for ev in call:
                    backoff = 0.2
                    self.next_seq = ev.seq + 1
                    self.event.emit(self.job_id, ev, self._images(ev, ev.WhichOneof("event")))
                break  # the stream ends after the job's terminal event
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if self._stop.is_set() or isinstance(err, Cancelled):
                    break
                self.lost.emit(self.job_id, friendly(err))
                if isinstance(err, (NotFound, InvalidArgument)):
                    break
            except Exception as exc:  # no engine right now (closed channel, reconnecting): try again
                self.lost.emit(self.job_id, friendly(exc))
            finally:
                with self._lock:
                    self._call = None
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        self.ended.emit(self.job_id)

    @staticmethod
    def _images(ev: pb.JobEvent, kind: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            if kind == "preview" and ev.preview.image.data:
                out["image"] = decode_png(ev.preview.image.data)
            elif kind == "provisional_mask" and ev.provisional_mask.mask.data:
                out["mask"] = decode_png(ev.provisional_mask.mask.data, grey=True)
            elif kind == "result_frame":
                rf = ev.result_frame
                if rf.image.data:
                    out["image"] = decode_png(rf.image.data)
                if rf.mask.data:
                    out["mask"] = decode_png(rf.mask.data, grey=True)
        except ValueError as exc:  # one bad picture: the event still counts, without its image
            out = {"error": str(exc)}
        return out
