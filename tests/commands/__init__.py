"""Tests that run a command as a process (dbt parse, `elt check`, hadolint): seconds each.

Unit tests (tests/unit/) run none; their conftest refuses to start one.
"""
