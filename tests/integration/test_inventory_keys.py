"""Keys as S3 Inventory writes them: the CSV ``Key`` column is URL-encoded form-style, a space
as ``+`` and a literal ``+`` as ``%2B`` (the encoding Cloud Custodian had to fix its reader for:
https://github.com/cloud-custodian/cloud-custodian/issues/1997). The audit must check the
objects the rows name, not keys that do not exist."""

from __future__ import annotations

from urllib.parse import quote_plus

from tests.auditrun import findings, put_inventory, run_audit
from tests.world import BUCKET, World


def test_an_inventory_row_with_a_space_in_its_key_reaches_the_object(audited: World) -> None:
    # Given a pre-2023 unencrypted object whose key has a space, and a plain SSE-S3 "a+b.jpg"
    audited.put_legacy("images/red flower.jpg")
    audited.put("images/a+b.jpg", ServerSideEncryption="AES256")
    # And the bucket's inventory report, its keys encoded as S3 encodes them ("red+flower.jpg",
    # "a%2Bb.jpg")
    rows = [("images/red flower.jpg", "NOT-SSE"), ("images/a+b.jpg", "SSE-KMS")]
    audited.env_set(AUDIT_INVENTORY=put_inventory(audited, BUCKET, rows, encode_key=quote_plus))

    # When the audit runs from the inventory
    run_audit(audited)

    # Then the object with the space was found and re-encrypted (not skipped as "gone")
    assert audited.head("images/red flower.jpg")["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"], f["resource"]["key"]) for f in findings(audited)] == [
        ("OBJECT_UNENCRYPTED", "REMEDIATED", "images/red flower.jpg")
    ]
