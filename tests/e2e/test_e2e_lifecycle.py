"""The LocalSystem leaves nothing behind: the server stops and the environment comes back, also
when the code inside fails; and nothing in it can reach a real AWS account."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

from localaws.runtime import LocalSystem


def port_is_open(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((parsed.hostname or "", parsed.port or 0)) == 0


def test_server_stops_and_environment_is_restored_after_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a user environment that points at a real profile and a service endpoint
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.com")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    before = dict(os.environ)

    # When code inside the LocalSystem fails
    with pytest.raises(RuntimeError, match="boom"), LocalSystem() as system:  # noqa: PT012 - the block is the subject
        endpoint = system.endpoint_url
        inside = dict(os.environ)
        assert port_is_open(endpoint)
        raise RuntimeError("boom")

    # Then inside, every client pointed at the local server only
    assert inside["AWS_ENDPOINT_URL"] == endpoint
    assert "AWS_PROFILE" not in inside
    assert "AWS_ENDPOINT_URL_S3" not in inside
    assert inside["AWS_ACCESS_KEY_ID"] == "testing"
    # And afterwards the server is gone and the environment is as it was
    assert not port_is_open(endpoint)
    assert dict(os.environ) == before
