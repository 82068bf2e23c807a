"""UpdateDatasetEntries with invalid inline Ground Truth lines: the MANIFEST_INVALID finding names
the dataset the lines were written to (docs/architecture.md §5: a resource is a real S3 object, a
KMS key, or a Rekognition Custom Labels resource), never a made-up S3 object."""

from __future__ import annotations

import base64
import json
from typing import Any

from functions.grant_training_access import app
from tests.world import BUCKET, LambdaContext, World


def test_invalid_inline_lines_are_reported_on_the_dataset_they_update(world: World) -> None:
    # Given an UpdateDatasetEntries call whose inline Ground Truth has one valid line and one that
    # is not JSON (the Changes.GroundTruth blob the API takes: JSON Lines, base64-encoded)
    world.role("CustomLabelsTrainer", "/ml/")
    world.put("datasets/cats/images/cat-004.jpg")
    event: dict[str, Any] = world.training_event("cloudtrail_update_dataset_entries")
    parameters = event["detail"]["requestParameters"]
    lines = json.dumps({"source-ref": f"s3://{BUCKET}/datasets/cats/images/cat-004.jpg", "cat": 1}) + "\nnot json\n"
    parameters["Changes"]["GroundTruth"] = base64.b64encode(lines.encode()).decode()

    # When it is handled
    app.lambda_handler(event, LambdaContext(function_name="grant-training-access"))

    # Then the MANIFEST_INVALID finding's resource is the dataset, as the contract's resource types allow
    invalid = [f for f in world.findings() if f["finding_type"] == "MANIFEST_INVALID"]
    assert len(invalid) == 1
    assert invalid[0]["resource"] == {"type": "rekognition-project-version", "arn": parameters["DatasetArn"]}
