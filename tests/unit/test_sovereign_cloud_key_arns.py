"""Key ARNs of the AWS European Sovereign Cloud partition (``aws-eusc``, which arns.py and
partition_of_region already support) parse like any other, so a deployment there can name its
keys in ALLOWED_KMS_KEYS and REENCRYPT_KMS_KEY.

The partition's regions are ``eusc-de-...`` (botocore's endpoint data, ``partitions.json``:
partition ``aws-eusc``, ``regionRegex`` ``^eusc\\-(de)\\-\\w+\\-\\d+$``, region ``eusc-de-east-1``),
whose first part has four letters, not two."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore
import pytest

from clguard.boundary.config import load_settings
from clguard.rules.arns import parse_key_arn, partition_of_region

ACCOUNT = "123456789012"
REGION = "eusc-de-east-1"
KEY = f"arn:aws-eusc:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_the_sovereign_cloud_region_is_the_one_botocore_knows() -> None:
    # Given botocore's partition data
    partitions = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())["partitions"]
    # Then its aws-eusc partition has the region these tests use
    [eusc] = [p for p in partitions if p["id"] == "aws-eusc"]
    assert REGION in eusc["regions"]
    assert partition_of_region(REGION) == "aws-eusc"


def test_a_sovereign_cloud_key_arn_parses() -> None:
    # When a key ARN of the eusc-de-east-1 region is parsed
    parsed = parse_key_arn(KEY)
    # Then it is a key ARN of that partition, region and account
    assert parsed is not None
    assert (parsed.partition, parsed.region, parsed.account) == ("aws-eusc", REGION, ACCOUNT)


def test_a_sovereign_cloud_deployment_can_name_its_keys() -> None:
    # Given a deployment in eusc-de-east-1 that names its keys
    env = {
        "AWS_REGION": REGION,
        "ALERT_TOPIC_ARN": f"arn:aws-eusc:sns:{REGION}:{ACCOUNT}:custom-labels-guard-alerts",
        "TRAINING_BUCKETS": "custom-labels-training",
        "STATE_TABLE": "custom-labels-guard-state",
        "ENCRYPTION_REQUIREMENT": "SSE_KMS",
        "ALLOWED_KMS_KEYS": KEY,
        "REENCRYPT_KMS_KEY": KEY,
    }
    # When the settings load (cold start)
    settings = load_settings(env, account_id=ACCOUNT)
    # Then they hold the keys
    assert settings.reencrypt_kms_key == KEY


def _botocore_regions() -> list[tuple[str, str]]:
    """Every (region, partition) botocore knows (its partitions.json: the SDK's own table)."""
    document = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text(encoding="utf-8"))
    # (the "aws-global"-style pseudo-regions of global endpoints are no place a function runs)
    return [
        (region, p["id"])
        for p in document["partitions"]
        for region in p.get("regions", {})
        if re.fullmatch(p["regionRegex"], region)
    ]


@pytest.mark.parametrize(("region", "partition"), _botocore_regions())
def test_every_region_botocore_knows_is_in_its_partition(region: str, partition: str) -> None:
    # Given a region of botocore's partition table
    # Then the guard puts it in the same partition (the guardrails compare partitions)
    assert partition_of_region(region) == partition
