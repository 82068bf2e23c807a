"""Custom Labels Guard: the shared core of both Lambda functions.

Layout (handlers stay thin; nothing above the adapters touches boto3):

- ``config``      Settings from the environment, validated once per cold start.
- ``events``      Typed parsing of the event shapes we accept.
- ``arns``/``principals``  ARN parsing, principal guardrails and CloudTrail caller resolution.
- ``encryption``  Classify an object's encryption and decide what the policy requires.
- ``policy``      Pure key-policy logic: is a principal granted, merge a grant in additively.
- ``findings``    The finding (contract): types, severities, resources, its document and fingerprint.
- ``rendering``   How a finding reads: the e-mail, chat and SNS renderings.
- ``adapters``    Thin AWS adapters (S3, KMS, SNS, SQS, DynamoDB) and the client factory.
- ``locks``       A per-key lease lock in DynamoDB that serializes key-policy edits.
- ``keyaccess``   Ensure principals have key access, within the guardrails.
- ``objects``     Verify (and remediate) one training object.
- ``training``    The CreateProjectVersion / CreateDataset / CopyProjectVersion grant path.
"""
