"""weather-api: a stand-in for an external weather SaaS that requires an API key (pattern 1)."""
