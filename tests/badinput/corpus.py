"""A corpus of malformed and hostile events, built from the samples in events/ by named mutations.

Each case says which function receives it and what must happen:

- ``record-fails``: the verify function fails that record alone (it reaches the DLQ after its
  retries); the other records of the batch are processed.
- ``invalid``: the grant function raises InvalidEvent (Lambda's async retries, then its DLQ).
- ``ignored``: processed without a finding or a change.
- ``refused``: a PRINCIPAL_NOT_ALLOWED finding, and no key policy changes.
- ``finding:<TYPE>``: that finding, and no key policy changes beyond what the case says.
In every case: no crash, no grant to anything but the allowed training role.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.eventsamples import load_event

ACCOUNT = "123456789012"
OTHER = "210987654321"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
KEY_PLACEHOLDER = "<managed-key>"
OTHER_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # "verify" | "grant"
    build: Callable[[], Any]  # verify: record body (str or dict); grant: the event (any JSON)
    expect: str
    # "default": the managed key has the default key policy (the account root may use it);
    # "without-root": a policy that does not name the root, so a root principal really lacks
    # access and only the guardrail stands between it and the key.
    key_policy: str = "default"
    why: str = ""  # for "refused": a phrase the refusal's detail must contain


def _object_created(**changes: Any) -> dict[str, Any]:
    event = load_event("s3_object_created")
    for path, value in changes.items():
        _set(event, path, value)
    return event


def _set(event: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()


def _fanout(**changes: Any) -> dict[str, Any]:
    message = {
        "kind": "clguard.verify-objects",
        "version": 1,
        "source_event_id": "fanout-1",
        "origin": "CreateProjectVersion of a test project",
        "principals": [ROLE],
        "objects": [
            {"bucket": "custom-labels-training", "key": "datasets/cats/images/cat-001.jpg", "version_id": None}
        ],
    }
    message.update(changes)
    return message


def _cpv(name: Any = "cloudtrail_create_project_version", **changes: Any) -> dict[str, Any]:
    event = load_event(name)
    event["detail"]["requestParameters"]["KmsKeyId"] = KEY_PLACEHOLDER
    for path, value in changes.items():
        _set(event, path, value)
    return event


def _issuer(arn: Any) -> dict[str, Any]:
    return _cpv(**{"detail.userIdentity.sessionContext.sessionIssuer.arn": arn})


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


ISSUER = "detail.userIdentity.sessionContext.sessionIssuer.arn"

CASES: list[Case] = [
    # --- verify: not an event at all ------------------------------------------------------
    Case("not-json", "verify", lambda: "garbage {", "record-fails"),
    Case("empty-body", "verify", lambda: "", "record-fails"),
    Case("json-array", "verify", lambda: "[1, 2]", "record-fails"),
    Case("json-number", "verify", lambda: "42", "record-fails"),
    Case("json-null", "verify", lambda: "null", "record-fails"),
    Case("deeply-nested-json", "verify", lambda: _deep(100_000), "record-fails"),
    Case("body-over-1MiB", "verify", lambda: json.dumps({"pad": "x" * 1_100_000}), "record-fails"),
    # --- verify: wrong shape --------------------------------------------------------------
    Case("missing-id", "verify", lambda: _object_created(id=_DELETE), "record-fails"),
    Case("missing-detail", "verify", lambda: _object_created(detail=_DELETE), "record-fails"),
    Case("detail-is-string", "verify", lambda: _object_created(detail="x"), "record-fails"),
    Case("unknown-detail-type", "verify", lambda: _object_created(**{"detail-type": "Object Deleted"}), "record-fails"),
    Case("unknown-source", "verify", lambda: _object_created(source="aws.ec2"), "record-fails"),
    Case("bucket-name-missing", "verify", lambda: _object_created(**{"detail.bucket.name": _DELETE}), "record-fails"),
    Case("bucket-name-int", "verify", lambda: _object_created(**{"detail.bucket.name": 7}), "record-fails"),
    Case("key-missing", "verify", lambda: _object_created(**{"detail.object.key": _DELETE}), "record-fails"),
    Case("key-is-list", "verify", lambda: _object_created(**{"detail.object.key": ["a"]}), "record-fails"),
    Case("key-over-1024-bytes", "verify", lambda: _object_created(**{"detail.object.key": "é" * 600}), "record-fails"),
    Case("key-with-nul", "verify", lambda: _object_created(**{"detail.object.key": "a\x00b"}), "record-fails"),
    Case("version-id-int", "verify", lambda: _object_created(**{"detail.object.version-id": 3}), "record-fails"),
    Case("unknown-kind", "verify", lambda: {"kind": "clguard.nope", "version": 1}, "record-fails"),
    Case("fanout-version-2", "verify", lambda: _fanout(version=2), "record-fails"),
    Case("fanout-objects-not-list", "verify", lambda: _fanout(objects={"bucket": "b"}), "record-fails"),
    Case(
        "fanout-object-without-key",
        "verify",
        lambda: _fanout(objects=[{"bucket": "custom-labels-training"}]),
        "record-fails",
    ),
    Case("fanout-principals-not-strings", "verify", lambda: _fanout(principals=[{"AWS": "*"}]), "record-fails"),
    Case(
        "outbox-finding-missing-fields",
        "verify",
        lambda: {"kind": "clguard.finding", "finding": {"x": 1}},
        "record-fails",
    ),
    Case(
        "outbox-finding-bad-type",
        "verify",
        lambda: {
            "kind": "clguard.finding",
            "finding": {
                "finding_type": "NOPE",
                "outcome": "REPORTED",
                "resource": {"type": "kms-key", "arn": "a"},
                "detail": "",
                "source_event_id": "",
                "account": "",
                "region": "",
                "observed_at": "",
            },
        },
        "record-fails",
    ),
    Case(
        "cloudtrail-s3-deleteobject",
        "verify",
        lambda: _set_and_return(load_event("cloudtrail_s3_putobject"), "detail.eventName", "DeleteObject"),
        "record-fails",
    ),
    Case(
        "cloudtrail-s3-params-null",
        "verify",
        lambda: _set_and_return(load_event("cloudtrail_s3_putobject"), "detail.requestParameters", None),
        "record-fails",
    ),
    # --- verify: valid but hostile or odd ---------------------------------------------------
    Case(
        "cloudtrail-s3-refused-write",
        "verify",
        lambda: _set_and_return(load_event("cloudtrail_s3_putobject"), "detail.errorCode", "AccessDenied"),
        "ignored",
    ),
    Case("other-bucket", "verify", lambda: load_event("s3_object_created_other_bucket"), "ignored"),
    Case(
        "unicode-key-gone",
        "verify",
        lambda: _object_created(**{"detail.object.key": "datasets/🐱/ünïcödé.jpg"}),
        "ignored",
    ),
    Case(
        "key-with-percent-and-plus", "verify", lambda: _object_created(**{"detail.object.key": "a%2Fb+c%ZZ"}), "ignored"
    ),
    Case("fanout-wildcard-principal", "verify", lambda: _fanout(principals=["*"]), "refused"),
    # The account root ARN already holds the key through the default key-policy statement:
    # nothing is wanted, so nothing is refused (and it is never written either way).
    Case(
        "fanout-root-principal",
        "verify",
        lambda: _fanout(principals=[f"arn:aws:iam::{ACCOUNT}:root"]),
        "refused",
        key_policy="without-root",
        why="account root principal",
    ),
    Case(
        "fanout-other-account",
        "verify",
        lambda: _fanout(principals=[f"arn:aws:iam::{OTHER}:role/ml/Trainer"]),
        "refused",
    ),
    Case("fanout-service-principal", "verify", lambda: _fanout(principals=["rekognition.amazonaws.com"]), "refused"),
    Case(
        "fanout-injection-in-arn",
        "verify",
        lambda: _fanout(principals=[f'arn:aws:iam::{ACCOUNT}:role/x"],"Effect":"Allow","Principal":{{"AWS":"*']),
        "refused",
    ),
    Case(
        "fanout-wildcard-in-role-name",
        "verify",
        lambda: _fanout(principals=[f"arn:aws:iam::{ACCOUNT}:role/*"]),
        "refused",
    ),
    Case(
        "fanout-sts-session-arn",
        "verify",
        lambda: _fanout(principals=[f"arn:aws:sts::{ACCOUNT}:assumed-role/CustomLabelsTrainer/s"]),
        "refused",
    ),
    Case("fanout-trailing-newline", "verify", lambda: _fanout(principals=[ROLE + "\n"]), "refused"),
    # --- grant: not an event ----------------------------------------------------------------
    Case("grant-list", "grant", lambda: [1], "invalid"),
    Case("grant-missing-detail", "grant", lambda: _cpv(detail=_DELETE), "invalid"),
    Case("grant-wrong-source", "grant", lambda: _cpv(source="aws.s3"), "invalid"),
    Case("grant-params-string", "grant", lambda: _cpv(**{"detail.requestParameters": "x"}), "invalid"),
    Case("grant-kmskeyid-int", "grant", lambda: _cpv(**{"detail.requestParameters.KmsKeyId": 5}), "invalid"),
    Case(
        "grant-assets-not-list",
        "grant",
        lambda: _cpv(**{"detail.requestParameters.TrainingData.Assets": "x"}),
        "invalid",
    ),
    Case(
        "grant-bucket-int",
        "grant",
        lambda: _cpv(
            **{
                "detail.requestParameters.TrainingData.Assets": [
                    {"GroundTruthManifest": {"S3Object": {"Bucket": 1, "Name": "m"}}}
                ]
            }
        ),
        "invalid",
    ),
    Case(
        "grant-deeply-nested-params",
        "grant",
        lambda: _cpv(**{"detail.requestParameters.Extra": json.loads(_deep(60))}),
        "invalid",
    ),
    # --- grant: ignored ----------------------------------------------------------------------
    Case(
        "grant-other-event-name",
        "grant",
        lambda: load_event("cloudtrail_create_project_version_other_event"),
        "ignored",
    ),
    Case("grant-refused-call", "grant", lambda: _cpv("cloudtrail_create_project_version_error"), "ignored"),
    Case(
        "grant-access-denied-not-kms",
        "grant",
        lambda: _cpv(
            **{"detail.errorCode": "AccessDeniedException", "detail.errorMessage": "not authorized: s3:GetObject"}
        ),
        "ignored",
    ),
    Case("grant-params-null", "grant", lambda: _cpv(**{"detail.requestParameters": None}), "ignored"),
    # --- grant: hostile callers (no grant, one refusal) ---------------------------------------
    Case("grant-root", "grant", lambda: _cpv("cloudtrail_create_project_version_root"), "refused"),
    Case("grant-other-account", "grant", lambda: _cpv("cloudtrail_create_project_version_other_account"), "refused"),
    Case("grant-no-user-identity", "grant", lambda: _cpv(**{"detail.userIdentity": _DELETE}), "refused"),
    Case("grant-identity-not-object", "grant", lambda: _cpv(**{"detail.userIdentity": "root"}), "refused"),
    Case("grant-issuer-star", "grant", lambda: _issuer("*"), "refused"),
    Case(
        "grant-issuer-root",
        "grant",
        lambda: _issuer(f"arn:aws:iam::{ACCOUNT}:root"),
        "refused",
        key_policy="without-root",
        why="account root principal",
    ),
    Case("grant-issuer-role-wildcard", "grant", lambda: _issuer(f"arn:aws:iam::{ACCOUNT}:role/ml/*"), "refused"),
    Case("grant-issuer-question-mark", "grant", lambda: _issuer(f"arn:aws:iam::{ACCOUNT}:role/ml/Trainer?"), "refused"),
    Case("grant-issuer-injection", "grant", lambda: _issuer(f'arn:aws:iam::{ACCOUNT}:role/a","*'), "refused"),
    Case("grant-issuer-service", "grant", lambda: _issuer("rekognition.amazonaws.com"), "refused"),
    Case(
        "grant-issuer-other-account",
        "grant",
        lambda: _issuer(f"arn:aws:iam::{OTHER}:role/ml/CustomLabelsTrainer"),
        "refused",
    ),
    Case("grant-issuer-huge", "grant", lambda: _issuer(f"arn:aws:iam::{ACCOUNT}:role/" + "a/" * 3000 + "b"), "refused"),
    Case("grant-issuer-int", "grant", lambda: _issuer(12), "refused"),
    Case(
        "grant-issuer-user-type",
        "grant",
        lambda: _cpv(**{"detail.userIdentity.sessionContext.sessionIssuer.type": "IAMUser"}),
        "refused",
    ),
    Case(
        "grant-web-identity-without-issuer",
        "grant",
        lambda: _cpv(**{"detail.userIdentity": {"type": "WebIdentityUser", "principalId": "x"}}),
        "refused",
    ),
    Case(
        "grant-kms-denied-but-root",
        "grant",
        lambda: _cpv(
            "cloudtrail_create_project_version_root",
            **{"detail.errorCode": "AccessDeniedException", "detail.errorMessage": "kms:CreateGrant"},
        ),
        "refused",
    ),
    # --- grant: hostile parameters -------------------------------------------------------------
    Case(
        "grant-alias-of-other-account",
        "grant",
        lambda: _cpv(**{"detail.requestParameters.KmsKeyId": f"arn:aws:kms:us-east-1:{OTHER}:alias/theirs"}),
        "finding:KEY_UNUSABLE",
    ),
    Case(
        "grant-key-id-garbage",
        "grant",
        lambda: _cpv(**{"detail.requestParameters.KmsKeyId": "not-a-key"}),
        "finding:KEY_UNUSABLE",
    ),
    Case(
        "grant-key-of-other-account",
        "grant",
        lambda: _cpv(**{"detail.requestParameters.KmsKeyId": f"arn:aws:kms:us-east-1:{OTHER}:key/{OTHER_KEY_ID}"}),
        "finding:KEY_UNUSABLE",
    ),
    Case(
        "grant-manifest-in-missing-bucket",
        "grant",
        lambda: _cpv(
            **{
                "detail.requestParameters.TrainingData.Assets": [
                    {"GroundTruthManifest": {"S3Object": {"Bucket": "no-such-bucket-x", "Name": "m"}}}
                ]
            }
        ),
        "finding:MANIFEST_INVALID",
    ),
    # --- grant: training from datasets ---------------------------------------------------------
    Case(
        "grant-datasets-unknown-project",
        "grant",
        lambda: _cpv("cloudtrail_create_project_version_datasets"),
        "finding:MANIFEST_INVALID",
    ),
    Case(
        "grant-datasets-project-arn-garbage",
        "grant",
        lambda: _cpv("cloudtrail_create_project_version_datasets", **{"detail.requestParameters.ProjectArn": "cats"}),
        "finding:MANIFEST_INVALID",
    ),
    Case(
        "grant-datasets-project-arn-int",
        "grant",
        lambda: _cpv("cloudtrail_create_project_version_datasets", **{"detail.requestParameters.ProjectArn": 7}),
        "invalid",
    ),
    Case(
        "grant-dataset-source-arn-object",
        "grant",
        lambda: _set_and_return(
            load_event("cloudtrail_create_dataset_from_dataset"),
            "detail.requestParameters.DatasetSource.DatasetArn",
            {},
        ),
        "invalid",
    ),
    Case(
        "grant-dataset-source-unknown",
        "grant",
        lambda: load_event("cloudtrail_create_dataset_from_dataset"),
        "finding:MANIFEST_INVALID",
    ),
    Case(
        "grant-dataset-source-arn-garbage",
        "grant",
        lambda: _cpv(
            "cloudtrail_create_dataset_from_dataset",
            **{"detail.requestParameters.DatasetSource.DatasetArn": "x" * 5000},
        ),
        "finding:MANIFEST_INVALID",
    ),
]


def _set_and_return(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    _set(event, path, value)
    return event


def materialize(case: Case, managed_key: str) -> Any:
    """The case's event with the scenario's managed key in place of the placeholder."""
    value = case.build()
    text = json.dumps(value) if not isinstance(value, str) else value
    if KEY_PLACEHOLDER in text and not isinstance(value, str):
        return json.loads(text.replace(KEY_PLACEHOLDER, managed_key))
    return copy.deepcopy(value)
