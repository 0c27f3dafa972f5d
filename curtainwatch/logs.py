"""The log every command writes: plain lines, or one JSON object a line for log collectors
(CURTAINWATCH_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import logging
from datetime import datetime


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (CURTAINWATCH_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup_logging(fmt: str, level: int) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # Alembic says "Context impl SQLiteImpl." on every start; only its problems are news.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
