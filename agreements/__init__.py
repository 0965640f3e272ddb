"""Agreements as data, the pure domain at the bottom of the house: the schema (`models`), YAML
files read with positions (`yaml_files`), the working calendar (`calendar`), the expansion
into task occurrences (`expansion`) and the loader that ties them (`loader`), plus the
agreements, agency directories and calendar overrides themselves as YAML.

Inside the package each module imports only those below it (plain_text, models, yaml_files →
calendar → expansion → loader). Nothing here imports workflows, activities, infra or the entry
points, talks to Temporal, a database or a mail server, or reads a clock. This file imports
nothing, so a workflow that uses the calendar does not load the loader or APScheduler: import
from the modules.
"""
