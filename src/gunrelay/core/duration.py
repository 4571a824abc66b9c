"""Durations as operators type them: ``90``, ``90s``, ``5m``, ``2h``, ``7d`` (and ``1h30m``)."""

from __future__ import annotations

import re

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
    if not 0 < seconds <= 10 * 365 * 86400:
        raise ValueError(f"duration out of range: {text!r}")
    return seconds
