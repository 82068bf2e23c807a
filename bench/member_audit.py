"""Organizations: one audit run over 200 member accounts (2 training buckets and 50 compliant
objects each, every member declaring its buckets in its own SSM parameter), audit and verify
functions, moto in process (moto maps assumed-role credentials to the role's account).

Counted on the code's own session (setup is not): every AWS call of the run, split into what grows
with the objects, what each bucket costs once (its ListObjectsV2 page, the message that carries its
objects, that message's tally), what each member costs once (its role session, its declaration),
and what the run costs once. Then the all-in calls per object at 1,000 objects per bucket follow
from the same split.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import boto3
from moto import mock_aws
from moto.s3.models import s3_backends

from bench.calls import SQS_BATCH, run_verify
from bench.common import Figure, chunks, environment, fresh_container, new_world, ops_text, progress, quiet
from clguard.boundary.declaration import PARAMETER_NAME
from functions.audit import app as audit_app
from localaws.doubles import aws_behaviour
from tests.auditrun import REPORTS, scheduled_event
from tests.awscalls import boundary
from tests.eventsamples import sqs_event
from tests.world import REGION, LambdaContext

MEMBERS, BUCKETS, OBJECTS = 200, 2, 50
AT_SCALE = 1_000  # objects per bucket, for the extrapolation
AUDIT_CONTEXT = LambdaContext(function_name="audit", remaining_ms=900_000)
PER_BUCKET_OPS = ("ListObjectsV2", "SendMessage", "UpdateItem")
PER_MEMBER_OPS = ("AssumeRole", "GetParameter")


def _members() -> list[str]:
    return [f"{210000000000 + n:012d}" for n in range(MEMBERS)]


def _declare(account: str, buckets: list[str]) -> None:
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="bench-setup"
    )["Credentials"]
    boto3.client(
        "ssm",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    ).put_parameter(
        Name=PARAMETER_NAME,
        Type="String",
        Value=json.dumps(
            {"version": 1, "training_buckets": buckets, "reencrypt_kms_key": "", "training_principals": []}
        ),
    )


def member_audit() -> dict[str, Any]:
    with environment(), mock_aws(), aws_behaviour():
        os.environ.pop("MOTO_ACCOUNT_ID", None)  # moto takes the account from the credentials
        fresh_container()
        world = new_world(AUDIT_REPORTS=f"s3://{REPORTS}/audit-reports")
        world.s3.create_bucket(Bucket=REPORTS)
        members = _members()
        for account in members:
            backend = s3_backends[account]["aws"]
            names = [f"train-{account}-{b}" for b in range(BUCKETS)]
            for name in names:
                backend.create_bucket(name, REGION)
                for n in range(OBJECTS):
                    backend.put_object(name, f"images/{n:04d}.jpg", b"image", encryption="AES256")
            _declare(account, names)
        os.environ["MEMBER_ACCOUNTS"] = ",".join(members)
        with boundary() as b:
            fresh_container(b.session)
            with quiet():
                audit_app.lambda_handler(scheduled_event(), AUDIT_CONTEXT)
            audit_ops = Counter(b.log.by_operation())
        bodies = [m["Body"] for m in world.drain_queue()]
        with boundary() as b:
            fresh_container(b.session)  # the verify function: another container
            with quiet():
                for batch in chunks(bodies, SQS_BATCH):
                    run_verify(sqs_event(*batch))
            verify_ops = Counter(b.log.by_operation())
        published = world.published()
        summaries = [json.loads(p.structure["default"]) for p in published if "message_kind" in p.attributes]
        alerts = len(published) - len(summaries)
        fresh_container()
    objects = MEMBERS * BUCKETS * OBJECTS
    covered = summaries[-1]["objects"] if summaries else 0
    if alerts or covered != objects:
        raise RuntimeError(f"audit of {MEMBERS} members: {alerts} alerts, {covered} of {objects} objects covered")
    both = audit_ops + verify_ops
    buckets = MEMBERS * BUCKETS + 1  # the central training bucket (empty) is listed too
    per_member = sum(both[op] for op in PER_MEMBER_OPS)
    per_bucket = sum(both[op] for op in PER_BUCKET_OPS) - (1 if verify_ops["UpdateItem"] else 0)
    per_object = both["HeadObject"]
    per_run = both.total() - per_member - per_bucket - per_object
    return {
        "members": MEMBERS,
        "buckets": buckets,
        "objects": objects,
        "messages": len(bodies),
        "audit_by_operation": dict(audit_ops),
        "verify_by_operation": dict(verify_ops),
        "total_calls": both.total(),
        "per_object_calls": per_object,
        "per_bucket_calls": per_bucket,
        "per_member_calls": per_member,
        "per_run_calls": per_run,
        "role_sessions": both["AssumeRole"],
    }


def member_audit_figures() -> list[Figure]:
    progress(f"organizations: one audit of {MEMBERS} member accounts × {BUCKETS} buckets × {OBJECTS} objects")
    m = member_audit()
    objects, buckets = m["objects"], m["buckets"]
    per_object = m["per_object_calls"] / objects
    sessions_per_member = m["role_sessions"] / (2 * MEMBERS)  # audit and verify: one container each
    all_in = (m["total_calls"] - m["role_sessions"]) / objects
    bucket_cost = m["per_bucket_calls"] / buckets
    member_cost = (m["per_member_calls"] - m["role_sessions"]) / MEMBERS
    at_scale = 1 + bucket_cost / AT_SCALE + member_cost / (BUCKETS * AT_SCALE)
    detail = (
        f"{m['total_calls']:,} calls = {m['per_object_calls']:,} per object (HeadObject) + {m['per_bucket_calls']:,} "
        f"per bucket ({bucket_cost:.2f} × {buckets}: list page, message, tally) + {m['per_member_calls']:,} per member "
        f"({m['role_sessions']} role sessions: one per member in each of the 2 functions' containers; "
        f"declarations read once) + {m['per_run_calls']} per run; all-in without the role sessions "
        f"{all_in:.4f}/object at {OBJECTS} objects per bucket; audit: {ops_text(m['audit_by_operation'])}; "
        f"verify: {ops_text(m['verify_by_operation'])}"
    )
    return [
        Figure(
            "organization_audit_coverage",
            f"Organizations: accounts covered by one audit of {MEMBERS} member accounts",
            float(MEMBERS),
            f"{MEMBERS} of {MEMBERS}",
            float(MEMBERS),
            f"= {MEMBERS}",
            data=m,
            passed_override=True,  # organization_audit raises unless every account's objects were covered
        ),
        Figure(
            "organization_audit_calls_per_object",
            f"Organizations audit ({MEMBERS} accounts × {BUCKETS} buckets × {OBJECTS} objects): calls per object, "
            "besides each bucket's, member's and run's fixed calls",
            per_object,
            f"{per_object:.4f}",
            1.01,
            "≤ 1.01",
            detail=detail,
        ),
        Figure(
            "organization_role_sessions_per_member",
            "Organizations audit: role sessions per member and function container",
            sessions_per_member,
            f"{sessions_per_member:.2f}",
            1.0,
            "≤ 1",
        ),
        Figure(
            "organization_audit_calls_per_object_at_scale",
            f"Organizations audit, all-in calls per object extrapolated to {AT_SCALE:,} objects per bucket "
            "(role sessions apart)",
            at_scale,
            f"{at_scale:.4f}",
            1.01,
            "≤ 1.01",
            detail=f"1 + {bucket_cost:.2f} calls per bucket ÷ {AT_SCALE:,} + {member_cost:.2f} per member ÷ "
            f"{BUCKETS * AT_SCALE:,} (measured at {OBJECTS} objects per bucket: {all_in:.4f} all-in)",
        ),
    ]
