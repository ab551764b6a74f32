"""XAPI-facing logic for Nova's XenAPI driver."""
