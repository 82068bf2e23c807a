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


class LeaseExpired(RetryableError):
    """A key-policy write was not sent: the writer's lease on the key had ended."""


class GuardrailViolation(GuardError):
    """A key-policy change would break a hard guardrail. Raised by the lowest layer as a backstop."""


class PolicyConflict(GuardError):
    """The key policy is in a state the remediator will not build on: a statement it owns was
    changed by hand, or (DeniedByPolicy) a Deny cancels what it would add."""


class DeniedByPolicy(PolicyConflict):
    """An explicit Deny of the key policy (which the remediator never edits) cancels the access a
    grant would add: writing the grant would be useless, so nothing is written."""

    def __init__(self, principal: str, sids: tuple[str, ...]) -> None:
        super().__init__(
            f"the key policy's Deny statement(s) {', '.join(sids)} cancel this access for {principal}; "
            "adding an Allow cannot help"
        )
        self.principal = principal
        self.sids = sids


class KeyUnreadable(GuardError):
    """KMS refused (not transiently) to let the guard read one key's policy or tags: a finding of
    that key alone; every other key and object is still handled."""

    def __init__(self, key_arn: str, operation: str, code: str, message: str = "") -> None:
        super().__init__(f"{operation} on {key_arn} failed: {code}{': ' + message if message else ''}")
        self.key_arn = key_arn
        self.operation = operation
        self.code = code


class UntrustedSender(InvalidEvent):
    """One of the guard's own message kinds came from a sender that is not one of its functions.
    The record fails (SQS retries it, then its DLQ keeps it for a person to look at)."""
