"""What the guard keeps between calls: a lease lock per key, the write-ahead journal of changes'
findings (both in STATE_TABLE), and what is known of each key within a batch. The module map is in
``clguard/__init__.py``."""
