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
- Batched (docs/architecture.md §12): a new finding is *claimed* up front (the persistence
  layer's ``save_inprogress``, the utility's own first step) and queued; the queue goes out as
  one SNS ``PublishBatch`` when it holds a full request (``rules.snsbatches``: 10 entries, or the
  next would pass 256 KiB) and whenever the unit of work asks (``send_queued``, before it checks
  delivery). Each entry is still its own message with the subject, body and attributes a
  ``Publish`` would carry. Per entry: sent -> ``save_success``; ``Failed`` -> retried once in the
  next request, then (or at once for a sender fault, or when the whole call fails) the claim is
  deleted and the finding goes to the outbox, as a refused ``Publish`` did. A death with entries
  queued leaves their claims in progress: the retry hands them to the outbox (the ``in_progress``
  hand-over above). The outbox consumer (``defer=False``) and ``idempotent=False`` keep one
  ``Publish`` per finding: the consumer must fail its own message synchronously.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from clguard.adapters import sns, sqs
from clguard.adapters.clients import translated
from clguard.boundary import outbox
from clguard.boundary.config import Settings
from clguard.errors import AwsError, RetryableError
from clguard.observability import count, logger
from clguard.reporting import exceptions, labels, rendering
from clguard.reporting.findings import Finding, FindingType
from clguard.reporting.securityhub import SecurityHubOutput
from clguard.rules import snsbatches

IDEMPOTENCY_TTL_SECONDS: Final = 14 * 24 * 3600  # SQS keeps a message (and its DLQ) up to 14 days
IDEMPOTENCY_PREFIX: Final = "clguard-finding"
CLAIM_ATTEMPTS: Final = 3  # a record that expires between the claim and its read is claimed again


@dataclass(slots=True)
class _Queued:
    """A claimed finding waiting for its PublishBatch request; ``tries``: requests it failed in."""

    finding: Finding
    record: dict[str, Any]
    entry: snsbatches.Entry
    number: int  # the publisher's claims are numbered in order (``Publisher.claims``)
    tries: int = 0


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
        self._config: Any = None
        self._queue: list[_Queued] = []  # claimed, not yet sent (bounded: sent when a request is full)
        self._claimed = 0  # findings claimed so far (numbers the queue's entries)
        self._lost: set[int] = set()  # claim numbers neither SNS nor the outbox took
        self._inflight: set[int] = set()  # claim numbers of the request being sent (kept if it never returns)
        # (first claim, end, callback): called once those claims are all sent and none was lost
        self._waiting: list[tuple[int, int, Callable[[], None]]] = []
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

    def key_unusable(self, key_arn: str, state: str | None, *, not_found: bool, account: str, region: str) -> bool:
        """A key that cannot serve training: deleted, pending deletion or disabled, its access
        findings are archived at the flush (``SecurityHubOutput.key_unusable``). False when
        nothing is to close (SECURITY_HUB off, or a state that closes nothing)."""
        if self.security_hub is None:
            return False
        return self.security_hub.key_unusable(account, region, key_arn, state, not_found=not_found)

    def member_reached(self, account: str, role_arn: str, claimed: Sequence[str] | None, *, region: str) -> None:
        """The audit read member ``account``'s declaration: Security Hub's findings that it cannot be
        acted in, and those of claims no longer refused (``claimed``: the buckets refused now; None:
        S3 could not settle a claim), are closed at the flush (``SecurityHubOutput.member_reached``)."""
        if self.security_hub is not None:
            self.security_hub.member_reached(account, region, role_arn, claimed)

    def flush(self) -> None:
        """The end of a unit of work: send the queued findings, then what the sibling outputs hold
        (Security Hub, which imports only what SNS took). Never raises."""
        self.send_queued()
        if self.security_hub is not None:
            self.security_hub.flush()

    def send_queued(self) -> None:
        """Send every queued finding now (the unit of work calls it before it checks delivery):
        each ends published, in the outbox, or ``undelivered``. Never raises."""
        while self._queue:
            self._send_batch(len(next(snsbatches.batches([q.entry for q in self._queue]))))
        self._settle()

    @property
    def claims(self) -> int:
        """How many findings this publisher has claimed (the next claim's number)."""
        return self._claimed

    def when_sent(self, since: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once every finding claimed from claim number ``since`` on (until now)
        has been sent and none of them was lost (SNS or the outbox took each); at once when none
        is queued. A finding lost, or a runtime that dies first: never called. The unit of work's
        acknowledgement of a change (``Change``) waits here, so a change's findings ride in the
        unit's requests instead of sending a request of their own."""
        self._waiting.append((since, self.claims, callback))
        self._settle()

    def _settle(self) -> None:
        queued = [q.number for q in self._queue] + sorted(self._inflight)
        waiting, self._waiting = self._waiting, []
        for since, until, callback in waiting:
            if any(since <= n < until for n in queued):
                self._waiting.append((since, until, callback))
            elif not any(since <= n < until for n in self._lost):
                callback()

    def _send(self, finding: Finding) -> str:
        return sns.publish(
            self.settings.alert_topic_arn,
            subject=rendering.subject(finding),
            message=rendering.sns_message(finding),
            attributes=rendering.message_attributes(finding),
        )

    def _idempotency(self) -> tuple[Any, Any]:
        """The powertools persistence layer and its config, configured as the utility configures
        it (same key prefix and key: the batched claims and the utility share their records)."""
        if self._store is None:
            # Imported on first use: the compliant path never publishes and keeps a small cold start.
            from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415
                DynamoDBPersistenceLayer,
                IdempotencyConfig,
            )

            from clguard.adapters.clients import client  # noqa: PLC0415

            config = IdempotencyConfig(
                event_key_jmespath="fingerprint",
                raise_on_no_idempotency_key=True,
                expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
                use_local_cache=False,
            )
            if self.lambda_context is not None:
                config.register_lambda_context(self.lambda_context)
            store = DynamoDBPersistenceLayer(table_name=self.settings.state_table, boto3_client=client("dynamodb"))
            store.configure(config, key_prefix=IDEMPOTENCY_PREFIX)
            self._store, self._config = store, config
        return self._store, self._config

    def _publish_once(self) -> Callable[..., Any]:
        if self._once is None:
            from aws_lambda_powertools.utilities.idempotency import idempotent_function  # noqa: PLC0415

            store, config = self._idempotency()
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
        """Publish unless this condition was already published. True when it is sent now: this
        call claimed it, and it goes out in this publisher's next PublishBatch request (at the
        latest when the unit of work sends the queue: ``published`` lists it once SNS took it);
        should SNS refuse it, the outbox publishes it instead.

        Never raises for a finding it could not deliver (the next finding must still be tried):
        see ``undelivered`` (read by :mod:`clguard.reporting.unitofwork`). ``defer=False`` (the outbox consumer
        itself): one Publish now, and a failure raises, so the outbox message fails, is retried by
        SQS and ends in the DLQ, instead of being re-queued forever. ``in_progress`` (the outbox
        consumer): the message was deferred because the record was in progress; while it still
        is, raise (SQS redelivers the message later).
        """
        from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
        )

        fingerprint = finding.fingerprint()
        if fingerprint in self._seen:
            return False
        finding = self.prepared(finding)
        if self.idempotent and defer and not in_progress:
            return self._claim_and_queue(finding, fingerprint)
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
                        if self._to_outbox(finding, None, in_progress=True):
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
            if self._to_outbox(finding, error):
                self._seen.add(fingerprint)
            return False
        self._seen.add(fingerprint)
        if not sent and self.security_hub is not None:
            self.security_hub.still_open(finding)  # published before: reopened in Security Hub if closed since
        if sent:
            self._published(finding, fingerprint)
        return sent

    def _published(self, finding: Finding, fingerprint: str) -> None:
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

    # --- the batched path: claim, queue, PublishBatch, acknowledge ------------------------------

    def _claim_and_queue(self, finding: Finding, fingerprint: str) -> bool:
        """Claim the finding's idempotency record and queue it (True), or see that it was
        published before (False), or hand it to the outbox: its record is in progress elsewhere
        (``in_progress``), or the store failed (the outbox publishes it at least once)."""
        record = {"fingerprint": fingerprint}
        try:
            with translated():
                claim = self._claim(record)
        except AwsError as error:
            if self._to_outbox(finding, error):
                self._seen.add(fingerprint)
            return False
        self._seen.add(fingerprint)
        if claim == "done":
            if self.security_hub is not None:
                self.security_hub.still_open(finding)  # published before: reopened in Security Hub if closed since
            return False
        if claim == "in_progress":
            logger.info(
                "finding's idempotency record is in progress; handing it to the outbox",
                extra={"fingerprint": fingerprint},
            )
            self._to_outbox(finding, None, in_progress=True)
            return False
        entry = snsbatches.Entry(
            "",
            rendering.subject(finding),
            rendering.sns_message(finding),
            rendering.message_attributes(finding),
        )
        self._queue.append(_Queued(finding, record, entry, self._claimed))
        self._claimed += 1
        self._send_full()
        return True

    def _claim(self, record: dict[str, Any]) -> Literal["claimed", "done", "in_progress"]:
        """The utility's first step (``save_inprogress``) and its reading of a record that exists:
        COMPLETED is done; INPROGRESS (its in-progress time not run out) is another publisher's,
        live or dead; a record that expired or vanished between the claim and the read is
        claimed again."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
            IdempotencyItemAlreadyExistsError,
            IdempotencyItemNotFoundError,
        )

        store, _ = self._idempotency()
        remaining = getattr(self.lambda_context, "get_remaining_time_in_millis", None)
        for _ in range(CLAIM_ATTEMPTS):
            try:
                store.save_inprogress(data=record, remaining_time_in_millis=remaining() if remaining else None)
            except IdempotencyItemAlreadyExistsError as exists:
                existing = exists.old_data_record
                if existing is None:
                    try:
                        existing = store.get_record(data=record)
                    except IdempotencyItemNotFoundError:
                        continue
            else:
                return "claimed"
            if existing.status == "COMPLETED":
                return "done"
            expiry = existing.in_progress_expiry_timestamp
            if existing.status == "INPROGRESS" and (expiry is None or expiry >= int(time.time() * 1000)):
                return "in_progress"
        return "in_progress"  # still inconsistent: the outbox waits for the record to settle

    def _send_full(self) -> None:
        """Send the queue's first request while it is full: 10 entries, or the next entry would
        not fit in 256 KiB."""
        while self._queue:
            first = len(next(snsbatches.batches([q.entry for q in self._queue])))
            if first < len(self._queue) or first >= snsbatches.MAX_ENTRIES:
                self._send_batch(first)
            else:
                return

    def _send_batch(self, n: int) -> None:
        """One PublishBatch request of the queue's first ``n`` entries (ids: their positions)."""
        taken, self._queue = self._queue[:n], self._queue[n:]
        self._inflight.update(q.number for q in taken)  # a runtime that dies inside: never acknowledged
        entries = [
            snsbatches.Entry(str(i), q.entry.subject, q.entry.message, q.entry.attributes) for i, q in enumerate(taken)
        ]
        try:
            result = sns.publish_batch(self.settings.alert_topic_arn, entries)
        except AwsError as error:  # nothing of the request was published: each entry as a refused Publish
            for queued in taken:
                self._release(queued, error)
            self._inflight.difference_update(q.number for q in taken)
            return
        again: list[_Queued] = []
        for i, queued in enumerate(taken):
            entry_id = str(i)
            if entry_id in result.sent:
                self._acknowledge(queued, result.sent[entry_id])
            elif queued.tries == 0 and entry_id in result.failed and entry_id not in result.sender_fault:
                queued.tries += 1
                again.append(queued)
            else:
                # A sender fault (SNS will refuse it as it is), a second failure, or an entry the
                # answer does not name (AWS names each one): not published.
                why = result.failed.get(entry_id, "the PublishBatch answer named neither success nor failure")
                self._release(queued, RetryableError(f"PublishBatch entry failed: {why}"))
        self._queue[:0] = again  # retried once, first in the next request
        self._inflight.difference_update(q.number for q in taken)
        self._settle()

    def _acknowledge(self, queued: _Queued, message_id: str) -> None:
        """SNS took the entry: the record says COMPLETED (the utility's ``save_success``)."""
        store, _ = self._idempotency()
        fingerprint = queued.record["fingerprint"]
        try:
            with translated():
                store.save_success(data=queued.record, result={"message_id": message_id})
        except AwsError as error:
            # Published all the same; the record stays in progress until its time runs out, then
            # a later copy of the condition publishes once more (at least once, never zero times).
            logger.warning(
                "finding published, but its idempotency record could not be marked done",
                extra={"fingerprint": fingerprint, "error": str(error)},
            )
        self._published(queued.finding, fingerprint)

    def _release(self, queued: _Queued, error: BaseException) -> None:
        """SNS did not take the entry: delete its claim (as the utility does when its function
        raises) and hand the finding to the outbox; if that fails too, it is undelivered."""
        store, _ = self._idempotency()
        try:
            with translated():
                store.delete_record(data=queued.record, exception=error)
        except AwsError as delete_error:  # the outbox consumer publishes a record left in progress
            logger.warning("could not release the finding's claim", extra={"error": str(delete_error)})
        if not self._to_outbox(queued.finding, error):
            self._lost.add(queued.number)

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

    def _to_outbox(self, finding: Finding, error: BaseException | None, *, in_progress: bool = False) -> bool:
        """Hand the finding to the findings outbox, after ``error`` (None: its idempotency record
        is ``in_progress`` elsewhere); when the outbox fails too, it is undelivered. Whether the
        outbox took it."""
        if self._defer(finding, error, in_progress=in_progress):
            return True
        self._undeliverable(finding, error or RetryableError("idempotency record in progress"))
        return False

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
