"""Cloud Custodian's cost per S3 event, measured: run by a *separate* Python that has c7n.

Not imported by the benchmark (c7n is not a project dependency). ``bench.c7n`` runs this file
with the temporary venv's interpreter (see bench/README.md) and reads one JSON line back:

    /tmp/clguard-c7n-venv/bin/python bench/c7n_probe.py [events]

What it does, all in one process against ``moto.mock_aws()`` (as figure 1 of the bench):

- creates the training bucket (SSE-S3 default encryption) and one object per event;
- loads a c7n ``aws.s3`` policy in ``cloudtrail`` mode on ``PutObject`` from s3.amazonaws.com
  (ids ``requestParameters.bucketName``) with a ``bucket-encryption`` filter, the way c7n's own
  Lambda entry point does (``c7n.handler.dispatch_event``: ``PolicyCollection.from_data`` →
  ``policy.validate()`` → ``policy.push(event, context)`` → ``CloudTrailMode.run``);
- pushes the CloudTrail PutObject data events (the same shape the verify function accepts,
  events/cloudtrail_s3_putobject.json) one invocation per event, warm (policy loaded once per
  container, as ``dispatch_event`` does with its module-level ``policy_config``);
- counts every botocore call with a ``before-call.*.*`` hook, attached through c7n's own
  ``SessionFactory.set_subscribers`` to every session c7n creates.

Prints ``{"events": N, "calls": ..., "by_operation": {...}, ...}``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "custom-labels-training"
EVENT_FILE = Path(__file__).resolve().parent.parent / "events" / "cloudtrail_s3_putobject.json"

POLICY: dict[str, Any] = {
    "name": "training-bucket-encryption",
    "resource": "aws.s3",
    "mode": {
        "type": "cloudtrail",
        "events": [{"source": "s3.amazonaws.com", "event": "PutObject", "ids": "requestParameters.bucketName"}],
    },
    # buckets without default encryption (AES256 or aws:kms): what c7n can say about an upload
    "filters": [{"type": "bucket-encryption", "state": False}],
}


class Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.ops[f"{model.service_model.service_name}:{model.name}"] += 1

    def attach(self, session: Any) -> None:
        session.events.register_first("before-call.*.*", self, unique_id="bench-c7n-calls")


class Context:
    function_name = "custodian-training-bucket-encryption"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def main(events: int, *, augment_keys: str | None = None) -> dict[str, Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "MOTO_ACCOUNT_ID": ACCOUNT,
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)

    import boto3  # noqa: PLC0415
    import c7n  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    from c7n.config import Config  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    from c7n.credentials import SessionFactory  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    from c7n.policy import PolicyCollection  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    from c7n.resources import load_resources  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    from c7n.utils import reset_session_cache  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    try:
        from importlib.metadata import version  # noqa: PLC0415

        c7n_version = version("c7n")
    except Exception:  # noqa: BLE001
        c7n_version = getattr(c7n, "__version__", "?")

    policy_data = copy.deepcopy(POLICY)
    if augment_keys is not None:
        policy_data["query"] = [{"augment-keys": augment_keys}]
    template = json.loads(EVENT_FILE.read_text(encoding="utf-8"))
    calls = Calls()
    with mock_aws(), tempfile.TemporaryDirectory() as output:
        setup = boto3.client("s3", region_name=REGION)  # the probe's own setup: not counted
        setup.create_bucket(Bucket=BUCKET)
        setup.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        trail_events = []
        for n in range(events):
            key = f"datasets/cats/images/c7n-{n:05}.jpg"
            setup.put_object(Bucket=BUCKET, Key=key, Body=b"image")
            event = copy.deepcopy(template)
            event["id"] = f"c7n-probe-{n}"
            event["detail"]["requestParameters"]["key"] = key
            trail_events.append(event)

        # What c7n.handler.init_config builds once per cold start (account id given: no STS call).
        load_resources(("aws.s3",))
        options = Config.empty(region=REGION, account_id=ACCOUNT, output_dir=output, log_group=None)
        factory = SessionFactory(REGION)
        factory.set_subscribers([calls.attach])
        reset_session_cache()
        matched = 0
        for event in trail_events:
            # dispatch_event: policies from data, validate, push (one Lambda invocation per event)
            for policy in PolicyCollection.from_data({"policies": [policy_data]}, options, session_factory=factory):
                policy.validate()
                matched += len(policy.push(event, Context()) or [])
        reset_session_cache()
    total = sum(calls.ops.values())
    return {
        "events": events,
        "calls": total,
        "calls_per_event": total / events if events else 0.0,
        "by_operation": dict(sorted(calls.ops.items())),
        "matched_resources": matched,
        "augment_keys": augment_keys or "all (c7n's default)",
        "c7n_version": c7n_version,
        "python": sys.version.split()[0],
        "how": "c7n PolicyCollection.from_data + policy.validate() + policy.push(event, context) per event "
        "(c7n.handler.dispatch_event's steps), mode cloudtrail PutObject, filter bucket-encryption, "
        "moto.mock_aws() in process, botocore before-call hook via SessionFactory.set_subscribers",
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    # c7n's default, and its cheapest documented setting ("none": only Location and Tags)
    print(json.dumps({"default": main(count), "augment_keys_none": main(count, augment_keys="none")}))
