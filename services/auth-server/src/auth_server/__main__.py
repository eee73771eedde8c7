"""Run auth-server: `python -m auth_server` (cwd = repo root, so `.env` and data/auth-server resolve there)."""

from oauth_tokens.serve import serve

from auth_server.settings import AuthServerSettings


def main() -> None:
    serve(
        "auth-server",
        AuthServerSettings,
        "auth_server.app:create_app",
        lambda s: (s.auth_server_host, s.auth_server_port),
        metrics_port=lambda s: s.auth_server_metrics_port,
        access_log=False,  # its own access log omits query strings
    )


if __name__ == "__main__":
    main()
