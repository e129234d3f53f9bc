"""Runner contract tests for frameworks/langchain (fixtures and tests in conftest.py)."""

from conftest import ALL_STEPS, FrameworkContract


class TestLangchain(FrameworkContract):
    framework = "langchain"
    expected_steps = ALL_STEPS
