"""crm-api: internal FastAPI backend that validates the cascaded user token itself (pattern 3)."""
