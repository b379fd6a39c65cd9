"""The prompt layout shared by training and sampling, so the model is sampled exactly as it was trained.

A tokenizer with a chat template (instruct models, the tiny default model) gets one user message holding
the instruction, followed by the template's generation prompt. A tokenizer without one gets a plain
Alpaca-style layout (PLAIN_TEMPLATE). In training the response is followed by the EOS token, so the model
learns to stop; at sampling time generation also stops at `endmodule` (see harness.sample.sampling).

The training prompt style (``train_prompt_style``, PROMPT_STYLES) says what a training response is.
``module`` (the default): the prompt gives the interface and asks for a whole module, and the model
writes it. ``body``: VerilogEval v1's layout (``tasks.prompts``, completion_mode "body"): the prompt
ends with the module header and the model writes what follows it. Either way a candidate is stored and
scored as the whole design (header + body in ``body``; see harness.objective.scoring), and ``response_text``
cuts it back to what the model writes, so training, sampling and scoring agree.
"""
from __future__ import annotations

PLAIN_TEMPLATE = "### Instruction:\n{instruction}\n### Response:\n"
PROMPT_STYLES = ("module", "body")


def response_text(design: str, header: str, style: str) -> str | None:
    """What the model writes for ``design`` (a whole module) in prompt style ``style``: the design itself
    (``module``), or what follows ``header`` (``body``; None when the design does not start with it)."""
    if style == "module":
        return design
    if style != "body":
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    if not header or not design.startswith(header):
        return None
    return design[len(header):]


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(tokenizer, instruction: str) -> str:
    """The text the model continues to answer `instruction` (special tokens such as BOS included)."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token or ""
    return bos + PLAIN_TEMPLATE.format(instruction=instruction)


def format_example(tokenizer, instruction: str, response: str) -> tuple[str, str]:
    """(prompt_text, full_text) for one training example; full_text = prompt_text + response + EOS.

    The full text is built by appending to the prompt rather than by rendering the chat template with an
    assistant turn, because some templates render the same prompt differently once an answer follows
    (dropped generation headers, extra system text); appending guarantees that prompt_text is a prefix of
    full_text, so the trainer can mask the prompt tokens by length.
    """
    prompt = format_prompt(tokenizer, instruction)
    eos = tokenizer.eos_token or ""
    return prompt, prompt + response + eos


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a formatted prompt; BOS is not added a second time when the text already has it."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]
