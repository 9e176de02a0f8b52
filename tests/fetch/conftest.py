"""Fixtures of the fetcher tests.

(tests/conftest.py already gives each test a fresh cache, points Google Drive at
a closed loopback port, refuses connections outside the loopback range and
provides the ``state`` toy weights and the ``loopback_server`` fixture.)
"""
