"""Runner contract tests for frameworks/langchain (fixtures and tests in conftest.py)."""

from conftest import FrameworkContract


class TestLangchain(FrameworkContract):
    framework = "langchain"
