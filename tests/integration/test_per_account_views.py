"""Per-account views (issue 21): the functions' metrics carry the account that owns the resource.

The dashboard's per-account widget and the digest's grouping are tested beside their code
(tests/infrastructure/test_template_operations.py, tests/unit/test_digest.py); the audit report's
per-account section in tests/integration/test_organization.py.
"""

from __future__ import annotations

import pytest

from tests.integration import test_many_accounts as many
from tests.integration.test_many_accounts import MEMBER, MEMBER_BUCKET, Member, upload_event, verify
from tests.unit.test_account_metrics import series
from tests.world import ACCOUNT, World

member = many.member  # the member fixture: a member account the central deployment serves


def test_a_batch_of_two_accounts_counts_each_account_s_violations_remediations_and_findings(
    world: World, member: Member, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an unencrypted object in the central account's training bucket and one in a member's
    world.put_legacy("images/central.jpg")
    member.world.put_legacy("images/member.jpg", bucket=MEMBER_BUCKET)
    capsys.readouterr()

    # When one verify batch carries both uploads (enforce mode: both are re-encrypted)
    assert verify(world.object_created("images/central.jpg"), upload_event(world, "images/member.jpg")) == {
        "batchItemFailures": []
    }
    out = series(capsys.readouterr().out)

    # Then each account has its own series of violations, remediations and published findings
    by_account = {
        (name, dict(dims)["Account"]): value for (name, dims), value in out.items() if "Account" in dict(dims)
    }
    for account in (ACCOUNT, MEMBER):
        assert by_account[("Violation.OBJECT_UNENCRYPTED", account)] == 1, account
        assert by_account[("Remediations", account)] == 1, account
        assert by_account[("FindingsPublished", account)] == 1, account
    # And the stack's totals (what the alarms and the graphs read) count both, once each
    totals = {name: value for (name, dims), value in out.items() if len(dims) == 1}
    assert totals["Remediations"] == 2
    assert totals["FindingsPublished"] == 2
    assert totals["ObjectsChecked"] == 2
