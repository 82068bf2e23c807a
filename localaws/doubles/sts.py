"""AWS STS as documented, where moto 5.2.5 differs: a role is assumed only by those it trusts.

``AssumeRoleRefusals`` reproduces the AWS STS API Reference, "AssumeRole"
(https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html): a missing role, or
one whose trust policy does not admit the caller, is refused with ``AccessDenied``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from moto.sts.exceptions import STSClientError
from moto.sts.responses import TokenResponse

from localaws.doubles.base import Double, Wrapper, wrapped

if TYPE_CHECKING:
    pass


class AssumeRoleRefusals(Double):
    """STS ``AssumeRole`` refuses a role its caller may not assume.

    STS API reference, AssumeRole: the role's trust policy must allow the caller (and the
    caller's own policies must allow ``sts:AssumeRole`` on it); otherwise, and when the role does
    not exist, the call fails with ``AccessDenied`` ("User: <caller> is not authorized to
    perform: sts:AssumeRole on resource: <role>"). A member account whose guard role is missing,
    or whose trust policy no longer names the central role, looks like that. moto assumes any
    role ARN, existing or not, for any caller.

    The tests set up their accounts through roles moto never created, so moto's IAM cannot say
    which roles AWS would refuse: ``refuse(role_arn)`` declares one (the role is missing, or does
    not trust the guard); every AssumeRole of it is then refused as AWS refuses it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._refused_lock = threading.Lock()
        self._refused: set[str] = set()

    def refuse(self, role_arn: str) -> None:
        """``role_arn`` is missing, or its trust policy does not admit the caller."""
        with self._refused_lock:
            self._refused.add(role_arn)

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        def make(original: Wrapper) -> Wrapper:
            def assume_role(resp: TokenResponse) -> Any:
                role_arn = resp._get_param("RoleArn")
                with self._refused_lock:
                    refused = role_arn in self._refused
                if refused:
                    raise STSClientError(
                        "AccessDenied",
                        f"User: arn:aws:sts::{resp.current_account}:assumed-role/caller is not authorized "
                        f"to perform: sts:AssumeRole on resource: {role_arn}",
                    )
                return original(resp)

            return assume_role

        yield wrapped(TokenResponse, "assume_role", make)
