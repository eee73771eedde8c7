"""Run weather-api: `python -m weather_api` (settings from the environment and .env)."""

from oauth_tokens.serve import serve

from weather_api.settings import WeatherApiSettings


def main() -> None:
    serve(
        "weather-api",
        WeatherApiSettings,
        "weather_api.app:create_app",
        lambda s: (s.weather_api_host, s.weather_api_port),
        metrics_port=lambda s: s.weather_api_metrics_port,
    )


if __name__ == "__main__":
    main()
