"""Cinder side: resignature LVHD SRs on cloned volumes."""
