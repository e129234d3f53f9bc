"""Runner contract tests for frameworks/langgraph (fixtures and tests in conftest.py)."""

from conftest import FrameworkContract


class TestLanggraph(FrameworkContract):
    framework = "langgraph"
