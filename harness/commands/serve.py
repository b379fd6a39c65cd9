"""`make serve MODEL=<run folder | model folder>`: the model behind an OpenAI-compatible HTTP endpoint.

FastAPI + uvicorn do the HTTP; generation is the project's own sampler (`harness.sample.sampling`), with the
prompt laid out exactly as in training (`harness.model.prompting.format_prompt` of the user turn), so a trained
checkpoint answers through this endpoint as it answers in `make eval MODEL=<run>`. Endpoints:
``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (``n``, ``temperature``,
``top_p``, ``max_tokens``, ``seed``; no streaming). A system message is ignored: the project's models
are trained on the user turn alone.

It listens on 127.0.0.1 unless HOST says otherwise; the endpoint has no authentication, so only bind it
to another interface on a network you trust. One request is generated at a time (one model in memory).
"""
# No `from __future__ import annotations`: FastAPI must see the request classes, defined in
# build_app, as real types to read them from the request body.
import threading
import time
import uuid
from dataclasses import dataclass, field

from harness.commands.flags import Parser, add_config_flags
from harness.model.models import ModelConfig, load_model, load_tokenizer
from harness.model.prompting import encode_prompt, format_prompt
from harness.sample.model_eval import resolve_model
from harness.sample.sampling import SamplingConfig, sample_completions
from verilog_tools.errors import UserError


@dataclass
class ServeConfig:
    """What to serve and where."""

    model: str | None = field(default=None, metadata={"help": "run folder (optionally :N), model folder or cached HF id (MODEL)"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface to listen on; 127.0.0.1 = this machine only (HOST)"})
    port: int = field(default=8000, metadata={"help": "TCP port (PORT)"})
    name: str | None = field(default=None, metadata={"help": "model name clients send; default: the MODEL label"})
    max_new_tokens: int = field(default=512, metadata={"help": "upper bound on max_tokens per completion"})

    def __post_init__(self) -> None:
        if not self.model:
            raise UserError("model: set MODEL=<run folder or model folder> to serve")
        if not 0 <= self.port <= 65535:
            raise UserError(f"port: 0..65535, got {self.port}")
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens: a positive integer, got {self.max_new_tokens}")


class Generator:
    """The loaded model and tokenizer; `complete` runs one request (serialised by a lock)."""

    def __init__(self, spec: str, max_new_tokens: int):
        resolved = resolve_model(spec)
        if resolved.base.startswith("openai:"):
            raise UserError("MODEL for serve must be a run folder or a model folder, not openai:<name>")
        cfg = ModelConfig(name_or_path=resolved.base, quant=resolved.quant, lora=resolved.lora)
        self.tokenizer = load_tokenizer(cfg)
        self.model = load_model(cfg, adapter_path=resolved.weights, trainable=False)
        self.label = resolved.label
        self.max_new_tokens = max_new_tokens
        self.lock = threading.Lock()

    def complete(self, instruction: str, *, n: int, temperature: float, top_p: float, max_tokens: int | None,
                 seed: int | None) -> tuple[list[str], dict]:
        prompt = format_prompt(self.tokenizer, instruction)
        cfg = SamplingConfig(num_samples=n, temperature=temperature, top_p=top_p,
                             max_new_tokens=min(max_tokens or self.max_new_tokens, self.max_new_tokens),
                             batch_size=max(1, min(n, 8)), seed=seed or 0)
        stats: dict = {}
        with self.lock:
            texts = sample_completions(self.model, self.tokenizer, [prompt], cfg, progress=False, stats=stats)[0]
        prompt_tokens = len(encode_prompt(self.tokenizer, prompt))
        return texts, {"prompt_tokens": prompt_tokens, "completion_tokens": int(stats.get("tokens") or 0),
                       "total_tokens": prompt_tokens + int(stats.get("tokens") or 0)}


def build_app(generator, name: str):
    """The FastAPI app serving ``generator`` under model name ``name``."""
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    class Message(BaseModel):
        role: str
        content: str

    class Sampling(BaseModel):
        model: str
        n: int = 1
        temperature: float = 1.0
        top_p: float = 1.0
        max_tokens: int | None = None
        seed: int | None = None

    class ChatRequest(Sampling):
        messages: list[Message]

    class CompletionRequest(Sampling):
        prompt: str

    app = FastAPI(title="itertl serve")

    def run(instruction: str, req: Sampling):
        if req.model != name:
            raise HTTPException(404, f"model {req.model!r} is not served here; this server has {name!r}")
        if not 1 <= req.n <= 64 or req.temperature < 0 or not 0 < req.top_p <= 1:
            raise HTTPException(400, "need 1 <= n <= 64, temperature >= 0 and 0 < top_p <= 1")
        return generator.complete(instruction, n=req.n, temperature=req.temperature, top_p=req.top_p,
                                  max_tokens=req.max_tokens, seed=req.seed)

    def envelope(kind: str, choices: list, usage: dict) -> dict:
        return {"id": f"{kind}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
                "model": name, "choices": choices, "usage": usage}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "itertl"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        instruction = "\n\n".join(m.content for m in req.messages if m.role == "user")
        texts, usage = run(instruction, req)
        return envelope("chat.completion", [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)], usage)

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        texts, usage = run(req.prompt, req)
        return envelope("text_completion", [{"index": i, "text": t, "finish_reason": "stop"}
                                            for i, t in enumerate(texts)], usage)

    return app


def main_serve(argv: list[str]) -> int:
    parser = Parser(prog="python -m harness serve", description=__doc__.split("\n")[0])
    add_config_flags(parser, ServeConfig)
    config = ServeConfig(**vars(parser.parse_args(argv)))
    try:
        import uvicorn
    except ImportError:
        raise UserError("make serve needs fastapi and uvicorn: pip install -e '.[api]'") from None
    generator = Generator(config.model, config.max_new_tokens)
    name = config.name or generator.label
    print(f"serving {name!r} on http://{config.host}:{config.port}/v1", flush=True)
    uvicorn.run(build_app(generator, name), host=config.host, port=config.port, log_level="warning")
    return 0
