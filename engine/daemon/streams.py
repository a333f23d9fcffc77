"""Caps on open streams, and idle timeouts that cut stalled clients.

Why: every open stream holds one of the server's worker threads. A client that opens uploads or
frame streams and then stalls (sends nothing, or stops reading so that sends block) would otherwise
hold those threads for ever, and enough of them starve every other call. So each kind of stream has
a counting cap (RESOURCE_EXHAUSTED when full), and a stream whose client neither sends nor reads for
the idle timeout is ended with DEADLINE_EXCEEDED from a timer, which also wakes the blocked thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import grpc

from engine.daemon.status import StreamIdle
from engine.errors import LimitError

T = TypeVar("T")


class StreamSlots:
    """At most `limit` open streams of one kind."""

    def __init__(self, kind: str, limit: int):
        self.kind = kind
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    @contextmanager
    def hold(self, field: str, context: grpc.ServicerContext) -> Iterator[None]:
        """One slot for the call; freed when the block ends or the call does, whichever is first
        (grpc drops a server stream whose client went away without resuming its generator)."""
        if not self._free.acquire(blocking=False):
            raise LimitError(field, f"{self.limit} {self.kind} streams are open, the limit; close one and retry")
        once = threading.Lock()

        def release() -> None:
            if once.acquire(blocking=False):
                self._free.release()

        context.add_callback(release)
        try:
            yield
        finally:
            release()


def cut(context: grpc.ServicerContext, message: str) -> None:
    """Ends the call with DEADLINE_EXCEEDED from any thread; a handler blocked in a send or a receive
    wakes up. (grpc's public `cancel` would tell the client CANCELLED; it is the fallback.)"""
    try:
        context._rpc_event.call.cancel(grpc.StatusCode.DEADLINE_EXCEEDED.value[0], message)
    except (AttributeError, TypeError):
        context.cancel()


class IdleTimer:
    """Cuts the call when one wait (a receive, or a send the client does not read) lasts `seconds`."""

    def __init__(self, context: grpc.ServicerContext, seconds: float, message: str):
        self.context = context
        self.seconds = seconds
        self.message = f"{message} for {seconds:g} s; the stream was closed, start it again"
        self.fired = False

    def _fire(self) -> None:
        self.fired = True
        cut(self.context, self.message)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        if self.seconds <= 0:  # 0 disables the timeout
            yield
            return
        timer = threading.Timer(self.seconds, self._fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except Exception:
            if self.fired:
                raise StreamIdle(self.message) from None
            raise
        finally:
            timer.cancel()
        if self.fired:
            raise StreamIdle(self.message)


def received(context: grpc.ServicerContext, requests: Iterator[T], seconds: float, field: str) -> Iterator[T]:
    """The messages of a client stream; a client that sends none for `seconds` is cut."""
    idle = IdleTimer(context, seconds, f"{field}: the client sent nothing")
    while True:
        with idle.waiting():
            request = next(requests, None)
        if request is None:
            return
        yield request


def sent(context: grpc.ServicerContext, replies: Iterable[T], seconds: float) -> Iterator[T]:
    """The messages of a server stream; a client that reads none for `seconds` is cut."""
    idle = IdleTimer(context, seconds, "the client read nothing")
    for reply in replies:
        with idle.waiting():
            yield reply
