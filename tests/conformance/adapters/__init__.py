"""Client commands for the conformance suite's client scenarios: one module per scenario, each thin.

The suite runs `python -m tests.conformance.adapters.<module> <server-url>` with the scenario's data in
MCP_CONFORMANCE_CONTEXT (JSON). An adapter only wires the scenario's data into the project's own code
(oauth_tokens) and makes one MCP call with the SDK's client; it implements no OAuth step itself, so a
failing check is a finding about oauth_tokens, not about the adapter.
"""
