"""The on-LUN lease: at most one pool may change an LVHD volume SR."""
