"""Custom Labels Guard: the shared core of the four Lambda functions (the layer).

Handlers (``functions/*/app.py``) stay thin: settings from the environment, then one call into a
use case. Dependencies point one way: handlers -> use cases -> rules and adapters; nothing above
the adapters touches boto3. The architecture is in ``docs/architecture.md`` (§2; every §N below
is one of its sections). Every module of the package, by role (``tests/unit/test_maps.py`` keeps
this list complete):

Boundary: each input parsed once, into frozen types

- ``parsing``         The one helper family for untrusted JSON (typed fields, InvalidEvent naming
                      the field) and the one S3 object-key rule.
- ``config``          Settings from the environment, validated once per cold start (§4).
- ``lambda_context``  What the handlers take from the Lambda context (the account id).
- ``events``          Every event shape we accept (verify-queue bodies, CloudTrail training calls);
                      anything else raises InvalidEvent. The S3 key readings of each source. The
                      one entry point for verify-queue bodies (the guard's own kinds decoded by
                      ``fanout`` and ``outbox``).
- ``fanout``          Our ``clguard.verify-objects`` message (v1 image checks, v2 the audit's
                      fan-out): its shape, version, encoders (kept under the SQS limit) and decoder.
- ``outbox``          Our ``clguard.finding`` message (the findings outbox): its encode and decode.
- ``work``            ObjectWork: one object to verify, whatever source of work asked for it.
- ``manifest``        Stream a Custom Labels manifest (JSON Lines of ``source-ref``) in bounded memory.
- ``inventory``       S3 Inventory reports: a bucket's latest report and its CSV rows, streamed.

Rules: pure, no I/O, property-tested

- ``names``           The one S3 bucket-name rule (current and legacy naming rules).
- ``arns``            KMS key and IAM principal ARNs, parsed and compared exactly.
- ``principals``      Guardrails (who may be added to a key policy, §6) and the caller of a
                      CloudTrail record (§7).
- ``encryption``      Classify an object's encryption; decide the finding and the safe remediation.
- ``policy``          Key-policy logic: is a principal granted (and no Deny cancels it), merge a
                      grant into the owned statements additively.

Use cases: one per function, and the steps they share

- ``verify``          The verify function: one SQS batch (partial batch response), key work shared.
- ``objects``         Verify one training object; re-encrypt it in place when that is safe.
- ``keyaccess``       Ensure principals can use one key for training, within the guardrails
                      (the ordered checks, then the locked, re-read, confirmed PutKeyPolicy).
- ``training``        The grant function: a Rekognition training call -> the caller gets the key
                      access training needs (manifests, datasets, KmsKeyId, output bucket).
- ``audit``           The audit function: what no event announces (existing objects, keys in use),
                      listed page by page, fanned out, resumed by self-invocation; the run record.
- ``trainings``       Failed trainings (access reasons): one diagnosed TRAINING_FAILED per version.
- ``digest``          The digest function: the alerts topic's findings grouped for people.
- ``accounts``        Which account a unit of work acts in (own, or a member of MEMBER_ACCOUNTS).

Adapters: the only modules that call AWS; each declares its ``IAM_ACTIONS``

- ``adapters``             The adapters' package.
- ``adapters.clients``     One lazy, cached client per service (one botocore Config); member roles;
                           the transient-error test.
- ``adapters.s3``          Inspect objects, re-encrypt them in place, stream manifests, bucket defaults.
- ``adapters.kms``         Describe keys (resolve aliases), read tags, read and write key policies.
- ``adapters.dynamodb``    Conditional writes on the state table (lease locks, loop markers).
- ``adapters.rekognition`` Custom Labels projects, datasets, dataset entries, project versions (paged).
- ``adapters.sns``         Publish one finding.
- ``adapters.sqs``         Put work (and outbox findings) on the verify queue.
- ``adapters.lambda_``     Invoke a function asynchronously (the audit continues itself).

Findings: the model, its renderings, its delivery

- ``findings``        The finding (the contract, §5): types, severities, resources, its document
                      and fingerprint.
- ``rendering``       How a finding reads: the e-mail, chat and SNS renderings.
- ``publisher``       Publish each finding once per condition, never lose one (the outbox, SQS).
- ``intents``         Write-ahead of the findings of changes, so a change made just before the
                      runtime died is still reported by the retry.
- ``auditreport``     The audit's report: JSON and one self-contained HTML page.

Infrastructure: errors, state, telemetry, permissions

- ``errors``          The exception hierarchy: retryable errors, invalid input, guardrails.
- ``locks``           A lease lock per KMS key in DynamoDB: every key-policy edit runs inside it.
- ``keydirectory``    What we know about KMS keys (description, tags, policy), read once per batch.
- ``observability``   Logger and Metrics (Powertools), created once.
- ``permissions``     The IAM actions each function needs, from the operations its code calls.
"""
