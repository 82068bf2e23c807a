"""Lambda: the audit continues itself (asynchronous invocation of its own function)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from clguard.adapters.clients import aws, client

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {"Invoke": ("lambda:InvokeFunction",)}


@aws
def invoke_async(function_arn: str, payload: Mapping[str, Any]) -> None:
    """InvocationType Event: Lambda queues it (retries and the on-failure destination apply)."""
    client("lambda").invoke(FunctionName=function_arn, InvocationType="Event", Payload=json.dumps(payload).encode())
