"""Static policy for a DESIGN (model-written Verilog) before it is compiled with a trusted testbench.

The sandbox (`runner.py`) limits resources but is not a container; this check keeps a design from
touching files, the environment, the simulation's control or the testbench's state, which is how a
design could forge or spoil its own verdict. It scans tokens after comments are removed and strings
blanked, so words inside comments and strings never trigger it, and reads escaped identifiers by
their name (`\\tb ` is `tb`).

Rejected: system tasks/functions outside a harmless allow list (file I/O, $readmem*, plusargs,
$system, dumping, $finish/$stop/$fatal, $root, $unit ...), `include, `` token pasting, a `$` glued to
a macro argument, `bind`, hierarchical references or package scopes whose first component is a
testbench name, and any testbench name used as a module (defined or instantiated). Allowed: $display,
$write, $monitor, $strobe and friends, math, conversion, random and query functions.
"""
from __future__ import annotations

import functools
import re

from verilog_tools.text import Token, strip_comments, tokenize

ALLOWED_SYSTEM_NAMES = frozenset("""
    $display $displayb $displayh $displayo $write $writeb $writeh $writeo $strobe $strobeb $strobeh $strobeo
    $monitor $monitorb $monitorh $monitoro $monitoron $monitoroff $error $warning $info
    $sformat $sformatf $swrite $swriteb $swriteh $swriteo $sscanf
    $time $stime $realtime $timeformat $printtimescale
    $random $urandom $urandom_range $dist_uniform $dist_normal $dist_exponential $dist_poisson
    $dist_chi_square $dist_t $dist_erlang
    $signed $unsigned $rtoi $itor $realtobits $bitstoreal $shortrealtobits $bitstoshortreal $cast
    $clog2 $ln $log10 $exp $sqrt $pow $floor $ceil $sin $cos $tan $asin $acos $atan $atan2 $hypot
    $sinh $cosh $tanh $asinh $acosh $atanh
    $bits $size $left $right $low $high $increment $dimensions $unpacked_dimensions
    $isunknown $countones $countbits $onehot $onehot0 $typename
    $past $rose $fell $stable $changed $sampled
""".split())

# Why the commonest forbidden names are forbidden (anything else off the allow list is refused too).
_REASONS = {
    "file access": "$fopen $fclose $fgets $fgetc $ungetc $fscanf $fread $fseek $ftell $rewind $fflush "
                   "$feof $ferror $readmemb $readmemh $writememb $writememh $sreadmemb $sreadmemh "
                   "$sdf_annotate $table_model",
    "environment access": "$value$plusargs $test$plusargs $system $getenv",
    "waveform dumping belongs to the testbench": "$dumpfile $dumpvars $dumpall $dumpon $dumpoff $dumpflush "
                                                 "$dumplimit $dumpports $dumpportsall $dumpportsoff "
                                                 "$dumpportson $dumpportsflush $dumpportslimit",
    "it ends the simulation before the testbench's verdict": "$finish $stop $exit $fatal",
    "it reaches outside the design": "$root $unit",
}
_REASON_OF = {name: why for why, names in _REASONS.items() for name in names.split()}
_FILE_OUTPUT = re.compile(r"\$f(write|display|strobe|monitor)[bho]?$")

VERILOG_KEYWORDS = frozenset("""
    accept_on alias always always_comb always_ff always_latch and assert assign assume automatic before
    begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle checker class
    clocking cmos config const constraint context continue cover covergroup coverpoint cross deassign
    default defparam design disable dist do edge else end endcase endchecker endclass endclocking
    endconfig endfunction endgenerate endgroup endinterface endmodule endpackage endprimitive endprogram
    endproperty endspecify endsequence endtable endtask enum event eventually expect export extends
    extern final first_match for force foreach forever fork forkjoin function generate genvar global
    highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import incdir include
    initial inout input inside instance int integer interconnect interface intersect join join_any
    join_none large let liblist library local localparam logic longint macromodule matches medium
    modport module nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null
    or output package packed parameter pmos posedge primitive priority program property protected
    pull0 pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase
    randsequence rcmos real realtime ref reg reject_on release repeat restrict return rnmos rpmos
    rtran rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence
    shortint shortreal showcancelled signed small soft solve specify specparam static string strong
    strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on table tagged task this
    throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand trior trireg type
    typedef union unique unique0 unsigned until until_with untyped use uwire var vectored virtual void
    wait wait_order wand weak weak0 weak1 while wildcard wire with within wor xnor xor
""".split())
_FORBIDDEN_KEYWORDS = {"bind": "`bind` inserts code into other modules"}
_DEFINE = re.compile(r"`define\s+\\?[\w$]+\(([^)]*)\)((?:[^\n\\]|\\.)*)", re.S)


@functools.lru_cache(maxsize=512)   # the evaluator checks every sample of a problem against one testbench
def testbench_names(testbench: str, dut_module: str) -> frozenset[str]:
    """Every identifier of the testbench (module, instance, signal, type names...) but `dut_module`."""
    names = {t.name for t in tokenize(testbench) if t.is_name}
    return frozenset(names - VERILOG_KEYWORDS - {dut_module})


def _system_name_violation(name: str) -> str | None:
    if name in ALLOWED_SYSTEM_NAMES:
        return None
    why = _REASON_OF.get(name) or ("file access" if _FILE_OUTPUT.match(name) else "it is not on the allow list")
    return f"system task/function {name} is not allowed: {why}"


def _macro_violations(design: str) -> list[str]:
    """A `$` glued to a macro argument could build a forbidden system name at expansion time."""
    out = []
    for m in _DEFINE.finditer(strip_comments(design)):
        formals = {f.split("=")[0].strip() for f in m.group(1).split(",")}
        for tok in tokenize(m.group(2)):
            if tok.kind == "sys" and tok.text[1:] in formals:
                out.append(f"macro body glues `$` to argument {tok.text[1:]!r}: system names must be literal")
    return out


def _skip_index(tokens: list[Token], j: int) -> int:
    """Index just past any `[...]` groups starting at j."""
    while j < len(tokens) and tokens[j].text == "[":
        depth = 0
        while j < len(tokens):
            depth += {"[": 1, "]": -1}.get(tokens[j].text, 0)
            j += 1
            if depth == 0:
                break
    return j


def _name_violation(tokens: list[Token], i: int, forbidden: frozenset[str]) -> str | None:
    tok = tokens[i]
    prev = tokens[i - 1].text if i else ""
    if tok.name not in forbidden or prev == "." or (i >= 2 and prev == ":" and tokens[i - 2].text == ":"):
        return None
    j = _skip_index(tokens, i + 1)
    nxt = tokens[j].text if j < len(tokens) else ""
    if nxt == "." or (nxt == ":" and j + 1 < len(tokens) and tokens[j + 1].text == ":"):
        return f"hierarchical reference into the testbench: `{tok.name}{nxt}{'' if nxt == '.' else ':'}...`"
    if prev in ("module", "macromodule", "automatic", "static") and tokens[i - 1].kind == "id":
        return f"defines a module named like a testbench name: {tok.name}"
    after = tokens[i + 2].text if i + 2 < len(tokens) else ""
    if tokens[i + 1:i + 2] and (tokens[i + 1].text == "#" or (tokens[i + 1].is_name and after in ("(", "["))):
        return f"instantiates testbench module {tok.name}"
    return None


def check_policy(design: str, *, forbidden_names=()) -> list[str]:
    """Violations of the design policy (empty when the design may be compiled with the testbench).

    `forbidden_names`: the testbench's names (see `testbench_names`); none of them may start a
    hierarchical reference or be used as a module.
    """
    forbidden = frozenset(forbidden_names)
    tokens = tokenize(design)
    found: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.kind == "sys":
            found.append(_system_name_violation(tok.text))
        elif tok.kind == "dir" and tok.text == "`include":
            found.append("`include is not allowed: a design must be self-contained")
        elif tok.kind == "paste":
            found.append("`` token pasting is not allowed: identifiers must be literal")
        elif tok.kind == "id" and tok.text in _FORBIDDEN_KEYWORDS:
            found.append(f"{tok.text} is not allowed: {_FORBIDDEN_KEYWORDS[tok.text]}")
        elif tok.is_name:
            found.append(_name_violation(tokens, i, forbidden))
    found.extend(_macro_violations(design))
    return list(dict.fromkeys(v for v in found if v))   # unique, in order of appearance
