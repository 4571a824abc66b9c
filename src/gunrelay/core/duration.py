"""Durations as operators type them: ``90``, ``90s``, ``5m``, ``2h``, ``7d`` (and ``1h30m``).

At least a second (``MIN_S``): a ban, TTL or grace period shorter than that would lapse before it
could matter (a ban made and gone before the operator's next command), and at most ten years."""

from __future__ import annotations

import re

MIN_S = 1.0
MAX_S = 10 * 365 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw]?)")  # ASCII digits only: \d would read "١h" as an hour


def parse_duration(text: str | float | int) -> float:
    """Seconds; raises ValueError with a readable message for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    elif isinstance(text, str) and text.strip():
        spec = text.strip().lower()
        pos, seconds = 0, 0.0
        while pos < len(spec):
            match = _PART.match(spec, pos)
            if match is None:
                raise ValueError(f"not a duration: {text!r} (use e.g. 90, 90s, 5m, 2h, 7d)")
            seconds += float(match.group(1)) * _UNITS[match.group(2) or "s"]
            pos = match.end()
    else:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 90s, 5m, 2h, 7d)")
    if not MIN_S <= seconds <= MAX_S:
        raise ValueError(f"duration out of range: {text!r} (from 1 second to 10 years)")
    return seconds
