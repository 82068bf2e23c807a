"""Publish findings to SNS exactly once per condition, and never lose one.

- Idempotent: the powertools idempotency utility (DynamoDB persistence in STATE_TABLE) keyed on
  the finding's fingerprint, so a redelivered event publishes nothing twice. Within one
  invocation an in-memory set spares the DynamoDB round trips.
- Never lost: when Publish fails (after botocore's retries) the finding goes to the verify queue
  as a ``clguard.finding`` message (the findings outbox) and is published from there, retried by
  SQS and kept by its DLQ. If the outbox fails too, the finding is logged at ERROR with its full
  document, counted as ``FindingsUndelivered`` and kept in ``undelivered``: the unit of work
  (:mod:`clguard.reporting.unitofwork`, the only reader of ``undelivered``) then fails so that it
  is retried, after every other finding was tried.
- The findings plane (docs/architecture.md §5, §5a, §5b): before it is sent, a finding gets its
  owner and key alias (:mod:`clguard.reporting.labels`) and the accepted exceptions' verdict
  (:mod:`clguard.reporting.exceptions`; an invalid document is one ``EXCEPTIONS_INVALID`` finding
  per version, published here). After SNS took it, it goes to Security Hub too when
  ``SECURITY_HUB=on`` (:mod:`clguard.reporting.securityhub`: batched, sent by ``flush`` at the
  end of the unit of work). Neither ever stops or delays the SNS publication.
- Never zero times after a death: an idempotency record met INPROGRESS may be a live publisher's
  or one a killed process left (it died between its claim and its acknowledgement, possibly
  inside Publish). The finding is not dropped: it goes to the outbox marked ``in_progress``, and
  the outbox consumer waits (SQS redelivers the message) until that record completes (nothing
  more to do) or its in-progress time runs out (the powertools utility then lets it publish).
  The unit of work's write-ahead intent is thus acknowledged only by SNS or the outbox.
- The outbox consumer publishes at least once: a finding deferred because its publish failed
  whose idempotency record is still INPROGRESS was left so by that failed attempt (its cleanup
  failed too), not by a live publisher.
- The one window left: a death after SNS accepted and before the record says COMPLETED. SNS
  standard topics have no deduplication id, so the retry publishes again (the same
  ``fingerprint``): at least once, never zero times
  (``tests/integration/test_crash_at_every_point.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from clguard.adapters import sns, sqs
from clguard.adapters.clients import translated
from clguard.boundary import outbox
from clguard.boundary.config import Settings
from clguard.errors import AwsError, RetryableError
from clguard.observability import count, logger
from clguard.reporting import exceptions, labels, rendering
from clguard.reporting.findings import Finding, FindingType
from clguard.reporting.securityhub import SecurityHubOutput

IDEMPOTENCY_TTL_SECONDS: Final = 14 * 24 * 3600  # SQS keeps a message (and its DLQ) up to 14 days
IDEMPOTENCY_PREFIX: Final = "clguard-finding"


class Publisher:
    def __init__(self, settings: Settings, *, idempotent: bool = True, lambda_context: Any = None) -> None:
        self.settings = settings
        self.lambda_context = lambda_context
        self.idempotent = idempotent
        self.published: list[Finding] = []
        self.undelivered: list[Finding] = []  # neither SNS nor the outbox took them (logged at ERROR)
        self._seen: set[str] = set()
        self._sent_now: set[str] = set()  # sent by this process (not a stored idempotent result)
        self._once: Callable[..., Any] | None = None
        self._store: Any = None
        self.security_hub = (
            SecurityHubOutput(table=settings.state_table, home=settings.home, member_role=settings.member_role_arn)
            if settings.security_hub
            else None
        )

    def prepared(self, finding: Finding, *, counted: bool = True) -> Finding:
        """The finding with its owner, key alias and the accepted exceptions' verdict; publishes
        the document's EXCEPTIONS_INVALID finding (once per version) when it is invalid.
        ``counted=False``: for the audit report's rows (not a publication: not counted)."""
        finding = labels.labelled_in_its_account(finding, self.settings)
        location = self.settings.exceptions_location
        if location is None or finding.finding_type is FindingType.EXCEPTIONS_INVALID:
            return finding
        loaded = exceptions.current(location)
        if loaded.document is None:
            self.publish(exceptions.invalid_finding(loaded, self.settings))
        return exceptions.apply(finding, loaded, counted=counted)

    def seen_gone(self, resource: object, why: str, *, account: str, region: str) -> None:
        """The condition(s) on ``resource`` are gone (compliant, or deleted): Security Hub's open
        findings on it are closed at the flush (nothing when SECURITY_HUB is off)."""
        if self.security_hub is not None:
            self.security_hub.seen_gone(account, region, resource, why)

    def key_decided(self, key_arn: str, statuses: Mapping[str, str], *, account: str, region: str) -> None:
        """The key decision per principal (keydecision.KeyStatus values) of a usable key: Security
        Hub's findings it shows gone or superseded are closed at the flush (``SecurityHubOutput.key_decided``)."""
        if self.security_hub is not None:
            self.security_hub.key_decided(account, region, key_arn, statuses)

    def key_unusable(self, key_arn: str, state: str | None, *, not_found: bool, account: str, region: str) -> None:
        """A key that cannot serve training: deleted or pending deletion, its access findings are
        archived at the flush (``SecurityHubOutput.key_unusable``)."""
        if self.security_hub is not None:
            self.security_hub.key_unusable(account, region, key_arn, state, not_found=not_found)

    def flush(self) -> None:
        """The end of a unit of work: send what the sibling outputs hold (Security Hub). Never raises."""
        if self.security_hub is not None:
            self.security_hub.flush()

    def _send(self, finding: Finding) -> str:
        return sns.publish(
            self.settings.alert_topic_arn,
            subject=rendering.subject(finding),
            message=rendering.sns_message(finding),
            attributes=rendering.message_attributes(finding),
        )

    def _publish_once(self) -> Callable[..., Any]:
        if self._once is None:
            # Imported on first use: the compliant path never publishes and keeps a small cold start.
            from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415
                DynamoDBPersistenceLayer,
                IdempotencyConfig,
                idempotent_function,
            )

            from clguard.adapters.clients import client  # noqa: PLC0415

            store = self._store = DynamoDBPersistenceLayer(
                table_name=self.settings.state_table, boto3_client=client("dynamodb")
            )
            config = IdempotencyConfig(
                event_key_jmespath="fingerprint",
                raise_on_no_idempotency_key=True,
                expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
                use_local_cache=False,
            )
            if self.lambda_context is not None:
                config.register_lambda_context(self.lambda_context)
            publisher = self

            def publish_finding(*, record: dict[str, Any]) -> dict[str, Any]:
                finding: Finding = record["finding"]
                message_id = publisher._send(finding)
                publisher._sent_now.add(record["fingerprint"])
                return {"message_id": message_id}

            # One key namespace for both functions: the same condition found by the grant function
            # (inline) and by the verify function (fan-out, outbox) is one finding.
            self._once = idempotent_function(
                data_keyword_argument="record", persistence_store=store, config=config, key_prefix=IDEMPOTENCY_PREFIX
            )(publish_finding)
        return self._once

    def publish(self, finding: Finding, *, defer: bool = True, in_progress: bool = False) -> bool:
        """Publish unless this condition was already published. True when it was sent now.

        Never raises for a finding it could not deliver (the next finding must still be tried):
        see ``undelivered`` (read by :mod:`clguard.reporting.unitofwork`). ``defer=False`` (the outbox consumer
        itself): a failure raises, so the outbox message fails, is retried by SQS and ends in the
        DLQ, instead of being re-queued forever. ``in_progress`` (the outbox consumer): the
        message was deferred because the record was in progress; while it still is, raise
        (SQS redelivers the message later).
        """
        from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
        )

        fingerprint = finding.fingerprint()
        if fingerprint in self._seen:
            return False
        finding = self.prepared(finding)
        record = {"fingerprint": fingerprint, "finding": finding}
        try:
            if self.idempotent:
                try:
                    # The idempotency utility's own DynamoDB calls raise our errors too.
                    with translated():
                        self._publish_once()(record=record)
                    sent = fingerprint in self._sent_now
                except IdempotencyAlreadyInProgressError:
                    if defer:
                        # Another invocation is publishing this very finding, or died doing it:
                        # the outbox waits for its record to complete or expire.
                        logger.info(
                            "finding's idempotency record is in progress; handing it to the outbox",
                            extra={"fingerprint": fingerprint},
                        )
                        if not self._defer(finding, None, in_progress=True):
                            self._undeliverable(finding, RetryableError("idempotency record in progress"))
                            return False
                        self._seen.add(fingerprint)
                        return False
                    if in_progress:
                        raise RetryableError(
                            f"finding {fingerprint} is still being published elsewhere (or its publisher died "
                            "and its in-progress time has not run out): retried later"
                        ) from None
                    self._publish_stuck(record)
                    sent = True
            else:
                self._send(finding)
                sent = True
        except (AwsError, IdempotencyPersistenceLayerError) as error:
            # SNS failed, or the idempotency store did (before or after the publish: the outbox
            # then publishes at least once, never zero times).
            if not defer:
                raise
            if not self._defer(finding, error):
                self._undeliverable(finding, error)
                return False
            self._seen.add(fingerprint)
            return False
        self._seen.add(fingerprint)
        if not sent and self.security_hub is not None:
            self.security_hub.still_open(finding)  # published before: reopened in Security Hub if closed since
        if sent:
            self.published.append(finding)
            if self.security_hub is not None:
                self.security_hub.add(finding)
            count("FindingsPublished", account=finding.account)
            logger.info(
                "finding published",
                extra={
                    "finding_type": finding.finding_type.value,
                    "outcome": finding.outcome.value,
                    "resource": finding.resource.label(),
                    "fingerprint": fingerprint,
                },
            )
        return sent

    def _publish_stuck(self, record: dict[str, Any]) -> None:
        """The outbox consumer met an INPROGRESS record: publish anyway (at least once), then
        mark the record done so later copies of the outbox message publish nothing more."""
        finding: Finding = record["finding"]
        logger.warning(
            "outbox: the finding's idempotency record was left in progress by the failed attempt; publishing",
            extra={"fingerprint": record["fingerprint"]},
        )
        message_id = self._send(finding)
        try:
            with translated():
                self._store.save_success(data=record, result={"message_id": message_id})
        except AwsError as error:
            logger.warning("could not mark the finding published", extra={"error": str(error)})

    def _undeliverable(self, finding: Finding, error: BaseException) -> None:
        """Neither SNS nor the outbox took the finding: it survives in this log line (and in a
        retry of the unit of work, which :mod:`clguard.reporting.unitofwork` asks for)."""
        self.undelivered.append(finding)
        count("FindingsUndelivered")
        logger.error(
            "finding undelivered: SNS and the findings outbox both failed; the unit of work will be retried",
            extra={"error": str(error), "finding": finding.document(), "fingerprint": finding.fingerprint()},
        )

    def _defer(self, finding: Finding, error: BaseException | None, *, in_progress: bool = False) -> bool:
        queue = self.settings.verify_queue_url
        if error is not None:
            logger.warning(
                "publishing a finding failed; deferring it to the findings outbox",
                extra={"error": str(error), "finding": finding.document(), "queue": queue},
            )
        if not queue:
            return False
        try:
            sqs.send(queue, outbox.encode(finding, in_progress=in_progress))
        except AwsError as outbox_error:
            logger.warning("the findings outbox failed too", extra={"error": str(outbox_error)})
            return False
        count("FindingsDeferred")
        return True
