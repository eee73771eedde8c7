"""crm-mcp: the MCP server users connect to; shows all three downstream-auth patterns."""
