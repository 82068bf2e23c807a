"""clguard.adapters.s3.acl_grants: an object ACL as the grant parameters of a copy."""

from __future__ import annotations

from typing import Any

import pytest

from clguard.adapters import s3
from clguard.boundary.s3ref import S3ObjectRef

OWNER = "owner-canonical-id"
PARTNER = "partner-canonical-id"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


class FakeS3:
    def __init__(self, grants: list[dict[str, Any]]) -> None:
        self.grants = grants
        self.asked: dict[str, Any] = {}

    def get_object_acl(self, **params: Any) -> dict[str, Any]:
        self.asked = params
        return {"Owner": {"ID": OWNER}, "Grants": self.grants}


def grant(permission: str, **grantee: str) -> dict[str, Any]:
    return {"Grantee": grantee, "Permission": permission}


def with_acl(monkeypatch: pytest.MonkeyPatch, *grants: dict[str, Any]) -> FakeS3:
    fake = FakeS3(list(grants))
    monkeypatch.setattr(s3, "client", lambda service: fake)
    return fake


def test_the_default_acl_needs_no_grant_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the owner's FULL_CONTROL only (also what "bucket owner enforced" buckets answer)
    with_acl(monkeypatch, grant("FULL_CONTROL", Type="CanonicalUser", ID=OWNER))

    # When the grants are read / Then the copy sends none
    assert s3.acl_grants(S3ObjectRef("b", "k")) == {}


def test_every_grant_is_carried_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the owner, a partner's READ and READ_ACP, and a public READ
    fake = with_acl(
        monkeypatch,
        grant("FULL_CONTROL", Type="CanonicalUser", ID=OWNER),
        grant("READ", Type="CanonicalUser", ID=PARTNER),
        grant("READ_ACP", Type="CanonicalUser", ID=PARTNER),
        grant("READ", Type="Group", URI=ALL_USERS),
    )

    # When the grants of a version are read
    params = s3.acl_grants(S3ObjectRef("b", "k", "v1"))

    # Then each permission lists its grantees, and that version's ACL was asked for
    assert params == {
        "GrantFullControl": f'id="{OWNER}"',
        "GrantRead": f'id="{PARTNER}", uri="{ALL_USERS}"',
        "GrantReadACP": f'id="{PARTNER}"',
    }
    assert fake.asked == {"Bucket": "b", "Key": "k", "VersionId": "v1"}


@pytest.mark.parametrize(
    "odd",
    [grant("WRITE", Type="CanonicalUser", ID=PARTNER), grant("READ", Type="Unknown")],
    ids=["write-permission", "unknown-grantee"],
)
def test_a_grant_a_copy_cannot_express_is_refused(monkeypatch: pytest.MonkeyPatch, odd: dict[str, Any]) -> None:
    # Given an ACL with a grant that grant headers cannot express
    with_acl(monkeypatch, grant("FULL_CONTROL", Type="CanonicalUser", ID=OWNER), odd)

    # When the grants are read / Then the copy is refused rather than dropping the grant
    with pytest.raises(s3.UnsupportedAcl):
        s3.acl_grants(S3ObjectRef("b", "k"))
