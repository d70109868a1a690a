"""sigdiff's error types for things a user can fix (bad data, config, folders, options). The CLI
turns these into a one-line message and a non-zero exit; anything else is a real crash and keeps
its traceback."""

from __future__ import annotations

__all__ = ["USER_ERRORS", "SigdiffError", "TrainingError"]


class SigdiffError(Exception):
    """Base of the errors a user can fix; each message says what is wrong and how to fix it."""


class TrainingError(SigdiffError, RuntimeError):
    """Training cannot continue (non-finite loss, data/config mismatch, unusable run directory)."""


#: What the CLI reports as a one-line user error: sigdiff's own error types (the ValueError
#: family of config/store/checkpoint/sweep errors, and SigdiffError) and missing files. A
#: RuntimeError that is not a SigdiffError (a CUDA failure, a bug) keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (SigdiffError, ValueError, FileNotFoundError, KeyError)
