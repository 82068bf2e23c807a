"""AWS Security Hub as documented, where moto 5.2.5 differs: importing findings, and the
customer's updates to them.

``SecurityHubFindings`` reproduces the AWS Security Hub API Reference, "BatchImportFindings"
(https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchImportFindings.html) and
"BatchUpdateFindings", and the Security Hub User Guide, "Required top-level ASFF attributes" and
"BatchImportFindings for finding providers" (which attributes a provider cannot change).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from moto.core.exceptions import ServiceException
from moto.securityhub import urls as securityhub_urls
from moto.securityhub.models import Finding as SecurityHubFinding
from moto.securityhub.models import SecurityHubBackend
from moto.securityhub.responses import SecurityHubResponse

from localaws.doubles.base import Double

if TYPE_CHECKING:
    pass


# The top-level attributes every finding must have (Security Hub user guide, "Required top-level
# ASFF attributes").
_ASFF_REQUIRED = (
    "AwsAccountId",
    "CreatedAt",
    "Description",
    "GeneratorId",
    "Id",
    "ProductArn",
    "Resources",
    "SchemaVersion",
    "Severity",
    "Title",
    "Types",
    "UpdatedAt",
)
# What a finding provider cannot change by import once a finding exists (Security Hub user guide,
# "BatchImportFindings for finding providers"): customers own these, through BatchUpdateFindings.
_CUSTOMER_OWNED = ("Note", "UserDefinedFields", "VerificationState", "Workflow")


class _SecurityHubError(ServiceException):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.code_status = status  # ServiceException reads these two
        super().__init__(message)


class SecurityHubFindings(Double):
    """Security Hub as its API reference documents it, where moto 5.2.5 differs:

    - ``BatchImportFindings`` into an account and region where Security Hub is not enabled fails
      with ``InvalidAccessException`` (moto accepts it); a finding without a required attribute,
      or on another account's product, is a ``FailedFindings`` entry; at most 100 findings a call;
    - an import that updates an existing finding leaves ``Note``, ``UserDefinedFields``,
      ``VerificationState`` and ``Workflow`` as they were (moto overwrites them), except that a
      ``NOTIFIED`` or ``RESOLVED`` workflow is reset to ``NEW`` when the import moves
      ``RecordState`` from ``ARCHIVED`` to ``ACTIVE`` or ``Compliance.Status`` from ``PASSED`` to
      another status (API reference, ``Workflow``: a closed finding seen again is reopened);
    - ``BatchUpdateFindings`` (absent in moto): sets ``Workflow.Status`` and ``Note`` of up to
      100 findings named by ``Id`` and ``ProductArn``; unknown ones are ``UnprocessedFindings``
      (``FindingNotFound``).

    ``calls`` counts the calls per operation (the burst test reads it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def _count(self, operation: str) -> None:
        with self._guard:
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        double = self

        def batch_import_findings(resp: SecurityHubResponse) -> str:
            double._count("BatchImportFindings")
            backend = resp.securityhub_backend
            _require_enabled(backend, "BatchImportFindings")
            findings = json.loads(resp.body).get("Findings", [])
            if not isinstance(findings, list) or not 1 <= len(findings) <= 100:
                raise _SecurityHubError("InvalidInputException", "Findings must hold 1 to 100 findings")
            by_id = {f.id: f for f in backend.findings}
            failed = [_import_one(backend, by_id, f) for f in findings]
            failures = [f for f in failed if f is not None]
            return json.dumps(
                {
                    "FailedCount": len(failures),
                    "SuccessCount": len(findings) - len(failures),
                    "FailedFindings": failures,
                }
            )

        def batch_update_findings(resp: SecurityHubResponse) -> str:
            double._count("BatchUpdateFindings")
            backend = resp.securityhub_backend
            _require_enabled(backend, "BatchUpdateFindings")
            body = json.loads(resp.body)
            identifiers = body.get("FindingIdentifiers", [])
            if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= 100:
                raise _SecurityHubError("InvalidInputException", "FindingIdentifiers must hold 1 to 100 findings")
            by_id = {f.id: f for f in backend.findings}
            processed, unprocessed = [], []
            for identifier in identifiers:
                found = by_id.get(identifier.get("Id"))
                if found is None or found.data.get("ProductArn") != identifier.get("ProductArn"):
                    unprocessed.append(
                        {"FindingIdentifier": identifier, "ErrorCode": "FindingNotFound", "ErrorMessage": "not found"}
                    )
                    continue
                if "Workflow" in body:
                    found.data["Workflow"] = {"Status": body["Workflow"]["Status"]}
                if "Note" in body:
                    found.data["Note"] = {**body["Note"], "UpdatedAt": _now_iso()}
                processed.append(identifier)
            return json.dumps({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed})

        yield patch.object(SecurityHubResponse, "batch_import_findings", batch_import_findings)
        yield patch.object(SecurityHubResponse, "batch_update_findings", batch_update_findings, create=True)
        # PATCH /findings/batchupdate: moto routes no such path (a new dict, so moto's stays as it was).
        yield patch.object(
            securityhub_urls,
            "url_paths",
            {**securityhub_urls.url_paths, "{0}/findings/batchupdate$": SecurityHubResponse.dispatch},
        )

    @staticmethod
    def findings(account: str = "123456789012", region: str = "us-east-1") -> list[dict[str, Any]]:
        """The findings Security Hub holds in one account and region (as GetFindings returns them)."""
        from moto.securityhub.models import securityhub_backends  # noqa: PLC0415

        return [dict(f.data) for f in securityhub_backends[account][region].findings]


def _now_iso() -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _require_enabled(backend: SecurityHubBackend, operation: str) -> None:
    if not backend.enabled:
        raise _SecurityHubError(
            "InvalidAccessException",
            f"Account {backend.account_id} is not subscribed to AWS Security Hub ({operation})",
            401,
        )


def _reopens(before: Mapping[str, Any], finding: Mapping[str, Any]) -> bool:
    """An import that moves RecordState ARCHIVED -> ACTIVE or Compliance PASSED -> another status:
    a closed finding seen again (API reference, ``Workflow``), whose workflow goes back to NEW."""
    if before.get("RecordState") == "ARCHIVED" and finding.get("RecordState", "ACTIVE") == "ACTIVE":
        return True
    was_passed = (before.get("Compliance") or {}).get("Status") == "PASSED"
    return was_passed and (finding.get("Compliance") or {}).get("Status", "PASSED") != "PASSED"


def _import_one(
    backend: SecurityHubBackend, by_id: dict[str, SecurityHubFinding], finding: Any
) -> dict[str, str] | None:
    if not isinstance(finding, dict):
        return {"Id": "", "ErrorCode": "InvalidInput", "ErrorMessage": "a finding must be an object"}
    missing = [name for name in _ASFF_REQUIRED if name not in finding]
    if missing or not isinstance(finding.get("Resources"), list) or not finding["Resources"]:
        return {
            "Id": str(finding.get("Id", "")),
            "ErrorCode": "InvalidInput",
            "ErrorMessage": f"missing required attribute(s): {', '.join(missing) or 'Resources'}",
        }
    if str(finding.get("ProductArn", "")).split(":")[4:5] != [backend.account_id]:
        # The default product of another account: only that account (or its Security Hub
        # administrator) may import there.
        return {
            "Id": str(finding["Id"]),
            "ErrorCode": "AccessDeniedException",
            "ErrorMessage": f"account {backend.account_id} may not import into {finding.get('ProductArn')}",
        }
    existing = by_id.get(finding["Id"])
    if existing is None:
        created = SecurityHubFinding(finding["Id"], dict(finding))
        backend.findings.append(created)
        by_id[created.id] = created
        return None
    kept = {name: existing.data[name] for name in _CUSTOMER_OWNED if name in existing.data}
    if (kept.get("Workflow") or {}).get("Status") in ("NOTIFIED", "RESOLVED") and _reopens(existing.data, finding):
        kept["Workflow"] = {"Status": "NEW"}
    existing.data = {**finding, **kept}
    return None
