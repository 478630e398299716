"""The operator's JSON log format (``--log-format json``): one object per line, with run context.

Not named ``logging``: a module of that name in this package would shadow the standard library's
for code that imports it relatively.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

#: LogRecord attributes copied into JSON lines when a log call passes them with ``extra=``.
CONTEXT_FIELDS = ("run_id", "resource")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the run's context.

    ``run_id`` and ``resource`` are included when the log call passed them, e.g.
    ``logger.info("...", extra={"run_id": run_id, "resource": str(key)})``; an exception's
    traceback goes into ``exception``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
