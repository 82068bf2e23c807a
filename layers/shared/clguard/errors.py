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


# --- AWS errors -------------------------------------------------------------------------------------
# The adapters (``clguard.adapters``) turn every botocore error into one of these, so nothing above
# them imports botocore. ``str()`` of each is the botocore error's own text.


class AwsError(GuardError):
    """An AWS call failed. ``code`` is AWS's error code ("" when no answer came back), ``message``
    AWS's error message, ``status`` the HTTP status (0 when there was none)."""

    def __init__(self, text: str, *, code: str = "", message: str = "", status: int = 0) -> None:
        super().__init__(text)
        self.code = code
        self.message = message
        self.status = status


class Transient(AwsError, RetryableError):
    """Throttling, a 5xx, a timeout or a dropped connection (after botocore's own retries): the
    unit of work is retried."""


class Throttled(Transient):
    """AWS answered with throttling or a 5xx (the other transient failures come without an answer)."""


class Refused(AwsError):
    """AWS answered with an error that a retry would not change."""


class NotFound(Refused):
    """The resource does not exist (404, ``NoSuch*``, ``*NotFound*``)."""


class Denied(Refused):
    """Access denied (403, ``AccessDenied*``, ``*Unauthorized*``)."""


class PreconditionFailed(Refused):
    """A conditional request's condition failed (412 ``PreconditionFailed``)."""


class Rejected(Refused):
    """Any other refusal: AWS found the request invalid or not possible now (``code`` says why)."""


class InvalidCall(AwsError):
    """The SDK refused to send the request (a parameter the code built wrong): a bug, never retried."""


# --- S3 re-encryption and member accounts -----------------------------------------------------------


class ObjectChanged(GuardError):
    """The object changed after we inspected it (If-Match failed, or a write landed during the
    copy and was put back on top): its own event covers it."""


class CopyRolledBack(GuardError):
    """In a versioned bucket, a write landed between the last check and the copy, and the copy
    could not put it back on top by itself. The message says what a person should do."""


class UnsupportedAcl(GuardError):
    """An object ACL grant that a copy cannot carry over (a grantee or permission S3's grant
    headers do not express)."""


class UpdateUnavailable(GuardError):
    """The SDK in this runtime predates UpdateObjectEncryption: re-encrypt by copying instead."""


class MemberUnreachable(GuardError):
    """The member role could not be assumed (not deployed, or its trust policy refuses us)."""

    def __init__(self, account: str, problem: str) -> None:
        super().__init__(f"cannot assume the member role in {account}: {problem}")
        self.account = account
