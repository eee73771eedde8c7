"""One logging format for every service, with a filter that redacts bearer tokens and JWTs."""

from __future__ import annotations

import logging
import re
import sys

__all__ = ["LOG_FORMAT", "REDACTED", "RedactSecretsFilter", "configure_logging", "redact"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[REDACTED]"

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Bearer <anything token-like>" (RFC 6750 b64token characters).
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # A JWS/JWT: base64url header starting with '{"' (eyJ), payload, signature (possibly empty for alg none).
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), REDACTED),
    # Any other three long base64url segments joined by dots.
    (re.compile(r"\b[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"), REDACTED),
    # key=value / "key": "value" forms of secrets, e.g. a token endpoint response or form body, or the
    # authorization code (and a connect reference, `ref`) in a redirect URL's query in an access log.
    (
        re.compile(
            r"(?i)(\b(?:access_token|refresh_token|id_token|client_secret|password|code|code_verifier|ref)"
            r"[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"'&,}]+"
        ),
        rf"\1{REDACTED}",
    ),
)

# uvicorn configures these itself unless run with log_config=None; configure_logging routes them to root.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# httpx2 logs every request it sends at INFO ("HTTP Request: GET <url> ..."): per downstream call a
# formatted line that repeats the downstream's own access log, the CLIENT span and the downstream
# metrics, and that would carry the URL's query (a user's search) into this log. Its warnings stay.
_QUIET_CLIENT_LOGGERS = ("httpx2", "httpcore2")


def redact(text: str) -> str:
    """`text` with bearer tokens, JWTs and secret-looking key=value pairs replaced by [REDACTED]."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites each record so its message, args and traceback carry no token; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format string: redact the raw parts instead
            message = " ".join([str(record.msg), *(str(arg) for arg in _args_of(record))])
        redacted = redact(message)
        if redacted != message or record.args:
            # The message is merged with its args once, so no arg can re-introduce a secret later.
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _args_of(record: logging.LogRecord) -> tuple[object, ...]:
    if isinstance(record.args, dict):
        return tuple(record.args.values())
    return tuple(record.args or ())


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr in one format through the redacting filter; call once from `main()`.

    Pass `log_config=None` to `uvicorn.run` so uvicorn's loggers keep propagating to this handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RedactSecretsFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    # At DEBUG (troubleshooting) the request lines are back.
    client_level = logging.NOTSET if root.getEffectiveLevel() <= logging.DEBUG else logging.WARNING
    for name in _QUIET_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(client_level)
