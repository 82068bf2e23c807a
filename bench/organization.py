"""Figure 10: the monthly cost of the guard at organization scale, from what this run measured.

One billion existing objects audited once a month from S3 Inventory and ten million new objects a
month across 200 member accounts (each forwarded to the central bus), priced with
``bench.cost.organization_month`` from the per-million costs of figures 1a and 7b. The anchor is the
same coverage with a HeadObject per existing object (figure 7a's audit, listed page by page): the
goal is a ratio of the two, so a machine that measures more CPU per object moves both sides.
"""

from __future__ import annotations

from bench import cost
from bench.common import Figure, progress

EXISTING = 1_000_000_000
NEW_PER_MONTH = 10_000_000
ACCOUNTS = 200
GOAL = 0.1

_EVENT = "cost_per_million_compliant_event"
_INVENTORY = "audit_cost_per_million_objects_inventory"
_LISTED = "audit_cost_per_million_objects_listed"
NEEDS = (_EVENT, _INVENTORY, _LISTED)


def organization_figures(measured: list[Figure]) -> list[Figure]:
    by_key = {f.key: f.value for f in measured if f.value is not None}
    missing = [k for k in NEEDS if k not in by_key]
    if missing:
        raise ValueError(f"figure 10 needs figures 1 and 7 of the same run: missing {', '.join(missing)}")
    progress(
        f"figure 10: monthly cost for {EXISTING:,} existing and {NEW_PER_MONTH:,} new objects, {ACCOUNTS} accounts"
    )

    def month(audit: str, *, from_inventory: bool) -> cost.OrganizationMonth:
        return cost.organization_month(
            existing=EXISTING,
            new=NEW_PER_MONTH,
            accounts=ACCOUNTS,
            audit_usd_per_million=by_key[audit],
            event_usd_per_million=by_key[_EVENT],
            from_inventory=from_inventory,
        )

    guard, heads = month(_INVENTORY, from_inventory=True), month(_LISTED, from_inventory=False)
    ratio = guard.total / heads.total
    g, h = guard.as_dict(), heads.as_dict()
    return [
        Figure(
            "organization_month_cost_ratio",
            f"Monthly cost, {EXISTING / 1e9:.0f} billion existing objects audited from S3 Inventory + "
            f"{NEW_PER_MONTH / 1e6:.0f} million new objects across {ACCOUNTS} accounts ÷ the same coverage with a "
            "HeadObject per existing object",
            ratio,
            f"{ratio:.3f} (${guard.total:,.0f} ÷ ${heads.total:,.0f})",
            GOAL,
            f"≤ {GOAL}",
            detail=f"guard: audit ${g['audit']:,.2f} + S3 Inventory ${g['inventory']:,.2f} (list price and one "
            f"month of gzip reports) + new-object events ${g['events']:,.2f} + EventBridge cross-account delivery "
            f"${g['forwarding']:,.2f}; HeadObject per object: audit ${h['audit']:,.2f} + the same events and "
            f"forwarding; {ACCOUNTS} member role sessions a run (STS AssumeRole: no charge); per-million inputs "
            f"from figures 1a (${by_key[_EVENT]:.3f}), 7b (${by_key[_INVENTORY]:.4f}) "
            f"and 7a (${by_key[_LISTED]:.3f}); us-east-1 list prices of {cost.PRICES_AS_OF} (bench/README.md)",
            data={"guard": g, "head_per_object": h, "inputs_usd_per_million": {k: by_key[k] for k in NEEDS}},
        )
    ]
