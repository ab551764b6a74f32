"""Embedded XAPI: XML-RPC pools over a shared SAN of LUN image files."""
