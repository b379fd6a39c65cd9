"""RTLCoder-style training data: read Resyn27k and instruction/output files, fetch Resyn27k, clean rows.

Two row formats are accepted, detected per file from its first JSON object:

- RTLCoder's Resyn27k: ``{"Instruction": str, "Input": str (module header, optional), "Response":
  [str, ...]}``; the first response is the reference. Upstream ships it as JSON lines under a
  ``.json`` name; a JSON array of the same objects is accepted too.
- ``{"instruction": str, "output": str}`` (e.g. the RTL-Coder_small files).

JSON lines are read with `tasks.jsonl.read_lines` (lines end at ``\n`` only, so a raw U+2028 inside
a string stays in its row; each line bounded in length). A row that is bad JSON, lacks a field or
has a field of the wrong type is skipped and counted (``ReadResult.malformed``); a file that is not
JSON/JSON lines at all is a `UserError`.
"""
from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tasks.jsonl import parse_line, read_lines
from verilog_tools.errors import UserError

RESYN_SOURCE = "resyn27k"
INSTRUCT_SOURCE = "rtlcoder"
ACCEPTED_FORMATS = ('JSON lines (or a JSON array) of {"Instruction", "Input", "Response": [...]} '
                    'or {"instruction", "output"} objects')

# The commit is the RTL-Coder HEAD cited by third-party documentation found while writing this;
# nobody here could download the 27k file to hash it. So the sha256 is trust-on-first-use: the
# first successful download records its hash next to the cache, and every later download or cache
# hit must match it. Set RESYN27K_SHA256 once a hash has been verified by hand.
RESYN27K_COMMIT = "b2847073be62d5f1d6d9b17bb247f0cfeb1ce642"
RESYN27K_URL = (f"https://raw.githubusercontent.com/hkust-zhiyao/RTL-Coder/{RESYN27K_COMMIT}"
                "/dataset/Resyn27k.json")
RESYN27K_SHA256: str | None = None


@dataclass(frozen=True)
class RawExample:
    """One row as read: the instruction, the raw reference text and the header it came with."""

    instruction: str
    response: str
    header: str
    source: str
    origin: str  # "file:line" for messages


@dataclass
class ReadResult:
    """What one or more files yielded: the usable rows and how many were skipped as malformed."""

    examples: list[RawExample] = field(default_factory=list)
    malformed: int = 0
    files: list[str] = field(default_factory=list)

    def extend(self, other: "ReadResult") -> None:
        self.examples.extend(other.examples)
        self.malformed += other.malformed
        self.files.extend(other.files)


def read_examples(path: str | Path) -> ReadResult:
    """Read every row of one data file (either format, JSON lines or JSON array)."""
    path = Path(path)
    first = _first_byte(path)
    if first == b"[":
        objects = _parse_array(path, _read_text(path).lstrip())
    elif first == b"{":
        objects = _parse_lines(path)
    else:
        raise UserError(f"{path} is not JSON lines or a JSON array; accepted: {ACCEPTED_FORMATS}")
    parsed = [(line, obj) for line, obj in objects if obj is not None]
    if not parsed:
        raise UserError(f"{path} has no parseable JSON row; accepted: {ACCEPTED_FORMATS}")
    converter = _detect_format(path, parsed[0][1])
    result = ReadResult(malformed=len(objects) - len(parsed), files=[str(path)])
    for line, obj in parsed:
        example = converter(obj, f"{path.name}:{line}")
        if example is None:
            result.malformed += 1
        else:
            result.examples.append(example)
    return result


def read_source(path: str | Path) -> ReadResult:
    """Read a data file, or every ``*.json``/``*.jsonl`` file of a directory in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
        if not files:
            raise UserError(f"{path} holds no .json or .jsonl file; accepted: {ACCEPTED_FORMATS}")
        result = ReadResult()
        for file in files:
            result.extend(read_examples(file))
        return result
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; pass DATA=synthetic, DATA=resyn27k "
                        "or DATA=path/to/file.jsonl")
    return read_examples(path)


def _first_byte(path: Path) -> bytes:
    """The first non-blank byte (after a BOM): ``[`` for an array, ``{`` for JSON lines."""
    with path.open("rb") as fh:
        head = fh.read(65536)
    if b"\0" in head:
        raise UserError(f"{path} is a binary file, not JSON; accepted: {ACCEPTED_FORMATS}")
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        f"accepted: {ACCEPTED_FORMATS}") from None


def _parse_array(path: Path, text: str) -> list[tuple[int, object]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} starts like a JSON array but does not parse (line {exc.lineno}: "
                        f"{exc.msg}); accepted: {ACCEPTED_FORMATS}") from None
    if not isinstance(rows, list):
        raise UserError(f"{path} is JSON but not an array of rows; accepted: {ACCEPTED_FORMATS}")
    return [(index + 1, row) for index, row in enumerate(rows)]


def _parse_lines(path: Path) -> list[tuple[int, object]]:
    """(line number, object or None for a line that is not valid JSON) for each non-blank line."""
    rows = []
    for number, raw in read_lines(path, "data"):
        if not raw.strip():
            continue
        try:
            rows.append((number, parse_line(raw)))
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}:{number} is not UTF-8 text ({exc.reason}); "
                            f"accepted: {ACCEPTED_FORMATS}") from None
        except json.JSONDecodeError:
            rows.append((number, None))
    return rows


def _detect_format(path: Path, first: object):
    if isinstance(first, dict) and "Instruction" in first and "Response" in first:
        return _from_resyn
    if isinstance(first, dict) and "instruction" in first and "output" in first:
        return _from_instruct
    keys = sorted(first) if isinstance(first, dict) else type(first).__name__
    raise UserError(f"{path}: unknown row format (first row has {keys}); accepted: {ACCEPTED_FORMATS}")


def _from_resyn(obj: object, origin: str) -> RawExample | None:
    if not isinstance(obj, dict):
        return None
    instruction, responses, header = obj.get("Instruction"), obj.get("Response"), obj.get("Input", "")
    if not (isinstance(instruction, str) and instruction.strip() and isinstance(header, str)):
        return None
    if not (isinstance(responses, list) and responses and isinstance(responses[0], str)):
        return None
    return RawExample(instruction.strip(), responses[0], header.strip(), RESYN_SOURCE, origin)


def _from_instruct(obj: object, origin: str) -> RawExample | None:
    if not isinstance(obj, dict):
        return None
    instruction, output = obj.get("instruction"), obj.get("output")
    if not (isinstance(instruction, str) and instruction.strip() and isinstance(output, str)):
        return None
    return RawExample(instruction.strip(), output, "", INSTRUCT_SOURCE, origin)


def fetch_resyn27k(cache_dir: str | Path, *, timeout: float = 60.0) -> Path:
    """Return a local copy of Resyn27k.json, downloading it (pinned commit) into ``cache_dir``.

    Hash check: against ``RESYN27K_SHA256`` when set, else against the hash recorded by the first
    download (``Resyn27k.json.sha256`` in the cache). Offline: a `UserError` naming ``DATA=path``.
    """
    cache = Path(cache_dir).expanduser()
    target = cache / "Resyn27k.json"
    record = cache / "Resyn27k.json.sha256"
    expected = RESYN27K_SHA256 or (record.read_text().strip() if record.is_file() else None)
    if target.is_file() and expected and _sha256(target.read_bytes()) == expected:
        return target
    try:
        with urllib.request.urlopen(RESYN27K_URL, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot download Resyn27k ({reason}); pass a local copy with "
                        "DATA=path/to/Resyn27k.json") from None
    digest = _sha256(data)
    if expected and digest != expected:
        raise UserError(f"downloaded Resyn27k has sha256 {digest}, expected {expected} "
                        f"({RESYN27K_URL}); delete {record} only if the change is understood")
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.part")
    partial.write_bytes(data)
    partial.replace(target)
    if not expected:
        record.write_text(digest + "\n")
    return target


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalize_instruction(text: str) -> str:
    """The instruction part of the de-duplication key: case and whitespace do not matter."""
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass(frozen=True)
class CleanExample:
    """A row whose reference is Verilog: extracted code, its first module header, module count."""

    instruction: str
    header: str
    reference: str
    source: str
    modules: int


def clean_examples(examples: list[RawExample]) -> tuple[list[CleanExample], dict[str, int]]:
    """Extract the Verilog of each reference and drop empty/non-Verilog rows and duplicates.

    Two rows are duplicates when their instructions match up to case and whitespace and their
    references match after `normalize_code` (comments and layout ignored); the first one is kept.
    Returns the kept rows (input order) and counts ``empty_or_non_verilog`` and ``duplicates``.
    """
    from verilog_tools.text import count_modules, extract_code, find_module_header, normalize_code

    kept: list[CleanExample] = []
    counts = {"empty_or_non_verilog": 0, "duplicates": 0}
    seen: set[tuple[str, str]] = set()
    for example in examples:
        code = extract_code(example.response, header=example.header, mode="module")
        modules = count_modules(code) if code else 0
        header = find_module_header(code) if modules else None
        if not header:
            counts["empty_or_non_verilog"] += 1
            continue
        key = (normalize_instruction(example.instruction), normalize_code(code))
        if key in seen:
            counts["duplicates"] += 1
            continue
        seen.add(key)
        kept.append(CleanExample(example.instruction, header, code.strip() + "\n", example.source, modules))
    return kept, counts
