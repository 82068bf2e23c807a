"""A dataset of 250,000 entries (the Custom Labels maximum) is read in bounded memory and time.

moto runs in a child process (bench.motoserver, with every double): tracemalloc traces its own
process, so only the grant function's memory is measured, as bench/memory.py does for manifests.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.common import environment, fresh_container, new_world, quiet
from bench.motoserver import child_server
from clguard.boundary.config import current_settings
from clguard.usecases import training
from localaws.doubles import dataset_entry
from tests.eventsamples import load_event
from tests.world import ACCOUNT, BUCKET, LambdaContext, World

WARM = 1_100  # beyond the inline limit: the fan-out path, as the measured runs
SMALL = 25_000
LARGE = 250_000
GRANT_TIMEOUT_S = 300  # template.yaml: the grant function's Timeout
PEAK_RATIO_GOAL = 1.2  # as the manifest memory figure of make bench


@pytest.fixture(scope="module")
def system() -> Iterator[tuple[World, Any]]:
    with child_server() as endpoint, environment(AWS_ENDPOINT_URL=endpoint):
        fresh_container()
        world = new_world()
        world.role("CustomLabelsTrainer", "/ml/")
        yield world, boto3.client("rekognition")
        fresh_container()


def dataset_project(world: World, rekognition: Any, name: str, entries: int) -> str:
    """A project whose TRAIN dataset a data engineer created from a manifest (through the API)."""
    body = "".join(dataset_entry(BUCKET, f"datasets/{name}/img-{n:06}.jpg") + "\n" for n in range(entries))
    world.s3.put_object(Bucket=BUCKET, Key=f"datasets/{name}/train.manifest", Body=body.encode())
    del body
    project: str = rekognition.create_project(ProjectName=name)["ProjectArn"]
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Name": f"datasets/{name}/train.manifest"}}}
    rekognition.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=source)
    return project


def run(project: str) -> tuple[dict[str, Any], int, float]:
    """The grant path on a dataset-only CreateProjectVersion: summary, traced peak, seconds."""
    event = load_event("cloudtrail_create_project_version_datasets")
    params = event["detail"]["requestParameters"]
    params["ProjectArn"] = project
    params.pop("KmsKeyId")
    event["id"] = f"scale-{project}"
    settings = current_settings(os.environ, account_id=ACCOUNT)
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    started = time.monotonic()
    with quiet():
        summary = training.handle_training_event(event, settings, lambda_context=LambdaContext())
    seconds = time.monotonic() - started
    return summary, tracemalloc.get_traced_memory()[1] - before, seconds


def fanned_out_objects(world: World) -> int:
    return sum(len(json.loads(m["Body"])["objects"]) for m in world.drain_queue())


@pytest.mark.slow
def test_250000_entries_finish_inside_lambda_limits_with_bounded_memory(system: tuple[World, Any]) -> None:
    # Given two dataset-only projects: 25,000 and 250,000 TRAIN entries
    world, rekognition = system
    small = dataset_project(world, rekognition, "small", SMALL)
    large = dataset_project(world, rekognition, "large", LARGE)
    run(dataset_project(world, rekognition, "warm", WARM))  # clients are a fixed cost: create them first
    fanned_out_objects(world)

    # When the grant path reads each dataset (traced)
    tracemalloc.start()
    try:
        small_summary, small_peak, _ = run(small)
        small_objects = fanned_out_objects(world)
        large_summary, large_peak, large_seconds = run(large)
    finally:
        tracemalloc.stop()
    large_objects = fanned_out_objects(world)

    # Then every entry was fanned out to the verify queue, within the function's timeout, and
    # ten times the entries cost about the same peak memory
    assert (small_objects, large_objects) == (SMALL, LARGE)
    assert large_summary["datasets"] == small_summary["datasets"] == 1
    assert large_summary["findings"] == []
    assert large_seconds < GRANT_TIMEOUT_S
    assert large_peak / small_peak <= PEAK_RATIO_GOAL, (large_peak, small_peak)
    assert large_peak < 16 * 1024 * 1024  # far below the function's 512 MB
