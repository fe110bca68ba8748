"""Log lines through `structlog`: JSON lines for machines, rendered lines for people.

`configure(format, level)` gives the root logger one handler on stderr whose formatter is
structlog's `ProcessorFormatter`, so every standard-library logger (tollhouse's own
`logging.getLogger(__name__)`, uvicorn's, SQLAlchemy's) and every `structlog.get_logger()`
logger write the same lines, through the same processors:

- `timestamp` (ISO 8601, UTC), `level`, `logger` (the logger's name), `event` (the message);
- `request_id`: on every line logged while a request is handled, and by the tasks it
  started (`observability.context`; the id the answer's `X-Request-Id` carries);
- the record's `extra=` fields; `exception`: the traceback, when there is one.

`format`: `json` (one JSON object per line: what log shippers read), `console` (structlog's
`ConsoleRenderer`, coloured on a terminal; tracebacks without local variables, which may hold
secrets), or `auto`: `console` when stderr is a terminal, else `json`.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tollhouse.observability.context import current_request_id

LogFormat = Literal["auto", "json", "console"]

_HANDLER_MARK = "_tollhouse_handler"


def add_request_id(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """structlog processor: the id of the request being handled, if any, as `request_id`."""
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


SHARED_PROCESSORS: tuple[Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    add_request_id,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)
"""What every line gets, from structlog and standard-library loggers alike."""


def renders_json(log_format: LogFormat) -> bool:
    """Whether `log_format` means JSON lines here (`auto`: unless stderr is a terminal)."""
    if log_format == "auto":
        return not sys.stderr.isatty()
    return log_format == "json"


def formatter(log_format: LogFormat) -> structlog.stdlib.ProcessorFormatter:
    """The `logging.Formatter` that renders every record as `log_format` says."""
    final: tuple[Processor, ...]
    if renders_json(log_format):
        final = (structlog.processors.format_exc_info, structlog.processors.JSONRenderer())
    else:
        final = (
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(),
                exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
            ),
        )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED_PROCESSORS,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )


def configure(log_format: LogFormat, level: str) -> None:
    """Send every log record of this process to stderr as `log_format` renders it, from
    `level` (a `logging` level name, any case) up. Calling it again replaces what it set."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
