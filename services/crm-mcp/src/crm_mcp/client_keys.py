"""`python -m crm_mcp.client_keys rotate|list`: crm-mcp's client-assertion keys, where its settings keep them.

Run from the repository root like the server (it reads `.env`); `make rotate-client` runs `rotate`.
The new key is served at /.well-known/jwks.json at once and signs 60 s later (oauth_tokens.client_assertion).
"""

from __future__ import annotations

import sys

from oauth_tokens import client_assertion
from oauth_tokens.errors import SettingsError
from oauth_tokens.settings import load_settings

from crm_mcp.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(Settings)
    arguments = sys.argv[1:] if argv is None else argv
    keys = ["--keys-dir", str(settings.client_keys_dir), "--algorithm", settings.crm_mcp_client_key_algorithm]
    client_assertion.main([*arguments, *keys])


if __name__ == "__main__":
    try:
        main()
    except (SettingsError, OSError, RuntimeError, TypeError, ValueError) as error:  # messages hold no key material
        sys.exit(f"crm_mcp.client_keys: {error}")
