"""One lazily created, cached client per service, all with the same botocore Config.

Clients are never created at import time: moto must be active first, and cold starts stay small.
``AWS_ENDPOINT_URL`` (honoured by botocore) points them at a local moto server.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, cast

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

from clguard import errors
from clguard.errors import (
    AwsError,
    Denied,
    InvalidCall,
    NotFound,
    PreconditionFailed,
    Rejected,
    RetryableError,
    Throttled,
    Transient,
)

# Defined in clguard.errors with every other error of the project; importable from here too.
MemberUnreachable = errors.MemberUnreachable

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

# The services whose calls act on an account's own resources: in a member account's work they
# run with the member role's credentials. The guard's own state (DynamoDB), alerts (SNS), queues
# (SQS) and STS itself always use the function's own role (docs/architecture.md §2, many accounts).
# securityhub: a member's findings are imported into the member's own Security Hub (§5a).
MEMBER_SCOPED: Final = frozenset({"s3", "kms", "rekognition", "securityhub"})
# Assumed-role credentials last an hour; renew them well before, so no call runs on expired ones.
MEMBER_SESSION_SECONDS: Final = 3600
MEMBER_RENEW_BEFORE: Final = 600.0
SESSION_NAME: Final = "custom-labels-guard"

IAM_ACTIONS: Final = {"AssumeRole": ("sts:AssumeRole",)}


@dataclass(frozen=True, slots=True)
class Member:
    """A member account the current unit of work acts in, through the role it provides."""

    account: str
    role_arn: str


@dataclass(frozen=True, slots=True)
class _Credentials:
    access_key: str
    secret_key: str
    token: str
    renew_at: float


_lock = threading.Lock()
_assuming = threading.Lock()  # held while a member role is assumed (never with _lock inside out)
_clients: dict[str, Any] = {}
_session: boto3.session.Session | None = None
_credentials: dict[str, _Credentials] = {}
_acting: ContextVar[Member | None] = ContextVar("clguard_member", default=None)


def _base_session() -> boto3.session.Session:
    global _session  # noqa: PLW0603 - the per-container cache is the point
    if _session is None:
        _session = boto3.session.Session()
    return _session


def client(service: str, *, bounded: bool = False) -> Any:
    """The cached client for ``service`` (thread-safe; boto3 sessions are not). ``bounded``:
    the single-attempt, short-timeout client for writes that must finish within a lease.

    Inside ``acting_in(member)``, S3, KMS, Rekognition and Security Hub clients use the member role's
    credentials (assumed once per member and warm container, renewed before they expire)."""
    member = _acting.get() if service in MEMBER_SCOPED else None
    name = f"{service}:bounded" if bounded else service
    if member is not None:
        return _member_client(member, service, name, bounded)
    config = WRITE_CONFIG if bounded else CONFIG
    return _cached(name, lambda: _base_session().client(service, config=config))  # type: ignore[call-overload]


def _cached(name: str, create: Callable[[], Any], *, replaces: str = "") -> Any:
    """The client cached as ``name``, created once (under the lock) when missing; a created one
    drops the cached clients whose names start with ``replaces`` (expired credentials)."""
    found = _clients.get(name)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(name)
        if found is None:
            found = create()
            if replaces:
                for stale in [n for n in _clients if n.startswith(replaces)]:
                    del _clients[stale]
            _clients[name] = found
    return found


def _member_client(member: Member, service: str, name: str, bounded: bool) -> Any:
    credentials = _member_credentials(member)

    def create() -> Any:
        # From the base session, so the botocore event hooks tests attach apply here too.
        created = _base_session().client(  # type: ignore[call-overload]
            service,
            config=WRITE_CONFIG if bounded else CONFIG,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
        )
        if service == "s3":
            created.meta.events.register("before-parameter-build.s3", _expected_owner(member.account))
        return created

    return _cached(f"{member.account}:{name}:{credentials.access_key}", create, replaces=f"{member.account}:{name}:")


# The bucket owner condition (S3 User Guide, "Verifying bucket ownership with bucket owner
# condition"): S3 refuses (403) a request whose bucket, or copy source bucket, is not the named
# account's. Bucket names are global and a member's role may be let into another account's bucket
# (a bucket policy, a name its declaration claims): acting in a member, no call may touch any
# bucket but the member's own (design §11).
OWNER_PARAMETERS: Final = ("ExpectedBucketOwner", "ExpectedSourceBucketOwner")


def _expected_owner(account: str) -> Callable[..., None]:
    """``before-parameter-build.s3``: every S3 operation of a member's client that takes the
    bucket owner condition names the member's account (whatever the call named)."""

    def add(params: dict[str, Any], model: Any, **_: Any) -> None:
        members = model.input_shape.members if model.input_shape is not None else {}
        for parameter in OWNER_PARAMETERS:
            if parameter in members:
                params[parameter] = account

    return add


def _member_credentials(member: Member) -> _Credentials:
    found = _credentials.get(member.role_arn)
    if found is not None and time.monotonic() < found.renew_at:
        return found
    # One session per member: threads that meet a missing (or expiring) session together (the
    # HeadObject prefetch window) wait for the first one's AssumeRole instead of each making one.
    with _assuming:
        found = _credentials.get(member.role_arn)
        if found is not None and time.monotonic() < found.renew_at:
            return found
        return _assume(member)


def _assume(member: Member) -> _Credentials:
    try:
        response = client("sts").assume_role(
            RoleArn=member.role_arn, RoleSessionName=SESSION_NAME, DurationSeconds=MEMBER_SESSION_SECONDS
        )
    except ClientError as error:
        raise_if_transient(error)
        raise MemberUnreachable(member.account, f"{error_code(error)}: {error}") from error
    creds = response["Credentials"]
    found = _Credentials(
        access_key=creds["AccessKeyId"],
        secret_key=creds["SecretAccessKey"],
        token=creds["SessionToken"],
        renew_at=time.monotonic() + MEMBER_SESSION_SECONDS - MEMBER_RENEW_BEFORE,
    )
    with _lock:
        _credentials[member.role_arn] = found
    return found


def member_client(member: Member, service: str) -> Any:
    """The client of ``service`` with ``member``'s role credentials, whatever the block acts in:
    for the reads a member makes about itself (its organization, its declaration)."""
    return _member_client(member, service, service, False)


@contextmanager
def acting_in(member: Member | None) -> Iterator[None]:
    """Run the block's S3/KMS/Rekognition calls in ``member`` (None: the function's own account).
    Worker threads started inside see it only through ``contextvars.copy_context()``."""
    token = _acting.set(member)
    try:
        yield
    finally:
        _acting.reset(token)


def current_member() -> Member | None:
    return _acting.get()


def scoped(name: str) -> str:
    """``name`` (a key ARN, key id, alias, bucket name) as a cache key of what the account acted
    in sees of it: the same ARN can be readable by one account and refused to another, so a
    per-container cache of AWS answers keeps each account's apart (the own account's names as
    they are; a member's prefixed with its account id and a slash, which no ARN, key id, alias
    name or bucket name starts with)."""
    member = _acting.get()
    return name if member is None else f"{member.account}/{name}"


def reset(session: boto3.session.Session | None = None) -> None:
    """Forget every client and member credential; the next ones come from ``session`` (or a new
    default session).

    Tests start a new moto mock per test, and attach botocore event hooks (call counting, fault
    injection) to the session they pass here: clients inherit its handlers when created.
    """
    global _session  # noqa: PLW0603
    with _lock:
        _clients.clear()
        _credentials.clear()
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
    """For an adapter that answers AWS's refusals itself (HeadObject, DescribeKey, AssumeRole):
    a transient failure becomes a plain RetryableError, not an AwsError, so that a caller's
    ``except AwsError`` (a best-effort step) never swallows it: the unit of work is retried."""
    if is_transient(error):
        raise RetryableError(f"transient AWS error: {error}") from error


# --- botocore errors into the project's own (clguard.errors) ----------------------------------------

_NOT_FOUND_CODES: Final = frozenset({"404", "NotFound", "NotFoundException", "ResourceNotFoundException"})


def _refusal(code: str, status: int) -> type[AwsError]:
    if status == 404 or code in _NOT_FOUND_CODES or code.startswith("NoSuch"):
        return NotFound
    if status == 403 or code.startswith("AccessDenied") or "Unauthorized" in code:
        return Denied
    if status == 412 or code == "PreconditionFailed":
        return PreconditionFailed
    return Rejected


def translate(error: BaseException) -> BaseException:
    """The project's error for a botocore one (any other error is returned as it is).

    Whether it is transient is decided as before (``is_transient``); an answer from AWS (a
    ``ClientError``) that is transient is ``Throttled``, a failure without one ``Transient``."""
    if isinstance(error, ClientError):
        code, status = error_code(error), http_status(error)
        message = str(error.response.get("Error", {}).get("Message", "") or "")
        kind = Throttled if is_transient(error) else _refusal(code, status)
        return kind(str(error), code=code, message=message, status=status)
    if isinstance(error, BotoCoreError):
        return (Transient if is_transient(error) else InvalidCall)(str(error))
    return error


@contextmanager
def translated() -> Iterator[None]:
    """Raise the project's errors instead of botocore's inside the block (for calls an adapter
    does not make itself, such as the idempotency utility's own DynamoDB client)."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise translate(error) from error


def aws[F: Callable[..., Any]](function: F) -> F:
    """Decorate each public adapter function: the botocore errors it raises (also while a
    generator it is runs) become the project's own."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator(*args: Any, **kwargs: Any) -> Any:
            with translated():
                return (yield from function(*args, **kwargs))

        return cast("F", generator)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with translated():
            return function(*args, **kwargs)

    return cast("F", wrapper)
