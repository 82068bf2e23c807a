"""The one S3 bucket-name rule of the project (configuration, manifests, template).

S3 "Bucket naming rules": general purpose buckets created today have 3-63 characters, lower-case
letters, digits, dots and hyphens, begin and end with a letter or digit, no two adjacent dots,
and are not formatted as an IP address. "Legacy bucket naming rules": buckets created in US East
(N. Virginia) before March 1, 2018 may have up to 255 characters, upper-case letters and
underscores. Both kinds still exist, and training data may sit in either, so a name is accepted
when it follows either set of rules. Reserved prefixes and suffixes (``xn--``, ``-s3alias`` …)
are rules for *creating* buckets, added over the years; older buckets may carry them, so they are
not checked.
"""

from __future__ import annotations

import re
from typing import Final

CURRENT_BUCKET_NAME: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
LEGACY_BUCKET_NAME: Final = re.compile(r"[A-Za-z0-9._-]{3,255}")
_IP_ADDRESS: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def is_current_bucket_name(name: str) -> bool:
    """A name S3 accepts for a new bucket today (in every Region)."""
    return bool(CURRENT_BUCKET_NAME.fullmatch(name)) and ".." not in name and not _IP_ADDRESS.fullmatch(name)


def is_legacy_bucket_name(name: str) -> bool:
    """A name of a US East (N. Virginia) bucket created before March 1, 2018."""
    return bool(LEGACY_BUCKET_NAME.fullmatch(name))


def is_bucket_name(name: str) -> bool:
    """A name an existing S3 bucket can have: current or legacy rules."""
    return is_current_bucket_name(name) or is_legacy_bucket_name(name)
