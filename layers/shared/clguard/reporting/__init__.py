"""Reporting: the finding (the contract of docs/architecture.md §5), how it reads, how it is
delivered once and never lost, and the audit's report. The module map is in ``clguard/__init__.py``."""
