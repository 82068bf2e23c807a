"""Figure 6: key-policy bytes added per principal, 250 principals added one by one through
``clguard.rules.policy.merge_grants`` (compact serialization: ``policy.size_in_bytes``, the form sent to
PutKeyPolicy), from the default key policy.

Principals are realistic role ARNs of three shapes (plain, with a team path, IAM Identity Center
under /aws-reserved/sso.amazonaws.com/<region>/). The first principal creates the remediator's
statement (a fixed cost, shown apart); every later one must add at most its ARN length + 4 bytes
(``,"<arn>"`` is ARN + 3), and all 250 must fit in 32,768 bytes.
"""

from __future__ import annotations

import time

from bench.common import Figure, progress
from clguard.rules import policy
from tests.world import ACCOUNT, default_key_policy

PRINCIPALS = 250


def principal(n: int) -> str:
    shape = n % 3
    if shape == 0:
        return f"arn:aws:iam::{ACCOUNT}:role/CustomLabelsTrainer{n:03}"
    if shape == 1:
        return f"arn:aws:iam::{ACCOUNT}:role/ml/team-{n:03}/CustomLabelsTrainer"
    return f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_MLTrainer_{n:016x}"


def add_one_by_one(specs: tuple[policy.StatementSpec, ...], count: int) -> tuple[list[int], list[int], int, float]:
    """(bytes added per principal, ARN lengths, final size, seconds per merge)."""
    document = policy.merge_grants(default_key_policy(), [], key_account=ACCOUNT).document
    added, lengths = [], []
    started = time.perf_counter()
    for n in range(count):
        arn = principal(n)
        before = policy.size_in_bytes(document)
        merge = policy.merge_grants(document, [(arn, specs)], key_account=ACCOUNT)
        if len(merge.added) != len(specs):
            raise RuntimeError(f"merge_grants added {merge.added} for {arn}")
        document = merge.document
        added.append(policy.size_in_bytes(document) - before)
        lengths.append(len(arn))
    seconds = (time.perf_counter() - started) / count
    return added, lengths, policy.size_in_bytes(document), seconds


def policy_growth(count: int = PRINCIPALS) -> list[Figure]:
    progress(f"figure 6: key-policy growth, {count} principals through policy.merge_grants")
    added, lengths, final, per_merge = add_one_by_one((policy.TRAINING_DATA,), count)
    overheads = [a - n for a, n in zip(added[1:], lengths[1:], strict=True)]
    worst = max(overheads)
    fits = final <= policy.MAX_POLICY_BYTES
    base = policy.size_in_bytes(default_key_policy())
    mean_arn = sum(lengths) / len(lengths)
    main = Figure(
        "policy_bytes_per_principal",
        f"Key-policy bytes added per principal beyond its ARN ({count} added one by one, compact JSON)",
        float(worst),
        f"ARN + {worst}",
        4.0,
        f"≤ ARN + 4; all {count} ≤ {policy.MAX_POLICY_BYTES:,} B",
        detail=f"principals 2..{count}: ARN + {min(overheads)}..{worst} bytes (ARNs {min(lengths)}-{max(lengths)} "
        f"chars, mean {mean_arn:.0f}); first principal creates the statement: +{added[0]} bytes; "
        f"{base:,} → {final:,} bytes ({'fits' if fits else 'OVER the limit'}); "
        f"{per_merge * 1000:.2f} ms per merge",
        data={
            "principals": count,
            "max_overhead_bytes": worst,
            "min_overhead_bytes": min(overheads),
            "first_principal_bytes": added[0],
            "first_principal_arn_length": lengths[0],
            "initial_policy_bytes": base,
            "final_policy_bytes": final,
            "limit_bytes": policy.MAX_POLICY_BYTES,
            "fits": fits,
            "arn_length_min": min(lengths),
            "arn_length_max": max(lengths),
            "arn_length_mean": round(mean_arn, 1),
            "ms_per_merge": round(per_merge * 1000, 3),
        },
        passed_override=worst <= 4 and fits,
    )
    # Information: the copied-images key (two owned statements, each gains the ARN)
    copied = (policy.COPIED_IMAGES_GRANT, policy.COPIED_IMAGES_USE)
    c_added, c_lengths, _, _ = add_one_by_one(copied, count)
    c_over = max(a - 2 * n for a, n in zip(c_added[1:], c_lengths[1:], strict=True))
    running, fit = base, 0
    for a in c_added:
        running += a
        if running > policy.MAX_POLICY_BYTES:
            break
        fit += 1
    info = Figure(
        "policy_bytes_per_principal_copied_images",
        "Copied-images key (2 owned statements): bytes added per principal beyond 2 × ARN",
        float(c_over),
        f"2×ARN + {c_over}",
        detail=f"first principal +{c_added[0]} bytes (two statements); {fit} of {count} principals fit in "
        f"{policy.MAX_POLICY_BYTES:,} bytes with these ARNs",
        data={"max_overhead_bytes": c_over, "first_principal_bytes": c_added[0], "principals_that_fit": fit},
    )
    return [main, info]
