"""Helpers for the browser (end-to-end) tests in tests/test_webapp_*.py."""
