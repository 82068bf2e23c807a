"""Custom Labels Guard on this machine: moto as AWS, the template's routing, the real handlers.

Every module of the package (``tests/unit/test_maps.py`` keeps this list complete):

moto made to behave like AWS

- ``localaws.doubles``: named moto patches that make moto behave like AWS where our code depends
  on it (the table of doubles is its docstring).
- ``localaws.doubles.base``: ``Double``, a named set of patches on moto's classes undone on
  exit, and the one helper that wraps a moto method.
- ``localaws.doubles.s3``: S3 object encryption (UpdateObjectEncryption, SSE-C, default
  encryption, legacy objects), conditional copies, copies' redirects, the EventBridge switch.
- ``localaws.doubles.kms``: KMS key policies validated as PutKeyPolicy documents them, and read
  with the IAM policy grammar.
- ``localaws.doubles.dynamodb``: DynamoDB conditional writes atomic per item, items bounded at
  400 KB.
- ``localaws.doubles.rekognition``: Rekognition Custom Labels projects, datasets, entries and
  project versions, paged as documented.
- ``localaws.doubles.sqs``: SQS ``SenderId``, the principal that sent each message.
- ``localaws.doubles.securityhub``: Security Hub finding imports and customer updates
  (BatchImportFindings, BatchUpdateFindings).
- ``localaws.doubles.sts``: STS ``AssumeRole`` refused for a role that does not trust the caller.
- ``localaws.doubles.sns``: SNS ``PublishBatch``'s 256 KiB request limit, and every entry answered
  (``Successful`` or ``Failed``, one failing alone).
- ``localaws.doubles.cloudformation``: ``StackAlarms``, a stack's ``AWS::CloudWatch::Alarm`` created
  and listed (moto's CloudFormation has no model for it).
- ``localaws.eventbridge``: ``EventBridgeTap``, which rule matched which event on the moto server,
  and the gaps between moto's EventBridge and AWS's on that path.
- ``localaws.doubles.s3control``: ``S3BatchJobs``, the double of S3 Batch Operations jobs (moto has none):
  documented job states, manifest and completion-report formats, copies on moto's S3.

The system, deployed from the template

- ``localaws.template``: the one template loader of the project, and the resolver of the
  intrinsic functions, parameters, rules and function policies it uses.
- ``localaws.runtime``: ``LocalSystem``, the whole system on a moto server on loopback: the facade
  a scenario drives, which puts together the four parts below (and re-exports their names).
- ``localaws.isolation``: the moto server, the environment that keeps every AWS client of this
  process on it (fake credentials, no profile or other endpoint), the boto3 clients.
- ``localaws.deploy``: template.yaml's resources on the server, member.yaml in member accounts.
- ``localaws.stack``: the local deployment as a CloudFormation stack on the server (its
  parameters, functions, topics and alarms), for ``clguard doctor --stack`` and ``status --stack``.
- ``localaws.lambda_service``: the Lambda service: invocations of the real handlers, SQS event
  sources, asynchronous invocations with retries and on-failure records.
- ``localaws.observed``: what happened, read back: invocations, alerts, messages for people,
  metrics, the rules an event matched.
- ``localaws.report``: what happened on a LocalSystem, rendered with rich (invocations, alerts as
  e-mail and Slack show them, key policy changes).

Commands

- ``localaws.demo``: ``python -m localaws.demo`` (``make demo``), a training team's day.
- ``localaws.replay``: ``python -m localaws.replay EVENT.json`` (``make replay``), your event
  through the template's rules and the handlers.
- ``localaws.audit``: ``python -m localaws.audit`` (``make audit``), the audit with its report
  written to this machine.
- ``localaws.exceptions_check``: ``python -m localaws.exceptions_check FILE`` (``make
  exceptions-check``), an accepted-exceptions document checked before it is deployed, with the
  current findings it would mute.

The shared layer folder is put on ``sys.path`` here (after everything else, as Lambda puts
``/opt/python``), so that ``clguard`` imports the same way for the runtime as for the handlers.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = REPO_ROOT / "layers" / "shared"

if not any(Path(entry or ".").resolve() == LAYER_DIR for entry in sys.path):
    sys.path.append(str(LAYER_DIR))
