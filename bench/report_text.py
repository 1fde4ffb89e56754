"""Phrases the bench reports share, built from what a run recorded (never typed by hand)."""
from __future__ import annotations

from typing import Iterable, Optional


def settle_words(recorded: Iterable[Optional[int]]) -> str:
    """How many untimed calls preceded each paired timed call (`paired_ratio`'s recorded `settle` values),
    e.g. "3 untimed calls", "1/3 untimed calls"; None values (not recorded) are left out."""
    settles = sorted({v for v in recorded if v is not None})
    if not settles:
        return "an unrecorded number of untimed calls"
    return f"{'/'.join(map(str, settles))} untimed call{'' if settles == [1] else 's'}"
