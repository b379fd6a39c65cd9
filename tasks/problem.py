"""`Problem`: one benchmark task, the unit that evaluation, sampling and training share."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One design task with a self-checking testbench.

    ``completion_mode`` says what a model's completion is expected to be:
    ``"body"`` (VerilogEval v1: the module body that follows ``header``) or ``"module"``
    (VerilogEval v2, synthetic tasks: a whole module definition named ``dut_module``).
    ``testbench`` is every trusted source the simulation needs besides the design (for v2 the
    test bench and the reference module); its top module is ``top``.
    """

    task_id: str
    benchmark: str
    description: str          # natural-language specification
    header: str               # module header of the design under test, ending in ");"
    reference: str            # a complete reference design (module ``dut_module``)
    testbench: str            # trusted sources: testbench (+ reference module where separate)
    top: str = "tb"
    dut_module: str = "top_module"
    completion_mode: str = "body"
    prompt: str = ""          # the text a model is shown (description + header), see tasks.prompts
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    # Files the (trusted) testbench reads at run time, staged read-only beside the simulation (RTLLM).
    data_files: dict | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.completion_mode not in ("body", "module"):
            raise ValueError(f"Problem {self.task_id}: completion_mode must be 'body' or 'module', "
                             f"got {self.completion_mode!r}")

    def reference_completion(self) -> str:
        """The reference written as a completion in this problem's ``completion_mode``."""
        if self.completion_mode == "module":
            return self.reference
        ref = self.reference
        return ref[len(self.header):] if ref.startswith(self.header) else ref
