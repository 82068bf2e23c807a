"""A re-encryption copy in place changes the encryption and nothing else a reader of the object
sees: here, the website redirect, which S3 does not copy unless the request names it again
(S3 API reference, CopyObject, ``x-amz-metadata-directive``; the ``CopiesDropWebsiteRedirect``
double)."""

from __future__ import annotations

import pytest

from clguard.adapters import s3
from clguard.boundary.s3ref import S3ObjectRef
from clguard.rules.encryption import Encryption, ObjectEncryption
from functions.verify_object_encryption import app
from localaws.doubles import legacy_unencrypted_objects
from tests.eventsamples import sqs_event
from tests.world import BUCKET, LambdaContext, World

KEY = "datasets/cats/index.html"


def test_a_re_encrypted_object_keeps_its_website_redirect(world: World) -> None:
    # Given a pre-2023 unencrypted object that redirects website readers elsewhere
    with legacy_unencrypted_objects(BUCKET, KEY):
        world.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"<html/>", WebsiteRedirectLocation="/datasets/dogs/")

    # When its Object Created event is verified (enforce mode: re-encrypted in place)
    response = app.lambda_handler(sqs_event(world.object_created(KEY)), LambdaContext())

    # Then it is encrypted, reported as remediated, and still redirects where it did
    assert response == {"batchItemFailures": []}
    head = world.head(KEY)
    assert head["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"]) for f in world.findings()] == [("OBJECT_UNENCRYPTED", "REMEDIATED")]
    assert head.get("WebsiteRedirectLocation") == "/datasets/dogs/"


def test_a_multipart_re_encryption_keeps_its_website_redirect(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an 11 MiB unencrypted object with a website redirect, above the (lowered) copy limit
    with legacy_unencrypted_objects(BUCKET, KEY):
        world.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * (11 << 20), WebsiteRedirectLocation="/datasets/dogs/")
    monkeypatch.setattr(s3, "MIN_PART", 5 << 20)

    # When it is re-encrypted by multipart copy
    s3.copy_in_place(s3.head(S3ObjectRef(BUCKET, KEY)), ObjectEncryption(Encryption.SSE_S3), copy_limit=1 << 20)

    # Then it is encrypted and still redirects where it did
    head = world.head(KEY)
    assert (head["ServerSideEncryption"], head.get("WebsiteRedirectLocation")) == ("AES256", "/datasets/dogs/")
