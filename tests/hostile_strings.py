"""Strings from outside that must be shown, never obeyed: object keys, principals, tags, policy
strings, notes. One corpus for every human channel's tests."""

from __future__ import annotations

from typing import Final

HOSTILE: Final[tuple[str, ...]] = (
    "<!--<script>",  # issue 20: opens a comment and a script inside an inline script
    "</script><script>alert(1)</script>",
    "<script>alert(document.domain)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '"><b onmouseover=alert(1)>x</b>',
    "' onfocus='alert(1)' autofocus='",
    "javascript:alert(1)",
    "</textarea></title></style></noscript><plaintext>",
    "<![CDATA[x]]>",
    "-->",
    "<!--",
    "&lt;script&gt; &amp; &#x3C;",
    "{{constructor.constructor('alert(1)')()}}",
    "\u202etxt.exe\u202c.jpg",  # right-to-left override
    "a\u200bb\u200cc\u200dd\ufeffe\u2060f",  # zero-width characters
    "\u2066isolate\u2069 \u200fmark\u200e",
    "line\nbreak\r\nand\ttab\x00nul\x1b[31mansi",
    "\u2028line separator\u2029paragraph separator",
    "images/cat %3Cscript%3E.jpg",
    '=HYPERLINK("https://evil.example","open")',  # spreadsheet formula
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "😀 ünïcödé 汉字 العربية",
    "x" * 5_000,  # very long, no break opportunity
    ("<a " * 300) + ">",
)
