"""Nothing local reaches a real AWS account: the moto server on loopback and the environment
that points every AWS client of this process at it.

- ``moto_server()``: ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port, in this
  process (so the patches of ``localaws.doubles`` hold for it); yields its endpoint URL and
  stops it on exit. ``reset_moto()`` empties it (moto keeps its state in this process).
- ``isolated_from_aws()``: fake credentials (``FAKE_CREDENTIALS``), the region,
  ``AWS_ENDPOINT_URL``, no config or credentials files; the user's AWS profile, CA bundle, FIPS
  switch and service-specific endpoint variables are hidden. Restored on exit.
- ``Clients``: boto3 clients on the local server, one per service (and per member account), for
  setting up a scenario and for the local services; ``forget()`` drops them with ``clguard``'s
  own client and key caches (what a cold start of the functions sees).
- ``environment()`` and ``logger_level()``: the two small context managers the others use
  (a function's environment while it runs is set with ``environment()`` too).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from clguard.adapters import clients as function_clients
from clguard.reporting import exceptions, labels
from clguard.state.keydirectory import clear_cache
from clguard.usecases import accounts

__all__ = [
    "ACCOUNT_ID",
    "FAKE_CREDENTIALS",
    "PARTITION",
    "REGION",
    "Clients",
    "environment",
    "isolated_from_aws",
    "logger_level",
    "moto_server",
    "reset_moto",
]

ACCOUNT_ID: Final = "123456789012"  # moto's default account
REGION: Final = "us-east-1"
PARTITION: Final = "aws"

# Fake credentials for moto (shared with the tests and the benchmark).
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}
# Anything that could send a client elsewhere than the local server.
_HIDDEN_VARIABLES: Final = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CA_BUNDLE", "AWS_USE_FIPS_ENDPOINT")
_HIDDEN_PREFIXES: Final = ("AWS_ENDPOINT_URL_",)


@contextlib.contextmanager
def environment(set_: Mapping[str, str], unset: Sequence[str] = ()) -> Iterator[None]:
    """Set and unset variables of ``os.environ``; restore the previous values on exit."""
    touched = {*set_, *unset}
    previous = {name: os.environ.get(name) for name in touched}
    try:
        for name in unset:
            os.environ.pop(name, None)
        os.environ.update(set_)
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def logger_level(name: str, level: int) -> Iterator[None]:
    """The level of the logger ``name`` while inside; the previous one on exit."""
    target = logging.getLogger(name)
    previous = target.level
    target.setLevel(level)
    try:
        yield
    finally:
        target.setLevel(previous)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 in this process; yields its endpoint URL, stops it on exit."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # port 0: the OS picks a free port, bound at once (no race)
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset_moto(endpoint_url: str) -> None:
    """Empty the moto server at ``endpoint_url`` (every account, every service)."""
    host, _, port = endpoint_url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", "/moto-api/reset")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"moto reset failed: HTTP {response.status}")
    finally:
        connection.close()


def isolated_from_aws(
    endpoint_url: str, region: str, *, account_id: str | None
) -> contextlib.AbstractContextManager[None]:
    """The environment in which every AWS client of this process talks to ``endpoint_url`` only.

    ``account_id``: moto's account for every request (``MOTO_ACCOUNT_ID``; the server runs in
    this process); ``None``: moto takes the account from the credentials, as AWS does (member
    accounts), and a ``MOTO_ACCOUNT_ID`` of the user's is hidden.
    """
    hidden = [*_HIDDEN_VARIABLES, *(n for n in os.environ if n.startswith(_HIDDEN_PREFIXES))]
    pinned = {} if account_id is None else {"MOTO_ACCOUNT_ID": account_id}
    if account_id is None:
        hidden.append("MOTO_ACCOUNT_ID")
    return environment(
        {
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            **pinned,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        },
        hidden,
    )


class Clients:
    """boto3 clients on the local server, created on first use and kept until ``forget()``."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """A client for ``service`` in the local account, with the fake credentials."""
        found = self._clients.get(service)
        if found is None:
            session = boto3.session.Session(
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
                region_name=self.region,
            )
            found = session.client(  # type: ignore[call-overload]
                service,
                endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 2}),
            )
            self._clients[service] = found
        return found

    def member_client(self, account: str, service: str) -> Any:
        """A client for ``service`` acting in the member ``account`` (credentials of a role
        assumed there, so moto takes the account from them)."""
        name = f"{account}:{service}"
        found = self._clients.get(name)
        if found is None:
            credentials = self.client("sts").assume_role(
                RoleArn=f"arn:{PARTITION}:iam::{account}:role/local-setup", RoleSessionName="localaws-setup"
            )["Credentials"]
            found = boto3.session.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name=self.region,
            ).client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]
            self._clients[name] = found
        return found

    def forget(self) -> None:
        """Drop every client: these and the functions' own (``clguard``'s client and key caches)."""
        self._clients.clear()
        function_clients.reset()
        clear_cache()
        accounts.forget()
        labels.forget()  # owner tags and key aliases of the previous world
        exceptions.forget()
