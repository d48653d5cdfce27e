"""Errors the command line reports in one line (no traceback) with exit status 2."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(ValueError):
    """The command line or its input is wrong (unknown preset, a file that fails its checks,
    options that contradict the run being resumed). ``rl-train`` prints it without a traceback
    and exits with status 2; the message names the option to change."""
