"""What the handlers take from the Lambda context."""

from __future__ import annotations

from typing import Any

from clguard.errors import ConfigError


def account_id(context: Any) -> str:
    """The account id, from the invoked function ARN (free: no STS call at cold start)."""
    arn = getattr(context, "invoked_function_arn", "") or ""
    parts = arn.split(":")
    if len(parts) < 5 or not parts[4].isdigit():
        raise ConfigError("context.invoked_function_arn", f"{arn!r} does not name an account")
    return parts[4]
