"""What of a user's text can be seen: shared by messages and display names."""

import unicodedata

# Spaces, separators, control and format characters (zero-width space, word
# joiner, soft hyphen, bidi controls): nothing a reader sees.
_INVISIBLE_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf"}
# Hangul fillers are letters (Lo) that render as nothing.
_BLANK_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0"}
# Characters that change the direction of the text after them: in a name they
# can make "\u202eeciffo knab" read "bank office".
BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)


def has_visible(text: str) -> bool:
    return any(
        c not in _BLANK_LETTERS and unicodedata.category(c) not in _INVISIBLE_CATEGORIES
        for c in text
    )


def clean_name(name: str) -> str:
    """A display name without direction controls, trimmed; empty if nothing in
    it can be seen (the username is shown instead)."""
    name = name.translate(BIDI_CONTROLS).strip()
    return name if has_visible(name) else ""
