"""Sample completions from an OpenAI-compatible endpoint (`MODEL=openai:<name>`) through the official
`openai` client: commercial APIs, vLLM/SGLang servers, or `make serve`.

* Endpoint and key come from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` and are never written anywhere:
  results record the endpoint without credentials (`public_endpoint`), never the key.
* Prompts go through a named, versioned template (`TEMPLATES`); each sample row records the template id
  and the sha256 of the exact request prompt (messages or text).
* One request per (problem, sample index), ``n`` indexes per problem, each with its own seed derived from
  SEED and the task id (`request_seed`; servers that honour ``seed`` give reproducible samples, the same
  in a shard as unsharded); ``concurrency`` requests in flight.
* Rate limits (429), server errors (5xx), timeouts and dropped connections are retried up to ``retries``
  times with exponential backoff and jitter; other API errors are the user's to fix (one line).
* Every completion is stored, as soon as it arrives, in a SQLite cache keyed by (endpoint, model,
  template, prompt, settings, sample index), so an interrupted run resumes without paying twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from verilog_tools.errors import UserError

PREFIX = "openai:"
SYSTEM_PROMPT = ("You are an expert digital designer who writes correct, synthesizable Verilog. "
                 "Answer with the complete Verilog code only.")


@dataclass(frozen=True)
class Template:
    """A named, versioned prompt layout. ``kind``: "chat" (messages) or "completion" (text)."""

    id: str
    kind: str
    system: str | None = None

    def render(self, prompt: str):
        if self.kind == "completion":
            return prompt
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return messages + [{"role": "user", "content": prompt}]


TEMPLATES = {t.id: t for t in (
    Template("chat/v1", "chat", SYSTEM_PROMPT),        # system + the task's prompt as the user turn
    Template("chat-plain/v1", "chat"),                  # the task's prompt as the only message
    Template("completion/v1", "completion"),            # raw text completion of the task's prompt
)}


def prompt_sha256(rendered) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(rendered, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def public_endpoint(url: str) -> str:
    """``url`` without user info, query or fragment (where keys sometimes hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def endpoint_from_env() -> tuple[str, str]:
    """(base URL, API key) from the environment; a one-line error naming the fix when unusable."""
    base = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        if not os.environ.get("OPENAI_BASE_URL"):
            raise UserError("MODEL=openai:<name> needs OPENAI_API_KEY (and OPENAI_BASE_URL for a server "
                            "other than api.openai.com) in the environment")
        key = "EMPTY"   # local servers (make serve, vLLM) accept any key
    if not urlsplit(base).scheme.startswith("http"):
        raise UserError(f"OPENAI_BASE_URL={public_endpoint(base)!r} is not an http(s) URL")
    return base, key


class CompletionCache:
    """Completions on disk (SQLite, one row per request key); safe across threads and processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                             "usage TEXT, created REAL)")

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM completions WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, text: str, usage: dict | None) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?)",
                             (key, text, json.dumps(usage), time.time()))

    def close(self) -> None:
        self._db.close()


def request_key(endpoint: str, model: str, template: str, rendered, settings: dict, index: int) -> str:
    blob = json.dumps([endpoint, model, template, rendered, settings, index], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def request_seed(seed: int, task_id: str, index: int) -> int:
    """The ``seed`` sent with sample ``index`` of ``task_id``: from the task's id, not its position, so a
    shard (SHARD=i/N) requests exactly what the unsharded run requests."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}:{index}".encode()).digest()[:4], "big") >> 1


def _retryable(exc: Exception) -> bool:
    import openai
    if isinstance(exc, (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def call_with_retries(call, retries: int, base_delay: float = 1.0, max_delay: float = 60.0):
    """``call()``, retried on rate limits / server errors / timeouts with exponential backoff + jitter."""
    import openai
    for attempt in range(retries + 1):
        try:
            return call()
        except openai.APIError as exc:
            if not _retryable(exc) or attempt == retries:
                status = getattr(exc, "status_code", None)
                raise UserError(f"API request failed{f' (HTTP {status})' if status else ''} after {attempt + 1} "
                                f"attempt(s): {type(exc).__name__}; check MODEL, OPENAI_BASE_URL and "
                                f"OPENAI_API_KEY, or raise RETRIES") from None
            time.sleep(min(max_delay, base_delay * 2 ** attempt) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")


def sample_api(problems: list, config, *, cache_path: str | Path, request_timeout: float = 600.0,
               base_delay: float = 1.0) -> tuple[list[dict], dict]:
    """samples.jsonl rows for ``problems`` from ``config.model`` (``openai:<name>``), and usage info."""
    import openai
    from tasks.prompts import build_prompt
    model = config.model[len(PREFIX):]
    template = TEMPLATES.get(config.template)
    if template is None:
        raise UserError(f"TEMPLATE={config.template!r} is unknown; known: {', '.join(TEMPLATES)}")
    base, key = endpoint_from_env()
    endpoint = public_endpoint(base)
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=request_timeout)
    settings = {"temperature": config.temperature, "top_p": config.top_p, "max_tokens": config.max_new_tokens,
                "seed": config.seed}
    cache = CompletionCache(cache_path)
    usage = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0}
    lock = threading.Lock()

    def one(problem, j: int) -> dict:
        rendered = template.render(problem.prompt or build_prompt(problem))
        ckey = request_key(endpoint, model, template.id, rendered, settings, j)
        text = cache.get(ckey)
        if text is None:
            kwargs = dict(model=model, temperature=config.temperature, top_p=config.top_p,
                          max_tokens=config.max_new_tokens, seed=request_seed(config.seed, problem.task_id, j), n=1)
            if template.kind == "chat":
                reply = call_with_retries(lambda: client.chat.completions.create(messages=rendered, **kwargs),
                                          config.retries, base_delay)
                text = reply.choices[0].message.content or ""
            else:
                reply = call_with_retries(lambda: client.completions.create(prompt=rendered, **kwargs),
                                          config.retries, base_delay)
                text = reply.choices[0].text or ""
            used = reply.usage.model_dump() if getattr(reply, "usage", None) else None
            cache.put(ckey, text, used)
            with lock:
                usage["requests"] += 1
                for name in ("prompt_tokens", "completion_tokens"):
                    usage[name] += int((used or {}).get(name) or 0)
        else:
            with lock:
                usage["cached"] += 1
        return {"task_id": problem.task_id, "completion_id": j, "completion": text,
                "prompt_template": template.id, "prompt_sha256": prompt_sha256(rendered)}

    jobs = [(p, j) for p in problems for j in range(config.n)]
    try:
        with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
            futures = [pool.submit(one, *job) for job in jobs]
            try:
                rows = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        cache.close()
        client.close()
    info = {"temperature": config.temperature, "top_p": config.top_p, "n": config.n,
            "model_resolved": {"api": endpoint, "model": model, "template": template.id},
            "token_usage": usage}
    return rows, info
