"""Progress of long steps: a tqdm bar on a terminal, plain lines anywhere else.

A bar redrawn with ``\\r`` is noise in a log file or a CI job, and no bar at all leaves a
minutes-long step silent there; so off a terminal a step says how far it is (done of total,
rate, time left) in one line at most every ``every`` seconds, and once more when it ends if it
said anything before (a short step stays silent).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, TextIO

EVERY_S = 10.0


def format_duration(seconds: float) -> str:
    """'45s', '3m07s', '2h05m': the precision a person reads an ETA with."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(desc: str, done: int, total: int, unit: str, elapsed: float, counted: int) -> str:
    """'desc: 120/540 images (3.1 images/s, ETA 2m15s)'; the rate is over the ``counted`` units done
    in ``elapsed`` seconds by this process (units done before it started, e.g. on resume, are not)."""
    text = f"{desc}: {done}/{total} {unit}"
    if counted > 0 and elapsed > 0:
        rate = counted / elapsed
        text += f" ({rate:.3g} {unit}/s, " + (f"ETA {format_duration((total - done) / rate)})" if done < total
                                               else f"took {format_duration(elapsed)})")
    return text


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def bars_wanted(show: bool) -> bool:
    """Libraries' own bars (loading and saving weights) only on a terminal: off it they are ``\r`` noise."""
    return show and is_terminal(sys.stderr)


class Progress:
    """``with Progress(total, desc) as p: ... p.update(n)``; nothing at all when not ``enabled``."""

    def __init__(self, total: int, desc: str, unit: str = "images", enabled: bool = True, initial: int = 0,
                 stream: TextIO | None = None, every: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.stream = stream if stream is not None else sys.stderr
        self.every, self.clock = EVERY_S if every is None else every, clock
        self._bar = None
        self._lines = enabled and not is_terminal(self.stream)
        if enabled and not self._lines:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                             file=self.stream)
        self._start = self._last = clock()
        self._initial = initial
        self._said: int | None = None  # ``done`` at the last line printed
        self._postfix = ""

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._lines and self.clock() - self._last >= self.every:
            self._say()

    def set_postfix(self, **values) -> None:
        """Latest values shown after the count (e.g. loss=0.0123), on the bar or the next line."""
        if self._bar is not None:
            self._bar.set_postfix(**values)
        self._postfix = "  " + "  ".join(f"{k} {v}" for k, v in values.items())

    def write(self, msg: str) -> None:
        """A line of its own, above the bar when there is one."""
        if self._bar is not None:
            self._bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def _say(self) -> None:
        now = self._last = self.clock()
        print(progress_line(self.desc, self.done, self.total, self.unit, now - self._start, self.done - self._initial)
              + self._postfix, file=self.stream, flush=True)
        self._said = self.done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._said is not None and self._said != self.done:
            self._say()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def library_bars(show: bool, packages: tuple[str, ...] = ("transformers", "diffusers")):
    """The bars of ``packages`` (those installed: "Loading weights", "Writing model shards") follow
    ``show`` (see bars_wanted) while a model loads or saves; their previous setting is restored after."""
    import importlib
    import importlib.util

    switches = []
    for package in packages:
        if importlib.util.find_spec(package) is None:
            continue
        lib = importlib.import_module(f"{package}.utils.logging")
        switches.append((lib, lib.is_progress_bar_enabled()))
        (lib.enable_progress_bar if show else lib.disable_progress_bar)()
    try:
        yield
    finally:
        for lib, before in switches:
            (lib.enable_progress_bar if before else lib.disable_progress_bar)()
