"""Imports every family module so that its builders register themselves."""

# One import per family module; keep this list sorted.
