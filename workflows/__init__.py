"""Workflows: deterministic code that decides what is due, when and to whom, and asks
activities for every side effect — the agreement workflow (`agreement.py`), one obligation
workflow per task (`obligation.py`), and their payloads and search attributes (`payloads.py`).

Workflow modules import only the standard library, temporalio, pydantic and the pure domain
(`agreements`, `activities.models`): never `infra`, the activities that do I/O, or the entry
points, and no clock, randomness or I/O outside `workflow.*` (tests/test_layers.py checks the
imports).
"""
