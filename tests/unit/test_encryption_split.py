"""The split of ``rules/encryption.py``'s two decisions into one small check per kind (issue 22)
keeps every decision identical: ``assess`` and ``classify_observed`` as they were before the split
(kept here verbatim but for names: ``rules/encryption.py`` at commit c31aea6) against the split
ones, on every combination of a grid (configurations, own and member accounts, AWS managed keys,
and every kind of encryption; every value of every field of a CloudTrail record's encryption facts).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from clguard.boundary.config import EncryptionRequirement, Settings, load_settings
from clguard.rules.arns import parse_key_arn
from clguard.rules.encryption import (
    _ALGORITHMS,
    _NO_KEY,
    SSE_APPLIED_C,
    SSE_APPLIED_KMS,
    SSE_APPLIED_S3,
    Assessment,
    Encryption,
    Method,
    ObjectEncryption,
    ObservedEncryption,
    Remediation,
    _no_key,
    _own_key,
    _target,
    assess,
    classify_observed,
)

ACCOUNT = "123456789012"
MEMBER = "210987654321"
K1 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
K2 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222"
MEMBER_KEY = f"arn:aws:kms:us-east-1:{MEMBER}:key/33333333-3333-3333-3333-333333333333"


def _base() -> Settings:
    env = {
        "AWS_REGION": "us-east-1",
        "ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts",
        "TRAINING_BUCKETS": "custom-labels-training",
        "STATE_TABLE": "custom-labels-guard-state",
    }
    return load_settings(env, account_id=ACCOUNT)


def configurations() -> list[Settings]:
    """Own and member settings: each requirement, allow list and re-encryption key (also one of
    another account, which is never used)."""
    base = _base()
    out = []
    for requirement, allowed, key, member in itertools.product(
        EncryptionRequirement, ((), (K1,), (K1, K2, MEMBER_KEY)), (None, K1, K2, MEMBER_KEY), (False, True)
    ):
        account = MEMBER if member else ACCOUNT
        out.append(
            replace(
                base,
                encryption_requirement=requirement,
                allowed_kms_keys=frozenset(allowed),
                reencrypt_kms_key=key,
                account_id=account,
                home_account=ACCOUNT if member else "",
            )
        )
    return out


ENCRYPTIONS = [
    ObjectEncryption(Encryption.NONE),
    ObjectEncryption(Encryption.SSE_S3),
    ObjectEncryption(Encryption.SSE_C),
    *(
        ObjectEncryption(kind, key)
        for kind in (Encryption.SSE_KMS, Encryption.DSSE_KMS)
        for key in (K1, K2, MEMBER_KEY, None)
    ),
]


# --- the decisions before the split (rules/encryption.py at c31aea6) -----------------------------


def legacy_assess(encryption: ObjectEncryption, settings: Settings, *, aws_managed_key: bool = False) -> Assessment:
    """``aws_managed_key``: the object's KMS key is AWS managed (e.g. aws/s3), which
    ``SSE_KMS`` (customer managed KMS only) does not accept."""
    kind = encryption.kind
    if kind is Encryption.SSE_C:
        return Assessment(
            encryption,
            "OBJECT_SSE_C",
            "object uses SSE-C (customer-provided key): Rekognition cannot read it",
            why_not="it cannot be re-encrypted without the customer's key",
        )
    target = _target(settings)
    if kind is Encryption.NONE:
        problem = "object had no server-side encryption"
        if target is None:
            return Assessment(encryption, "OBJECT_UNENCRYPTED", problem, why_not=_no_key(settings, _NO_KEY))
        return Assessment(encryption, "OBJECT_UNENCRYPTED", problem, Remediation(Method.COPY, target))
    if kind is Encryption.SSE_S3:
        if settings.encryption_requirement is EncryptionRequirement.SSE_S3_OR_KMS:
            return Assessment(encryption)
        problem = "object uses SSE-S3 where ENCRYPTION_REQUIREMENT is SSE_KMS"
        own = _own_key(settings)
        if own is None:
            return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, why_not=_no_key(settings, _NO_KEY))
        kms = ObjectEncryption(Encryption.SSE_KMS, own)
        return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, Remediation(Method.UPDATE, kms))
    # SSE-KMS or DSSE-KMS (DSSE counts as KMS encryption).
    key = encryption.kms_key_arn or ""
    not_customer = aws_managed_key and settings.encryption_requirement is EncryptionRequirement.SSE_KMS
    if settings.key_allowed(key) and not not_customer:
        return Assessment(encryption)
    if not_customer:
        problem = f"object is encrypted with the AWS managed key {key}, where ENCRYPTION_REQUIREMENT is SSE_KMS"
    else:
        problem = f"object is encrypted with KMS key {key or '(unknown)'}, which is not in ALLOWED_KMS_KEYS"
    own = _own_key(settings)
    if own is None:
        why_not = _no_key(settings, "the key is not allowed")
        if not settings.is_member:
            why_not = "REENCRYPT_KMS_KEY is not set: nothing safe to do"
        return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, why_not=why_not)
    kms = ObjectEncryption(Encryption.SSE_KMS, own)
    method = Method.UPDATE if kind is Encryption.SSE_KMS else Method.COPY
    return Assessment(encryption, "OBJECT_WRONG_ENCRYPTION", problem, Remediation(method, kms))


def legacy_classify_observed(observed: ObservedEncryption) -> ObjectEncryption | None:
    """The encryption of the version the record describes, or None when the record does not
    say enough (then the object is inspected with HeadObject, as for any other event).

    Only positive, consistent evidence decides: an unknown value, a KMS algorithm without a key
    ARN (a bare key id or an alias is not resolved here: HeadObject answers with the ARN), or
    fields that contradict each other all give None. A record never proves "no encryption":
    since January 2023 S3 encrypts every new object, and a record without any field may just be
    an older trail format, so the unencrypted case is always confirmed by HeadObject.
    """
    applied, algorithm = observed.sse_applied, observed.algorithm
    if applied is not None and applied not in SSE_APPLIED_S3 | SSE_APPLIED_KMS | {SSE_APPLIED_C}:
        return None
    if observed.customer_algorithm is not None or applied == SSE_APPLIED_C:
        if algorithm is not None or observed.kms_key_id is not None or applied not in (None, SSE_APPLIED_C):
            return None
        if observed.customer_algorithm not in (None, "AES256"):
            return None
        return ObjectEncryption(Encryption.SSE_C)
    kind = _ALGORITHMS.get(algorithm) if algorithm is not None else None
    if algorithm is not None and kind is None:
        return None
    if kind is None:  # only SSEApplied: enough for SSE-S3, which has no key to name
        if applied in SSE_APPLIED_S3 and observed.kms_key_id is None:
            return ObjectEncryption(Encryption.SSE_S3)
        return None
    if kind is Encryption.SSE_S3:
        if applied not in (None, *SSE_APPLIED_S3) or observed.kms_key_id is not None:
            return None
        return ObjectEncryption(Encryption.SSE_S3)
    if applied not in (None, *SSE_APPLIED_KMS):
        return None
    key = observed.kms_key_id
    if key is None or parse_key_arn(key) is None:
        return None
    return ObjectEncryption(kind, key)


def test_assess_decides_as_before_the_split_on_every_combination() -> None:
    # Given every configuration (own and member accounts), every kind of encryption, and keys AWS
    # managed or not
    cases = list(itertools.product(configurations(), ENCRYPTIONS, (False, True)))
    assert any(settings.is_member for settings, _, _ in cases)
    # When both assess each object
    differ = [
        (settings, found, managed)
        for settings, found, managed in cases
        if assess(found, settings, aws_managed_key=managed) != legacy_assess(found, settings, aws_managed_key=managed)
    ]
    # Then every assessment is the same, finding, problem, remediation and why not alike
    assert differ == []


def test_classify_observed_decides_as_before_the_split_on_every_record() -> None:
    # Given every value (and a foreign one) of every encryption field a CloudTrail record can carry
    applied = (None, *sorted(SSE_APPLIED_S3 | SSE_APPLIED_KMS), SSE_APPLIED_C, "Default_SSE_QUANTUM", "")
    algorithms = (None, "AES256", "aws:kms", "aws:kms:dsse", "aes256", "")
    keys = (None, K1, "11111111-1111-1111-1111-111111111111", "alias/aws/s3", "")
    customer = (None, "AES256", "DES", "")
    observations = [ObservedEncryption(*fields) for fields in itertools.product(applied, algorithms, keys, customer)]
    # When both classify each record
    differ = [o for o in observations if classify_observed(o) != legacy_classify_observed(o)]
    # Then they decide alike (and the grid reaches every kind, and "nothing decided")
    assert differ == []
    decided = {getattr(classify_observed(o), "kind", None) for o in observations}
    assert decided == {None, Encryption.SSE_S3, Encryption.SSE_KMS, Encryption.DSSE_KMS, Encryption.SSE_C}
