"""Security Hub: import findings (ASFF) and set their workflow (docs/architecture.md §5a)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clguard.adapters.clients import aws, client

IAM_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "BatchImportFindings": ("securityhub:BatchImportFindings",),
    "BatchUpdateFindings": ("securityhub:BatchUpdateFindings",),
}


@dataclass(frozen=True, slots=True)
class Rejected:
    """One finding a batch call did not take: its ``Id`` and Security Hub's reason."""

    finding_id: str
    code: str
    message: str


@aws
def import_findings(findings: Sequence[Mapping[str, Any]]) -> list[Rejected]:
    """One ``BatchImportFindings`` call (at most 100 findings); the ``FailedFindings``."""
    response = client("securityhub").batch_import_findings(Findings=list(findings))
    return [
        Rejected(str(f.get("Id", "")), str(f.get("ErrorCode", "")), str(f.get("ErrorMessage", "")))
        for f in response.get("FailedFindings", [])
    ]


@aws
def update_findings(
    identifiers: Sequence[tuple[str, str]], *, workflow: str, note: str | None = None
) -> list[Rejected]:
    """One ``BatchUpdateFindings`` call: ``identifiers`` are (Id, ProductArn), at most 100."""
    params: dict[str, Any] = {
        "FindingIdentifiers": [{"Id": i, "ProductArn": p} for i, p in identifiers],
        "Workflow": {"Status": workflow},
    }
    if note:
        params["Note"] = {"Text": note, "UpdatedBy": "custom-labels-guard"}
    response = client("securityhub").batch_update_findings(**params)
    return [
        Rejected(
            str((f.get("FindingIdentifier") or {}).get("Id", "")),
            str(f.get("ErrorCode", "")),
            str(f.get("ErrorMessage", "")),
        )
        for f in response.get("UnprocessedFindings", [])
    ]
