"""The rules: pure decisions, no I/O (bucket names, ARNs, guardrails and callers, encryption,
key policies). Each is property-tested. The module map is in ``clguard/__init__.py``."""
