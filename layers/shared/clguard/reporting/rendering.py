"""How a finding reads: the three renderings SNS delivers, and the helpers the digest shares.

``default`` is the finding document (JSON, :meth:`clguard.reporting.findings.Finding.document`: the
contract), ``email`` a short text, ``https`` the chat schema that Amazon Q Developer in chat
applications (formerly AWS Chatbot) renders in Slack. :func:`sns_message` puts the three in one
``MessageStructure="json"`` message, with its :func:`subject` and :func:`message_attributes`.

Every string from outside (object keys, principals, ARNs, details, event ids, a document read
back from a queue) is data, escaped for where it lands, at the one place each rendering is built
(docs/architecture.md §5, "What people read"): :func:`one_line` for plain text (the e-mail, and
under everything else), :func:`chat_escape` (Slack's ``&``/``<``/``>``) on every string of the chat payload,
:func:`markdown_text` and :func:`code_span` for untrusted text inside the chat's markdown, and
the Subject's printable ASCII.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

from clguard.boundary.s3ref import S3ObjectRef
from clguard.reporting.findings import (
    ExceptionsResource,
    Finding,
    FindingType,
    KmsKeyResource,
    MemberRoleResource,
    Outcome,
    PolicyChange,
    ProjectVersionResource,
    Severity,
)
from clguard.rules import policy
from clguard.rules.arns import parse_principal_arn

SUBJECT_MAX: Final = 99  # SNS: "must be less than 100 characters long"
CHAT_DESCRIPTION_MAX: Final = 7_000


def _aws_principals(statement: Mapping[str, Any] | None) -> list[str]:
    if not statement:
        return []
    block = statement.get("Principal")
    if isinstance(block, Mapping):
        return [str(p) for p in policy.as_list(block.get("AWS"))]
    return [str(p) for p in policy.as_list(block)]


def short_principal(arn: str) -> str:
    """``arn:aws:iam::123456789012:role/ml/Trainer`` -> ``role/ml/Trainer`` (what a reader scans)."""
    head, sep, name = arn.partition(":iam::")
    if not sep or not head.startswith("arn:"):
        return arn
    _account, sep, rest = name.partition(":")
    return rest if sep and rest else arn


def change_sentence(change: PolicyChange, code: Callable[[str], str] = str, text: Callable[[str], str] = str) -> str:
    """``added role/ml/Trainer to CustomLabelsGuardTrainingData: kms:Decrypt, kms:GenerateDataKey``.

    ``code`` wraps names for the medium (the e-mail escapes them onto one line, Slack shows them
    as code spans), ``text`` escapes the actions for it (a statement is data: ``kms:*`` would be bold)."""
    old = set(_aws_principals(change.before))
    added = [p for p in _aws_principals(change.after) if p not in old]
    actions = ", ".join(text(str(a)) for a in policy.as_list((change.after or {}).get("Action")))
    who = ", ".join(code(short_principal(p)) for p in added) or "no principal"
    created = " (new statement)" if change.before is None else ""
    condition = " (with its condition)" if (change.after or {}).get("Condition") else ""
    return f"added {who} to {code(change.sid)}{created}: {actions}{condition}"


_OUTCOME_TEXT: Final[Mapping[Outcome, str]] = {
    Outcome.REMEDIATED: "Fixed automatically.",
    Outcome.REPORTED: "Left as is (report only).",
    Outcome.REFUSED: "Not changed: a guardrail forbade the change.",
    Outcome.FAILED: "The remediator tried and failed.",
}

_NEXT_STEPS: Final[Mapping[tuple[FindingType, Outcome | None], tuple[str, ...]]] = {
    # S3 has encrypted every new object (SSE-S3 at least) since 5 January 2023: an unencrypted
    # object was written before then and never rewritten. Bucket default encryption cannot help.
    (FindingType.OBJECT_UNENCRYPTED, Outcome.REMEDIATED): (
        "Nothing to do for this object. It was written before January 2023, when S3 began encrypting every "
        "new object: older objects of the same data may be unencrypted too (S3 Inventory's EncryptionStatus "
        "lists them; the guard's audit finds them).",
    ),
    (FindingType.OBJECT_UNENCRYPTED, None): (
        "The object was written before January 2023, when S3 began encrypting every new object, and never "
        "rewritten. Re-encrypt it (copy it onto itself; S3 Batch Operations Copy for many), or set the "
        "stack's RemediationMode=enforce so the guard does it.",
    ),
    (FindingType.OBJECT_SSE_C, None): (
        "Re-upload the object with SSE-S3 or SSE-KMS: Rekognition cannot read SSE-C objects.",
    ),
    (FindingType.OBJECT_WRONG_ENCRYPTION, Outcome.REMEDIATED): ("Nothing to do for this object.",),
    (FindingType.OBJECT_WRONG_ENCRYPTION, None): (
        "Re-encrypt the object with an allowed key, or set REENCRYPT_KMS_KEY so the remediator does it.",
    ),
    (FindingType.OBJECT_UNVERIFIABLE, None): (
        "Check that the remediator's role may read the object (bucket policy, KMS key policy, IAM).",
    ),
    (FindingType.KEY_UNUSABLE, None): (
        "Enable the key or cancel its deletion, or re-encrypt the data with a usable customer managed key "
        "of this account.",
        "If the detail says the guard cannot read the key, let the guard's role call kms:DescribeKey, "
        "kms:GetKeyPolicy and kms:ListResourceTags on it (key policy or IAM).",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.REMEDIATED): (
        "Nothing to do: retry the training job if it failed before the grant.",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.REPORTED): (
        "Add the principal to the key policy with the listed actions, or set REMEDIATION_MODE=enforce.",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.REFUSED): (
        "A Deny statement of the key policy (named in the detail) cancels this access, and the remediator never "
        "edits a statement it does not own: change that statement so it exempts the principal for requests "
        "made through S3 and Rekognition, then retry the training job.",
    ),
    (FindingType.KEY_ACCESS_MISSING, Outcome.FAILED): (
        "Check the detail; the remediator retries on the next event. Add the statement by hand if it keeps failing.",
    ),
    (FindingType.KEY_NOT_MANAGED, None): (
        "Tag the key with the MANAGED_KEY_TAG opt-in to let the remediator edit its policy, or grant the "
        "principal by hand.",
    ),
    (FindingType.PRINCIPAL_NOT_ALLOWED, None): (
        "A role or user of this account outside the patterns: if it should train, add a pattern that matches "
        "it to the stack's AllowedPrincipalPatterns.",
        "A principal of another account: the guard never adds one. It can use the key only if a key "
        "administrator names it in the key policy and its own account's IAM policy allows the KMS actions on "
        "this key ARN; simpler is to train in the data's account, or copy the data to the trainer's account "
        "under its own key.",
        "A root, wildcard or service caller is never granted: find out who called.",
    ),
    (FindingType.KEY_POLICY_LIMIT, None): (
        "Shrink the key policy (e.g. grant a role that many principals assume) before more principals are added.",
    ),
    (FindingType.MANIFEST_INVALID, None): ("Fix the listed manifest lines; the valid lines were still checked.",),
    (FindingType.EXCEPTIONS_INVALID, None): (
        "Fix the accepted-exceptions document (check it first with `make exceptions-check FILE=...`); until then "
        "no finding is muted.",
    ),
    (FindingType.TRAINING_FAILED, Outcome.REMEDIATED): (
        "Retry the training: the guard has since given the principals the key access it lacked.",
    ),
    (FindingType.MEMBER_UNREACHABLE, Outcome.REFUSED): (
        "Remove the buckets named in the detail from this member's declaration (TrainingBuckets of its member "
        "stack): they belong to another account, which the guard audits them as. If this member does own one, "
        "take it out of the other account's configuration instead.",
    ),
    (FindingType.MEMBER_UNREACHABLE, None): (
        "Deploy (or repair) the member stack (member.yaml) in this account: its role must trust the central "
        "guard's roles; until then none of its buckets and keys are checked.",
    ),
    (FindingType.TRAINING_FAILED, None): (
        "Give the listed principals the listed key access (or tag the keys with MANAGED_KEY_TAG and set "
        "REMEDIATION_MODE=enforce), then retry the training.",
    ),
}
_DATASET_NEXT_STEPS: Final = (
    "If the dataset could not be read: let the guard read it (rekognition:ListDatasetEntries, dataset "
    "CREATE_COMPLETE), then retry the training so that its images are checked and their keys granted.",
    "If entries are invalid: fix them (UpdateDatasetEntries); the valid entries were still checked.",
)


def next_steps(finding: Finding) -> tuple[str, ...]:
    if finding.finding_type is FindingType.MANIFEST_INVALID and isinstance(finding.resource, ProjectVersionResource):
        return _DATASET_NEXT_STEPS
    if finding.finding_type is FindingType.PRINCIPAL_NOT_ALLOWED and finding.principal_arn:
        return (_refused_principal_step(finding.principal_arn, finding.account),)
    return _NEXT_STEPS.get((finding.finding_type, finding.outcome), _NEXT_STEPS.get((finding.finding_type, None), ()))


def _refused_principal_step(principal: str, account: str) -> str:
    """The one PRINCIPAL_NOT_ALLOWED step that applies to this principal (its e-mail stays short):
    a role or user of this account outside the patterns, one of another account, or neither."""
    own, other, never = _NEXT_STEPS[(FindingType.PRINCIPAL_NOT_ALLOWED, None)]
    parsed = parse_principal_arn(principal)
    if parsed is None:
        return never
    return own if parsed.account == account else other


_NOT_SUBJECT = re.compile(r"[^\x20-\x7e]")


def subject(finding: Finding) -> str:
    """``[SEVERITY] FINDING_TYPE <resource>``: printable ASCII, one line, under 100 characters."""
    head = f"[{finding.severity.value}] {finding.finding_type.value} "
    label = _NOT_SUBJECT.sub("?", finding.resource.label())
    room = SUBJECT_MAX - len(head)
    if len(label) > room:
        keep = room - 3
        label = label[: keep // 2] + "..." + label[len(label) - (keep - keep // 2) :]
    return head + label


# --- escaping: one function per context -------------------------------------------------------

# What could start a line, hide text or reorder it where people read it — one rule for every human
# channel (e-mail, Slack, the CLI; the audit page through :func:`reveal`): every character whose
# Unicode general category renders as nothing or acts instead of showing — controls (Cc: C0, DEL,
# C1, NEL among them), formats (Cf: the soft hyphen, zero-width characters, bidi marks, overrides
# and isolates, the BOM, the tag characters U+E0000-U+E007F of "ASCII smuggling"), line and
# paragraph separators (Zl, Zp), surrogates, private-use and unassigned code points (Cs, Co, Cn) —
# every space but the ASCII one (Zs: U+00A0, U+2000-U+200A, U+3000 look like it and are not), and
# the letters and marks that render blank (the Hangul fillers, the braille blank, the combining
# grapheme joiner, the Khmer inherent vowels, the variation selectors). A printable ASCII string
# (the common case) is checked by one regular-expression search.
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs", "Cs", "Co", "Cn"})
_BLANK: Final = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))  # variation selectors 1-16
    + "".join(map(chr, range(0xE0100, 0xE01F0)))  # variation selectors 17-256
)
_SUSPECT: Final = re.compile(r"[^\x20-\x7e]|\\")  # anything but printable ASCII; the backslash


@lru_cache(maxsize=4096)
def hidden(char: str) -> bool:
    """True for one character that people would not see as itself (see the rule above)."""
    return char != " " and (unicodedata.category(char) in _HIDDEN_CATEGORIES or char in _BLANK)


def _shown(char: str, *, backslash: bool) -> str:
    if char == "\\":
        return "\\\\" if backslash else char
    if not hidden(char):
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def reveal(value: str, *, backslash: bool = False) -> str:
    """``value`` with every :func:`hidden` character as a visible escape (``\\u202e``,
    ``\\U000e0041``); ``backslash``: a backslash as ``\\\\`` too, so that an escape is never ambiguous."""
    if not _SUSPECT.search(value):
        return value
    return "".join(_shown(c, backslash=backslash) if c > "~" or c < " " or c == "\\" else c for c in value)


def one_line(value: str) -> str:
    """Untrusted text as one line of plain text: every character that could break the line, hide
    or reorder text is shown as a visible escape (``\\x0a``, ``\\u202e``; a backslash as ``\\\\``)."""
    return reveal(value, backslash=True)


def chat_escape(value: str) -> str:
    """Slack's documented escaping ("Formatting text for app surfaces": ``&``, ``<``, ``>`` are the
    control characters of mrkdwn): with it no text can make a mention (``<!channel>``, ``<@U1>``),
    a channel link or a link with forged words (``<https://x|Open the console>``). Applied to every
    string of the chat payload, the guard's own words included."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chat_strings(value: Any) -> Any:
    """Every string of a chat payload (nested lists and objects) through :func:`chat_escape`."""
    if isinstance(value, str):
        return chat_escape(value)
    if isinstance(value, list):
        return [_chat_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _chat_strings(v) for k, v in value.items()}
    return value


def chat_payload(message: dict[str, Any]) -> dict[str, Any]:
    """The last step of every chat rendering (finding, digest, forwarded message): Slack's escaping
    on every string, and the description cut to what the schema takes."""
    escaped: dict[str, Any] = _chat_strings(message)
    content = escaped.get("content") or {}
    description = content.get("description")
    if isinstance(description, str) and len(description) > CHAT_DESCRIPTION_MAX:
        cut = description[: CHAT_DESCRIPTION_MAX - 20]
        cut = cut[: cut.rfind("&")] if cut.rfind("&") > cut.rfind(";") else cut  # never half an entity
        content["description"] = cut + "\n… (truncated)"
    return escaped


def chat_notification(
    title: str,
    description: str,
    *,
    keywords: Sequence[str] | None = None,
    steps: Sequence[str] | None = None,
    notification_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The one envelope of every chat message (a finding, a digest, a forwarded message, the
    audit's summary): the custom notification schema of Amazon Q Developer in chat applications,
    version 1.0, client-markdown, through :func:`chat_payload`."""
    content: dict[str, Any] = {"textType": "client-markdown", "title": title, "description": description}
    if steps is not None:
        content["nextSteps"] = list(steps)
    if keywords is not None:
        content["keywords"] = list(keywords)
    message: dict[str, Any] = {"version": "1.0", "source": "custom"}
    if notification_id is not None:
        message["id"] = notification_id
    message["content"] = content
    if metadata is not None:
        message["metadata"] = dict(metadata)
    return chat_payload(message)


def _where(finding: Finding, show: Callable[[str], str] = one_line) -> str:
    resource = finding.resource
    if isinstance(resource, S3ObjectRef):
        version = f" (version {show(resource.version_id)})" if resource.version_id else ""
        return f"{show(resource.label())}{version}"
    if isinstance(resource, ProjectVersionResource):
        return f"Custom Labels {show(resource.arn)}"
    if isinstance(resource, MemberRoleResource):
        return f"member role {show(resource.arn)}"
    if isinstance(resource, ExceptionsResource):
        return f"accepted-exceptions document {show(resource.location)}"
    return f"KMS key {show(key_name(resource.arn, finding.key_alias))}"


def key_name(arn: str, alias: str | None) -> str:
    """A key as people read it: its ARN with the alias they know it by (docs/architecture.md §5).
    Raw: each medium escapes the result as it escapes the ARN."""
    return f"{arn} ({alias})" if alias else arn


def suppressed_line(finding: Finding) -> str:
    """``Muted by accepted exception <id> (owner ..., expires ...): <reason>``, raw (the medium
    escapes it); empty when not muted."""
    muted = finding.suppressed
    if muted is None:
        return ""
    owner = f"owner {muted.owner}, " if muted.owner else ""
    return f"Muted by accepted exception {muted.exception_id} ({owner}expires {muted.expires}): {muted.reason}"


def email_text(finding: Finding) -> str:
    """Plain text, one labelled line per value. Every untrusted value is escaped (:func:`one_line`)
    so that it ends where its label's line ends: no string can add or fake a line."""
    lines = [
        f"Custom Labels Guard: {finding.finding_type.value} ({finding.severity.value}), {finding.outcome.value}",
        "",
        f"What happened: {one_line(finding.detail)}",
        f"Where: {_where(finding)} in account {one_line(finding.account)}, {one_line(finding.region)}",
    ]
    if finding.kms_key_arn and not isinstance(finding.resource, KmsKeyResource):
        lines.append(f"KMS key: {one_line(key_name(finding.kms_key_arn, finding.key_alias))}")
    if finding.principal_arn:
        lines.append(f"Principal: {one_line(finding.principal_arn)}")
    if finding.owner:
        lines.append(f"Owner: {one_line(finding.owner)}")
    if finding.suppressed is not None:
        lines.append(one_line(suppressed_line(finding)))
    lines.append(f"What was done: {_OUTCOME_TEXT[finding.outcome]}")
    lines.extend(f"What changed: {change_sentence(change, one_line, one_line)}" for change in finding.change)
    steps = next_steps(finding)
    if steps:
        lines.append("What to do next:")
        lines.extend(f"  - {one_line(step)}" for step in steps)
    lines += ["", f"Event {one_line(finding.source_event_id)}, observed {one_line(finding.observed_at)}."]
    return "\n".join(_key_arn_once(lines, finding))


def _key_arn_once(lines: list[str], finding: Finding) -> list[str]:
    """The key's ARN once (on the line that names the key, with its alias): elsewhere the e-mail
    says the alias, or "the key" (issue 24: every e-mail short, the key ARN once)."""
    arn = finding.kms_key_arn or (finding.resource.arn if isinstance(finding.resource, KmsKeyResource) else "")
    if not arn:
        return lines
    shown = one_line(arn)
    home = next((i for i, line in enumerate(lines) if line.startswith(("Where: KMS key ", "KMS key: "))), None)
    if home is None or shown not in lines[home]:
        return lines
    other = one_line(finding.key_alias) if finding.key_alias else "the key"
    return [line if i == home else line.replace(shown, other) for i, line in enumerate(lines)]


def markdown_text(value: str) -> str:
    """Untrusted text inside Slack's markdown, on one line (:func:`one_line`): no backticks (they
    would end a code span), and no ``*``/``_``/``~`` (they would toggle bold, italics, strike);
    look-alike characters read the same. (``&``, ``<``, ``>``: :func:`chat_payload`.)"""
    text = one_line(value)
    return text.replace("`", "'").replace("*", "\u2217").replace("_", "\u02cd").replace("~", "\u223c")


def code_span(value: str) -> str:
    """An untrusted name as inline code, on one line; its backticks cannot close the span."""
    return "`" + one_line(value).replace("`", "'") + "`"


def chat_message(finding: Finding) -> dict[str, Any]:
    """Custom notification schema of Amazon Q Developer in chat applications (Slack)."""
    emoji = ":rotating_light:" if finding.severity is Severity.HIGH else ":warning:"
    done = {
        Outcome.REMEDIATED: ":white_check_mark: remediated",
        Outcome.REPORTED: ":memo: reported",
        Outcome.REFUSED: ":no_entry: refused",
        Outcome.FAILED: ":x: failed",
    }[finding.outcome]
    parts = [f"*{markdown_text(finding.detail.strip())}*"]
    parts.extend(f"*Changed:* {change_sentence(change, code_span, markdown_text)}" for change in finding.change)
    parts.append(f"*Where:* {_where(finding, code_span)}")
    if finding.kms_key_arn and not isinstance(finding.resource, KmsKeyResource):
        parts.append(f"*Key:* {code_span(key_name(finding.kms_key_arn, finding.key_alias))}")
    if finding.principal_arn:
        parts.append(f"*Principal:* {code_span(finding.principal_arn)}")
    if finding.owner:
        parts.append(f"*Owner:* {code_span(finding.owner)}")
    if finding.suppressed is not None:
        parts.append(f"*Muted:* {markdown_text(suppressed_line(finding))}")
    parts.append(
        f"*Account:* {markdown_text(finding.account)} ({markdown_text(finding.region)}) · "
        f"*Event:* {code_span(finding.source_event_id)}"
    )
    description = "\n".join(parts)
    return chat_notification(
        f"{emoji} {finding.finding_type.value} ({finding.severity.value}): {done}",
        description,
        steps=next_steps(finding),
        keywords=[finding.finding_type.value, finding.severity.value, finding.outcome.value],
        notification_id=finding.fingerprint()[:32],
        metadata={
            "summary": one_line(f"{finding.finding_type.value} {finding.outcome.value}: {finding.resource.label()}")[
                :250
            ],
            "eventType": finding.finding_type.value,
            "relatedResources": [one_line(r) for r in (finding.resource.label(), finding.kms_key_arn) if r][:5],
        },
    )


def sns_message(finding: Finding) -> str:
    """The ``Message`` for ``MessageStructure="json"``."""
    return json.dumps(
        {
            "default": json.dumps(finding.document(), ensure_ascii=False),
            "email": email_text(finding),
            "https": json.dumps(chat_message(finding), ensure_ascii=False),
        },
        ensure_ascii=False,
    )


def message_attributes(finding: Finding) -> dict[str, dict[str, str]]:
    """``finding_type``, ``severity``, ``outcome``, ``suppressed`` (always) and ``owner`` (when known):
    what subscription filter policies match on (docs/architecture.md §5)."""
    attributes = {
        "finding_type": {"DataType": "String", "StringValue": finding.finding_type.value},
        "severity": {"DataType": "String", "StringValue": finding.severity.value},
        "outcome": {"DataType": "String", "StringValue": finding.outcome.value},
        "suppressed": {"DataType": "String", "StringValue": "true" if finding.suppressed is not None else "false"},
    }
    if finding.owner:
        attributes["owner"] = {"DataType": "String", "StringValue": finding.owner}
    return attributes
