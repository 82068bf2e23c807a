"""clguard.adapters.clients.translate / aws: botocore errors become the project's own
(clguard.errors), with the same transient decision as before and botocore's own text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError, ReadTimeoutError
from hypothesis import given
from hypothesis import strategies as st

from clguard.adapters import clients, s3
from clguard.adapters.clients import aws, is_transient, translate
from clguard.errors import (
    AwsError,
    Denied,
    GuardError,
    InvalidCall,
    NotFound,
    ObjectChanged,
    PreconditionFailed,
    Refused,
    Rejected,
    RetryableError,
    Throttled,
    Transient,
)


def client_error(code: str, status: int, message: str = "it failed", operation: str = "GetObject") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 400, Throttled),
        ("SlowDown", 503, Throttled),
        ("InternalError", 500, Throttled),
        ("NoSuchKey", 404, NotFound),
        ("ResourceNotFoundException", 400, NotFound),
        ("NotFoundException", 400, NotFound),
        ("AccessDenied", 403, Denied),
        ("AccessDeniedException", 400, Denied),
        ("PreconditionFailed", 412, PreconditionFailed),
        ("MalformedPolicyDocumentException", 400, Rejected),
        ("ValidationException", 400, Rejected),
    ],
)
def test_an_aws_answer_becomes_the_error_of_its_kind(code: str, status: int, kind: type[AwsError]) -> None:
    # Given botocore's error for AWS's answer
    error = client_error(code, status, "the reason")
    # When it is translated
    translated = translate(error)
    # Then it is the project's error of that kind, with AWS's code, message, status and text
    assert type(translated) is kind
    assert isinstance(translated, AwsError)
    assert (translated.code, translated.message, translated.status) == (code, "the reason", status)
    assert str(translated) == str(error)


@given(code=st.text(min_size=0, max_size=40), status=st.integers(min_value=0, max_value=599))
def test_transient_exactly_when_botocore_said_so(code: str, status: int) -> None:
    # Given any AWS error answer
    error = client_error(code, status)
    # When translated
    translated = translate(error)
    # Then it is retryable (Throttled) exactly when is_transient says so, else a refusal
    assert isinstance(translated, AwsError)
    assert isinstance(translated, Throttled) == is_transient(error)
    assert isinstance(translated, RetryableError) == is_transient(error)
    assert isinstance(translated, Refused) != is_transient(error)


def test_a_failure_without_an_answer_is_transient_and_a_bad_call_is_not() -> None:
    # Given a read timeout and a request the SDK refused to send
    timeout = ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")
    bad = ParamValidationError(report="Missing required parameter Bucket")
    # Then the timeout retries the unit (Transient, not Throttled); the bad call is never retried
    assert type(translate(timeout)) is Transient
    assert isinstance(translate(timeout), RetryableError)
    assert type(translate(bad)) is InvalidCall
    assert not isinstance(translate(bad), RetryableError)


def test_other_errors_pass_through_unchanged() -> None:
    # Given an error that is not botocore's, and one of the project's own
    value_error, changed = ValueError("x"), ObjectChanged("k")
    # Then translation leaves them as they are
    assert translate(value_error) is value_error
    assert translate(changed) is changed


def test_the_decorator_translates_functions_and_generators_alike() -> None:
    # Given an adapter function and an adapter generator that hit an AccessDenied
    @aws
    def call() -> None:
        raise client_error("AccessDenied", 403)

    @aws
    def pages() -> Iterator[int]:
        yield 1
        raise client_error("ThrottlingException", 400)

    # When called, and iterated
    with pytest.raises(Denied) as denied:
        call()
    stream = pages()
    assert next(stream) == 1
    with pytest.raises(Throttled) as throttled:
        next(stream)
    # Then both raise the project's errors, chained to botocore's
    assert isinstance(denied.value.__cause__, ClientError)
    assert isinstance(throttled.value.__cause__, ClientError)


def test_the_adapters_own_errors_are_part_of_the_hierarchy() -> None:
    # Given the errors the S3 and client adapters raise on purpose (importable where they were)
    # Then each is a GuardError defined in clguard.errors
    for error in (
        s3.ObjectChanged,
        s3.CopyRolledBack,
        s3.UnsupportedAcl,
        s3.UpdateUnavailable,
        clients.MemberUnreachable,
    ):
        assert issubclass(error, GuardError)
        assert error.__module__ == "clguard.errors"
