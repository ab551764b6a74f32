"""LVHD on-disk formats: pure parsers and serializers, one device layer."""
