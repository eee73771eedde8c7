"""The key ring's matching and the synthetic weather's determinism (pure functions, no process)."""

from __future__ import annotations

from weather_api.keys import ApiKeyRing, fingerprint
from weather_api.weather import current_weather


def test_key_ring_matches_only_exact_keys_and_hides_them() -> None:
    ring = ApiKeyRing(["alpha-key", "beta-key"])
    assert ring.is_valid("beta-key")
    assert not ring.is_valid("beta-ke")
    assert not ring.is_valid("")
    assert "alpha" not in repr(ring)
    assert fingerprint("alpha-key") == fingerprint("alpha-key") != fingerprint("beta-key")
    assert "alpha" not in fingerprint("alpha-key")


def test_known_and_unknown_cities_are_deterministic() -> None:
    assert current_weather("London").condition == "showers"
    assert current_weather("new   york").city == "new york"
    assert current_weather("Atlantis") == current_weather("ATLANTIS ").model_copy(update={"city": "Atlantis"})
