"""Graceful stop on Ctrl-C / SIGTERM for long training loops: the first signal asks the loop
to finish its iteration and checkpoint, a second one stops at once."""

from __future__ import annotations

import signal
from typing import Any


class StopRequest:
    """Context manager installing SIGINT/SIGTERM handlers; ``.signal`` is set when asked to
    stop (``None`` otherwise). Outside the main thread it installs nothing."""

    def __init__(self, message: str = "saving a checkpoint after this iteration") -> None:
        self.message = message
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second signal: stop right now
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\n{signal.Signals(signum).name}: {self.message}")

    @property
    def name(self) -> str | None:
        return None if self.signal is None else signal.Signals(self.signal).name

    def __enter__(self) -> StopRequest:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
