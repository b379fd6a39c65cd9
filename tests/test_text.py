"""Verilog text utilities on tricky text: comments, strings, glued keywords, fences, prose."""
from __future__ import annotations

import pytest

from verilog_tools.text import (count_modules, extract_code, find_module_header, module_names, normalize_code,
                                strip_comments, strip_comments_and_strings, tokenize)

HEADER = "module top_module (\n\tinput a,\n\toutput y\n);\n"


@pytest.mark.parametrize("code,expected", [
    ("module a; endmodule", 1),
    ("// module fake\n/* module b; endmodule */ module a; endmodule", 1),
    ('module a; initial $display("module x; endmodule"); endmodule', 1),
    ("module a; endmodule//x\nmodule b; endmodule", 2),
    ("module a; endmodule\nmodule b; endmodule/* c */module c; endmodule", 3),
    ("module a; endmodulemodule b; endmodule", 1),   # one identifier `endmodulemodule`, one module keyword
    ("macromodule m; endmodule\nmodule n; endmodule", 2),
    ("module a; wire module_x, my_module, \\module ; endmodule", 1),
    ("module a; genvar i; generate for (i=0;i<2;i=i+1) begin: g\n if (1) begin: module_blk end end endgenerate endmodule", 1),
    ('module a; wire \\x"y ; endmodule module b; endmodule', 2),   # a quote inside an escaped identifier
    ('module a; wire \\x//y ; endmodule module b; endmodule', 2),  # `//` inside an escaped identifier
    ("", 0),
    ("no verilog here, just a module of prose", 0),          # a keyword, but no definition follows
    ("The module below computes y (see above).\nmodule a(input x); endmodule", 1),
    ("module a; endmodule\nmodule", 1),                       # text cut short after the keyword
])
def test_count_modules(code, expected):
    assert count_modules(code) == expected


def test_module_names_and_header():
    code = "// module fake\nmodule automatic a #(parameter W=2) (input [W-1:0] x, output y);\n assign y = x[0];\nendmodule : a\nmacromodule \\b$c (input q); endmodule"
    assert module_names(code) == ["a", "b$c"]
    assert find_module_header(code) == "module automatic a #(parameter W=2) (input [W-1:0] x, output y);"
    assert find_module_header(code, "b$c") == "macromodule \\b$c (input q);"
    assert find_module_header(code, "missing") is None


def test_strip_comments_keeps_strings_and_line_numbers():
    code = 'a = "// not a comment"; // yes\n/* two\nlines */ b;'
    assert strip_comments(code) == 'a = "// not a comment";  \n\n b;'
    assert strip_comments_and_strings(code) == 'a = "";  \n\n b;'


def test_tokenize_numbers_system_names_and_escaped_identifiers():
    toks = [(t.kind, t.text) for t in tokenize("x = 8'hFF + 1.5e3 + $value$plusargs(\\tb .y) `FOO ``")]
    assert ("num", "8'hFF") in toks and ("num", "1.5e3") in toks
    assert ("sys", "$value$plusargs") in toks and ("esc", "\\tb") in toks
    assert ("dir", "`FOO") in toks and ("paste", "``") in toks


def test_normalize_code_is_a_whitespace_and_comment_insensitive_key():
    a = "module m;  // c\n\treg   a;\nendmodule"
    b = "module m; /* other */\n reg a;\n\n endmodule  "
    assert normalize_code(a) == normalize_code(b) == "module m;\nreg a;\nendmodule"
    assert normalize_code("reg a;") != normalize_code("rega;")
    assert normalize_code('$display("a  b");') != normalize_code('$display("a b");')


BODY = "\tassign y = a;\nendmodule\n"
MODULE = HEADER + BODY


@pytest.mark.parametrize("raw", [
    BODY,
    BODY + "\nThis module assigns a to y. module is done.",
    "```verilog\n" + MODULE + "```\nExplanation: module top_module passes a through.",
    "Here is the code:\n```\n" + MODULE + "```",
    "Sure! Here is the module:\n\n" + MODULE + "\nHope this helps.",
    "```text\nplan: assign y\n```\n```verilog\n" + MODULE + "```",
    "```verilog\n" + MODULE.replace("endmodule\n", ""),        # unclosed fence, generation cut short
    "The module below computes the output (a buffer)\n" + BODY,
    BODY + "\n" + MODULE + "\n" + MODULE,                      # a model repeating the whole module
])
def test_extract_body(raw):
    body = extract_code(raw, header=HEADER, mode="body")
    assert body is not None and body.strip().endswith("endmodule")
    assert count_modules(HEADER + body) == 1 and "assign y = a;" in body
    assert "Explanation" not in body and "helps" not in body and "Here" not in body


def test_extract_module_from_a_body_prepends_the_header():
    code = extract_code("Here you go:\n" + BODY + "\nDone.", header=HEADER, mode="module")
    assert code == HEADER.rstrip() + "\n" + BODY


def test_extract_missing_endmodule_is_added():
    assert extract_code("\tassign y = a;\n", header=HEADER) == "\tassign y = a;\nendmodule\n"
    assert extract_code(HEADER + "\tassign y = a;\n", header=HEADER, mode="module").endswith("endmodule\n")


def test_extract_full_module_with_helper_before_it_in_body_mode_moves_the_helper_after():
    raw = "module inv(input i, output o); assign o = ~i; endmodule\n" + HEADER + "\tinv u(.i(a), .o(y));\nendmodule\nextra words"
    body = extract_code(raw, header=HEADER, mode="body")
    assert body.startswith("\n\tinv u(") and body.rstrip().endswith("assign o = ~i; endmodule")
    assert "extra" not in body and count_modules(HEADER + body) == 2


def test_extract_body_followed_by_helper_module():
    raw = "\tinv u(.i(a), .o(y));\nendmodule\n\nmodule inv(input i, output o); assign o = ~i; endmodule\nBye."
    body = extract_code(raw, header=HEADER, mode="body")
    assert body.startswith("\tinv u(") and "Bye" not in body and count_modules(HEADER + body) == 2


def test_extract_picks_the_named_module_fence():
    raw = "```verilog\nmodule other(input q); endmodule\n```\n```verilog\n" + MODULE + "```"
    assert extract_code(raw, header=HEADER, mode="module") == MODULE


@pytest.mark.parametrize("raw", [None, "", "   ", "I cannot write this module, sorry.", "```\n```"])
def test_extract_no_code(raw):
    assert extract_code(raw, header=HEADER) is None
    assert extract_code(raw, header=HEADER, mode="module") is None


def test_extract_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        extract_code(BODY, header=HEADER, mode="both")
