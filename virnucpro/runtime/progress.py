"""A long loop's progress in its job's log, every PROGRESS_SECONDS: a user following an
embedding job of an hour sees how far it is and when it will end."""

import logging
import time

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 30.0


class Progress:
    def __init__(self, name, frames, tokens):
        self.name, self.frames, self.tokens = name, frames, tokens
        self.frames_done = self.tokens_done = 0
        self.started = time.monotonic()
        self.due = self.started + PROGRESS_SECONDS

    def advance(self, frames, tokens):
        self.frames_done += frames
        self.tokens_done += tokens
        now = time.monotonic()
        if now < self.due or self.frames_done >= self.frames:
            return
        self.due = now + PROGRESS_SECONDS
        rate = self.tokens_done / (now - self.started)
        left = (self.tokens - self.tokens_done) / rate if rate else float("inf")
        log.info(
            "%s: %d of %d frames (%.0f%%), %s tokens/s, about %s left",
            self.name,
            self.frames_done,
            self.frames,
            100 * self.frames_done / self.frames,
            f"{rate:,.0f}",
            duration(left),
        )


def duration(seconds):
    """'2 h 05 min', '7 min 30 s' or '12 s'."""
    if seconds == float("inf"):
        return "an unknown time"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"
