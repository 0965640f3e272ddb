"""The `accord` command line, one module per command group.

    accord validate PATH...        check agreement files (or every agreement in a folder)
    accord schema [--directory]    print the JSON Schema of an agreement (or directory) file
    accord run [--demo]            run the service: Temporal, mail, worker, agreements
    accord deploy PATH...          start the workflows of agreements (again: no change)
    accord status [--agreement ID] list tasks and their state (filters: agency, state)
    accord submit TASK ...         submit a task's report on behalf of an officer
    accord extend | decide TASK    request an extension of a deadline; decide on it
    accord waive TASK ...          release an agency from a task (admins)
    accord event record AGR EVENT  an event happened: start the tasks due after it (admins)
    accord amend AGR FILE          preview, then apply, a new version of an agreement (admins)
    accord suspend | resume AGR    suspend an agreement, item or obligation; resume it (admins)
    accord calendar YEAR           print a year's working calendar; --publish sends it
    accord audit verify | list     check the audit trail's hash chains; print its entries
    accord simulate PATH           preview every mail an agreement will cause
    accord plan PATH               the same list, worked out by the planner without a server

Where each lives: `agreements.py` (validate, schema: files only, no engine), `run.py`,
`deployment.py` (deploy, status), `tasks.py` (submit, extend, decide, waive), `events.py`
(event record), `changes.py` (amend, suspend, resume), `calendar.py`, `audit.py` (audit
verify, list: the database only), `simulate.py`, `plan.py` (no engine); all talk to the
engine through `engine.py`, and `commands.py` registers them and holds `main`. Commands are
entry points: nothing below (workflows, activities, infra, agreements) imports this package.
"""

from accord.cli.commands import console_main, main

__all__ = ["console_main", "main"]
