"""Property: ``clguard preflight`` and the grant function decide the same for the same world
(design §12: "a guard-will-fix key is one the grant function then grants, a blocked one it does
not"), over generated key policies (Allows, conditioned Allows, Denies of many shapes, the guard's
own statements), tags, modes and principal patterns, and over real key policies of the AWS docs.

For each world: preflight first (read-only), then the grant function on the same training call.
ready <=> the grant path found the access already there (key status ``ok``, no refusal of the
caller naming the key, nothing written); guard-will-fix <=> it granted (status ``granted``, the
policy changed); blocked <=> it wrote nothing and said why (another status, or the caller was
refused with a PRINCIPAL_NOT_ALLOWED naming the key: a refused caller is asked for nothing, so
its keys' status stays ``ok``).
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clguard.cli.main import main
from functions.grant_training_access import app as grant_app
from tests.fixtures import key_policy
from tests.world import ACCOUNT, BUCKET, LambdaContext, World

ROLE = f"arn:aws:iam::{ACCOUNT}:role/ml/CustomLabelsTrainer"
PROJECT = f"arn:aws:rekognition:us-east-1:{ACCOUNT}:project/cats/1764360000000"
ROOT = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}
ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey", "kms:*", "kms:Generate*")
CONDITIONS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"Bool": {"kms:GrantIsForAWSResource": "true"}},
    {"StringNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/Admin"}},
    {"StringEquals": {"aws:PrincipalArn": ROLE}},
    {"StringNotEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
    {"StringNotEquals": {"aws:SourceVpce": "vpce-1234abcdf5678c90a"}},
    {"Bool": {"aws:ViaAWSService": "false"}},
    {"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-exampleorgid"}},
    {"StringEquals": {"kms:CallerAccount": ACCOUNT}},
)
PRINCIPALS: tuple[Any, ...] = (
    "*",
    {"AWS": "*"},
    {"AWS": ROLE},
    {"AWS": [ROLE, f"arn:aws:iam::{ACCOUNT}:role/Other"]},
    {"AWS": f"arn:aws:iam::{ACCOUNT}:role/Other"},
)
OWNED = ("CustomLabelsGuardTrainingData", "CustomLabelsGuardCopiedImagesGrant", "CustomLabelsGuardCopiedImagesUse")


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    statement: dict[str, Any] = {}
    if draw(st.booleans()):
        statement["Sid"] = draw(st.sampled_from(["S1", "Deny-it", "Allow use", *OWNED]))
    statement["Effect"] = draw(st.sampled_from(["Allow", "Deny"]))
    statement["Principal"] = draw(st.sampled_from(PRINCIPALS))
    actions = draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True))
    statement["Action"] = actions[0] if len(actions) == 1 and draw(st.booleans()) else actions
    statement["Resource"] = "*"
    condition = draw(st.sampled_from(CONDITIONS))
    if condition is not None:
        statement["Condition"] = condition
    return statement


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "statements": [ROOT, *draw(st.lists(statements(), max_size=4))],
        "tagged": draw(st.booleans()),
        "mode": draw(st.sampled_from(["enforce", "enforce", "report"])),
        "patterns": draw(st.sampled_from(["", "", f"arn:aws:iam::{ACCOUNT}:role/other/*"])),
        "need": draw(st.sampled_from(["KmsKeyId", "manifest"])),
    }


def preflight(args: list[str]) -> dict[str, Any]:
    out = io.StringIO()
    status = main(["preflight", "--json", *args], stdout=out, stderr=io.StringIO())
    document: dict[str, Any] = json.loads(out.getvalue())
    assert status == {"ready": 0, "guard-will-fix": 0, "blocked": 2, "unknown": 3}[document["verdict"]]
    return document


def decide_both(world: World, drawn: dict[str, Any]) -> tuple[str, str, bool]:
    """(preflight's verdict, the grant path's key status, whether the key policy changed); a
    caller the grant path refused on the key is the status ``refused``."""
    world.env_set(REMEDIATION_MODE=drawn["mode"], ALLOWED_PRINCIPAL_PATTERNS=drawn["patterns"])
    key = world.key(managed=drawn["tagged"], policy={"Version": "2012-10-17", "Statement": drawn["statements"]})
    manifest = f"datasets/{uuid.uuid4()}.manifest"
    args = ["--role", ROLE, "--project-arn", PROJECT]
    event = world.training_event(kms_key=key, event_id=str(uuid.uuid4()), issuer=ROLE)
    params = event["detail"]["requestParameters"]
    params["TestingData"] = {"AutoCreate": True}
    params.pop("OutputConfig")
    if drawn["need"] == "KmsKeyId":
        args += ["--kms-key-id", key]
        params["TrainingData"] = {"Assets": []}
    else:
        world.put(manifest, b"", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        args += ["--training-manifest", f"s3://{BUCKET}/{manifest}"]
        params.pop("KmsKeyId")
        params["TrainingData"]["Assets"][0]["GroundTruthManifest"]["S3Object"]["Name"] = manifest
    document = preflight(args)
    [entry] = document["keys"]
    before = world.policy(key)
    summary = grant_app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))
    refused = any(
        f["finding_type"] == "PRINCIPAL_NOT_ALLOWED" and f["resource"].get("arn") == key for f in summary["findings"]
    )
    return entry["verdict"], "refused" if refused else summary["keys"][key], world.policy(key) != before


def assert_agree(verdict: str, status: str, changed: bool) -> None:
    if verdict == "ready":
        assert (status, changed) == ("ok", False)
    elif verdict == "guard-will-fix":
        assert (status, changed) == ("granted", True)
    else:
        assert verdict == "blocked"
        assert status not in ("ok", "granted")
        assert not changed


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(drawn=worlds())
def test_preflight_and_the_grant_path_decide_the_same(world: World, drawn: dict[str, Any]) -> None:
    # Given a generated key policy, tag, mode and patterns (the roles it names exist, once)
    with contextlib.suppress(world.iam.exceptions.EntityAlreadyExistsException):
        world.role("CustomLabelsTrainer", "/ml/")
        world.role("Other")
        world.role("Admin")
    # When preflight and then the grant path decide on the same call, Then they agree
    assert_agree(*decide_both(world, drawn))


@pytest.mark.parametrize("name", ["identity_perimeter_key_policy", "kms_guide_vpce_key_policy"])
@pytest.mark.parametrize("need", ["KmsKeyId", "manifest"])
def test_real_key_policies_are_decided_the_same(world: World, name: str, need: str) -> None:
    # Given a documented key policy (AWS docs) on a managed key of this account
    world.role("CustomLabelsTrainer", "/ml/")
    document = key_policy(name, ACCOUNT)
    drawn = {"statements": document["Statement"], "tagged": True, "mode": "enforce", "patterns": "", "need": need}
    # When preflight, then the grant path, decide on it
    verdict, status, changed = decide_both(world, drawn)
    # Then they agree (and a Deny that can apply blocks)
    assert_agree(verdict, status, changed)
    assert verdict == "blocked"
