"""Verilog text utilities: comments and strings, a small tokenizer, modules, and code extraction.

Everything works on tokens of text whose comments and strings have been blanked, so the word `module`
in a comment, a string or an identifier such as `my_module` never counts, and `endmodule//x` or
`endmodule\\nmodule b` split where a Verilog lexer would split them. Escaped identifiers (`\\a"b//c `)
are lexed first, as Icarus does, so a quote or `//` inside one does not open a string or a comment.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_SPECIAL = re.compile(r"""
    (?P<esc>\\\S+)                              # escaped identifier: may contain " and //
  | (?P<line>//[^\n]*)
  | (?P<block>/\*.*?(?:\*/|\Z))                 # an unterminated comment runs to the end
  | (?P<str>"(?:[^"\\\n]|\\.)*(?:"|(?=\n)|\Z))  # a string ends at its quote or at a raw newline
""", re.S | re.X)

_TOKEN = re.compile(r"""
    (?P<esc>\\\S+)
  | (?P<num>(?:\d[\d_]*\s*)?'[sS]?[bBoOdDhH]\s*[0-9a-fA-FxXzZ?_]+
           | \d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d[\d_]*)?)
  | (?P<sys>\$[A-Za-z0-9_$]+)
  | (?P<paste>``)
  | (?P<dir>`[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<id>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<str>"[^"\n]*"?)
  | (?P<op>\S)
""", re.X)

MODULE_KEYWORDS = frozenset({"module", "macromodule"})


@dataclass(frozen=True)
class Token:
    """One lexical token: kind (esc, num, sys, paste, dir, id, str, op), its text, its offset."""

    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def name(self) -> str:
        """The identifier it names: an escaped identifier `\\tb ` names `tb`."""
        return self.text[1:] if self.kind == "esc" else self.text

    @property
    def is_name(self) -> bool:
        return self.kind in ("id", "esc")


def _pieces(code: str):
    """(kind, text) pieces covering `code`: kind is code, comment or string."""
    pos = 0
    for m in _SPECIAL.finditer(code):
        kind = {"esc": "code", "line": "comment", "block": "comment", "str": "string"}[m.lastgroup]
        if m.start() > pos:
            yield "code", code[pos:m.start()]
        yield kind, m.group()
        pos = m.end()
    if pos < len(code):
        yield "code", code[pos:]


def _comment_replacement(comment: str) -> str:
    newlines = comment.count("\n")
    return "\n" * newlines if newlines else " "


def strip_comments(code: str) -> str:
    """`code` without comments (a block comment keeps its newlines, so line numbers stay)."""
    return "".join(_comment_replacement(t) if k == "comment" else t for k, t in _pieces(code))


def strip_comments_and_strings(code: str) -> str:
    """`code` without comments, and every string literal emptied to `""`."""
    out = []
    for kind, text in _pieces(code):
        out.append(_comment_replacement(text) if kind == "comment" else '""' if kind == "string" else text)
    return "".join(out)


def blank_comments_and_strings(code: str) -> str:
    """Same length as `code`: comment and string contents become spaces (newlines kept), so offsets
    into the result are offsets into `code`."""
    out = []
    for kind, text in _pieces(code):
        if kind == "comment":
            out.append(re.sub(r"[^\n]", " ", text))
        elif kind == "string":
            inner = re.sub(r"[^\n]", " ", text[1:-1] if text.endswith('"') and len(text) > 1 else text[1:])
            out.append('"' + inner + ('"' if text.endswith('"') and len(text) > 1 else ""))
        else:
            out.append(text)
    return "".join(out)


_MEMO_CHARS = 128 << 10   # texts memoised by `tokenize`: at most 4 of at most 128 KB (~80 MB of tokens)


def tokenize(code: str) -> list[Token]:
    """Tokens of `code` outside comments (string literals come back blanked)."""
    return list(_memo_tokens(code) if len(code) <= _MEMO_CHARS else _tokens(code))


def _tokens(code: str) -> tuple[Token, ...]:
    blank = blank_comments_and_strings(code)
    return tuple(Token(m.lastgroup, m.group(), m.start()) for m in _TOKEN.finditer(blank))


# extract_code and its helpers tokenize the same text several times; Tokens are immutable. A token
# costs ~160 bytes of memory per byte of text, so only small texts, and few of them, are kept.
_memo_tokens = functools.lru_cache(maxsize=4)(_tokens)


def count_modules(code: str) -> int:
    """How many module/macromodule definitions `code` has: the keyword as a token, then a name, then
    `(`, `#`, `;` or `import` (so "the module below computes" in leaked prose is not one)."""
    return len(module_spans(code))


@dataclass(frozen=True)
class ModuleSpan:
    """Where one module definition lies: [start, header_end) is the header, [start, end) the whole."""

    name: str
    start: int
    header_end: int      # just past the `;` that ends the header (or the name when there is none)
    end: int | None      # just past `endmodule` (and its `: label`); None when it never ends


def module_spans(code: str) -> list[ModuleSpan]:
    """The module definitions of `code`, in order."""
    tokens = tokenize(code)
    spans = []
    for i, tok in enumerate(tokens):
        if tok.kind != "id" or tok.text not in MODULE_KEYWORDS:
            continue
        j = i + 1
        while j < len(tokens) and tokens[j].text in ("automatic", "static"):
            j += 1
        name = tokens[j].name if j < len(tokens) and tokens[j].is_name else None
        if name is None or j + 1 >= len(tokens) or tokens[j + 1].text not in ("(", "#", ";", "import"):
            continue   # not a definition: prose such as "the module below", or text cut short
        header_end, depth, k = tokens[j].end, 0, j
        while k < len(tokens) and not (tokens[k].kind == "id" and tokens[k].text in MODULE_KEYWORDS | {"endmodule"}):
            if tokens[k].text in ("(", "[", "{"):
                depth += 1
            elif tokens[k].text in (")", "]", "}"):
                depth -= 1
            elif tokens[k].text == ";" and depth <= 0:
                header_end = tokens[k].end
                break
            k += 1
        spans.append(ModuleSpan(name, tok.start, header_end, _module_end(tokens, k)))
    return spans


def _module_end(tokens: list[Token], k: int) -> int | None:
    while k < len(tokens):
        tok = tokens[k]
        if tok.kind == "id" and tok.text in MODULE_KEYWORDS:
            return None
        if tok.kind == "id" and tok.text == "endmodule":
            if k + 2 < len(tokens) and tokens[k + 1].text == ":" and tokens[k + 2].is_name:
                return tokens[k + 2].end
            return tok.end
        k += 1
    return None


def module_names(code: str) -> list[str]:
    """Names of the modules `code` defines, in order."""
    return [s.name for s in module_spans(code)]


def find_module_header(code: str, name: str | None = None) -> str | None:
    """The header (`module name ... ;`) of module `name` (default: the first module), or None."""
    for span in module_spans(code):
        if name is None or span.name == name:
            return code[span.start:span.header_end]
    return None


def normalize_code(code: str) -> str:
    """The dedup key: comments stripped, whitespace runs collapsed (to one newline if the run had a
    newline, which `define lines need, else to one space); string literals kept verbatim."""
    out, buf = [], []

    def flush():
        text = "".join(buf)
        text = re.sub(r"[ \t\r\f\v]*\n\s*", "\n", text)
        out.append(re.sub(r"[ \t\r\f\v]+", " ", text))
        buf.clear()

    for kind, text in _pieces(code):
        if kind == "string":
            flush()
            out.append(text)
        else:
            buf.append(_comment_replacement(text) if kind == "comment" else text)
    flush()
    return "".join(out).strip()


# ---- extracting code from a model's completion ----

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_CODE_START_WORDS = frozenset("""
    module macromodule endmodule input output inout wire reg logic integer real genvar parameter localparam
    assign always always_ff always_comb always_latch initial final begin end if else case casez casex
    endcase default for while repeat forever generate endgenerate function endfunction task endtask
    typedef enum struct wand wor tri supply0 supply1 signed unsigned bit byte int fork join
""".split())
_CODE_LINE_ENDINGS = (";", ",", "(", ")", "{", "}", "begin", "end", "endcase", "endmodule", "endgenerate",
                      "endfunction", "endtask", "*/")


def _is_code_line(line: str) -> bool:
    s = line.strip()
    if not s or s.startswith(("//", "/*", "*", "`", "(*")):
        return True
    first = re.match(r"[A-Za-z_$][\w$]*", s)
    if first and first.group() in _CODE_START_WORDS:
        return True
    if len(re.findall(r"\b[A-Za-z]+\b", s)) >= 4 and not re.search(r"[;=@#{}\[\]]", s):
        return False   # a sentence, even one ending in ")" or ","
    if s.endswith(_CODE_LINE_ENDINGS) and not s.endswith((".)", ":)")):
        return True
    return bool(re.match(r"[\w\[\]:.{}]+\s*(<=|=)\s*\S", s))


def _trim_prose(text: str) -> str:
    """Drop prose lines ("Here is the code:") before the first and after the last line of code."""
    lines = text.split("\n")
    while lines and not (lines[0].strip() and _is_code_line(lines[0])):
        lines.pop(0)
    while lines and not (lines[-1].strip() and _is_code_line(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def _has_code(text: str) -> bool:
    tokens = tokenize(text)
    return any(t.text == ";" for t in tokens) or any(t.kind == "id" and t.text == "endmodule" for t in tokens)


def _pick_fence(raw: str, module_name: str | None) -> str:
    """The fenced block holding the module (the named one first); the whole text when there is none."""
    blocks = [m.group(2) for m in _FENCE.finditer(raw)]
    if not blocks:
        return raw

    def rank(block: str) -> tuple[bool, bool, bool, bool]:
        names = module_names(block)
        tokens = {t.text for t in tokenize(block) if t.kind == "id"}
        return (module_name in names, bool(names), "endmodule" in tokens, _has_code(block))
    best = max(blocks, key=rank)   # max keeps the first of equal rank
    return best if any(rank(best)) else raw


def _cut_after_last_endmodule(text: str) -> str:
    ends = [t.end for t in tokenize(text) if t.kind == "id" and t.text == "endmodule"]
    if not ends:
        return text
    tail = text[ends[-1]:]
    label = re.match(r"\s*:\s*\\?[\w$]+", tail)
    return text[:ends[-1] + (label.end() if label else 0)]


def _ensure_endmodule(text: str) -> str:
    """Close a module the model left open (a `endmodule` stop sequence is often stripped)."""
    spans = module_spans(text)
    open_module = spans and spans[-1].end is None
    ends = any(t.kind == "id" and t.text == "endmodule" for t in tokenize(text))
    if open_module or (not spans and not ends):
        return text.rstrip() + "\nendmodule\n"
    return text if text.endswith("\n") else text + "\n"


def _modules_text(region: str, spans: list[ModuleSpan], drop: set[str]) -> str:
    """The modules of `region` with what lies between them, keeping only code lines of that filler.

    A module named in `drop`, or defined a second time (models often repeat themselves), is left out.
    """
    parts, pos, seen = [], 0, set(drop)
    for span in spans:
        filler = region[pos:span.start]
        parts.append("\n".join(l for l in filler.split("\n") if _is_code_line(l)))
        end = span.end if span.end is not None else len(region)
        if span.name not in seen:
            parts.append(region[span.start:end])
        seen.add(span.name)
        pos = end
    return "".join(parts).strip("\n")


def extract_code(raw: str | None, *, header: str, mode: str = "body", module_name: str | None = None) -> str | None:
    """The Verilog in a completion, ready to append to `header` (mode "body") or to compile alone
    (mode "module"); None when there is no code.

    Handles markdown fences (the block with the module wins), prose before and after, text after the
    last `endmodule`, a missing final `endmodule`, a full module where a body was expected (the body
    after its header is returned; helper modules before it are moved after it) and a body where a module
    was expected (`header` is put in front).
    """
    if mode not in ("body", "module"):
        raise ValueError(f"extract_code: mode must be 'body' or 'module', got {mode!r}")
    if not raw or not raw.strip():
        return None
    header_names = module_names(header or "")
    module_name = module_name or (header_names[0] if header_names else None)
    region = _cut_after_last_endmodule(_pick_fence(raw, module_name))
    lead, modules = _split_body_and_modules(region, module_name)
    if not _has_code(lead + modules):
        return None
    if lead:
        lead = _ensure_endmodule(lead)
        if mode == "module":
            lead = (header or "").rstrip() + "\n" + lead
        return lead + ("\n" + modules + "\n" if modules else "")
    modules = _ensure_endmodule(modules)
    if mode == "module":
        return modules
    spans = module_spans(modules)
    target = next((s for s in spans if s.name == module_name), spans[0])
    before = modules[:target.start].strip("\n")
    return _ensure_endmodule(modules[target.header_end:]) + ("\n" + before + "\n" if before else "")


def _split_body_and_modules(region: str, module_name: str | None) -> tuple[str, str]:
    """(a module body the text starts with, or ""; the whole modules that follow, or "").

    After a body, a repeated definition of `module_name` itself is dropped: the body already is it.
    """
    spans = module_spans(region)
    if not spans:
        return _trim_prose(region), ""
    ends = [t.start for t in tokenize(region[:spans[0].start]) if t.kind == "id" and t.text == "endmodule"]
    split = spans[0].start if ends else 0
    rest = region[split:]
    drop = {module_name} if split and module_name else set()
    return _trim_prose(region[:split]), _modules_text(rest, module_spans(rest), drop)


def rewrite_strings(code: str, rewrite) -> str:
    """`code` with every string literal outside comments replaced by `rewrite(literal)` (quotes included)."""
    return "".join(rewrite(text) if kind == "string" else text for kind, text in _pieces(code))
