"""The library with a user's own data, reward and models: what works, and the errors for what does not."""
import warnings

import pytest
import torch

from minirlhf.generation import generate, load_model
from minirlhf.io import DataError
from minirlhf.paths import base_model_dir


@pytest.fixture(scope="module")
def base():
    return load_model(base_model_dir("tiny"))


ROWS = [{"prompt": f"Where does {p} live?", "completion": f"{p} lives in Ashby."} for p in ("Ada", "Bo", "Cy", "Di")]


# ---------------------------------------------------------------------------- lengths

def test_a_prompt_too_long_for_the_model_is_named_not_an_index_error(base):
    model, tok = base
    long_prompt = "word " * 110                          # ~220 tokens: fits 256 positions, not with 48 more
    for temperature in (0.7, 0.0):                       # PPO's sampler and model.generate
        with pytest.raises(ValueError, match=r"prompt 1 has \d+ tokens; .* needs \d+ positions and the model has "
                                             "256") as e:
            generate(model, tok, ["Where does Ada live?", long_prompt], max_new_tokens=48, temperature=temperature)
        assert "'word word" in str(e.value)              # the message quotes the prompt, not the format around it
    assert generate(model, tok, ["Where does Ada live?"], max_new_tokens=8)   # a short one still runs


def test_one_string_is_not_a_list_of_prompts(base):
    model, tok = base
    with pytest.raises(TypeError, match="not one string"):
        generate(model, tok, "Where does Ada live?")
    from minirlhf.ppo import PPOConfig, train_ppo
    with pytest.raises(TypeError, match="not one string"):
        train_ppo(model, model, model, lambda p, r: [0.0] * len(r), tok, "Where does Ada live?", PPOConfig())


def test_an_sft_example_longer_than_the_models_positions_is_named(base):
    from minirlhf.sft import SFTConfig, train_sft
    model, tok = base
    rows = ROWS + [{"prompt": "Where does Ada live?", "completion": "word " * 200}]   # ~400 tokens
    with pytest.raises(DataError, match="train, row 5: 4.. tokens, more than the model's 256 positions: set "
                                        r"SFTConfig.max_length <= 256 \(now 512"):
        train_sft(model, tok, rows, config=SFTConfig(max_length=512, device="cpu"), progress=False)


def test_sft_samples_only_the_prompts_that_leave_room_for_an_answer(tmp_path):
    from minirlhf.sft import SFTConfig, train_sft
    model, tok = load_model(base_model_dir("tiny"))
    long_row = {"prompt": "word " * 105, "completion": "ok"}   # trains within 256 tokens; 48 more would not fit
    result = train_sft(model, tok, [long_row] + ROWS, config=SFTConfig(epochs=1, batch_size=5, n_samples=3,
                                                                       device="cpu"), progress=False)
    assert [s["prompt"] for s in result.samples_after] == [r["prompt"] for r in ROWS[:3]]


def test_run_sft_on_your_own_file_has_no_validation_set_unless_given(tmp_path):
    from minirlhf.io import write_jsonl_atomic
    from minirlhf.sft import SFTConfig, run_sft
    write_jsonl_atomic(tmp_path / "mine.jsonl", ROWS)
    cfg = SFTConfig(epochs=1, batch_size=4, n_samples=1, device="cpu")
    alone = run_sft(None, None, cfg, train_path=tmp_path / "mine.jsonl", progress=False)
    assert not any("val_loss" in h for h in alone.history)
    with_val = run_sft(None, None, cfg, train_path=tmp_path / "mine.jsonl", val_path=tmp_path / "mine.jsonl",
                       progress=False)
    assert any("val_loss" in h for h in with_val.history)


def test_a_chat_turn_the_template_cannot_render_names_the_row(base):
    from minirlhf.sft import tokenize_rows
    _, tok = base
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where does Ada live?"}]
    with pytest.raises(DataError, match="mine.jsonl, row 2: the tokenizer's chat template cannot render"):
        tokenize_rows(tok, [ROWS[0], {"prompt": chat, "completion": "In Ashby."}], 256, source="mine.jsonl")


# ---------------------------------------------------------------------------- reward models

def test_a_long_prompt_does_not_push_the_answer_out_of_the_reward_models_input():
    from minirlhf.reward import fit_pair, reward_model_from, score
    assert fit_pair([1, 2, 3], [7, 8], 10) == [1, 2, 3, 7, 8]                  # fits: nothing cut
    assert fit_pair(list(range(100, 120)), [7, 8], 10) == [112, 113, 114, 115, 116, 117, 118, 119, 7, 8]
    assert fit_pair([1, 2], list(range(20)), 10) == [1, 2] + list(range(8))   # a long answer keeps its start
    assert fit_pair(list(range(100, 120)), list(range(20)), 10) == [115, 116, 117, 118, 119, 0, 1, 2, 3, 4]
    rm, tok = reward_model_from(base_model_dir("tiny"))
    r = score(rm, tok, ["word " * 300] * 2, ["Ada lives in Ashby.", "You are an idiot!!"])
    assert r[0] != r[1]


def test_a_language_model_is_not_taken_for_a_reward_model():
    from minirlhf.ppo import LearnedReward
    with pytest.raises(ValueError, match="is not a reward model: its config has num_labels=2"):
        LearnedReward.load(base_model_dir("tiny"))


def test_a_saved_reward_model_scores_at_the_length_it_was_trained_with(tmp_path):
    from minirlhf.ppo import LearnedReward
    from minirlhf.reward import reward_model_from, save_reward_model
    rm, tok = reward_model_from(base_model_dir("tiny"))
    save_reward_model(rm, tok, tmp_path / "rm", {"config": {"max_length": 64}})
    reward = LearnedReward.load(tmp_path / "rm")
    assert reward.max_length == 64
    long_prompt = "word " * 100
    for answer in ("In Ashby.", "Ada lives in Ashby, a town by the sea."):     # the answer survives the cut
        got = reward([long_prompt], [answer])
        from minirlhf.reward import score
        assert torch.equal(got, score(rm, tok, [long_prompt], [answer], max_length=64))
        assert not torch.equal(got, score(rm, tok, [long_prompt], [answer], max_length=192))


def test_a_missing_model_folder_is_named(tmp_path):
    from minirlhf.reward import reward_model_from
    for load in (load_model, reward_model_from):
        with pytest.raises(FileNotFoundError, match=f"no folder at {tmp_path / 'nothing'}"):
            load(tmp_path / "nothing")


def test_rankings_are_checked_field_by_field():
    from minirlhf.reward import load_rankings
    pair = {"prompt": "Where does Ada live?", "chosen": "In Ashby.", "rejected": "Who knows?"}
    with pytest.raises(DataError, match=r"dataset, row 2: 'chosen' must be a text, not NoneType"):
        load_rankings([pair, {**pair, "chosen": None}])
    with pytest.raises(DataError, match=r"responses\[1\]' must be a text"):
        load_rankings([{"prompt": "p", "responses": ["a", ["b"]], "ranking": [0, 1]}])
    with pytest.raises(DataError, match="0-based indices, best first"):
        load_rankings([{"prompt": "p", "responses": ["a", "b"], "ranking": [1, 2]}])
    with pytest.raises(DataError, match="one dict: wrap it in a list"):
        load_rankings(pair)
    with pytest.raises(DataError, match=r"a dict of columns: use datasets.Dataset.from_dict\(data\)"):
        load_rankings({k: [v] for k, v in pair.items()})


def test_a_datasetdict_asks_for_a_split():
    from datasets import Dataset, DatasetDict

    from minirlhf.reward import load_rankings
    from minirlhf.sft import load_sft_rows
    data = DatasetDict(train=Dataset.from_list(ROWS))
    with pytest.raises(DataError, match=r"a DatasetDict: pick a split, e.g. data\['train'\]"):
        load_sft_rows(data)
    with pytest.raises(DataError, match="DatasetDict"):
        load_rankings(data)


def test_chat_format_pairs_as_trl_writes_them(tmp_path):
    from minirlhf.io import write_jsonl_atomic
    from minirlhf.reward import load_rankings
    user = {"role": "user", "content": "Where does Ada live?"}
    row = {"chosen": [user, {"role": "assistant", "content": "In Ashby."}],
           "rejected": [user, {"role": "assistant", "content": "Who knows?"}]}
    want = [{"prompt": "Where does Ada live?", "responses": ["In Ashby.", "Who knows?"], "ranking": [0, 1]}]
    assert load_rankings([row]) == want
    write_jsonl_atomic(tmp_path / "pairs.jsonl", [row])
    assert load_rankings(tmp_path / "pairs.jsonl") == want                # from a file too
    explicit = {"prompt": [user], "chosen": [{"role": "assistant", "content": "In Ashby."}],
                "rejected": [{"role": "assistant", "content": "Who knows?"}]}   # TRL's explicit-prompt form
    assert load_rankings([explicit]) == want
    chat = [user, {"role": "assistant", "content": "In Ashby."}, {"role": "user", "content": "And Bo?"}]
    longer = {"chosen": chat + [{"role": "assistant", "content": "In Crail."}],
              "rejected": chat + [{"role": "assistant", "content": "No."}]}
    assert load_rankings([longer])[0]["prompt"] == chat                   # a longer chat stays a chat
    other = {**row, "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No."}]}
    with pytest.raises(DataError, match="row 1: a chat-format pair needs"):
        load_rankings([other])


def test_train_reward_model_takes_pairs_as_they_come():
    from minirlhf.reward import RMConfig, reward_model_from, train_reward_model
    rm, tok = reward_model_from(base_model_dir("tiny"))
    pairs = [{"prompt": r["prompt"], "chosen": r["completion"], "rejected": "Who cares?"} for r in ROWS]
    result = train_reward_model(rm, tok, pairs, RMConfig(epochs=1, batch_prompts=2), progress=False)
    assert len(result.history) == 2
    with pytest.raises(DataError, match="no rows"):
        train_reward_model(rm, tok, [], RMConfig(epochs=1), progress=False)


# ---------------------------------------------------------------------------- PPO with your own reward

def test_a_reward_function_must_return_one_score_per_response():
    from minirlhf.ppo import reward_scores
    prompts, responses = ["a", "b", "c"], ["x", "y", "z"]
    assert reward_scores(lambda p, r: [1.0, 2.0, 3.0], prompts, responses).tolist() == [1.0, 2.0, 3.0]
    assert reward_scores(lambda p, r: torch.ones(3, 1), prompts, responses).shape == (3,)   # a head's (B, 1)
    for bad in (lambda p, r: [1.0, 2.0], lambda p, r: 1.0, lambda p, r: torch.ones(3, 2), lambda p, r: ["a"] * 3):
        with pytest.raises(ValueError, match="one number per response"):
            reward_scores(bad, prompts, responses)


def test_gold_is_measured_only_on_the_worlds_prompts():
    from minirlhf.ppo import PPOConfig, train_ppo, world_prompts
    from minirlhf.reward import reward_model_from
    assert world_prompts(["Where does Ada live?"])
    assert not world_prompts(["Where does Ada live?", "What sound does a cat make?"])
    config = PPOConfig(iterations=1, batch_size=2, mini_batch_size=2, ppo_epochs=1, max_new_tokens=4, save_every=0)
    from minirlhf.judge import eval_prompts
    for prompts, measured in ((eval_prompts(2), True),
                              (["What sound does a cat make?", "Name a colour."], False)):
        policy, tok = load_model(base_model_dir("tiny"))
        ref, _ = load_model(base_model_dir("tiny"))
        value, _ = reward_model_from(base_model_dir("tiny"))
        result = train_ppo(policy, ref, value, lambda p, r: [float(len(y)) for y in r], tok, prompts, config,
                           progress=False)
        assert ("objective/gold" in result.history[0]) is measured
        assert ("gold" in result.samples[0]) is measured


def test_a_reward_model_with_another_tokenizer_gets_a_value_model_that_reads_the_policys(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from minirlhf.ppo import load_ppo_models
    from minirlhf.reward import save_reward_model
    from minirlhf.tokenizer import train_tokenizer
    other = train_tokenizer([r["prompt"] + " " + r["completion"] for r in ROWS] * 20, vocab_size=300,
                            model_max_length=128)
    config = GPT2Config(vocab_size=len(other), n_positions=128, n_embd=16, n_layer=1, n_head=2, num_labels=1,
                        pad_token_id=other.pad_token_id)
    save_reward_model(GPT2ForSequenceClassification(config), other, tmp_path / "rm", {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy, _, value_model, reward, tok = load_ppo_models(base_model_dir("tiny"), tmp_path / "rm")
    assert any("another tokenizer" in str(w.message) for w in caught)
    assert value_model.config.vocab_size == policy.config.vocab_size != len(other)
    assert value_model.config.num_labels == 1
    assert reward(["Where does Ada live?"], ["In Ashby."]).shape == (1,)


def test_configs_refuse_sizes_that_would_divide_by_zero():
    from minirlhf.ppo import PPOConfig
    from minirlhf.reward import RMConfig
    from minirlhf.sft import SFTConfig
    for make, field in ((lambda: SFTConfig(batch_size=0), "SFTConfig.batch_size"),
                        (lambda: SFTConfig(epochs=0), "SFTConfig.epochs"),
                        (lambda: RMConfig(batch_prompts=0), "RMConfig.batch_prompts"),
                        (lambda: PPOConfig(mini_batch_size=0), "PPOConfig.mini_batch_size")):
        with pytest.raises(ValueError, match=f"{field} must be an integer >= 1"):
            make()
    with pytest.raises(ValueError, match="RMConfig.k must be at least 2"):
        RMConfig(k=1)
    assert PPOConfig(save_every=0).save_every == 0                       # 0: never, allowed
