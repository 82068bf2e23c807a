"""The use cases: one per function (verify, training, audit, digest) and the steps they share
(one object, one key's access, failed trainings, the acting account). Each decides with
``clguard.rules`` and acts through ``clguard.adapters``. The module map is in ``clguard/__init__.py``."""
