"""Ctrl-C for every command: one Ctrl-C always stops with one line and exit 130, and a rerun resumes.

Python raises KeyboardInterrupt wherever the main thread is; inside a finalizer (`__del__`, e.g. a
progress bar's cleanup) it is printed as "Exception ignored" and lost, and the command ran on. The
handler here notices that and raises it again once out of the finalizer; the CLI also ends with 130 if
a library swallowed it anyway. After the interrupt, errors of half-built objects' finalizers (the
unrelated AttributeErrors of a torn-down progress bar) are silenced.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

MESSAGE = "interrupted; finished work is on disk, rerun the same command to resume"


@dataclass
class State:
    """Whether a Ctrl-C arrived while `handled` was active."""

    interrupted: bool = False


def _in_finalizer(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


@contextmanager
def handled() -> Iterator[State]:
    """Install the Ctrl-C handler for the duration of a command (main thread only; a no-op elsewhere)."""
    state = State()
    pid = os.getpid()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != pid:  # a forked worker: the parent reports the interrupt
            os._exit(130)
        if _in_finalizer(frame):  # raised here it would be printed and lost: raise it again once out
            threading.Timer(0.05, os.kill, (pid, signal.SIGINT)).start()
            return
        state.interrupted = True
        sys.unraisablehook = _silent  # finalizers of objects the interrupt cut short stay quiet
        raise KeyboardInterrupt

    try:
        previous: Any = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def close_progress_bars() -> None:
    """Close every open tqdm bar now, so that none redraws itself after the interrupt's one line."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001, S110 - a bar cut short in its own __init__ may not close; it stays silent
            pass
    sys.stderr.flush()


def _silent(unraisable: Any) -> None:
    return None
