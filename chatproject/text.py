"""What of a user's text can be seen: shared by messages, names and titles."""

import unicodedata

# Spaces, separators, control and format characters (zero-width space, word
# joiner, soft hyphen, bidi controls): nothing a reader sees.
_INVISIBLE_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf"}
# Unicode's other default-ignorable characters (Hangul fillers, which are
# letters; variation selectors and other marks that join nothing) and the
# braille blank: they render as nothing either.
_BLANK = frozenset(
    [
        *(0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0),
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xE0100, 0xE01F0),
    ]
)
# Characters that change the direction of the text after them: in a name they
# can make "\u202eeciffo knab" read "bank office".
BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)


def _shows(c: str) -> bool:
    return ord(c) not in _BLANK and unicodedata.category(c) not in _INVISIBLE_CATEGORIES


def has_visible(text: str) -> bool:
    return any(_shows(c) for c in text)


def clean_name(name: str) -> str:
    """A display name or group title without direction controls, trimmed;
    empty if nothing in it stands on its own (only invisible characters, or
    only combining marks, which show as dotted circles)."""
    name = name.translate(BIDI_CONTROLS).strip()
    standing = any(_shows(c) and unicodedata.category(c) not in ("Mn", "Me") for c in name)
    return name if standing else ""
