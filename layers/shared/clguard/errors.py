"""A small exception hierarchy.

Retryable errors propagate to the batch (SQS retry, then the DLQ) or to Lambda's async retry.
"Gone" and "nothing to do" are results, not errors.
"""

from __future__ import annotations


class GuardError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(GuardError):
    """The environment is invalid. The message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class InvalidEvent(GuardError):
    """An event or message we cannot parse. The record fails so that it reaches the DLQ."""


class RetryableError(GuardError):
    """A transient failure (throttling, 5xx, timeout, lock contention): retry the whole unit."""


class LockTimeout(RetryableError):
    """The per-key lock could not be acquired in time."""


class GuardrailViolation(GuardError):
    """A key-policy change would break a hard guardrail. Raised by the lowest layer as a backstop."""


class PolicyConflict(GuardError):
    """A statement the remediator owns was changed by hand in a way it will not build on."""


class UntrustedSender(InvalidEvent):
    """One of the guard's own message kinds came from a sender that is not one of its functions.
    The record fails (SQS retries it, then its DLQ keeps it for a person to look at)."""
