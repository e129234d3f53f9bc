"""Runs this folder's agent (framework.json's AGENTDISPATCH_ENTRYPOINT) with the worker's shipped
{{FRAMEWORK}} runner, ../{{FRAMEWORK}}/runner.py: the same events, live text, sessions and warm
starts as the shipped example. Written by `agentdispatch-worker init`; keep it as it is, so that
the runner stays the worker's own and is updated with it."""

import os
import runpy
import sys

SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "{{FRAMEWORK}}")
# After this folder (sys.path[0]): the shipped folder, for its offline test model, which
# my_agent.py uses until you give it a model of your own.
sys.path.insert(1, SHIPPED)
runpy.run_path(os.path.join(SHIPPED, "runner.py"), run_name="__main__")
