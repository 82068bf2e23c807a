"""``clguard doctor``: is a deployed guard wired end to end? Read-only.

One small named check per thing that silently breaks the guard (house style: many small checks,
the combination obvious). Each returns pass/fail/skip with what it saw and, when it fails, the
exact fix (an AWS CLI command or a template snippet). ``run`` combines them: exit status 0 when
none failed, 2 when one did.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from clguard.adapters import operator
from clguard.boundary.config import Settings
from clguard.errors import AwsError, KeyUnreadable, NotFound
from clguard.rules import policy
from clguard.rules.policy import StatementSpec
from clguard.state.keydirectory import KeyDirectory

PASS, FAIL, SKIP = "pass", "fail", "skip"
# What the guard's role does on a managed key, allowed by its IAM policy (template.yaml) only if
# the key policy lets IAM policies decide (the account root statement of the default key policy).
_GUARD_ON_KEY: Final = StatementSpec(
    "doctor", ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:ListResourceTags")
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    title: str
    status: str
    detail: str = ""
    fix: str = ""

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(slots=True)
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 2 if any(c.status == FAIL for c in self.checks) else 0

    def document(self) -> dict[str, Any]:
        failed = [c.name for c in self.checks if c.status == FAIL]
        return {"verdict": "fail" if failed else "pass", "checks": [c.document() for c in self.checks]}


@dataclass(frozen=True, slots=True)
class World:
    """What the checks look at: the guard's settings, its environment, and its stack (if any)."""

    settings: Settings
    env: Mapping[str, str]
    stack: str | None


def bucket_notifications(world: World) -> list[Check]:
    out = []
    for bucket in sorted(world.settings.training_buckets):
        title = f"s3://{bucket} sends its events to EventBridge"
        try:
            on = operator.bucket_notifications(bucket).eventbridge
        except NotFound:
            missing = (
                "create the bucket in this account and region, or remove it from the stack's TrainingBuckets\n"
                "(sam deploy --parameter-overrides TrainingBuckets=<your buckets>)"
            )
            out.append(Check("bucket-notifications", title, FAIL, "the bucket does not exist", missing))
            continue
        except AwsError as error:
            out.append(Check("bucket-notifications", title, FAIL, f"could not read it: {error}", _grant_hint()))
            continue
        fix = (
            f"aws s3api put-bucket-notification-configuration --bucket {bucket} "
            "--notification-configuration '{\"EventBridgeConfiguration\": {}}'\n"
            "(in CloudFormation: NotificationConfiguration: {EventBridgeConfiguration: {EventBridgeEnabled: true}});\n"
            "put-bucket-notification-configuration replaces the bucket's other notifications: add them to the JSON)"
        )
        detail = "" if on else "new uploads are not seen until the next audit"
        out.append(Check("bucket-notifications", title, PASS if on else FAIL, detail, "" if on else fix))
    return out


# The event sources whose management write events the guard runs on (template.yaml's rules):
# the training calls, and, with Security Hub on, the key-lifecycle rule's ScheduleKeyDeletion and
# DisableKey.
REKOGNITION: Final = "rekognition.amazonaws.com"
KMS: Final = "kms.amazonaws.com"
_TRAIL_TITLE: Final = "a CloudTrail trail delivers Rekognition management events (training calls) to EventBridge"
_KMS_TITLE: Final = "a CloudTrail trail delivers KMS management events (key deletion, disabling) to EventBridge"
_CREATE_TRAIL: Final = (
    "aws s3 mb s3://<trail-bucket> (with the bucket policy CloudTrail needs: see README, Prerequisites)\n"
    "aws cloudtrail create-trail --name custom-labels-guard --s3-bucket-name <trail-bucket> \\\n"
    "  --is-multi-region-trail\n"
    "aws cloudtrail start-logging --name custom-labels-guard"
)


def cloudtrail(world: World) -> list[Check]:
    """Two checks on one reading of the trails: the training calls (the grant path runs on them),
    and, with Security Hub on, the KMS key-lifecycle events (``cloudtrail-kms``). doctor has no
    warning status: a trail without the KMS events fails that check, its consequence said in words."""
    kms_on = world.settings.security_hub
    try:
        trails = operator.trails()
    except AwsError as error:
        unread = f"could not read the trails: {error}"
        return [
            Check("cloudtrail", _TRAIL_TITLE, FAIL, unread, _grant_hint()),
            Check("cloudtrail-kms", _KMS_TITLE, FAIL, unread, _grant_hint()) if kms_on else _kms_skipped(),
        ]
    data = sorted(b for t in trails if t.logging and t.records_writes_from(REKOGNITION) for b in t.s3_data_buckets)
    training = _records(
        "cloudtrail",
        _TRAIL_TITLE,
        REKOGNITION,
        trails,
        "the grant function never runs",
        seen=f"; S3 data events for {', '.join(data)}" if data else "",
    )
    if not kms_on:
        return [training, _kms_skipped()]
    late = "a deleted or disabled key's Security Hub findings close only at the next audit's sweep"
    return [training, _records("cloudtrail-kms", _KMS_TITLE, KMS, trails, late)]


def _records(
    name: str, title: str, source: str, trails: list[operator.Trail], missing: str, *, seen: str = ""
) -> Check:
    """Whether a logging trail records ``source``'s management write events; when none does, the
    trails seen (or the selectors that leave the source out), what that costs, and the fix."""
    logging = [t for t in trails if t.logging]
    good = [t for t in logging if t.records_writes_from(source)]
    if good:
        return Check(name, title, PASS, f"trail {good[0].name}{seen}")
    if not logging:
        stopped = ", ".join(f"{t.name} (stopped)" for t in trails) or "no trail"
        return Check(name, title, FAIL, f"seen: {stopped}; {missing}", _CREATE_TRAIL)
    return Check(name, title, FAIL, f"{_excluded(source, logging)}; {missing}", _selectors_fix(logging[0], source))


def _kms_skipped() -> Check:
    return Check("cloudtrail-kms", _KMS_TITLE, SKIP, "SECURITY_HUB is off (no key-lifecycle rule)")


def _excluded(source: str, logging: list[operator.Trail]) -> str:
    """Which logging trail leaves out ``source``'s management write events, and by which selector."""
    return "; ".join(f"trail {t.name} does not record {source} write events ({t.excluding(source)})" for t in logging)


def _selectors_fix(trail: operator.Trail, source: str) -> str:
    """The selector change that records ``source``'s management write events on ``trail``."""
    home = trail.arn.split(":")[3] if trail.arn.count(":") >= 5 else ""
    where = f"--trail-name {shlex.quote(trail.arn or trail.name)}" + (f" --region {shlex.quote(home)}" if home else "")
    return (
        f"aws cloudtrail get-event-selectors {where}\n"
        "(put-event-selectors replaces all of the trail's selectors: keep its data-event selectors in the list)\n"
        f"aws cloudtrail put-event-selectors {where} \\\n"
        '  --event-selectors \'[{"ReadWriteType": "All", "IncludeManagementEvents": true, '
        '"ExcludeManagementEventSources": []}]\'\n'
        f"(or, with advanced selectors: an eventCategory = Management selector without readOnly = true and\n"
        f"without an eventSource condition that leaves out {source})"
    )


def managed_keys(world: World) -> list[Check]:
    settings = world.settings
    keys = KeyDirectory(fresh=True)
    named = sorted({*settings.allowed_kms_keys, *([settings.reencrypt_kms_key] if settings.reencrypt_kms_key else [])})
    if not named:
        return [
            Check(
                "managed-keys",
                "the keys the guard manages are opted in",
                SKIP,
                "ALLOWED_KMS_KEYS and REENCRYPT_KMS_KEY name no key (any key is accepted; each is checked when used)",
            )
        ]
    tag_key, tag_value = settings.managed_key_tag
    out = []
    for arn in named:
        title = f"{arn} is opted in and lets the guard's role read and write its policy"
        try:
            key = keys.lookup(arn).key
            if key is None or not key.usable:
                state = "missing" if key is None else key.state
                out.append(Check("managed-keys", title, FAIL, f"the key is {state}", "use an enabled key"))
                continue
            tags = keys.tags(arn)
            document = keys.policy(arn)
        except (AwsError, KeyUnreadable) as error:
            out.append(Check("managed-keys", title, FAIL, f"could not read it: {error}", _grant_hint()))
            continue
        problems, fixes = [], []
        if tags.get(tag_key) != tag_value:
            problems.append(f"it lacks the opt-in tag {tag_key}={tag_value}")
            fixes.append(f"aws kms tag-resource --key-id {arn} --tags TagKey={tag_key},TagValue={tag_value}")
        root = f"arn:{settings.partition}:iam::{key.account}:root"
        if not policy.is_allowed(document, root, _GUARD_ON_KEY, arn):
            problems.append(
                "its key policy does not let IAM policies grant the guard's role kms:GetKeyPolicy/PutKeyPolicy"
            )
            fixes.append(
                "add to the key policy (aws kms put-key-policy --key-id KEY --policy-name default --policy file://p.json):\n"
                f'{{"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {{"AWS": "{root}"}}, '
                '"Action": "kms:*", "Resource": "*"}'
            )
        out.append(Check("managed-keys", title, FAIL if problems else PASS, "; ".join(problems), "\n".join(fixes)))
    return out


def _human_topic(world: World) -> str | None:
    if world.stack:
        return operator.stack_resource_id(world.stack, "HumanTopic")
    return world.env.get("HUMAN_TOPIC_ARN") or world.settings.alert_topic_arn or None


def subscriptions(world: World) -> list[Check]:
    title = "people receive the findings (a confirmed subscription on the human topic)"
    topic = _human_topic(world)
    if not topic:
        return [Check("subscriptions", title, SKIP, "no topic known: pass --stack")]
    try:
        subs = operator.subscriptions(topic)
    except AwsError as error:
        return [Check("subscriptions", title, FAIL, f"could not read them: {error}", _grant_hint())]
    confirmed = [s for s in subs if s.confirmed]
    pending = [s for s in subs if not s.confirmed]
    fix = (
        f"aws sns subscribe --topic-arn {topic} --protocol email --notification-endpoint you@example.com\n"
        "(then open the confirmation e-mail; or set the stack's AlertEmail parameter)"
    )
    if pending:
        endpoints = ", ".join(f"{s.protocol}:{s.endpoint}" for s in pending)
        return [Check("subscriptions", title, FAIL, f"pending confirmation: {endpoints}", "confirm: " + fix)]
    if not confirmed:
        return [Check("subscriptions", title, FAIL, "the topic has no subscription", fix)]
    return [Check("subscriptions", title, PASS, ", ".join(sorted({s.protocol for s in confirmed})))]


def chat(world: World) -> list[Check]:
    title = "the Slack channel is configured (AWS chat applications subscribed to the human topic)"
    if not world.stack:
        return [Check("chat", title, SKIP, "needs --stack")]
    parameters = operator.stack_parameters(world.stack)
    workspace, channel = parameters.get("SlackWorkspaceId", ""), parameters.get("SlackChannelId", "")
    if not workspace and not channel:
        return [Check("chat", title, SKIP, "SlackWorkspaceId and SlackChannelId are not set (chat is optional)")]
    topic = _human_topic(world)
    subs = operator.subscriptions(topic) if topic else []
    chatbot = [s for s in subs if s.protocol == "https" and s.confirmed]
    if workspace and channel and chatbot:
        return [Check("chat", title, PASS, f"channel {channel}")]
    return [
        Check(
            "chat",
            title,
            FAIL,
            "the channel is not subscribed" if workspace and channel else "only one of the two Slack ids is set",
            "authorize the workspace once in the AWS chat applications console, then redeploy with both\n"
            "SlackWorkspaceId and SlackChannelId set\n"
            "(sam deploy --parameter-overrides SlackWorkspaceId=T… SlackChannelId=C…)",
        )
    ]


def security_hub(world: World) -> list[Check]:
    title = "Security Hub is enabled (SECURITY_HUB=on)"
    if world.env.get("SECURITY_HUB", "off").strip().lower() != "on":
        return [Check("security-hub", title, SKIP, "SECURITY_HUB is off")]
    try:
        enabled = operator.security_hub_enabled()
    except AwsError as error:
        return [Check("security-hub", title, FAIL, f"could not read it: {error}", _grant_hint())]
    fix = "aws securityhub enable-security-hub --no-enable-default-standards"
    return [
        Check("security-hub", title, PASS if enabled else FAIL, "" if enabled else "findings are not imported", fix)
    ]


def member_roles(world: World) -> list[Check]:
    title = "each member account's role exists for the guard to assume"
    if not world.settings.member_accounts:
        return [Check("member-roles", title, SKIP, "MEMBER_ACCOUNTS is empty")]
    # Assuming the role needs the guard's own credentials (the member role trusts the guard's
    # function roles only): the doctor cannot try it with the operator's.
    members = ", ".join(world.settings.member_role_arn(a) for a in sorted(world.settings.member_accounts))
    return [Check("member-roles", title, SKIP, f"not checked with your credentials: {members}")]


def alarms(world: World) -> list[Check]:
    if not world.stack:
        return [Check("alarms", ALARMS_TITLE, SKIP, "needs --stack")]
    names = operator.stack_alarm_names(world.stack)
    return [judge_alarms(operator.alarm_states(names) if names else {})]


ALARMS_TITLE: Final = "the stack's alarms are OK"


def judge_alarms(states: Mapping[str, str]) -> Check:
    """The alarms check on the alarms' states (name -> OK / ALARM / INSUFFICIENT_DATA).

    INSUFFICIENT_DATA alone does not fail: every alarm of the stack but the heartbeat treats missing
    data as not breaching, so the state only lasts until an alarm's first evaluation (a stack just
    deployed), and the heartbeat treats it as breaching (ALARM). It is named in the detail."""
    waiting = sorted(name for name, state in states.items() if state == "INSUFFICIENT_DATA")
    bad = {name: state for name, state in states.items() if state not in {"OK", "INSUFFICIENT_DATA"}}
    if not bad:
        detail = f"{len(states)} alarm(s)"
        if waiting:
            detail += f"; waiting for their first evaluation (a new stack): {', '.join(waiting)}"
        return Check("alarms", ALARMS_TITLE, PASS, detail)
    listed = ", ".join(f"{name} ({state})" for name, state in sorted(bad.items()))
    fix = (
        f"aws cloudwatch describe-alarms --alarm-names {' '.join(sorted(bad))}\n"
        "(README, 'Alarms' says what each one means and what to do)"
    )
    return Check("alarms", ALARMS_TITLE, FAIL, listed, fix)


def _grant_hint() -> str:
    return "let your credentials read it (README, 'The clguard command': the operator's IAM policy)"


CHECKS: Final[tuple[Callable[[World], list[Check]], ...]] = (
    bucket_notifications,
    cloudtrail,
    managed_keys,
    subscriptions,
    chat,
    security_hub,
    member_roles,
    alarms,
)


def run(settings: Settings, env: Mapping[str, str], *, stack: str | None) -> Report:
    world = World(settings, env, stack)
    report = Report()
    for check in CHECKS:
        report.checks += check(world)
    return report
