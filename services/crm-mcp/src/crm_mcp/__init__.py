"""crm-mcp: the MCP server users connect to; shows every downstream-auth pattern (1, 2, 3, 3b, 4)."""
