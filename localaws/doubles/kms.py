"""AWS KMS as documented, where moto 5.2.5 differs: key policies are validated when written, and
read as the IAM policy grammar reads them.

``KeyPolicyValidation`` reproduces the AWS KMS API Reference, "PutKeyPolicy"
(https://docs.aws.amazon.com/kms/latest/APIReference/API_PutKeyPolicy.html) and "CreateKey"
(the policy's characters, its 32 KB quota, principals that exist and are visible to KMS, the IAM
propagation delay), and the AWS KMS Developer Guide, "Key policies in AWS KMS"
(https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html): a single-object
``Statement``, a deleted principal shown by its unique id, a Deny that applies only when its
``Condition`` matches.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from moto.core.exceptions import ServiceException
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.kms.policy_validator import validate_policy
from moto.kms.responses import KmsResponse
from moto.utilities.utils import get_partition

from localaws.doubles.base import Double, Wrapper, wrapped

if TYPE_CHECKING:
    pass


_KEY_POLICY_MAX_BYTES = 32_768
_KEY_POLICY_CHARACTERS = re.compile(r"[\u0009\u000A\u000D\u0020-\u00FF]+")
_AWS_PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:(?:iam|sts)::(?P<account>\d{12}):(?P<resource>.+)")
_MSG_INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."


class _KmsError(ServiceException):
    """A KMS error moto serializes with the KMS model (ServiceException itself would make
    moto look for a service named "core")."""


def _malformed(message: str) -> ServiceException:
    return _KmsError("MalformedPolicyDocumentException", message)


class KeyPolicyValidation(Double):
    """KMS PutKeyPolicy / CreateKey(Policy=...) validate the key policy.

    PutKeyPolicy API reference: "Each statement in the key policy must contain one or more
    principals. The principals in the key policy must exist and be visible to KMS. When you
    create a new Amazon Web Services principal, you might need to enforce a delay before
    including the new principal in a key policy because the new principal might not be
    immediately visible to KMS." "A key policy document can include only the following
    characters: printable ASCII ... Latin-1 Supplement (through \\u00FF) ... tab, line feed,
    and carriage return" (model pattern ``[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+``; AWS may
    answer a pattern violation with ValidationException, here it is
    MalformedPolicyDocumentException). "If the key policy exceeds the length constraint, KMS
    returns a LimitExceededException" (quota: 32,768 bytes). Invalid JSON, a statement
    without principals and an invalid principal -> MalformedPolicyDocumentException.

    Principals: ``*``, account ids, ``:root`` and principals of other accounts are
    accepted (moto cannot know other accounts); ``role/...`` and ``user/...`` ARNs of the
    key's own account must exist in moto's IAM with that exact ARN (path included).
    ``not_yet_visible(arn, times=N)`` makes the next N PutKeyPolicy calls naming ``arn``
    fail as IAM propagation delay does. Not modelled: the policy lockout safety check
    (``BypassPolicyLockoutSafetyCheck`` is passed through untouched).

    IAM policy grammar: ``"Statement"`` is one statement object or a list of them (the KMS
    Developer Guide has single-object examples). moto 5.2.5 stores such a policy, but its
    DescribeKey check of Deny statements iterates the object's keys and crashes; here that check
    sees the statement as a one-element list, as AWS reads it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._visibility_lock = threading.Lock()
        self._invisible: dict[str, int] = {}

    def not_yet_visible(self, principal_arn: str, times: int = 1) -> None:
        """The next ``times`` PutKeyPolicy calls that name ``principal_arn`` fail."""
        with self._visibility_lock:
            self._invisible[principal_arn] = self._invisible.get(principal_arn, 0) + times

    @staticmethod
    def principal_deleted(key_arn: str, principal_arn: str, unique_id: str) -> None:
        """``principal_arn`` was deleted: as in AWS, the key policy now names it by its unique
        principal id (``AROA…``/``AIDA…``; KMS Developer Guide, key policies: "If the principal is
        deleted, the key policy shows the principal's unique ID"), which no PutKeyPolicy accepts
        (MalformedPolicyDocumentException, invalid principals) until someone removes it."""
        _, _, _, region, account, resource = key_arn.split(":", 5)
        key = kms_backends[account][region].keys[resource.removeprefix("key/")]
        key.policy = key.policy.replace(json.dumps(principal_arn), json.dumps(unique_id))

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        yield wrapped(KmsResponse, "put_key_policy", self._validating(put_key_policy=True))
        yield wrapped(KmsResponse, "create_key", self._validating(put_key_policy=False))
        yield wrapped(KmsResponse, "_validate_key_policy", _single_statement_as_list)

    def _validating(self, *, put_key_policy: bool) -> Callable[[Wrapper], Wrapper]:
        def make(original: Wrapper) -> Wrapper:
            def handler(resp: KmsResponse) -> Any:
                policy = resp._get_param("Policy")
                if policy is not None:
                    principals = _validated_principals(policy)
                    partition = get_partition(resp.region)
                    _check_principals_exist(principals, resp.current_account, partition)
                    if put_key_policy:
                        self._fail_if_not_yet_visible(principals)
                return original(resp)

            return handler

        return make

    def _fail_if_not_yet_visible(self, principals: set[str]) -> None:
        with self._visibility_lock:
            pending = [arn for arn in principals if self._invisible.get(arn, 0) > 0]
            for arn in pending:
                self._invisible[arn] -= 1
        if pending:
            raise _malformed(_MSG_INVALID_PRINCIPALS)


def _single_statement_as_list(original: Wrapper) -> Wrapper:
    """moto's check of DescribeKey against the key policy, as AWS evaluates it: a single-object
    ``Statement`` is a list of one, and a Deny with a ``Condition`` applies only when its
    conditions match the request. moto ignores conditions (any Deny of ``kms:*`` on ``*`` refuses
    DescribeKey to everyone); the caller here is the test world's own role, whose request
    context the double does not model, so a conditioned Deny is left out (the code under test
    evaluates such Denies itself, against the requests Rekognition makes for a principal)."""

    def _validate_key_policy(self: KmsResponse, key_id: str, action: str) -> None:
        key = self.kms_backend.describe_key(self.kms_backend.get_key_id(key_id))
        try:
            document = json.loads(key.policy)
        except (TypeError, ValueError):
            document = None
        if not isinstance(document, dict):
            original(self, key_id, action)
            return
        found = document.get("Statement")
        listed = [found] if isinstance(found, dict) else found if isinstance(found, list) else []
        applied = [s for s in listed if not (isinstance(s, dict) and s.get("Effect") == "Deny" and s.get("Condition"))]
        view = SimpleNamespace(arn=key.arn, policy=json.dumps({**document, "Statement": applied}))
        validate_policy(view, action)  # type: ignore[arg-type]

    return _validate_key_policy


def _validated_principals(policy: Any) -> set[str]:
    """The AWS principals of a syntactically valid key policy (raises KMS errors): its statements
    (``_statements``: characters, size, JSON, at least one), then each one's (``_principals_of``)."""
    principals: set[str] = set()
    for statement in _statements(policy):
        principals |= _principals_of(statement)
    return principals


def _statements(policy: Any) -> list[Any]:
    if not isinstance(policy, str) or not _KEY_POLICY_CHARACTERS.fullmatch(policy):
        raise _malformed("The key policy contains characters that are not allowed.")
    if len(policy.encode("utf-8")) > _KEY_POLICY_MAX_BYTES:
        raise _KmsError(
            "LimitExceededException",
            f"The key policy exceeds the maximum size of {_KEY_POLICY_MAX_BYTES} bytes.",
        )
    try:
        document = json.loads(policy)
    except ValueError as error:
        raise _malformed("The key policy is not valid JSON.") from error
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise _malformed("The key policy must contain at least one statement.")
    return statements


def _principals_of(statement: Any) -> set[str]:
    """The AWS principals one statement names ("*" for everyone); an invalid Principal raises."""
    principal = statement.get("Principal") if isinstance(statement, dict) else None
    if principal == "*":
        return {"*"}
    if not isinstance(principal, dict) or not principal:
        raise _malformed(_MSG_INVALID_PRINCIPALS)
    out: set[str] = set()
    for kind, values in principal.items():
        names = [values] if isinstance(values, str) else values
        if not isinstance(names, list) or not names:
            raise _malformed(_MSG_INVALID_PRINCIPALS)
        if not all(isinstance(name, str) and name for name in names):
            raise _malformed(_MSG_INVALID_PRINCIPALS)
        if kind == "AWS":
            out.update(names)
    return out


def _check_principals_exist(principals: set[str], account: str, partition: str) -> None:
    iam = iam_backends[account][partition]
    known: set[str] | None = None
    for principal in principals:
        if principal == "*" or re.fullmatch(r"\d{12}", principal):
            continue
        match = _AWS_PRINCIPAL_ARN.fullmatch(principal)
        if match is None:
            raise _malformed(_MSG_INVALID_PRINCIPALS)
        if match["account"] != account or not match["resource"].startswith(("role/", "user/")):
            continue
        if known is None:  # a snapshot: other threads may be creating roles
            known = {r.arn for r in list(iam.roles.values())}
            known |= {u.arn for u in list(iam.users.values())}
        if principal not in known:
            raise _malformed(_MSG_INVALID_PRINCIPALS)
