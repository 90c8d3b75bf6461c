"""Ctrl-C during training: the first one stops the run between two steps, after the step in progress is
logged and checkpointed (Interrupted says how many); a second one interrupts at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped training between two steps, after steps_done steps were logged and checkpointed."""

    def __init__(self, steps_done: int) -> None:
        super().__init__(steps_done)
        self.steps_done = steps_done


@contextlib.contextmanager
def sigint_between_steps() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C (SIGINT) into a flag the training loop reads after each step; a second one
    interrupts at once. Only where Python's own handler is in place (the main thread, SIGINT not
    ignored or handled by someone else); elsewhere the flag stays False."""
    hit = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return

    def handler(signum: int, frame: object) -> None:
        hit.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
