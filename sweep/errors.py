"""The one exception type the sweep raises for bad input.

``python -m sweep`` turns a :class:`StudyError` into one line on stderr and exit status 2; the
library raises it (a ``ValueError``) so callers and tests can catch it like any bad argument.
"""

from __future__ import annotations


class StudyError(ValueError):
    """Bad study input or an unusable result directory; the message is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
