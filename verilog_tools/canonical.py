"""One canonical text per design: what is checked, hashed, de-duplicated and compiled is the same string.

Two Verilog lexers (Icarus's flex scanner, slang's hand-written one, our own helpers) agree on printable
ASCII, space, tab and newline. They disagree on almost everything else: Icarus ends a `//` comment at a
lone carriage return and an escaped identifier at backspace, form feed or CR; Python's `str.splitlines`
breaks lines at U+0085, U+2028 and U+2029; a NUL ends a C string. Code hidden behind such a character is
seen by one reader and not by the other, so a check that reads the text differently from the compiler
is a bypass. `canonical_text` therefore:

- turns CRLF into LF (the only rewrite: every lexer treats the pair as one line break);
- refuses, with a named reason, every other character on which lexers can disagree: C0 controls but tab
  and newline (a lone CR included), DEL, the C1 block (U+0080-U+009F, U+0085 included), the Unicode
  line and paragraph separators U+2028/U+2029, the byte-order mark and other format characters
  (Unicode category Cf: zero-width and bidirectional controls, which also make code read differently
  to a person), and text that is not valid Unicode (a lone surrogate from a JSON escape);
- refuses a design larger than `max_bytes` (UTF-8), default far above any real design.

Other non-ASCII characters (a `≥` or an accented word in a comment) are kept here: bytes >= 0x80 cannot
end a comment, a string or an escaped identifier in any of the lexers involved, so they cannot hide
code. The policy (`verilog_tools.policy`) then refuses non-ASCII anywhere but inside comments, where
a model writes it and no tool reads it. Nothing is ever rewritten silently: a refused design keeps its
verdict `rejected` with the reason, and the text compiled is exactly the text returned here.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

DEFAULT_MAX_BYTES = 1 << 20   # 1 MiB: the largest VerilogEval/RTLLM reference is under 20 KB

_REFUSED_NAMES = {
    "\r": "a carriage return not followed by a line feed",
    "\x00": "a NUL byte",
    "\x0b": "a vertical tab",
    "\x0c": "a form feed",
    "\x7f": "a DEL character",
    "\u0085": "U+0085 (NEXT LINE)",
    "\u2028": "U+2028 (LINE SEPARATOR)",
    "\u2029": "U+2029 (PARAGRAPH SEPARATOR)",
    "\ufeff": "U+FEFF (byte-order mark)",
}


_UNUSUAL = re.compile(r"[^\t\n\x20-\x7e]")   # every character that needs a closer look


class DesignRefused(ValueError):
    """The design cannot be checked as one unambiguous text; `reason` says why (status `rejected`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _refused_char(ch: str) -> str | None:
    """Why `ch` may not appear in a design, or None when it may."""
    code = ord(ch)
    if code < 0x80:
        if ch in "\t\n" or 0x20 <= code < 0x7F:
            return None
        return _REFUSED_NAMES.get(ch) or f"the control character U+{code:04X}"
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate U+{code:04X} (not valid Unicode)"
    if ch in _REFUSED_NAMES:
        return _REFUSED_NAMES[ch]
    category = unicodedata.category(ch)
    if category == "Cc":
        return f"the control character U+{code:04X}"
    if category in ("Cf", "Zl", "Zp"):
        return f"the invisible format character U+{code:04X}"
    return None


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def canonical_text(text: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The canonical form of design `text`, or DesignRefused naming the first offending character.

    Linear in the length of `text`; the size check comes first, so a huge input costs one pass.
    """
    if not isinstance(text, str):
        raise DesignRefused(f"a design must be text, got {type(text).__name__}")
    if len(text) > max_bytes:   # characters <= bytes: a cheap early bound before encoding
        raise DesignRefused(f"too large: {len(text)} characters, the limit is {max_bytes} bytes")
    text = text.replace("\r\n", "\n")
    for match in _UNUSUAL.finditer(text):
        why = _refused_char(match.group())
        if why is not None:
            line, col = _line_col(text, match.start())
            raise DesignRefused(f"{why} at line {line}, column {col}: tools read such characters "
                                f"differently; remove it")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise DesignRefused(f"too large: {size} bytes, the limit is {max_bytes} bytes")
    return text


def design_key(canonical: str) -> str:
    """The de-duplication key of a canonical design: the SHA-256 of its exact bytes."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
