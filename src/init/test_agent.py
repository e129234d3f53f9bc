"""The agent of this folder answers through its tool. Run with the folder's venv:

    .venv/bin/python -m unittest test_my_agent
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
# As runner.py sees them: this folder, the worker's shared helpers, the shipped {{FRAMEWORK}} folder.
sys.path[:0] = [HERE, os.path.join(HERE, os.pardir, "_shared"), os.path.join(HERE, os.pardir, "{{FRAMEWORK}}")]


def answer(agent, text: str) -> str:
    """The agent's final text for one user message, through {{FRAMEWORK}}'s own API."""
{{ANSWER}}


class MyAgentTest(unittest.TestCase):
    def test_the_tool_answers(self):
        import my_agent

        self.assertEqual(answer(my_agent.agent, "hello world"), "Shouted: dlrow olleh")


if __name__ == "__main__":
    unittest.main()
