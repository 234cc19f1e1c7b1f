"""Logging for supervisors and the CLI: one line per event, plain or JSON, never colours.

`EDT_LOG_FORMAT=json` makes each record one JSON object (for log shippers); otherwise
`time level logger: message`. Terminal colour codes (Ray adds them to some messages) are
stripped either way, so log files and the registry stay readable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{stamp} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return strip_ansi(line)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": strip_ansi(record.getMessage()),
        }
        if record.exc_info:
            doc["traceback"] = strip_ansi(self.formatException(record.exc_info))
        return json.dumps(doc)


def configure_logging(level: int = logging.INFO) -> None:
    """Route the `edt` loggers to stderr in the configured format (idempotent)."""
    logger = logging.getLogger("edt")
    fmt = os.environ.get("EDT_LOG_FORMAT", "plain").lower()
    formatter = _JsonFormatter() if fmt == "json" else _PlainFormatter()
    for handler in logger.handlers:
        if getattr(handler, "_edt", False):
            handler.setFormatter(formatter)
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler._edt = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
