"""The officer portal: pages reached from the personal links in Accord's mail.

FastAPI with server-rendered Jinja2 templates (`create_app` in `app.py`). Officers sign in by
opening a signed link (`auth.py`, `infra.links`); every action goes through the same update
validators as the CLI, signed with the portal's credential (`engine.act`).
"""
