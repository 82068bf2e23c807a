"""One lazily created, cached client per service, all with the same botocore Config.

Clients are never created at import time: moto must be active first, and cold starts stay small.
``AWS_ENDPOINT_URL`` (honoured by botocore) points them at a local moto server.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    ParamValidationError,
    ReadTimeoutError,
)

from clguard.errors import RetryableError

# "standard" retries throttling and 5xx with backoff, bounded at 4 attempts in all.
CONFIG: Final = Config(
    retries={"mode": "standard", "total_max_attempts": 4},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,
)

# For writes we must bound in time (PutKeyPolicy inside a lease): one attempt, short timeouts;
# the caller retries while its lease allows.
WRITE_CONFIG: Final = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=3,
    read_timeout=10,
)

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_session: boto3.session.Session | None = None


def client(service: str, *, bounded: bool = False) -> Any:
    """The cached client for ``service`` (thread-safe; boto3 sessions are not). ``bounded``:
    the single-attempt, short-timeout client for writes that must finish within a lease."""
    name = f"{service}:bounded" if bounded else service
    found = _clients.get(name)
    if found is not None:
        return found
    global _session  # noqa: PLW0603 - the per-container cache is the point
    with _lock:
        found = _clients.get(name)
        if found is None:
            if _session is None:
                _session = boto3.session.Session()
            config = WRITE_CONFIG if bounded else CONFIG
            found = _session.client(service, config=config)  # type: ignore[call-overload]
            _clients[name] = found
    return found


def reset(session: boto3.session.Session | None = None) -> None:
    """Forget every client; the next ones come from ``session`` (or a new default session).

    Tests start a new moto mock per test, and attach botocore event hooks (call counting, fault
    injection) to the session they pass here: clients inherit its handlers when created.
    """
    global _session  # noqa: PLW0603
    with _lock:
        _clients.clear()
        _session = session


THROTTLING: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "EC2ThrottledException",
        "TransactionInProgressException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "503",
        "500",
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(error: BaseException) -> bool:
    """Throttling, 5xx, timeouts and connection failures: retry the unit of work."""
    if isinstance(error, (ConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return True
    if isinstance(error, ClientError):
        return error_code(error) in THROTTLING or http_status(error) >= 500
    # Other botocore failures (e.g. a dropped connection mid-body) are transient; a request we
    # built wrong is a bug and must not be retried forever.
    return isinstance(error, BotoCoreError) and not isinstance(error, ParamValidationError)


def raise_if_transient(error: BaseException) -> None:
    if is_transient(error):
        raise RetryableError(f"transient AWS error: {error}") from error
