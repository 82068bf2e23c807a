"""An S3 Inventory report is used only when its configuration covers the whole bucket.

S3 lets an inventory configuration carry a ``Filter`` (an object prefix): its report then lists
only that part of the bucket (Amazon S3 User Guide, "Configuring Amazon S3 Inventory"; the
``InventoryConfiguration.Filter`` of the S3 API). An audit that read such a report would never
see the objects outside the prefix, so it lists the bucket instead."""

from __future__ import annotations

from clguard.boundary import inventory
from tests.auditrun import findings, put_inventory, put_inventory_configuration, report, run_audit, summaries
from tests.world import BUCKET, World


def test_a_prefix_filtered_inventory_is_not_used_the_bucket_is_listed(audited: World) -> None:
    # Given a compliant object under images/ and a pre-2023 unencrypted one outside it
    audited.put("images/a.jpg", ServerSideEncryption="AES256")
    audited.put_legacy("other/b.jpg")
    # And the bucket's only inventory configuration is filtered to images/ (its report lists a.jpg only)
    audited.env_set(AUDIT_INVENTORY=put_inventory(audited, BUCKET, [("images/a.jpg", "SSE-S3")]))
    put_inventory_configuration(audited, BUCKET, prefix="images/")

    # When the audit runs
    run_audit(audited)

    # Then the object outside the prefix was found and re-encrypted: the bucket was listed
    assert audited.head("other/b.jpg")["ServerSideEncryption"] == "AES256"
    assert [(f["finding_type"], f["outcome"], f["resource"]["key"]) for f in findings(audited)] == [
        ("OBJECT_UNENCRYPTED", "REMEDIATED", "other/b.jpg")
    ]
    # And the report says why the inventory was not used
    [summary] = summaries(audited)
    assert any("whole bucket" in note and "listed instead" in note for note in report(audited, summary)["notes"])


def test_a_whole_bucket_inventory_is_used(audited: World) -> None:
    # Given an unencrypted object the inventory (of the whole bucket) reports, and one it does not
    # (written after the report: the next report lists it)
    audited.put_legacy("images/a.jpg")
    audited.put_legacy("images/late.jpg")
    audited.env_set(AUDIT_INVENTORY=put_inventory(audited, BUCKET, [("images/a.jpg", "NOT-SSE")]))

    # When the audit runs
    run_audit(audited)

    # Then it read the report, not a listing: only the reported object was checked
    assert [f["resource"]["key"] for f in findings(audited)] == ["images/a.jpg"]


def test_only_enabled_whole_bucket_csv_configurations_count(audited: World) -> None:
    # Given a bucket with a disabled, an ORC, a filtered and a whole-bucket CSV configuration
    put_inventory_configuration(audited, BUCKET, config_id="weekly-orc", fmt="ORC")
    put_inventory_configuration(audited, BUCKET, config_id="images-only", prefix="images/")
    put_inventory_configuration(audited, BUCKET, config_id="all")
    audited.s3.put_bucket_inventory_configuration(
        Bucket=BUCKET,
        Id="off",
        InventoryConfiguration={
            "Id": "off",
            "IsEnabled": False,
            "IncludedObjectVersions": "Current",
            "Schedule": {"Frequency": "Daily"},
            "Destination": {"S3BucketDestination": {"Bucket": "arn:aws:s3:::elsewhere", "Format": "CSV"}},
        },
    )
    # When the usable configurations are read
    # Then only the enabled, unfiltered CSV one is
    assert inventory.whole_bucket_configurations(BUCKET) == {"all"}
