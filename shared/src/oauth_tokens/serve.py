"""Run a service the same way everywhere: settings first (one clear line if bad), logging, then uvicorn."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from oauth_tokens.errors import SettingsError
from oauth_tokens.logs import configure_logging
from oauth_tokens.metrics import serve_metrics
from oauth_tokens.settings import ServiceSettings, load_settings
from oauth_tokens.telemetry import configure_tracing, instrument_app

__all__ = ["serve"]

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def _where(error: BaseException) -> str:
    """`file.py:line in function` where `error` was raised: enough to find the check, with no value in it."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "the app factory"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def serve(
    name: str,
    settings_class: type[SettingsT],
    app_factory: str,
    address: Callable[[SettingsT], tuple[str, int]],
    *,
    access_log: bool = True,
    metrics_port: Callable[[SettingsT], int | None] = lambda _: None,
) -> None:
    """Load `settings_class`, configure logging, build `app_factory` ("module:function") and serve it.

    A missing or bad setting (in the settings or found while building the app) exits at once with one
    line naming the variable, never its value. As a backstop, a ValueError raised while building the app
    (a check the settings class did not make) also exits with one line, naming where it was raised but
    not its message, which may quote a value. uvicorn runs with `log_config=None`, so its loggers go
    through the redacting handler; `access_log=False` silences its per-request lines altogether.
    Tracing starts when the settings configure an exporter; `metrics_port` (None: off) serves /metrics.
    """
    try:
        settings = load_settings(settings_class)
        configure_logging(settings.log_level)
        configure_tracing(
            settings.otel_service_name or name,
            otlp_endpoint=settings.otel_exporter_otlp_endpoint,
            traces_dir=settings.traces_dir,
        )
        module_name, _, function_name = app_factory.partition(":")
        create_app: Callable[[SettingsT], Any] = getattr(importlib.import_module(module_name), function_name)
        app = create_app(settings)
    except SettingsError as error:
        raise SystemExit(f"{name}: {error}") from None
    except ValueError as error:
        raise SystemExit(f"{name}: Invalid configuration: ValueError at {_where(error)}; check the settings") from None
    import uvicorn

    host, port = address(settings)
    if (metrics := metrics_port(settings)) is not None:
        try:
            serve_metrics(settings.metrics_host, metrics)
        except OSError as error:  # e.g. the port is taken: say which listener, as for a bad setting
            raise SystemExit(f"{name}: cannot serve /metrics on port {metrics}: {error.strerror}") from None
    uvicorn.run(instrument_app(app), host=host, port=port, log_config=None, access_log=access_log)
