"""calendar-api: a stand-in for a calendar SaaS that trusts only its own authorization server (pattern 4)."""
