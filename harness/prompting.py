"""The prompt layout shared by training and sampling, so the model is sampled exactly as it was trained.

A tokenizer with a chat template (instruct models, the tiny default model) gets one user message holding
the instruction, followed by the template's generation prompt. A tokenizer without one gets a plain
Alpaca-style layout (PLAIN_TEMPLATE). In training the response is followed by the EOS token, so the model
learns to stop; at sampling time generation also stops at `endmodule` (see harness.sampling).
"""
from __future__ import annotations

PLAIN_TEMPLATE = "### Instruction:\n{instruction}\n### Response:\n"


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


def encode_example(tokenizer, instruction: str, response: str) -> tuple[list[int], int]:
    """(input_ids, prompt_length) for training: prompt tokens followed by response + EOS tokens.

    The two parts are tokenized separately and concatenated, exactly as at sampling time (prompt tokens,
    then generated tokens), so a BPE merge across the boundary can never make training see a token
    sequence sampling would not produce. Mask the loss on input_ids[:prompt_length].
    """
    prompt_ids = encode_prompt(tokenizer, format_prompt(tokenizer, instruction))
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    return prompt_ids + response_ids, len(prompt_ids)
