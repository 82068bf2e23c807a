"""SSM Parameter Store: read the accepted-exceptions document (docs/architecture.md §5b)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from clguard.adapters.clients import aws, client

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"GetParameter": ("ssm:GetParameter",)}


@aws
def parameter(name: str) -> str:
    """The parameter's value (a String parameter: the document is reviewed code, not a secret)."""
    return str(client("ssm").get_parameter(Name=name)["Parameter"]["Value"])
