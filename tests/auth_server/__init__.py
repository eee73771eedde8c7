"""Tests of the auth-server: unit tests of its parts, and conformance through real clients on loopback."""
