"""Run calendar-api: `python -m calendar_api` (settings from the environment and .env)."""

from oauth_tokens.serve import serve

from calendar_api.settings import CalendarApiSettings


def main() -> None:
    serve(
        "calendar-api",
        CalendarApiSettings,
        "calendar_api.app:create_app",
        lambda s: (s.calendar_api_host, s.calendar_api_port),
    )


if __name__ == "__main__":
    main()
