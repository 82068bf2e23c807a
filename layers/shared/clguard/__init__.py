"""Custom Labels Guard: the shared core of the four Lambda functions (the layer).

Handlers (``functions/*/app.py``) stay thin: settings from the environment, then one call into a
use case. The folders are the architecture (``docs/architecture.md`` §2; every §N below is one of
its sections), and dependencies point one way::

    functions/*/app.py -> usecases -> rules, boundary, state, reporting -> adapters -> boto3

(the frozen values -- Settings, S3ObjectRef, ObjectEncryption, Finding -- are shared by the
layers that take them: the rules decide on Settings, the adapters take S3ObjectRef).

Inputs enter in ``boundary`` (parsed once, into frozen types), decisions are made in ``rules`` (pure)
and in the plans of ``usecases``, and AWS is touched only in ``adapters`` (``tests/unit/test_layering.py``
checks both directions). Every module of the package, by role (``tests/unit/test_maps.py`` keeps
this list complete):

- ``errors``          The exception hierarchy, shared by every layer: retryable AWS errors, refusals,
                      invalid input, guardrails.
- ``observability``   Logger and Metrics (Powertools), created once.
- ``permissions``     The IAM actions each function needs, from the operations its code calls.
- ``__main__``        ``python -m clguard``: the operator's command (``cli.main``).

The operator's command ``clguard`` (design §12; on top, like the handlers: nothing imports it)

- ``cli``                      The operator's command: preflight, doctor, explain, status (not on the functions'
                               import path; rich is imported only to print for people).
- ``cli.main``                 Arguments, where the settings come from (``--stack`` or the
                               environment), exit statuses, ``--json``.
- ``cli.render``               The commands' documents as rich tables, every value shown as text.

Boundary: each input parsed once, into frozen types

- ``boundary``                 Inputs: events, messages, settings, manifests, inventories.
- ``boundary.parsing``         The one helper family for untrusted JSON (typed fields, InvalidEvent
                               naming the field) and the one S3 object-key rule.
- ``boundary.s3ref``           S3ObjectRef: the one reference to an S3 object (bucket, key, version).
- ``boundary.config``          Settings from the environment, validated once per cold start (§4).
- ``boundary.lambda_context``  What the handlers take from the Lambda context (the account id).
- ``boundary.events``          Every event shape we accept (verify-queue bodies, CloudTrail training
                               calls); anything else raises InvalidEvent. The S3 key readings of each
                               source. The one entry point for verify-queue bodies (the guard's own
                               kinds decoded by ``fanout`` and ``outbox``).
- ``boundary.fanout``          Our ``clguard.verify-objects`` message (v1 image checks, v2 the audit's
                               fan-out): its shape, version, encoders (kept under the SQS limit) and
                               decoder.
- ``boundary.outbox``          Our ``clguard.finding`` message (the findings outbox): encode, decode.
- ``boundary.work``            ObjectWork: one object to verify, whatever source of work asked for it.
- ``boundary.manifest``        Stream a Custom Labels manifest (JSON Lines of ``source-ref``) in
                               bounded memory.
- ``boundary.inventory``       S3 Inventory reports: a bucket's latest report and its CSV rows, streamed.
- ``boundary.declaration``     What a member account declares about itself in its member stack (its
                               buckets, re-encryption key, training principals), parsed as data.

Rules: pure, no I/O, property-tested

- ``rules``                    Decisions without I/O.
- ``rules.names``              The one S3 bucket-name rule (current and legacy naming rules).
- ``rules.arns``               KMS key and IAM principal ARNs, parsed and compared exactly.
- ``rules.principals``         Guardrails (who may be added to a key policy, §6) and the caller of a
                               CloudTrail record (§7).
- ``rules.encryption``         Classify an object's encryption; decide the finding and the safe
                               remediation.
- ``rules.exceptions``         Accepted exceptions: the document's rules (validated with clear errors),
                               which findings an exception mutes, expiry.
- ``rules.snsbatches``         SNS PublishBatch requests planned from messages (10 entries, 256 KiB).
- ``rules.policy``             Key-policy logic: is a principal granted (and no Deny cancels it),
                               merge a grant into the owned statements additively.

Use cases: one per function, and the steps they share

- ``usecases``                 What each function does, start to end.
- ``usecases.verify``          The verify function: one SQS batch (partial batch response), key work
                               shared.
- ``usecases.objects``         Verify one training object (compliant by its record, gone, superseded,
                               checked), then the key access of the key it ends under.
- ``usecases.remediation``     Re-encrypt one object in place when that is safe: its lease, re-inspection,
                               precondition, write-ahead intent, loop guard; a retry's replay.
- ``usecases.prefetch``        HeadPrefetch: a batch's HeadObject calls overlapped on a bounded pool.
- ``usecases.keyaccess``       Ensure principals can use one key for training, within the guardrails
                               (the ordered checks, their findings, an earlier attempt's replay).
- ``usecases.keydecision``     One key, read-only: the context, whether it can serve training, what
                               checks 2-5 decide per principal (shared with preflight and explain).
- ``usecases.keywrite``        The key's writes under its lease: opt-in re-read, a read that shows our
                               recent writes, lost or erased grants after an expired lease.
- ``usecases.keyattempt``      One read-merge-write of a key policy: write-ahead, 32 KB, PutKeyPolicy
                               (MalformedPolicyDocument retries), the read-back.
- ``usecases.keygroup``        Group commit: a grant that finds the key's lease taken joins the
                               holder's write (enqueue, wait, report); the holder takes, re-checks,
                               writes and settles the waiting grants.
- ``usecases.training``        The grant function: a Rekognition training call's plan carried out (keys,
                               manifests or datasets, images inline or fanned out, output bucket).
- ``usecases.trainingplan``    A training call -> a pure plan, no AWS call: should the guard act, who
                               is granted, keys and their needs, manifests or datasets, output bucket.
- ``usecases.audit``           The audit function: what no event announces (existing objects, keys in
                               use), listed page by page, fanned out, resumed by self-invocation.
- ``usecases.auditlist``       One audit invocation's share: each bucket listed or read from its S3
                               Inventory, fanned out to the verify queue, resumable from a cursor.
- ``usecases.auditmembers``    Which buckets an audit run covers in which account, the members it
                               cannot reach, and each one's failed trainings.
- ``usecases.auditrecord``     The audit run's record (created once, tallies added, closed once with
                               the report and its one summary).
- ``usecases.audittally``      The verify side of an audit run: findings scoped by the state checked,
                               each message's tally and report rows.
- ``usecases.failed_trainings`` Failed trainings (access reasons) of the look-back: one diagnosed
                               TRAINING_FAILED per version.
- ``usecases.keylifecycle``    A key disabled or scheduled for deletion (KMS CloudTrail event, the
                               audit's bounded sweep): re-read, its Security Hub findings closed.
- ``usecases.digest``          The digest function: the alerts topic's findings grouped for people.
- ``usecases.digestmessages``  The digest's messages one at a time: a finding alone, a forwarded
                               message, a batch's accepted exceptions; the Slack thread of each.
- ``usecases.digestgroups``    A digest of several findings of one kind about one place, in named
                               steps (place, e-mail, chat, document).
- ``usecases.preflight``       ``clguard preflight``: would a training call's keys be usable? The
                               grant path's planner and key decision (``keydecision.decide``), read-only.
- ``usecases.doctor``          ``clguard doctor``: one small named check per piece that silently
                               breaks a deployed guard, each with its fix.
- ``usecases.explain``         ``clguard explain``: one object or key, what the guard knows and would
                               do, with the key-policy statements that decide it.
- ``usecases.bulkremediation`` The audit's bulk re-encryption: past a threshold of objects in one
                               bucket, an S3 Batch Operations job (manifest, job, reconciled report).
- ``usecases.status``          ``clguard status``: the last audit, its open findings and key-policy
                               changes, the stack's alarms; exit 0 healthy / 2 attention / 3 cannot tell.
- ``usecases.accounts``        Which account a unit of work acts in (own, or a member of
                               MEMBER_ACCOUNTS), with the settings that member declares.

State: what the guard keeps between calls

- ``state``                    Leases, the write-ahead journal, what is known of keys.
- ``state.locks``              Lease: a lease in DynamoDB per KMS key (every key-policy edit runs inside
                               it) or per object (one remediation at a time).
- ``state.intents``            Write-ahead of the findings of changes, so a change made just before the
                               runtime died is still reported by the retry.
- ``state.writejournal``       The per-key journal of key-policy writes (recent principals written),
                               pruned to a time horizon and a byte bound (DynamoDB's 400 KB item).
- ``state.pendinggrants``      Group commit's per-key record: the principals waiting for the key's
                               lease, taken and settled by its holder (bounded entries, TTL).
- ``state.keydirectory``       What we know about KMS keys (description, tags, policy), read once per
                               batch.
- ``state.openfindings``       The open Security Hub findings imported, per resource (bounded, TTL),
                               so a condition later seen gone closes its finding.
- ``state.auditruns``         The audit's run records: one item per run (how it started, counters,
                               notes, listed, finalized) and the run started last.
- ``state.auditrows``         The audit report's records: each run's rows (bounded, content-addressed
                               items) and the trend of the last runs.
- ``state.bulkjobs``          The S3 Batch Operations jobs of a bucket not settled yet (write-ahead of
                               each job, reconciled by the next run), bounded per bucket.
- ``state.copymarks``         The object states the guard's own copies produced (the loop guard):
                               one small item per copy, TTL an hour.
- ``state.trainingalerts``    Which failed training versions were alerted (once per version).
- ``state.firstseen``         When each open condition was first seen (the audit report's "since"):
                               one small item per condition, TTL refreshed while it stays open.

Reporting: the finding, its renderings, its delivery

- ``reporting``                Findings and reports.
- ``reporting.findings``       The finding (the contract, §5): types, severities, resources, its
                               document and fingerprint.
- ``reporting.rendering``      How a finding reads: the e-mail, chat and SNS renderings.
- ``reporting.publisher``      Publish each finding once per condition, never lose one (outbox, SQS).
- ``reporting.unitofwork``     Change, then report it exactly once: a unit retried as a whole and each
                               change in it (write-ahead intent, findings, acknowledgement).
- ``reporting.labels``         Names people know: the owner (OWNER_TAG_KEY tag) and the key's alias,
                               read once per bucket or key.
- ``reporting.exceptions``     The accepted-exceptions document in use: read (SSM, S3), cached, applied.
- ``reporting.asff``           A finding in the AWS Security Finding Format (built, and checked
                               against the documented rules).
- ``reporting.securityhub``    Findings into Security Hub: batched, paced, retried, workflow set.
- ``reporting.auditreport``    The audit's report: its rows and their CSV and JSON Lines exports, written
                               beside its data and the page; the run's summary message.
- ``reporting.auditdata``      The audit report's data from the run record: buckets, keys in use and who
                               can use them, accounts, failed trainings, totals by type.
- ``reporting.auditpage``      The audit report as one server-rendered HTML page: its layout (summary,
                               rows by section and type, accounts, buckets, keys, trainings, notes).
- ``reporting.htmlparts``      The page's HTML, safe by construction: every value escaped for its
                               context (text, attribute, inline JSON), tables and cells built on it.
- ``reporting.pagestyle``      The page's style and script, and the strict CSP that allows exactly them.
- ``reporting.audittrend``     The page's trend: open conditions per type over the last runs, as
                               inline SVG and as a table.

Adapters: the only modules that call AWS; each declares its ``IAM_ACTIONS``

- ``adapters``                 The adapters' package.
- ``adapters.clients``         One lazy, cached client per service (one botocore Config); member
                               roles; AWS errors translated into ``errors``.
- ``adapters.s3``              Inspect objects, re-encrypt them in place, stream manifests, bucket
                               defaults.
- ``adapters.kms``             Describe keys (resolve aliases), read tags, read and write key policies.
- ``adapters.dynamodb``        Conditional writes on the state table (lease locks, loop markers).
- ``adapters.rekognition``     Custom Labels projects, datasets, dataset entries, project versions
                               (paged).
- ``adapters.sns``             Publish one finding, or up to ten in one PublishBatch request.
- ``adapters.ssm``             Read a parameter (the accepted-exceptions document).
- ``adapters.securityhub``     Import findings (BatchImportFindings), set their workflow
                               (BatchUpdateFindings).
- ``adapters.sqs``             Put work (and outbox findings) on the verify queue.
- ``adapters.lambda_``         Invoke a function asynchronously (the audit continues itself).
- ``adapters.organizations``   The organization of the account acted in (for Deny conditions on it).
- ``adapters.declarations``    A member's declaration (SSM parameter), read through the member role.
- ``adapters.s3batch``        S3 Batch Operations (S3 Control): create one copy-in-place job, read its
                               state.
- ``adapters.operator``        The operator command's own reads (roles, a stack's function
                               environment, notifications, trails, subscriptions, alarms).
"""
