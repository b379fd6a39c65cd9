"""Read and write JSON lines: the one reader every JSONL file of the project goes through.

Lines end at ``\\n`` only. ``str.splitlines`` and text-mode files also end a line at ``\\r``,
U+2028, U+0085 and other characters that JSON allows raw inside a string, so a valid row holding
one would be cut in two and dropped. A line is never read into memory past ``max_line_bytes``
(default `MAX_LINE_BYTES`, far above any real completion): a longer one is a one-line `UserError`
naming the file and line, not gigabytes of RAM before "malformed JSON".

Writing escapes lone surrogates (a JSON ``"\\ud800"`` read back is one): `dumps_line` keeps UTF-8
text readable and falls back to ``\\u`` escapes only for a row that UTF-8 cannot encode.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from verilog_tools.errors import UserError

MAX_LINE_BYTES = 16 * 2**20
_BOM = b"\xef\xbb\xbf"


def read_lines(path: str | Path, what: str = "JSONL", *,
               max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, raw bytes)`` of each line, split on ``\\n`` only (a UTF-8 BOM dropped).

    Memory stays below ``max_line_bytes`` (None: `MAX_LINE_BYTES`) per line: a longer line raises
    a `UserError`.
    """
    path = Path(path)
    max_line_bytes = max_line_bytes or MAX_LINE_BYTES
    if not path.is_file():
        raise UserError(f"{what} file {path} not found; pass the path of an existing JSONL file")
    with path.open("rb") as fh:
        lineno = 0
        while raw := fh.readline(max_line_bytes + 1):
            lineno += 1
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            elif len(raw) > max_line_bytes:
                raise UserError(f"{path}:{lineno}: line longer than {max_line_bytes} bytes, the "
                                f"limit for one JSONL row (eval: MAX_LINE_BYTES)")
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            yield lineno, raw


def parse_line(raw: bytes) -> object:
    """The JSON value of one line; ValueError (UnicodeDecodeError or JSONDecodeError) if it is not one."""
    return json.loads(raw.decode("utf-8"))


def iter_jsonl(path: str | Path, what: str = "JSONL", *,
               max_line_bytes: int | None = None) -> Iterator[tuple[str, object]]:
    """Yield ``("file:line", parsed value)`` for each non-blank line; one-line error on a bad line."""
    for lineno, raw in read_lines(path, what, max_line_bytes=max_line_bytes):
        where = f"{path}:{lineno}"
        if not raw.strip():
            continue
        try:
            value = parse_line(raw)
        except UnicodeDecodeError:
            raise UserError(f"{where}: not valid UTF-8; JSONL files must be UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        yield where, value


def read_jsonl(path: str | Path, what: str = "JSONL", *, max_line_bytes: int | None = None) -> list:
    """Every value of a JSONL file (see `iter_jsonl`)."""
    return [value for _, value in iter_jsonl(path, what, max_line_bytes=max_line_bytes)]


def dumps(value: object, **kwargs) -> str:
    """``json.dumps`` as readable UTF-8 text, or as ASCII with ``\\u`` escapes when UTF-8 cannot
    encode it (a lone surrogate: its escape survives a round trip, the raw character is unwritable)."""
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True, **kwargs)
    return text


def dumps_line(value: object) -> str:
    """One JSONL line, ``\\n`` included (see `dumps`)."""
    return dumps(value) + "\n"
