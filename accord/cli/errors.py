"""Exit codes and `CommandError`, the expected failure every command may raise.

Kept apart from `engine.py` (which imports the Temporal client and the settings) so that
`commands.py` and the commands that only read files (`accord plan`, `accord validate`) can use
them without importing the engine. Nothing else belongs here.
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class CommandError(Exception):
    """An expected failure: `main` prints the message, without a traceback, and exits with
    `code` (1: the action failed; 2: the input was wrong)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
