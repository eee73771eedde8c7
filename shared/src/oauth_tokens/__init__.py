"""oauth_tokens: validate OAuth 2.1 JWT access tokens and obtain client-credentials tokens."""
