"""Observe and break the AWS boundary at the botocore level, for tests and benchmarks.

- ``CallLog`` counts every API call the code makes (``before-call`` events), by operation.
- ``Faults`` makes chosen calls fail as AWS would (throttling, 5xx, AccessDenied,
  MalformedPolicyDocumentException, timeouts), a given number of times. The error travels the
  same path a real one does: botocore raises the modelled ClientError from the response.

Both attach to a boto3 Session that ``clguard.adapters.clients.reset(session)`` then uses, so
they see exactly the calls of the code under test (not the test's own setup calls).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ReadTimeoutError

from clguard.adapters import clients


@dataclass
class CallLog:
    calls: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((model.service_model.service_name, model.name))

    def count(self, operation: str | None = None) -> int:
        if operation is None:
            return len(self.calls)
        return sum(1 for _, name in self.calls if name == operation)

    def by_operation(self) -> Counter[str]:
        return Counter(name for _, name in self.calls)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


@dataclass
class Fault:
    operation: str  # e.g. "HeadObject"
    code: str  # e.g. "ThrottlingException", "AccessDenied", "timeout"
    status: int = 400
    times: int = 1_000_000
    message: str = "injected by the test"
    hits: int = 0
    after: int = 0  # let this many calls through first
    seen: int = 0


@dataclass
class Faults:
    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, operation: str, code: str, *, status: int = 400, times: int = 1_000_000, message: str = "", after: int = 0
    ) -> Fault:
        fault = Fault(operation, code, status, times, message or f"{code} injected by the test", after=after)
        self.faults.append(fault)
        return fault

    def __call__(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        with self._lock:
            fault = next((f for f in self.faults if f.operation == model.name and f.hits < f.times), None)
            if fault is None:
                return None
            fault.seen += 1
            if fault.seen <= fault.after:
                return None
            fault.hits += 1
        if fault.code == "timeout":
            raise ReadTimeoutError(endpoint_url=f"https://{model.service_model.endpoint_prefix}.amazonaws.com")
        body = {
            "Error": {"Code": fault.code, "Message": fault.message},
            "ResponseMetadata": {"HTTPStatusCode": fault.status, "HTTPHeaders": {}},
        }
        return AWSResponse("https://injected", fault.status, HTTPHeaders(), None), body


@dataclass
class Boundary:
    log: CallLog
    faults: Faults
    session: boto3.session.Session


@contextmanager
def boundary() -> Iterator[Boundary]:
    """A fresh session for the code under test with a call log and a fault injector."""
    session = boto3.session.Session()
    log, faults = CallLog(), Faults()
    session.events.register("before-call.*.*", faults.__call__, unique_id="test-faults")  # type: ignore[arg-type]
    session.events.register_first("before-call.*.*", log.__call__, unique_id="test-calllog")
    clients.reset(session)
    try:
        yield Boundary(log, faults, session)
    finally:
        clients.reset()


def copies_take_no_effect(b: Boundary, head: Mapping[str, Any]) -> None:
    """S3 answers every CopyObject with success, but the object stays as ``head`` describes it
    (what a bucket policy or default encryption overriding the copy looks like): the loop guard's
    case. The other injected faults still apply."""
    faults = b.faults

    def fake_copy(model: Any, **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if getattr(model, "name", "") == "CopyObject":
            body = {
                "CopyObjectResult": {"ETag": head["ETag"], "LastModified": head["LastModified"]},
                "ResponseMetadata": {"HTTPStatusCode": 200},
            }
            return AWSResponse("https://injected", 200, HTTPHeaders(), None), body
        return faults(model, **kwargs)

    b.session.events.unregister("before-call.*.*", unique_id="test-faults")
    b.session.events.register("before-call.*.*", fake_copy, unique_id="test-faults")  # type: ignore[arg-type]
    clients.reset(b.session)


def stale_key_policy_reads(b: Boundary, before: Mapping[str, Any], *, at_calls: set[int]) -> None:
    """KMS reads are eventually consistent (KMS Developer Guide, "AWS KMS eventual consistency"):
    the GetKeyPolicy calls numbered ``at_calls`` (of the code under test, from 1) answer with
    ``before``, as a replica that has not seen the latest writes would; every other call goes to
    moto."""
    seen = 0

    def handler(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        nonlocal seen
        if getattr(model, "name", "") != "GetKeyPolicy":
            return None
        seen += 1
        if seen not in at_calls:
            return None
        body = {"Policy": json.dumps(before), "PolicyName": "default", "ResponseMetadata": {"HTTPStatusCode": 200}}
        return AWSResponse("https://stale-replica", 200, HTTPHeaders(), None), body

    b.session.events.register("before-call.kms.GetKeyPolicy", handler, unique_id="test-stale-reads")  # type: ignore[arg-type]
    clients.reset(b.session)
