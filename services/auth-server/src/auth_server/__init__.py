"""Local OAuth 2.1 authorization server: the embedded, offline default (a development stand-in)."""
