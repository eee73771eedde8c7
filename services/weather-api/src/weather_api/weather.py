"""Synthetic, deterministic current weather: a fixed table for the demo cities, a hash for any other."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field

Condition = Literal["clear", "partly cloudy", "cloudy", "rain", "showers", "thunderstorm", "snow", "fog"]
CONDITIONS: tuple[Condition, ...] = (
    "clear",
    "partly cloudy",
    "cloudy",
    "rain",
    "showers",
    "thunderstorm",
    "snow",
    "fog",
)


class CurrentWeather(BaseModel):
    """Current conditions in one city (synthetic data from the stand-in)."""

    city: str = Field(description="The city as requested, whitespace-normalised", examples=["Berlin"])
    temperature_c: float = Field(description="Air temperature in degrees Celsius", examples=[14.5])
    condition: Condition
    humidity_percent: int = Field(ge=0, le=100)
    wind_kph: float = Field(ge=0)
    source: str = Field(default="weather-api stand-in (synthetic data)")


# The demo customers' cities: fixed, plausible values so the demo reads naturally.
_KNOWN_CITIES: dict[str, tuple[float, Condition, int, float]] = {
    "berlin": (14.5, "partly cloudy", 62, 14.0),
    "paris": (17.0, "clear", 55, 9.5),
    "london": (12.5, "showers", 78, 18.0),
    "tokyo": (21.0, "cloudy", 68, 11.0),
    "new york": (19.5, "clear", 50, 16.5),
    "sydney": (23.0, "clear", 58, 20.0),
    "toronto": (9.0, "rain", 81, 22.5),
    "madrid": (26.5, "clear", 35, 8.0),
}


def normalise_city(city: str) -> str:
    """'  new   York ' -> 'new York': trimmed, inner whitespace collapsed (case kept for display)."""
    return " ".join(city.split())


def current_weather(city: str) -> CurrentWeather:
    """The same city always gets the same weather (case-insensitive); any city name is answered."""
    display = normalise_city(city)
    key = display.casefold()
    if key in _KNOWN_CITIES:
        temperature, condition, humidity, wind = _KNOWN_CITIES[key]
    else:
        digest = hashlib.sha256(key.encode()).digest()
        temperature = round(-10 + digest[0] / 255 * 45, 1)  # -10 .. 35 °C
        condition = CONDITIONS[digest[1] % len(CONDITIONS)]
        humidity = 20 + digest[2] % 76  # 20 .. 95 %
        wind = round(digest[3] / 255 * 60, 1)  # 0 .. 60 km/h
        if condition == "snow" and temperature > 2:
            condition = "rain"
    return CurrentWeather(
        city=display, temperature_c=temperature, condition=condition, humidity_percent=humidity, wind_kph=wind
    )
