"""Runner contract tests for frameworks/langgraph (fixtures and tests in conftest.py)."""

from conftest import ALL_STEPS, FrameworkContract


class TestLanggraph(FrameworkContract):
    framework = "langgraph"
    expected_steps = ALL_STEPS
