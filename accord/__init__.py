"""Entry points: the `accord` command line (`accord/cli/`) and what its commands drive —
deploying agreements, publishing a calendar, the simulation, the demo, and the embedded
Temporal server and mail sink for the zero-configuration service.

The top of the house: it may use every layer below (agreements, workflows, activities, infra,
`worker.py`), and nothing below imports it. Business rules do not live here: deadlines are the
domain's, decisions the workflows', side effects the activities'.
"""
