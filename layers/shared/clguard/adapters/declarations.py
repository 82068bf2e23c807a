"""A member's declaration (``clguard.boundary.declaration``): its SSM parameter, read through the
member role (never the central credentials: the parameter is the member's own resource)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from clguard.adapters.clients import Member, member_client, translated
from clguard.boundary.declaration import PARAMETER_NAME
from clguard.errors import NotFound, Refused

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"GetParameter": ("ssm:GetParameter",)}

_MISSING: Final = frozenset({"ParameterNotFound", "ParameterVersionNotFound"})


def read(member: Member) -> str | None:
    """The parameter's value; None when the member stack declares nothing (no such parameter).
    Raises MemberUnreachable when the role cannot be assumed, the project's errors otherwise."""
    client = member_client(member, "ssm")
    try:
        with translated():
            response = client.get_parameter(Name=PARAMETER_NAME)
    except NotFound:
        return None
    except Refused as error:
        if error.code in _MISSING:
            return None
        raise
    return str(response["Parameter"]["Value"])
