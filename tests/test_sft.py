"""SFT: the loss against hand-computed numbers, the data path, training on GPT-2 and Llama,
and the real default SFT on the shipped base model (when it is there)."""
import json
import math
import time

import datasets
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from minirlhf.generation import load_model
from minirlhf.io import DataError, read_jsonl
from minirlhf.judge import judge_model
from minirlhf.paths import base_model_dir, world_dir
from minirlhf.sft import (SFTConfig, collate, load_sft_rows, masked_token_count, more_demonstrations, run_sft,
                          sft_loss, tokenize_example, train_sft)
from minirlhf.tokenizer import train_tokenizer
from minirlhf.world import format_prompt

DEMOS = world_dir() / "demonstrations.jsonl"
FAST = SFTConfig(epochs=4, batch_size=16, lr=3e-3, eval_every=20, n_samples=2, max_new_tokens=8)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain little from a second thread, and on a busy machine two threads
    spin-wait for each other (measured: 0.13 s/step on one thread, 1.6-3.5 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    rows = read_jsonl(DEMOS)
    return train_tokenizer([format_prompt(r["prompt"]) + " " + r["completion"] for r in rows], vocab_size=400)


@pytest.fixture(scope="module")
def rows():
    rows = load_sft_rows(DEMOS)
    return rows[:192], rows[192:240]


def _gpt2(tok, seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id))


# --- math ------------------------------------------------------------------------------

def test_sft_loss_by_hand():
    # position t predicts label t+1; the last position predicts nothing
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [9.0, -9.0]],
                           [[5.0, 5.0], [0.0, math.log(3)], [9.0, -9.0]]])  # (B=2, T=3, V=2)
    labels = torch.tensor([[-100, 1, 0],
                           [-100, -100, 1]])  # (B, T)
    # row 0: p(1) = 1/2, then p(0) = 3/4; row 1: only p(1) = 3/4 counts
    expected = (math.log(2) + 2 * math.log(4 / 3)) / 3
    assert masked_token_count(labels) == 3
    assert sft_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_sft_loss_matches_transformers(tok, rows):
    model = _gpt2(tok)
    batch = collate([tokenize_example(tok, r["prompt"], r["completion"], 128) for r in rows[0][:4]],
                    tok.pad_token_id)
    out = model(**batch)  # Hugging Face shifts the labels and ignores -100 itself
    assert sft_loss(out.logits, batch["labels"]).item() == pytest.approx(out.loss.item(), rel=1e-5)


# --- data ------------------------------------------------------------------------------

def test_tokenize_masks_exactly_the_prompt(tok):
    prompt, completion = "Where does Ada live?", "Ada lives in Oakvale."
    n_prompt = len(tok(format_prompt(prompt), add_special_tokens=False)["input_ids"])
    ex = tokenize_example(tok, prompt, completion, max_length=128)
    ids, labels = ex["input_ids"], ex["labels"]
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and -100 not in labels[n_prompt:]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids) == format_prompt(prompt) + " " + completion + tok.eos_token

    cut = tokenize_example(tok, prompt, completion, max_length=n_prompt + 2)  # too-long completion
    assert len(cut["input_ids"]) == n_prompt + 2 and cut["input_ids"][-1] != tok.eos_token_id
    with pytest.raises(DataError, match=r"row 7: over-long prompt: \d+ prompt tokens .*max_length=\d+"):
        tokenize_example(tok, prompt, completion, max_length=n_prompt, where="row 7")


def test_collate_pads_right():
    a = {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}
    b = {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9]}
    batch = collate([a, b], pad_token_id=1)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 1, 1], [5, 6, 7, 8, 9]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, -100], [-100, -100, 7, 8, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_load_sft_rows_sources_and_errors(tmp_path):
    rows = [{"prompt": "p", "completion": "c", "extra": 1}]
    assert load_sft_rows(rows) == [{"prompt": "p", "completion": "c"}]
    assert load_sft_rows(datasets.Dataset.from_list(rows)) == [{"prompt": "p", "completion": "c"}]
    with pytest.raises(DataError, match=r"row 2: missing column 'completion'"):
        load_sft_rows(rows + [{"prompt": "q", "answer": "a"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "completion": "c"}\n{"prompt": "q"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: missing column 'completion'"):
        load_sft_rows(bad)
    with pytest.raises(DataError, match=r"missing column 'prompt'"):
        load_sft_rows(datasets.Dataset.from_dict({"completion": ["c"]}))
    with pytest.raises(DataError, match="no rows"):
        load_sft_rows([])
    with pytest.raises(DataError, match="no rows"):
        load_sft_rows(datasets.Dataset.from_dict({"prompt": [], "completion": []}))
    with pytest.raises(DataError, match=r"row 1: 'completion' should be a string"):
        load_sft_rows([{"prompt": "p", "completion": None}])


def test_over_long_prompt_names_the_row(tok):
    data = [{"prompt": "hi", "completion": "hello"}, {"prompt": "word " * 200, "completion": "ok"}]
    with pytest.raises(DataError, match=r"train, row 2: over-long prompt"):
        train_sft(_gpt2(tok), tok, data, config=SFTConfig(max_length=64), progress=False)


# --- training --------------------------------------------------------------------------

def test_train_sft_gpt2_learns_and_is_deterministic(tok, rows):
    train, val = rows
    res = train_sft(_gpt2(tok), tok, train, val, FAST, progress=False)
    vals = [h["val_loss"] for h in res.history if "val_loss" in h]
    assert [h["step"] for h in res.history if "val_loss" in h] == [0, 20, 40, 48]  # start, every 20, end
    assert vals[-1] < 0.8 * vals[0]
    assert res.history[0] == {"stage": "sft", "step": 0, "val_loss": vals[0], "lr": 0.0}  # before training
    assert all(h["stage"] == "sft" and "loss" in h and "lr" in h for h in res.history[1:])
    assert [s["prompt"] for s in res.samples_after] == [r["prompt"] for r in val[:2]]
    assert [s["prompt"] for s in res.samples_before] == [s["prompt"] for s in res.samples_after]
    assert not res.model.training and res.seconds > 0

    again = train_sft(_gpt2(tok), tok, train, val, FAST, progress=False)
    assert [h["loss"] for h in again.history[1:]] == [h["loss"] for h in res.history[1:]]
    assert again.samples_after == res.samples_after


def test_train_sft_llama_and_saving(tok, rows, tmp_path):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id))
    train, val = rows
    out = tmp_path / "sft"
    res = train_sft(model, tok, datasets.Dataset.from_list(train), val, FAST, out_dir=out, progress=True)
    vals = [h["val_loss"] for h in res.history if "val_loss" in h]
    assert vals[-1] < vals[0]

    assert (out / "model.safetensors").is_file() and not (tmp_path / "sft.tmp").exists()
    info = json.loads((out / "sft_info.json").read_text())
    assert info["config"]["lr"] == FAST.lr and info["val_loss"] == vals[-1] and info["device"] == "cpu"
    assert info["val_loss_before"] == vals[0] and info["seconds"] > 0
    loaded, loaded_tok = load_model(out)
    ids = torch.tensor([tok(format_prompt("Where does Ada live?"))["input_ids"]])
    assert torch.allclose(loaded(ids).logits, res.model(ids).logits, atol=1e-5)
    assert loaded_tok.eos_token_id == tok.eos_token_id


# --- the real thing --------------------------------------------------------------------

@pytest.mark.skipif(not (base_model_dir("tiny") / "config.json").is_file(), reason="no shipped base model")
def test_default_sft_raises_helpful_rate_for_three_seeds(tmp_path):
    """The default SFT lifts the gold helpful rate by >= 0.15 (measured: 0.245 -> ~0.68).

    ~25 s per seed on one CPU thread, ~2 minutes in all with the judging.
    """
    base = judge_model(base_model_dir("tiny"), n=200)["helpful_rate"]
    for seed in (0, 1, 2):
        start = time.time()
        run_sft(out_dir=tmp_path / f"sft{seed}", config=SFTConfig(seed=seed, device="cpu"), progress=False)
        seconds = time.time() - start
        sft = judge_model(tmp_path / f"sft{seed}", n=200)["helpful_rate"]
        print(f"seed {seed}: helpful {base:.3f} -> {sft:.3f} (SFT {seconds:.0f} s)")
        assert sft >= base + 0.15, (seed, base, sft)


def test_more_demonstrations_are_new_prompts_with_good_answers(tmp_path):
    """SFTConfig.more_demonstrations: distinct new prompts in none of the world's files (so never an
    evaluation or held-out comparison prompt) with answers gold finds helpful; the same seed, the same
    rows; `run_sft` adds them to the world's file, and refuses them beside a user's own data."""
    from minirlhf.world.gold import judge
    rows = more_demonstrations(40, seed=1)
    assert rows == more_demonstrations(40, seed=1) and rows != more_demonstrations(40, seed=2)
    prompts = [r["prompt"] for r in rows]
    used = {r["prompt"] for f in world_dir().glob("*.jsonl") if not f.name.startswith("corpus") for r in read_jsonl(f)}
    assert len(set(prompts)) == 40 and not used & set(prompts)
    helpful = [judge(r["prompt"], r["completion"]).helpful for r in rows]
    assert min(helpful) >= 0.5 and sum(helpful) / len(helpful) > 0.9, helpful
    assert more_demonstrations(0) == []
    config = SFTConfig(epochs=1, batch_size=64, n_samples=0, more_demonstrations=7, device="cpu")
    run_sft(out_dir=tmp_path / "sft", config=config, progress=False)
    info = json.loads((tmp_path / "sft" / "sft_info.json").read_text())
    assert info["n_train"] == len(read_jsonl(DEMOS)) + 7 and info["config"]["more_demonstrations"] == 7
    with pytest.raises(ValueError, match="more_demonstrations.*train_path"):
        run_sft(config=config, train_path=DEMOS)
    with pytest.raises(ValueError, match="more_demonstrations"):
        SFTConfig(more_demonstrations=-1)
