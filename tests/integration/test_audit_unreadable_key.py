"""The audit's alerts about a key whose policy the guard may not read: the audit scopes each key
finding by the key's policy (a new policy is a new condition), so a key that refuses the guard
GetKeyPolicy must still be reported, and must not fail the audit message that holds it (and
with it the checks of every other object of that message, and the run's completion).

KMS: no principal has access to a key unless a key policy, IAM policy or grant allows it and
none denies it (https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html): a key
policy may let the guard describe a key and refuse it kms:GetKeyPolicy (AccessDeniedException)."""

from __future__ import annotations

from tests.auditrun import findings, run_audit, summaries
from tests.awscalls import Boundary
from tests.conftest import TRAINER
from tests.world import World


def test_an_object_under_a_key_whose_policy_is_unreadable_is_reported_and_its_audit_message_completes(
    audited: World, calls: Boundary
) -> None:
    # Given a training bucket with an object under a managed key whose policy refuses the guard
    # GetKeyPolicy, and unencrypted objects listed in the same audit message
    audited.role("Trainer", "/ml/")
    audited.env_set(TRAINING_PRINCIPALS=TRAINER)
    key = audited.key()
    audited.put("a/under-key.jpg", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    audited.put_legacy("b/unencrypted-1.jpg")
    audited.put_legacy("b/unencrypted-2.jpg")
    calls.faults.add("GetKeyPolicy", "AccessDeniedException")

    # When the scheduled audit runs and the verify function checks its messages
    summary = run_audit(audited)

    # Then no message failed (run_audit asserts it), the key is reported as unreadable
    found = [(f["finding_type"], f["outcome"], f["kms_key_arn"]) for f in findings(audited)]
    assert ("KEY_UNUSABLE", "REPORTED", key) in found
    # And the other objects of the message were checked and fixed
    assert sum(1 for t, o, _ in found if (t, o) == ("OBJECT_UNENCRYPTED", "REMEDIATED")) == 2
    assert summary["objects_listed"] == 3
    # And the run completed: its summary (and report) were written
    [run] = summaries(audited)
    assert run["objects"] == 3
