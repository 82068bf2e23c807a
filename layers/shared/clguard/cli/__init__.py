"""The operator's command ``clguard`` (``python -m clguard``): preflight, doctor. Not on the
functions' import path: nothing under ``functions/`` or the use cases imports it, and ``rich`` is
imported only when a command prints for people."""
