"""Runner contract tests for frameworks/pydantic-ai (fixtures and tests in conftest.py)."""

from conftest import ALL_STEPS, FrameworkContract


class TestPydanticAi(FrameworkContract):
    framework = "pydantic-ai"
    expected_steps = ALL_STEPS
