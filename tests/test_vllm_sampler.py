"""SAMPLER=vllm: requests (one seeded request per completion), adapter hand-over, output parsing, the
errors without vLLM or a GPU, and the stages' dispatch. A fake `vllm` module and a fake engine stand in
at the boundary (`_make_engine`), so nothing here needs vLLM; one GPU test runs it for real."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.sample import vllm_sampler
from harness.sample.sampling import SamplingConfig, completion_seed
from harness.config import TrainConfig
from verilog_tools.errors import UserError

TINY = dict(vocab_size=300, hidden_size=64, num_layers=1, num_heads=2, intermediate_size=64, max_positions=256)


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeLoRARequest:
    def __init__(self, name, int_id, path):
        self.name, self.int_id, self.path = name, int_id, path


class FakeEngine:
    """Answers each request with text that names its prompt and seed, then runs on past `endmodule`."""

    def __init__(self, target, **kwargs):
        self.target, self.kwargs, self.calls, self.shut = target, kwargs, [], False

    def generate(self, prompts, sampling_params=None, lora_request=None, use_tqdm=True):
        self.calls.append({"prompts": prompts, "params": sampling_params, "lora": lora_request})
        outs = []
        for prompt, params in zip(prompts, sampling_params):
            text = f"p{len(prompt['prompt_token_ids'])} s{params.kwargs.get('seed')}\nendmodule\nmodule extra;"
            outs.append(SimpleNamespace(outputs=[SimpleNamespace(text=text, token_ids=[0] * 5)]))
        return outs

    def shutdown(self):
        self.shut = True


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in `vllm` package, one visible GPU, and the engines _make_engine built."""
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = FakeSamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = FakeLoRARequest
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(vllm_sampler, "cuda_device_count", lambda: 1)
    engines = []

    def make_engine(target, **kwargs):
        engines.append(FakeEngine(target, **kwargs))
        return engines[-1]

    monkeypatch.setattr(vllm_sampler, "_make_engine", make_engine)
    # The child process runs in this one, so that it sees the fakes; the job and answer files are real.
    monkeypatch.setattr(vllm_sampler, "_run_child", lambda job, out: vllm_sampler.main([str(job), str(out)]))
    return engines


def char_tokenizer(prompts, add_special_tokens=True):
    assert add_special_tokens is False  # the chat template already holds BOS, as in the HF sampler
    return {"input_ids": [[ord(c) for c in p] for p in prompts]}


def test_one_seeded_request_per_completion():
    cfg = SamplingConfig(num_samples=3, temperature=0.8, top_p=0.9, max_new_tokens=50, seed=7)
    requests = vllm_sampler.build_requests(2, cfg)
    assert [(r.prompt_index, r.sample_indices) for r in requests] == [(i, (j,)) for i in range(2) for j in range(3)]
    assert [r.params["seed"] for r in requests] == [completion_seed(7, i, j) for i in range(2) for j in range(3)]
    assert requests[0].params == {"n": 1, "temperature": 0.8, "top_p": 0.9, "max_tokens": 50,
                                  "seed": completion_seed(7, 0, 0), "skip_special_tokens": True,
                                  "stop": ["endmodule"], "include_stop_str_in_output": True}


def test_greedy_asks_once_per_prompt_and_fills_every_sample():
    requests = vllm_sampler.build_requests(2, SamplingConfig(num_samples=3, temperature=0.0, seed=7))
    assert [(r.prompt_index, r.sample_indices) for r in requests] == [(0, (0, 1, 2)), (1, (0, 1, 2))]
    assert all("seed" not in r.params and r.params["temperature"] == 0.0 for r in requests)


def test_no_stop_when_the_stop_is_off():
    request = vllm_sampler.build_requests(1, SamplingConfig(stop_at_endmodule=False))[0]
    assert "stop" not in request.params


def test_outputs_are_parsed_in_order_and_cut_after_endmodule():
    requests = vllm_sampler.build_requests(2, SamplingConfig(num_samples=2, seed=1))
    outs = [SimpleNamespace(outputs=[SimpleNamespace(text=f"r{n} endmodule tail", token_ids=[1] * n)])
            for n in range(4)]
    texts, tokens = vllm_sampler.parse_outputs(requests, outs, 2, 2)
    assert texts == [["r0 endmodule", "r1 endmodule"], ["r2 endmodule", "r3 endmodule"]] and tokens == 6
    with pytest.raises(RuntimeError, match="3 outputs for 4 requests"):
        vllm_sampler.parse_outputs(requests, outs[:3], 2, 2)


def adapter(folder: Path, rank: int) -> str:
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    return str(folder)


def test_an_adapter_is_served_on_the_base_model(fake_vllm, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    weights = adapter(tmp_path / "iter-01-model", rank=12)
    cfg = SamplingConfig(num_samples=2, temperature=0.8, max_new_tokens=9, seed=5)
    stats = {}
    texts = vllm_sampler.sample_completions(str(base), weights, char_tokenizer, ["ab", "abc"], cfg,
                                            tensor_parallel_size=1, stats=stats, progress=False)
    engine = fake_vllm[0]
    assert engine.target == vllm_sampler.Weights(model=str(base), adapter=weights, lora_rank=16)
    assert engine.kwargs == {"tensor_parallel_size": 1, "seed": 5, "max_model_len": 3 + cfg.max_new_tokens,
                             "settings": vllm_sampler.EngineSettings()} and engine.shut
    call = engine.calls[0]
    assert isinstance(call["lora"], FakeLoRARequest) and call["lora"].path == weights
    assert [p["prompt_token_ids"] for p in call["prompts"]] == [[97, 98]] * 2 + [[97, 98, 99]] * 2
    assert [p.kwargs["max_tokens"] for p in call["params"]] == [9] * 4
    seeds = [[completion_seed(5, i, j) for j in range(2)] for i in range(2)]
    assert texts == [[f"p{n} s{s}\nendmodule" for s in seeds[i]] for i, n in enumerate((2, 3))]
    assert stats["completions"] == 4 and stats["tokens"] == 20 and stats["tokens_per_s"] > 0


def test_a_full_model_folder_is_loaded_as_the_model(fake_vllm, tmp_path):
    full = tmp_path / "iter-01-model"
    full.mkdir()
    (full / "config.json").write_text("{}")
    vllm_sampler.sample_completions("unused-base", str(full), char_tokenizer, ["x"], SamplingConfig(),
                                    progress=False)
    assert fake_vllm[0].target == vllm_sampler.Weights(model=str(full))
    assert fake_vllm[0].calls[0]["lora"] is None


def test_lora_ranks_round_up_to_a_slot_vllm_accepts():
    assert [vllm_sampler.lora_rank_slot(r) for r in (1, 8, 9, 64, 300)] == [8, 8, 16, 64, 320]
    with pytest.raises(UserError, match="lower lora_r"):
        vllm_sampler.lora_rank_slot(1024)


def test_without_vllm_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(UserError, match=r"needs the \[vllm\] extra and a CUDA GPU.*pip install -e '\.\[vllm\]'.*"
                                        r"or SAMPLER=hf$") as err:
        vllm_sampler.check_available()
    assert "\n" not in str(err.value)


def test_without_a_gpu_the_error_names_the_fix(fake_vllm, monkeypatch):
    monkeypatch.setattr(vllm_sampler, "cuda_device_count", lambda: 0)
    with pytest.raises(UserError, match=r"needs a CUDA GPU .* but 0 visible: .*or SAMPLER=hf$"):
        vllm_sampler.check_available()
    monkeypatch.setattr(vllm_sampler, "cuda_device_count", lambda: 2)
    with pytest.raises(UserError, match="4 for tensor_parallel_size=4"):
        vllm_sampler.check_available(4)


def test_train_refuses_sampler_vllm_before_the_run_starts(tmp_path, monkeypatch):
    from harness.commands.train import main_train
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(UserError, match="SAMPLER=vllm needs"):
        main_train(["--sampler", "vllm", "--run", "r", "--results-dir", str(tmp_path)])
    assert not (tmp_path / "r").exists()


# ---- the stages dispatch on cfg.sampler (tiny model for the tokenizer and the HF sampler) -----------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from harness.model.tiny_model import build_tiny_model
    corpus = [f"Write module m{i}.\nmodule m{i}(input a, output y); assign y = a; endmodule" for i in range(30)]
    return str(build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", corpus, seed=0, **TINY))


def records():
    from tasks.records import TrainingRecord
    return [TrainingRecord(id=f"r{i}", instruction=f"Write module m{i}.", header=f"module m{i}(input a, output y);",
                           reference="assign y = a;\nendmodule", source="test") for i in range(2)]


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("sampler", ["vllm", "hf"])
def test_sample_stage_dispatches_on_the_sampler_and_records_its_throughput(tiny, tmp_path, fake_vllm, sampler):
    from harness.loop.stages import sample_stage

    cfg = TrainConfig(model="tiny", sampler=sampler, k=3, max_new_tokens=6, seed=0)
    out = tmp_path / "candidates.jsonl"
    sample_stage(cfg, tiny, None, records(), seed=4, out=out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["r0", "r1"] and all(len(r["samples"]) == 2 for r in rows)
    assert bool(fake_vllm) == (sampler == "vllm")
    if fake_vllm:
        assert fake_vllm[0].target.model == tiny and "\nendmodule" in rows[0]["samples"][0]
    stats = json.loads((tmp_path / "sample_stats.json").read_text())
    assert stats["sampler"] == sampler and stats["completions"] == 4 and stats["prompts"] == 2
    assert stats["tokens"] > 0 and stats["seconds"] > 0 and stats["tokens_per_s"] > 0
    assert stats["prompt_tokens"] > 0 and stats["device"] == "cpu"


@pytest.mark.gpu
def test_vllm_samples_the_tiny_model_with_a_lora_adapter(tmp_path):
    pytest.importorskip("vllm")
    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.model.models import ModelConfig, load_tokenizer
    from harness.model.prompting import format_prompt
    from harness.model.tiny_model import build_tiny_model

    corpus = [f"Write module m{i}.\nmodule m{i}(input a, output y); assign y = a; endmodule" for i in range(30)]
    base = build_tiny_model(tmp_path / "tiny", corpus, seed=0, vocab_size=512, hidden_size=128, num_layers=2,
                            num_heads=2, intermediate_size=256, max_positions=512)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                          LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    lora.save_pretrained(tmp_path / "adapter")
    tokenizer = load_tokenizer(ModelConfig(str(base), lora=False))
    prompts = [format_prompt(tokenizer, "Write module m1."), format_prompt(tokenizer, "Write module m2.")]
    cfg = SamplingConfig(num_samples=2, temperature=0.8, max_new_tokens=16, seed=3)
    stats = {}
    first = vllm_sampler.sample_completions(str(base), str(tmp_path / "adapter"), tokenizer, prompts, cfg,
                                            stats=stats, progress=False)
    again = vllm_sampler.sample_completions(str(base), str(tmp_path / "adapter"), tokenizer, prompts, cfg,
                                            progress=False)
    assert first == again and [len(t) for t in first] == [2, 2] and stats["tokens"] > 0
    greedy = vllm_sampler.sample_completions(str(base), None, tokenizer, prompts,
                                             SamplingConfig(num_samples=2, temperature=0.0, max_new_tokens=16),
                                             progress=False)
    assert all(len(set(texts)) == 1 for texts in greedy)


def test_engine_settings_reach_the_engine_and_the_stats(fake_vllm, tmp_path):
    cfg = SamplingConfig(num_samples=1, max_new_tokens=7)
    settings = vllm_sampler.EngineSettings(gpu_memory_utilization=0.5, base="nf4")
    stats: dict = {}
    texts = vllm_sampler.sample_completions("unused-base", str(tmp_path), char_tokenizer, ["ab", "abcd"], cfg,
                                            engine=settings, in_child=True, stats=stats)
    assert texts == [["p2 s" + str(completion_seed(0, 0, 0)) + "\nendmodule"],
                     ["p4 s" + str(completion_seed(0, 1, 0)) + "\nendmodule"]]
    assert fake_vllm[0].kwargs["settings"] == settings and fake_vllm[0].kwargs["max_model_len"] == 4 + 7
    assert stats["vllm"] == {"gpu_memory_utilization": 0.5, "max_model_len": 11, "base": "nf4",
                             "free_memory_wait_s": 120.0, "child_process": True}
    fixed = vllm_sampler.EngineSettings(max_model_len=64)
    vllm_sampler.sample_completions("unused-base", str(tmp_path), char_tokenizer, ["ab"], cfg, engine=fixed)
    assert fake_vllm[1].kwargs["max_model_len"] == 64


def test_an_error_in_the_child_comes_back_as_one_line(fake_vllm, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise UserError("the vLLM engine needs 85% of GPU 0 free")
    monkeypatch.setattr(vllm_sampler, "_make_engine", refuse)
    with pytest.raises(UserError, match="needs 85% of GPU 0 free"):
        vllm_sampler.sample_completions("b", str(tmp_path), char_tokenizer, ["x"], SamplingConfig(), in_child=True)
    monkeypatch.setattr(vllm_sampler, "_run_child", lambda job, out: 1)
    with pytest.raises(UserError, match="failed in its child process"):
        vllm_sampler.sample_completions("b", str(tmp_path), char_tokenizer, ["x"], SamplingConfig(), in_child=True)


def test_settings_are_checked():
    with pytest.raises(UserError, match="vllm_base"):
        vllm_sampler.EngineSettings(base="fp8")
    with pytest.raises(UserError, match="vllm_gpu_memory_utilization"):
        vllm_sampler.EngineSettings(gpu_memory_utilization=1.5)
    with pytest.raises(UserError, match="vllm_base"):
        TrainConfig(vllm_base="int4")


def test_waiting_for_free_gpu_memory(monkeypatch):
    from harness.model.gpu import wait_for_free_gpu_memory
    readings = iter([(10, 100), (50, 100), (90, 100)])
    assert wait_for_free_gpu_memory(0.85, 5, poll_s=0, query=lambda d: next(readings)) == [(90, 100)]
    with pytest.raises(UserError, match="needs 85% of GPU 1 free .* only 0.0 GiB was free"):
        wait_for_free_gpu_memory(0.85, 0, devices=2, poll_s=0, query=lambda d: (100, 100) if d == 0 else (10, 100))
