"""Infrastructure below the activities: settings, the database and the SMTP session pool.

Activities and entry points (worker, CLI, simulation) use it; it imports only the standard
library, its libraries (pydantic-settings, SQLAlchemy, aiosmtplib) and the pure domain
(`agreements`). It never imports activities, workflows or `accord`, and builds nothing at
import time: `worker.py` composes settings, engine and pool.
"""
