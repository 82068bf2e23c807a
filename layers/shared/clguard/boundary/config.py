"""Configuration (docs/architecture.md §4): one immutable Settings, validated once per cold start.

Logic never reads ``os.environ``: handlers call :func:`current_settings` with the environment
and the account id from the Lambda context, and pass the Settings down.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from clguard.boundary.declaration import Declaration
from clguard.errors import ConfigError
from clguard.rules.arns import account_of, parse_key_arn, parse_principal_arn, partition_of_region
from clguard.rules.names import is_bucket_name


class EncryptionRequirement(StrEnum):
    SSE_S3_OR_KMS = "SSE_S3_OR_KMS"
    SSE_KMS = "SSE_KMS"


class RemediationMode(StrEnum):
    ENFORCE = "enforce"
    REPORT = "report"


DEFAULT_MANAGED_KEY_TAG: Final = ("custom-labels-guard", "managed")

VARIABLES: Final = (
    "ALERT_TOPIC_ARN",
    "TRAINING_BUCKETS",
    "ENCRYPTION_REQUIREMENT",
    "ALLOWED_KMS_KEYS",
    "REMEDIATION_MODE",
    "REENCRYPT_KMS_KEY",
    "TRAINING_PRINCIPALS",
    "ALLOWED_PRINCIPAL_PATTERNS",
    "MANAGED_KEY_TAG",
    "STATE_TABLE",
    "VERIFY_QUEUE_URL",
    "MEMBER_ACCOUNTS",
    "MEMBER_ROLE_NAME",
    "MEMBER_OU",
    "GUARD_ROLE_IDS",
    "SECURITY_HUB",
    "EXCEPTIONS",
    "OWNER_TAG_KEY",
    "AWS_REGION",
)

DEFAULT_OWNER_TAG_KEY: Final = "owner"

DEFAULT_MEMBER_ROLE_NAME: Final = "CustomLabelsGuardMember"

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
# IAM role names: 1-64 of [A-Za-z0-9+=,.@_-] (no path: the member role is assumed by name).
_ROLE_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
_ROLE_ID = re.compile(r"^AROA[A-Z0-9]{4,124}$")  # IAM role unique ids start with AROA
_QUEUE_URL = re.compile(r"^https?://[^\s/]+(:\d+)?/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\.fifo)?$")


@dataclass(frozen=True, slots=True)
class Settings:
    alert_topic_arn: str
    training_buckets: frozenset[str]
    encryption_requirement: EncryptionRequirement
    allowed_kms_keys: frozenset[str]
    remediation_mode: RemediationMode
    reencrypt_kms_key: str | None
    training_principals: tuple[str, ...]
    allowed_principal_patterns: tuple[str, ...]
    managed_key_tag: tuple[str, str]
    state_table: str
    verify_queue_url: str | None
    account_id: str  # the account acted on: the deployment's own, or a member's (for_account)
    region: str
    member_accounts: frozenset[str] = frozenset()
    member_role_name: str = DEFAULT_MEMBER_ROLE_NAME
    # MEMBER_OU: an organizational unit whose active accounts (and its child OUs') are members
    # too ("" = none); listed by usecases.accounts.with_organization, never here.
    member_ou: str = ""
    home_account: str = ""  # the deployment's own account ("" = account_id)
    # ALLOWED_PRINCIPAL_PATTERNS was left empty: the default follows the account acted on.
    default_patterns: bool = False
    # TRAINING_PRINCIPALS of every account served; ``training_principals`` holds the acted-on account's.
    all_training_principals: tuple[str, ...] = ()
    # The findings plane (docs/architecture.md §5a, §5b): Security Hub import, the accepted-exceptions
    # document (``ssm:<name>`` or ``s3://<bucket>/<key>``, None = none), the owner tag's key.
    security_hub: bool = False
    exceptions_location: str | None = None
    owner_tag_key: str = DEFAULT_OWNER_TAG_KEY

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    @property
    def home(self) -> str:
        return self.home_account or self.account_id

    def serves(self, account: str) -> bool:
        """The deployment's own account or one of MEMBER_ACCOUNTS (docs/architecture.md §4)."""
        return account == self.home or account in self.member_accounts

    def member_role_arn(self, account: str) -> str:
        return f"arn:{self.partition}:iam::{account}:role/{self.member_role_name}"

    def for_account(self, account: str, declared: Declaration | None = None) -> Settings | None:
        """The settings for work in ``account``: None when the deployment does not serve it.

        In a member account the guardrails follow the member: the default principal patterns
        become that account's roles, TRAINING_PRINCIPALS keeps only the member's own principals
        (a principal may only ever be added to keys of its own account), and findings carry the
        member's account id. A key is only ever used for objects of its own account (§11): a
        member never gets REENCRYPT_KMS_KEY, only the key its member stack ``declared``, and
        what it declares (buckets, principals within the patterns) wins for its own resources."""
        if account == self.account_id:
            return self
        if not self.serves(account):
            return None
        patterns = self.allowed_principal_patterns
        if self.default_patterns:
            patterns = (default_pattern(account, self.region),)
        principals = tuple(p for p in self.all_training_principals if account_of(p) == account)
        buckets, key, allowed = self.training_buckets, None, self.allowed_kms_keys
        if declared is not None and declared.account == account:
            from clguard.rules.principals import matches_patterns  # noqa: PLC0415 - avoids an import cycle

            principals = tuple(p for p in declared.training_principals if matches_patterns(p, patterns)) or principals
            buckets = declared.training_buckets or buckets
            key = declared.reencrypt_kms_key
            if key is not None and allowed:
                allowed = allowed | {key}  # the member's own key is allowed for its own objects
        return replace(
            self,
            account_id=account,
            home_account=self.home,
            allowed_principal_patterns=patterns,
            training_principals=principals,
            training_buckets=buckets,
            reencrypt_kms_key=key,
            allowed_kms_keys=allowed,
        )

    @property
    def is_member(self) -> bool:
        """These settings act in a member account (``for_account``), not the deployment's own."""
        return self.account_id != self.home

    # RoleIds of the two functions' roles: the guard's own verify-queue messages are accepted
    # only with an SQS SenderId of one of them (empty: none is accepted).
    guard_role_ids: frozenset[str] = frozenset()

    @property
    def enforce(self) -> bool:
        return self.remediation_mode is RemediationMode.ENFORCE

    def key_allowed(self, key_arn: str) -> bool:
        """ALLOWED_KMS_KEYS empty means any key; otherwise an exact match of resolved key ARNs."""
        return not self.allowed_kms_keys or key_arn in self.allowed_kms_keys


def _items(raw: str) -> list[str]:
    seen: dict[str, None] = {}
    for part in raw.split(","):
        item = part.strip()
        if item:
            seen.setdefault(item, None)
    return list(seen)


def _enum[E: StrEnum](env: Mapping[str, str], name: str, kind: type[E], default: E) -> E:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    for member in kind:
        if member.value.lower() == raw.lower():
            return member
    allowed = ", ".join(m.value for m in kind)
    raise ConfigError(name, f"{raw!r} is not one of {allowed}")


def _required(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        raise ConfigError(name, "is required and empty or not set")
    return raw


def _key_arns(name: str, values: Iterable[str]) -> list[str]:
    out = []
    for value in values:
        if parse_key_arn(value) is None:
            raise ConfigError(name, f"{value!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")
        out.append(value)
    return out


def load_settings(env: Mapping[str, str], *, account_id: str) -> Settings:
    """Validate the environment. Raises ConfigError naming the first bad variable.

    One small reader per variable, in the order they are checked (each returns the value or raises
    ConfigError naming its variable): the account id, ``_region``, ``_topic``, ``_buckets``, the two
    enums, ``_key_arns`` (ALLOWED_KMS_KEYS), ``_reencrypt_key``, ``_members``, ``_member_role_name``,
    ``_patterns``, ``_principals``, ``_managed_tag``, ``_table``, ``_queue_url``, ``_role_ids``, then
    the findings plane's (``_switch``, ``_exceptions_location``, ``_owner_tag_key``).
    """
    if not _ACCOUNT.fullmatch(account_id or ""):
        raise ConfigError("account id", f"{account_id!r} is not a 12-digit AWS account id")
    region = _region(env)
    topic = _topic(env)
    buckets = _buckets(env)
    requirement = _enum(env, "ENCRYPTION_REQUIREMENT", EncryptionRequirement, EncryptionRequirement.SSE_S3_OR_KMS)
    mode = _enum(env, "REMEDIATION_MODE", RemediationMode, RemediationMode.ENFORCE)
    allowed_keys = _key_arns("ALLOWED_KMS_KEYS", _items(env.get("ALLOWED_KMS_KEYS", "")))
    reencrypt = _reencrypt_key(env, allowed_keys)
    members = _members(env, account_id)
    role_name = _member_role_name(env)
    patterns = _patterns(env, account_id, region)
    principals = _principals(env, account_id, region, patterns, members)
    managed_tag = _managed_tag(env)
    table = _table(env)
    queue_url = _queue_url(env)
    role_ids = _role_ids(env)

    return Settings(
        security_hub=_switch(env, "SECURITY_HUB"),
        exceptions_location=_exceptions_location(env),
        owner_tag_key=_owner_tag_key(env),
        guard_role_ids=frozenset(role_ids),
        alert_topic_arn=topic,
        training_buckets=frozenset(buckets),
        encryption_requirement=requirement,
        allowed_kms_keys=frozenset(allowed_keys),
        remediation_mode=mode,
        reencrypt_kms_key=reencrypt,
        training_principals=tuple(p for p in principals if account_of(p) == account_id),
        allowed_principal_patterns=tuple(patterns),
        managed_key_tag=managed_tag,
        state_table=table,
        verify_queue_url=queue_url,
        account_id=account_id,
        region=region,
        member_accounts=frozenset(members),
        member_role_name=role_name,
        member_ou=_member_ou(env),
        home_account=account_id,
        default_patterns=not env.get("ALLOWED_PRINCIPAL_PATTERNS", "").strip(),
        all_training_principals=tuple(principals),
    )


def _region(env: Mapping[str, str]) -> str:
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
    if not region:
        raise ConfigError("AWS_REGION", "is not set")
    return region


def _matching(env: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str:
    """A required variable that must match ``pattern`` (an error names it and what it must be)."""
    value = _required(env, name)
    if not pattern.fullmatch(value):
        raise ConfigError(name, f"{value!r} is not {what}")
    return value


def _topic(env: Mapping[str, str]) -> str:
    return _matching(env, "ALERT_TOPIC_ARN", _TOPIC_ARN, "an SNS topic ARN")


def _buckets(env: Mapping[str, str]) -> list[str]:
    buckets = _items(_required(env, "TRAINING_BUCKETS"))
    if not buckets:
        raise ConfigError("TRAINING_BUCKETS", "names no bucket")
    for bucket in buckets:
        if not is_bucket_name(bucket):
            raise ConfigError("TRAINING_BUCKETS", f"{bucket!r} is not a valid S3 bucket name")
    return buckets


def _reencrypt_key(env: Mapping[str, str], allowed_keys: list[str]) -> str | None:
    reencrypt = env.get("REENCRYPT_KMS_KEY", "").strip() or None
    if reencrypt is not None:
        _key_arns("REENCRYPT_KMS_KEY", [reencrypt])
        if allowed_keys and reencrypt not in allowed_keys:
            raise ConfigError(
                "REENCRYPT_KMS_KEY",
                "is not in ALLOWED_KMS_KEYS: objects re-encrypted with it would be violations again",
            )
    return reencrypt


def _member_role_name(env: Mapping[str, str]) -> str:
    role_name = env.get("MEMBER_ROLE_NAME", "").strip() or DEFAULT_MEMBER_ROLE_NAME
    if not _ROLE_NAME.fullmatch(role_name):
        raise ConfigError("MEMBER_ROLE_NAME", f"{role_name!r} is not an IAM role name")
    return role_name


def _table(env: Mapping[str, str]) -> str:
    return _matching(env, "STATE_TABLE", _TABLE, "a DynamoDB table name")


def _queue_url(env: Mapping[str, str]) -> str | None:
    queue_url = env.get("VERIFY_QUEUE_URL", "").strip() or None
    if queue_url is not None and not _QUEUE_URL.fullmatch(queue_url):
        raise ConfigError("VERIFY_QUEUE_URL", f"{queue_url!r} is not an SQS queue URL")
    return queue_url


def _role_ids(env: Mapping[str, str]) -> list[str]:
    role_ids = _items(env.get("GUARD_ROLE_IDS", ""))
    for role_id in role_ids:
        if not _ROLE_ID.fullmatch(role_id):
            raise ConfigError("GUARD_ROLE_IDS", f"{role_id!r} is not an IAM role unique id (AROA...)")
    return role_ids


def _switch(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "off"):
        return False
    if raw == "on":
        return True
    raise ConfigError(name, f"{env.get(name)!r} is not on or off")


# SSM parameter names: letters, digits, . - _ and / (a path), at most 2048 characters.
_SSM_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,2048}$")


def _exceptions_location(env: Mapping[str, str]) -> str | None:
    """``ssm:<parameter name>`` or ``s3://<bucket>/<key>`` (docs/architecture.md §5b); empty = none."""
    raw = env.get("EXCEPTIONS", "").strip()
    if not raw:
        return None
    if raw.startswith("ssm:"):
        if not _SSM_NAME.fullmatch(raw[4:]):
            raise ConfigError("EXCEPTIONS", f"{raw!r}: {raw[4:]!r} is not an SSM parameter name")
        return raw
    if raw.startswith("s3://"):
        bucket, sep, key = raw[5:].partition("/")
        if not sep or not key or not is_bucket_name(bucket):
            raise ConfigError("EXCEPTIONS", f"{raw!r} is not s3://<bucket>/<key>")
        return raw
    raise ConfigError("EXCEPTIONS", f"{raw!r} is neither ssm:<parameter name> nor s3://<bucket>/<key>")


def _owner_tag_key(env: Mapping[str, str]) -> str:
    raw = env.get("OWNER_TAG_KEY", "")
    key = raw.strip()
    if not key:
        return DEFAULT_OWNER_TAG_KEY
    if key != raw or len(key) > 128:
        raise ConfigError("OWNER_TAG_KEY", f"{raw!r} is not a tag key (1-128 characters, no surrounding spaces)")
    return key


def partition_of(region: str) -> str:
    return partition_of_region(region)


def default_pattern(account_id: str, region: str) -> str:
    """ALLOWED_PRINCIPAL_PATTERNS' default: every role of the account acted on."""
    return f"arn:{partition_of(region)}:iam::{account_id}:role/*"


def _members(env: Mapping[str, str], account_id: str) -> list[str]:
    members = _items(env.get("MEMBER_ACCOUNTS", ""))
    for member in members:
        if not _ACCOUNT.fullmatch(member):
            raise ConfigError("MEMBER_ACCOUNTS", f"{member!r} is not a 12-digit AWS account id")
    return [m for m in members if m != account_id]


# An organizational unit id: ou-<4-32 of the root id>-<8-32> (the Organizations API's pattern).
_OU_ID = re.compile(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$")


def _member_ou(env: Mapping[str, str]) -> str:
    raw = env.get("MEMBER_OU", "").strip()
    if raw and not _OU_ID.fullmatch(raw):
        raise ConfigError("MEMBER_OU", f"{raw!r} is not an organizational unit id (ou-...)")
    return raw


def _patterns(env: Mapping[str, str], account_id: str, region: str) -> list[str]:
    patterns = _items(env.get("ALLOWED_PRINCIPAL_PATTERNS", ""))
    for pattern in patterns:
        if not pattern.startswith("arn:"):
            raise ConfigError("ALLOWED_PRINCIPAL_PATTERNS", f"{pattern!r} must be a glob of principal ARNs (arn:...)")
    if patterns:
        return patterns
    return [default_pattern(account_id, region)]


def _principals(
    env: Mapping[str, str], account_id: str, region: str, patterns: list[str], members: list[str]
) -> list[str]:
    from clguard.rules.principals import matches_patterns  # noqa: PLC0415 - avoids an import cycle

    principals = _items(env.get("TRAINING_PRINCIPALS", ""))
    defaulted = not env.get("ALLOWED_PRINCIPAL_PATTERNS", "").strip()
    for principal in principals:
        parsed = parse_principal_arn(principal)
        if parsed is None:
            raise ConfigError(
                "TRAINING_PRINCIPALS",
                f"{principal!r} is not an IAM role or user ARN (no wildcards, roots, services or sessions)",
            )
        if parsed.account != account_id and parsed.account not in members:
            raise ConfigError(
                "TRAINING_PRINCIPALS", f"{principal!r} is not in this account ({account_id}) or a MEMBER_ACCOUNTS one"
            )
        # With the default patterns, a member's principal is checked against its own account's default.
        own = [default_pattern(parsed.account, region)] if defaulted else patterns
        if not matches_patterns(principal, own):
            raise ConfigError(
                "TRAINING_PRINCIPALS", f"{principal!r} matches none of ALLOWED_PRINCIPAL_PATTERNS {patterns}"
            )
    return principals


def _managed_tag(env: Mapping[str, str]) -> tuple[str, str]:
    raw_tag = env.get("MANAGED_KEY_TAG", "").strip()
    if not raw_tag:
        return DEFAULT_MANAGED_KEY_TAG
    tag_key, sep, tag_value = env.get("MANAGED_KEY_TAG", "").partition("=")
    if not sep or not tag_key.strip() or len(tag_key) > 128 or len(tag_value) > 256:
        raise ConfigError("MANAGED_KEY_TAG", f"{raw_tag!r} is not TagKey=TagValue")
    if tag_key != tag_key.strip() or tag_value != tag_value.strip():
        # The template's IAM condition compares the exact value: a stripped value here would
        # make the code and IAM disagree on which keys are opted in.
        raise ConfigError(
            "MANAGED_KEY_TAG", f"{raw_tag!r}: the tag key and value must not start or end with whitespace"
        )
    return (tag_key, tag_value)


# --- the digest function's own variable ---------------------------------------------------------

# An SNS standard topic (the digest publishes without a message group: never a FIFO topic).
_HUMAN_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$")


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """The digest function's configuration: HUMAN_TOPIC_ARN, the topic people subscribe to."""

    human_topic_arn: str


def load_digest_settings(env: Mapping[str, str]) -> DigestSettings:
    topic = env.get("HUMAN_TOPIC_ARN", "").strip()
    if not topic:
        raise ConfigError("HUMAN_TOPIC_ARN", "is required and empty or not set")
    if not _HUMAN_TOPIC_ARN.fullmatch(topic):
        raise ConfigError("HUMAN_TOPIC_ARN", f"{topic!r} is not an SNS topic ARN")
    return DigestSettings(topic)


_cache: dict[tuple[str, ...], Settings] = {}


def current_settings(env: Mapping[str, str], *, account_id: str) -> Settings:
    """Settings for this environment, validated once and cached (per cold start, per env)."""
    snapshot = (
        account_id,
        *(env.get(name, "") for name in VARIABLES),
        env.get("AWS_DEFAULT_REGION", ""),
    )
    settings = _cache.get(snapshot)
    if settings is None:
        settings = load_settings(env, account_id=account_id)
        _cache.clear()
        _cache[snapshot] = settings
    return settings
