"""Versioned objects that cross RPC."""
