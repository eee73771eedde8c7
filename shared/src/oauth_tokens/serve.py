"""Run a service the same way everywhere: settings first (one clear line if bad), logging, then uvicorn."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from oauth_tokens.errors import SettingsError
from oauth_tokens.logs import configure_logging
from oauth_tokens.settings import ServiceSettings, load_settings

__all__ = ["serve"]

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def serve(
    name: str,
    settings_class: type[SettingsT],
    app_factory: str,
    address: Callable[[SettingsT], tuple[str, int]],
) -> None:
    """Load `settings_class`, configure logging, build `app_factory` ("module:function") and serve it.

    A missing or bad setting exits at once with one line naming the variable (never its value). The app
    module is imported only after that, so configuration errors are reported before the slow imports.
    uvicorn runs with `log_config=None` so its loggers go through the redacting handler.
    """
    try:
        settings = load_settings(settings_class)
    except SettingsError as error:
        raise SystemExit(f"{name}: {error}") from None
    configure_logging(settings.log_level)
    import uvicorn

    module_name, _, function_name = app_factory.partition(":")
    create_app: Callable[[SettingsT], Any] = getattr(importlib.import_module(module_name), function_name)
    host, port = address(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None)
