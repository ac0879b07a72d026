"""Tokenizer, pretraining and generation on a micro model and a synthetic corpus."""

import json
import random

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from minirlhf.generation import count_params, generate, load_model
from minirlhf.pretrain import SIZES, ModelSize, PretrainConfig, build_model, pretrain
from minirlhf.tokenizer import train_tokenizer
from minirlhf.world import format_prompt

MICRO = ModelSize(n_layer=2, n_embd=32, n_head=2, steps=200, batch_size=8, lr=1e-2)  # ~2 s
MICRO_KW = dict(block_size=32, vocab_size=300, warmup=5, eval_every=50, progress=False)


def _docs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    people = {"Ada": "baker", "Bo": "pilot", "Cy": "nurse", "Dee": "farmer", "Eli": "painter"}
    docs = []
    for _ in range(n):
        name = rng.choice(list(people))
        job = people[name]
        docs.append(
            rng.choice(
                [
                    f"User: What is {name}'s job?\nAssistant: {name} is a {job}.",
                    f"{name} works as a {job} in Oakvale.",
                    f"User: Who is {name}?\nAssistant: {name} is a {job} from Oakvale.",
                ]
            )
        )
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    for name, n, seed in [("corpus.jsonl", 400, 0), ("corpus_val.jsonl", 60, 1)]:
        (root / name).write_text("".join(json.dumps({"text": t}) + "\n" for t in _docs(n, seed)))
    return root


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "base"
    info = pretrain(MICRO, out, corpus / "corpus.jsonl", corpus / "corpus_val.jsonl", **MICRO_KW)
    return out, info


def test_tokenizer_round_trips_and_matches_format_prompt():
    texts = _docs(300, 0)
    tok = train_tokenizer(texts, vocab_size=300)
    for s in ["User: What is Ada's job?\nAssistant:", "  héllo wörld 🙂 中文\t\n", "Zyx 12+3=15 <b>"]:
        assert tok.decode(tok.encode(s)) == s
    assert (tok.eos_token, tok.bos_token, tok.unk_token, tok.pad_token) == ("<|endoftext|>",) * 3 + ("<|pad|>",)
    assert tok.padding_side == "left" and tok.model_max_length == 256
    for prompt in ["What is Ada's job?", "  Who is Bo?  "]:
        chat = [{"role": "user", "content": prompt}]
        assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == format_prompt(prompt)
    again = train_tokenizer(texts, vocab_size=300)
    assert tok.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()


def test_size_ladder():
    class Vocab2048:  # what build_model needs from a tokenizer
        bos_token_id = eos_token_id = 0
        pad_token_id = 1

        def __len__(self):
            return 2048

    params = {name: count_params(build_model(SIZES[name], Vocab2048())) for name in ("tiny", "large")}
    assert params["tiny"] * 4 <= 10e6  # float32 bytes
    assert params["large"] >= 30 * params["tiny"]
    assert PretrainConfig(size="tiny", steps=5).model_size().steps == 5


def test_pretrain_saves_and_learns(trained):
    out, info = trained
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "pretrain_info.json"} <= names
    assert not out.with_name("base.tmp").exists()
    saved = json.loads((out / "pretrain_info.json").read_text())
    assert saved == json.loads(json.dumps(info))
    for key in ["size", "n_layer", "n_embd", "n_head", "params", "tokens_seen", "steps", "batch_size",
                "block_size", "val_loss", "train_loss", "seconds", "device", "torch", "transformers", "seed"]:
        assert key in saved
    assert saved["steps"] == 200 and saved["tokens_seen"] == 200 * 8 * 32
    hist = info["history"]
    assert [h["step"] for h in hist] == [50, 100, 150, 200] and all(h["stage"] == "pretrain" for h in hist)
    assert hist[-1]["loss"] < hist[0]["loss"] and hist[-1]["val_loss"] < hist[0]["val_loss"]

    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert count_params(model) == info["params"]
    assert (model.config.n_positions, model.config.pad_token_id) == (256, tok.pad_token_id)
    assert tok.padding_side == "left"
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True) == format_prompt("Hi")


def test_pretrain_is_deterministic(trained, corpus, tmp_path):
    out, info = trained
    again = pretrain(MICRO, tmp_path / "again", corpus / "corpus.jsonl", corpus / "corpus_val.jsonl", **MICRO_KW)
    assert again["history"] == info["history"]
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_generate(trained):
    model, tok = load_model(trained[0])
    prompts = ["What is Ada's job?", "Who is Bo?", "What is the job of the person who lives in Oakvale?"]
    answers = generate(model, tok, prompts, max_new_tokens=12, seed=0)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert generate(model, tok, prompts, max_new_tokens=12, seed=0) == answers
    assert len(generate(model, tok, [format_prompt("Hi")], max_new_tokens=4, format=False)) == 1

    # Greedy: left padding must not change a prompt's answer, alone or in a batch.
    for fmt in (True, False):
        batched = generate(model, tok, prompts, max_new_tokens=12, temperature=0, format=fmt)
        alone = [generate(model, tok, [p], max_new_tokens=12, temperature=0, format=fmt)[0] for p in prompts]
        assert batched == alone and any(batched)
    assert tok.padding_side == "left" and not model.training


def test_generate_samples_like_a_ppo_rollout(trained):
    """Sampling goes through PPO's own rollout: same seed, same answers; a near-zero temperature
    gives the greedy answers of model.generate."""
    from minirlhf.ppo import decode_responses, response_mask, rollout
    model, tok = load_model(trained[0])
    prompts = ["What is Ada's job?", "Who is Bo?", "Hello there", "Name three colours."]
    answers = generate(model, tok, prompts, max_new_tokens=10, temperature=0.9, seed=3)
    batch = rollout(model.eval(), tok, prompts, 10, 0.9, torch.Generator().manual_seed(3))
    assert answers == decode_responses(tok, batch["response_ids"], response_mask(batch["response_ids"],
                                                                                 tok.eos_token_id)[0])
    assert generate(model, tok, prompts, max_new_tokens=10, temperature=1e-4) == \
        generate(model, tok, prompts, max_new_tokens=10, temperature=0)


def test_samples_and_kl_gives_generates_answers(trained):
    """`minirlhf run` judges the PPO policy's answers and measures their KL from one sampling
    pass: the answers are generate's for the same seed (5 prompts in batches of 2), and the KL of
    a model against itself is 0."""
    from minirlhf.ppo import samples_and_kl
    model, tok = load_model(trained[0])
    prompts = ["What is Ada's job?", "Who is Bo?", "Hello there", "Name three colours.", "Add 2 and 5."]
    answers, kl = samples_and_kl(model, model, tok, prompts, 0.9, 10, seed=5, batch_size=2)
    assert answers == generate(model, tok, prompts, max_new_tokens=10, temperature=0.9, seed=5, batch_size=2)
    assert abs(kl) < 1e-4


def test_pretrain_stops_early_and_keeps_the_best_weights(corpus, tmp_path, monkeypatch):
    """Val losses 3.0, 2.0, 2.5, 2.6 at steps 50..200: patience 2 stops at 200, the step-100 model is saved."""
    import minirlhf.pretrain as pre
    losses, snapshots, real = iter([3.0, 2.0, 2.5, 2.6, 1.0]), {}, pre.evaluate

    def fake_evaluate(model, blocks, batch_size=64):
        real(model, blocks[:2])
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return next(losses)

    monkeypatch.setattr(pre, "evaluate", fake_evaluate)
    info = pretrain(MICRO, tmp_path / "m", corpus / "corpus.jsonl", corpus / "corpus_val.jsonl", patience=2, **MICRO_KW)
    assert (info["steps"], info["best_step"], info["val_loss"]) == (200, 100, 2.0)
    assert [h["step"] for h in info["history"]] == [50, 100, 150, 200]
    saved = load_file(tmp_path / "m" / "model.safetensors")
    best = snapshots[2]
    assert all(torch.equal(saved[k], best[k]) for k in saved if k in best)
    assert not all(torch.equal(saved[k], snapshots[4][k]) for k in saved if k in best)
