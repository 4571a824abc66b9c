"""The relay's recent log records, kept in memory for the console, and privacy mode for the logs.

``LogBook`` is a logging handler that keeps the last ``capacity`` records (a bounded ring: the
console shows recent activity, the full log goes wherever the process's logging sends it).
``PrivacyFilter`` on a handler rewrites every address in a record while privacy mode is on, so
the process's own log output is anonymised too; the console's view applies it when read, so
turning privacy on also hides addresses logged before.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from ..core.privacy import Privacy

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class PrivacyFilter(logging.Filter):
    def __init__(self, privacy: Privacy):
        super().__init__()
        self.privacy = privacy

    def filter(self, record: logging.LogRecord) -> bool:
        if self.privacy.enabled:
            record.msg = self.privacy.text(record.getMessage())
            record.args = None
        return True


class LogBook(logging.Handler):
    def __init__(self, privacy: Privacy, capacity: int = 5000):
        super().__init__(logging.DEBUG)
        self.privacy = privacy
        self.records: deque[tuple[float, int, str, str]] = deque(maxlen=capacity)
        self._attached: list[tuple[logging.Logger, logging.Filter]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:
            message = str(record.msg)
        self.records.append((record.created * 1000, record.levelno, record.name, message))

    def recent(self, level: str, limit: int) -> list[dict[str, Any]]:
        threshold = LEVELS[level]
        chosen = [r for r in self.records if r[1] >= threshold][-limit:] if limit > 0 else []
        text = self.privacy.text
        return [{"at": at, "level": logging.getLevelName(no).lower(), "logger": name, "message": text(msg)} for at, no, name, msg in chosen]

    def attach(self, *logger_names: str) -> None:
        """Collect the records of these loggers (the root logger: ""), and anonymise their handlers' output."""
        privacy_filter = PrivacyFilter(self.privacy)
        for name in logger_names:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            for handler in logger.handlers:
                if handler is not self:
                    handler.addFilter(privacy_filter)
            self._attached.append((logger, privacy_filter))

    def detach(self) -> None:
        for logger, privacy_filter in self._attached:
            logger.removeHandler(self)
            for handler in logger.handlers:
                handler.removeFilter(privacy_filter)
        self._attached.clear()
