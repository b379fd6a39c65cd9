"""`TrainingRecord`: one instruction + reference pair, the unit of every training data source."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields

from tasks.jsonl import dumps


@dataclass(frozen=True)
class TrainingRecord:
    """An instruction with its reference answer.

    ``reference`` is a complete Verilog design (one module after filtering). ``testbench`` and
    ``top`` are set only where functional checking is possible (the synthetic set).
    ``id`` is stable: the same instruction and reference always get the same id.
    """

    id: str
    instruction: str
    header: str
    reference: str
    source: str
    testbench: str | None = None
    top: str | None = None
    dut_module: str | None = None
    split: str = "train"

    @staticmethod
    def make_id(source: str, instruction: str, reference: str) -> str:
        digest = hashlib.sha256(f"{instruction}\0{reference}".encode("utf-8", "replace")).hexdigest()
        return f"{source}-{digest[:16]}"

    def to_json(self) -> str:
        return dumps(asdict(self), sort_keys=True)  # surrogate-safe: prepare writes it as UTF-8

    @classmethod
    def from_dict(cls, row: dict) -> "TrainingRecord":
        known = {f.name for f in fields(cls)}
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"training record has unknown fields {sorted(unknown)}; "
                             f"allowed: {sorted(known)}")
        return cls(**row)
