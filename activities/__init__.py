"""Activities: the side effects a workflow asks for — mail (`mail.py`, worded by `templates.py`)
and the store (`store.py`) — and their payloads (`models.py`).

Activities use the domain (`agreements`) and infrastructure (`infra`: settings, database, SMTP
pool), which they receive in their constructors from `worker.py`. They never import
workflows or the entry points (`accord`, `worker`), and build no settings, engine or client
themselves. `models.py` imports no I/O library: it is the one module workflows may import.
"""
