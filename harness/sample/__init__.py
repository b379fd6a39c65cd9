"""Completions from a model: the HF sampler and its decode loop (`sampling`, `decode`), vLLM
(`vllm_sampler`), OpenAI-compatible endpoints (`api_sampler`), and `make eval MODEL=`'s resolution of a
model spec into samples (`model_eval`)."""
