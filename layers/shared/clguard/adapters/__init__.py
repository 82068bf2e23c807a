"""Thin AWS adapters: the only modules that touch boto3. Each declares the IAM actions it calls
(``IAM_ACTIONS``: operation -> actions) so a test can compare them with template.yaml."""
