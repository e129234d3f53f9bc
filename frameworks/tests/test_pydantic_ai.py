"""Runner contract tests for frameworks/pydantic-ai (fixtures and tests in conftest.py)."""

from conftest import FrameworkContract


class TestPydanticAi(FrameworkContract):
    framework = "pydantic-ai"
