"""Readers that turn checkpoint files into state dicts; pure: they import only modelzoo.errors and torch."""
