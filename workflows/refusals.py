"""The error an update validator raises when a rule refuses the update.

Apart from `workflows.payloads` so that reading or planning an agreement does not import
temporalio.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

REFUSED = "Refused"
"""Error type of an update refused by a rule; its details hold the reason in both languages."""


def refusal(*, vi: str, en: str, prefix: str = "rule: ") -> ApplicationError:
    """The error an update validator raises when a rule refuses the update: the message in
    English (what a plain Temporal client and the logs show), the details `{"vi", "en"}` for
    the entry point to show in its reader's language."""
    return ApplicationError(f"{prefix}{en}", {"vi": vi, "en": en}, type=REFUSED, non_retryable=True)
