"""tickets-mcp: an MCP server protected as an OAuth 2.1 resource server (pattern 2's target)."""
