"""The verdict categories every simulated or checked sample ends in.

A verdict is a category, not a boolean: "we could not score it" (``infra_error``) is kept apart from
"it is wrong" (everything else that is not ``pass``).
"""

PASS = "pass"
SYNTAX_ERROR = "syntax_error"      # the parser rejected the design
COMPILE_ERROR = "compile_error"    # parsed, but elaboration failed (unknown module, port mismatch, ...)
REJECTED = "rejected"              # the sandbox policy refused the design before any tool ran it
TIMEOUT = "timeout"                # a wall-clock or CPU limit, or the testbench's own TIMEOUT
MISMATCH = "mismatch"              # simulated to the end; outputs differ from the reference
RUNTIME_ERROR = "runtime_error"    # simulator crashed, hit a resource cap, or ended without a verdict
NO_CODE = "no_code"                # no Verilog could be extracted from the completion
INFRA_ERROR = "infra_error"        # the harness could not score it (missing tool, broken testbench)

STATUSES = (PASS, SYNTAX_ERROR, COMPILE_ERROR, REJECTED, TIMEOUT, MISMATCH, RUNTIME_ERROR, NO_CODE,
            INFRA_ERROR)
