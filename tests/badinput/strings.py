"""Hostile strings: what an object key, a principal, a tag, a policy or a forged document may hold.

Every human rendering (the finding's e-mail, chat and Subject; the digest's e-mail and chat) is
tested with each of them in each field that comes from outside (``test_human_channels.py``).
The same strings serve the HTML report's tests.
"""

from __future__ import annotations

from typing import Final

from hypothesis import strategies as st

# Characters that break a line, hide text or reorder it where people read it.
LINE_BREAKS: Final = ("\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
INVISIBLE: Final = (
    "\x00",
    "\x1b",  # ESC: starts ANSI sequences (terminals, log viewers)
    "\x7f",
    "\x9b",  # C1 CSI
    "\xad",  # soft hyphen
    "\u061c",  # Arabic letter mark
    "\u200b",  # zero width space
    "\u200c",
    "\u200d",
    "\u200e",  # left-to-right mark
    "\u200f",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # right-to-left override
    "\u2060",  # word joiner
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\ufeff",  # zero width no-break space (BOM)
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A: "ASCII smuggling" (rendered as nothing)
    "\U000e007f",  # CANCEL TAG
    "\u3164",  # HANGUL FILLER: a letter that renders blank
    "\uffa0",  # HALFWIDTH HANGUL FILLER
    "\u115f",  # HANGUL CHOSEONG FILLER
    "\u2800",  # BRAILLE PATTERN BLANK
    "\u034f",  # COMBINING GRAPHEME JOINER
    "\ufe0f",  # VARIATION SELECTOR-16
    "\U000e0100",  # VARIATION SELECTOR-17
    "\u00a0",  # NO-BREAK SPACE: looks like a space, is not one
    "\u3000",  # IDEOGRAPHIC SPACE
    "\ue000",  # private use
    "\U0010ffff",  # a noncharacter (unassigned)
)

HOSTILE: Final[tuple[str, ...]] = (
    # Slack: mentions, links with forged words, channel links, formatting
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U012AB3CD>",
    "<#C012AB3CD|general>",
    "<!subteam^SAZ94GDB8>",
    "<https://evil.example|Open the console>",
    "<mailto:a@evil.example|security team>",
    "*bold* _italic_ ~strike~ `code` ```block```",
    "a`b``c```d",
    "&lt;!channel&gt;",  # already escaped: must not be unescaped into a mention
    "&amp;",
    ">quote\n>more",
    "[Open the console](https://evil.example)",
    ":white_check_mark: remediated",
    # E-mail: forged lines
    "a.jpg\nWhat was done: Fixed automatically.",
    "a.jpg\r\nOutcome: REMEDIATED\r\n",
    "a.jpg\u2028What was done: nothing to do",
    "a.jpg\x85Principal: arn:aws:iam::123456789012:role/Admin",
    "images/\u202egpj.exe",
    "images/a\u200bb\u200dc\ufeff.jpg",
    "\x00\x01\x02\x1b]0;title\x07",
    "\x1b[31mred\x1b[0m",
    "back\\slash\\x0a",  # looks like an escape: must stay distinguishable from one
    # HTML, scripts, comments
    "<script>alert(1)</script>",
    "</script><script>alert(1)</script>",
    "<!--",
    "-->",
    "<!--<script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "javascript:alert(1)",
    "{{7*7}} ${7*7} %s %n",
    '{"outcome": "REMEDIATED"}',
    # length
    "k" * 1024,
    "é/" * 300,
    "<!channel>" * 800,
    "\n" * 500,
    # HTML, inline script and JSON, spreadsheets (the audit report and its exports)
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


def hostile_strings() -> st.SearchStrategy[str]:
    """The corpus, and any text with line breaks, controls, markup and invisible characters in it."""
    specials = st.sampled_from(LINE_BREAKS + INVISIBLE + ("<", ">", "&", "*", "_", "~", "`", "|", "!", "@", "\\"))
    generated = st.lists(st.one_of(specials, st.text(max_size=8)), min_size=1, max_size=12).map("".join)
    generated = generated.filter(bool)  # an empty optional field is an absent one
    return st.one_of(st.sampled_from(HOSTILE), generated)
