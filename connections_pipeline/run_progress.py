"""The progress bars of `connections-pipeline run`: tokens introspected, then follow-ups.

The sync asset reports each Finch phase's progress to the Python logger `PROGRESS_LOGGER`
(besides Dagster's log); the command listens there while the sync runs in its process. On a
terminal each phase is a bar redrawn in place; otherwise (a file, a pipe, CI) each phase
is one line once it is done, so a captured output stays short.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm

from connections_pipeline.assets.metadata import PROGRESS_LOGGER

# How each phase reads.
PHASES = {
    "introspect": "Tokens introspected",
    "jobs": "Follow-ups: job listings",
    "company": "Follow-ups: company names",
}


class _Bars(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.animated = bool(getattr(stream, "isatty", lambda: False)())
        self.bars: dict[str, tqdm] = {}
        self.done: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        endpoint = getattr(record, "endpoint", None)
        done, total = getattr(record, "done", None), getattr(record, "total", None)
        if endpoint is None or done is None or not total or endpoint in self.done:
            return
        label = PHASES.get(endpoint, f"Finch {endpoint}")
        if not self.animated:
            if done >= total:
                self.done.add(endpoint)
                self.stream.write(f"{label}: {done}/{total}\n")
                self.stream.flush()
            return
        bar = self.bars.get(endpoint)
        if bar is None:
            bar = self.bars[endpoint] = tqdm(
                total=total, desc=label, file=self.stream, leave=True, dynamic_ncols=True
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            self.done.add(endpoint)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        super().close()


@contextmanager
def progress_bars(stream: TextIO) -> Iterator[None]:
    """Show the sync's progress on `stream` while the block runs."""
    logger = logging.getLogger(PROGRESS_LOGGER)
    handler = _Bars(stream)
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    # The bars are the terminal's; the log file has Dagster's own progress lines.
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
