"""The boundary: every input the guard accepts (events, its own messages, settings, manifests,
inventories) is parsed here once, into frozen types; what cannot be parsed raises InvalidEvent
naming the field. Nothing here calls AWS except through ``clguard.adapters`` (manifests and
inventories are streamed). The module map is in ``clguard/__init__.py``."""
