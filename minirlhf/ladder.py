"""The paper in miniature: the whole pipeline at every size of the ladder.

InstructGPT's Figure 1 puts GPT-3, SFT, PPO and PPO-ptx at 1.3B, 6B and 175B parameters
side by side, each as its win rate against the 175B SFT model; its headline is that the
1.3B PPO-ptx model is preferred over the 175B GPT-3. Here a *rung* is one size and seed:
base -> SFT -> RM -> PPO and PPO-ptx (``minirlhf run`` plus a PPO-ptx run), every model
sampled on the same held-out prompts. ``analyse`` then judges every model against the
largest SFT model, from the saved texts alone, so the numbers can be recomputed anywhere.

    minirlhf ladder --sizes nano,tiny,small,large --seeds 0 --jobs 4 --out runs/ladder     # on a GPU
    minirlhf ladder --analyse data/results/ladder_gpu.json                                  # anywhere

Sizes other than tiny are pretrained first (once per size, seed 0), in parallel; rungs run
as separate processes (``--jobs`` at a time), each writing ``rung.json`` as it finishes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from . import io

MODELS = ("base", "sft", "ppo", "ppo_ptx")   # the paper's GPT, SFT, PPO, PPO-ptx
PTX_COEF = 1.0  # PPO-ptx weight; notebook 04 uses the same (the paper's 27.8 is for its token counts)


# ---------------------------------------------------------------------------- one rung

def run_rung(size: str, seed: int, out: str | Path, device: str | None = None, base: str | Path | None = None,
             fast: bool | None = None) -> dict:
    """base -> SFT -> RM -> PPO (``minirlhf run``), then PPO-ptx, then every model's samples and
    held-out corpus loss. Returns the rung's record, also written to ``out/rung.json``."""
    from .evaluate import corpus_loss
    from .generation import count_params, load_model
    from .judge import rates
    from .paths import base_model_dir, world_dir
    from .ppo import run_ppo
    from .run import _samples, _stage_configs, base_info, run
    from .settings import get_settings

    out, t0 = Path(out), time.perf_counter()
    base = Path(base) if base else base_model_dir(size)
    settings = get_settings(fast=fast, device=device, seed=seed)
    if settings.device.startswith("cuda"):
        import torch
        torch.set_float32_matmul_precision("high")  # TF32 for the fp32 stages (PPO uses bf16 autocast)
    summary = run(out, fast=settings.fast, model=str(base), device=settings.device, seed=seed,
                  more_comparisons=0, rm_prior=False,        # the recipe the ladder's results were made with
                  more_demonstrations=0)
    rows = io.read_jsonl(out / "samples.jsonl")   # the run's held-out prompts and every model's answers
    prompts = [r["prompt"] for r in rows]
    responses = {name: [r[name] for r in rows] for name in ("base", "sft", "ppo")}
    pre = base_info(base)
    record = {
        "size": size, "seed": seed, "device": settings.device, "fast": settings.fast,
        "pretrain": {k: pre.get(k) for k in ("val_loss", "seconds", "device", "steps", "best_step", "tokens_seen")},
        "rm": summary.get("rm", {}), "win_rates": summary.get("win_rates", {}),
        "rates": {n: summary[n] for n in ("base", "sft", "ppo")}, "kl": summary["ppo"].get("kl"), "corpus_loss": {},
        "timings_s": {**summary["timings_s"], "rung_total": round(time.perf_counter() - t0, 2)},
        "prompts": prompts, "responses": responses,
    }
    paths = {"base": base, "sft": out / "sft", "ppo": out / "ppo" / "policy", "ppo_ptx": out / "ppo_ptx" / "policy"}
    docs = [r["text"] for r in io.read_jsonl(world_dir() / "corpus_val.jsonl", required=("text",))]
    docs = docs[:100] if settings.fast else docs

    def tax(name: str):   # held-out corpus loss (the alignment tax); returns the loaded model
        model, tokenizer = load_model(paths[name], settings.device)
        record["corpus_loss"][name] = round(corpus_loss(model, tokenizer, docs), 4)
        return model, tokenizer

    for name in ("base", "sft", "ppo"):
        record["params"] = count_params(tax(name)[0])
    io.write_json_atomic(out / "rung.json", record, indent=None)   # saved as we go: PPO-ptx may not finish
    t = time.perf_counter()
    ptx_config = replace(_stage_configs(settings)[2], ptx_coef=PTX_COEF, lr=summary["lr"]["ppo"])  # run's lr_scale
    run_ppo(out / "sft", out / "rm", out / "ppo_ptx", ptx_config, progress=False)
    seconds_ptx = time.perf_counter() - t
    model, tokenizer = tax("ppo_ptx")
    responses["ppo_ptx"] = _samples(model, tokenizer, prompts, seed)   # sampled as run samples the others
    record["rates"]["ppo_ptx"] = rates(prompts, responses["ppo_ptx"])
    record["timings_s"].update(ppo_ptx=round(seconds_ptx, 2), rung_total=round(time.perf_counter() - t0, 2))
    io.write_json_atomic(out / "rung.json", record, indent=None)
    return record


# ---------------------------------------------------------------------------- the analysis

def _utilities(record: dict) -> dict[str, list[float]]:
    from .world.gold import utility
    return {name: [utility(p, r) for p, r in zip(record["prompts"], rs)] for name, rs in record["responses"].items()}


def _pooled(rungs: list[dict], a: tuple[str, str], b: tuple[str, str], u: dict, tau: float) -> dict:
    """Win rate of model a=(size, name) over b, pooled over the seeds both have (paired by prompt)."""
    from .evaluate import labeler_outcomes, win_rate
    seeds = sorted({r["seed"] for r in rungs if r["size"] == a[0]} & {r["seed"] for r in rungs if r["size"] == b[0]})
    ua, ub, lab = [], [], []
    for seed in seeds:
        xa, xb = u[(a[0], seed)][a[1]], u[(b[0], seed)][b[1]]
        ua, ub = ua + xa, ub + xb
        lab += labeler_outcomes(xa, xb, tau, 20_000 + seed)   # a fresh draw of the simulated labelers
    w = win_rate(ua, ub, seed=0)
    w["labelers"] = round(sum(lab) / len(lab), 4)
    w["seeds"] = seeds
    return w


def analyse(rungs: list[dict], tau: float | None = None) -> dict:
    """Figure 1 in miniature, the headline and the before/after table, from the rungs' texts.

    * ``figure1[model][size]``: gold win rate (ties 1/2, bootstrap 95% CI, pooled over seeds)
      of each model against the SFT model of the largest size, same prompts and seed;
    * ``headline``: the smallest size's PPO and PPO-ptx against the largest base and SFT
      models, with the fairness check that the largest SFT beats the smallest SFT on gold;
      where that check fails, the same comparisons at ``fair_size``, the largest size whose SFT
      model does beat the smallest's (its CI above 1/2), if any;
    * ``by_size[size]``: the same for each size between the smallest and the largest, at its own
      ``fair_size`` (the largest size whose SFT model beats this size's SFT model);
    * ``table[size][model]``: helpful / false-fact / harmful rates and held-out corpus loss;
    * ``sizes``: parameters, base model val loss, RM gold accuracy and PPO-vs-own-SFT per size.
    """
    from .labeling import default_tau
    if not rungs:
        raise ValueError("no rungs to analyse")
    tau = tau if tau is not None else default_tau()
    params = {r["size"]: r["params"] for r in rungs}
    sizes = sorted(params, key=params.get)
    small, large = sizes[0], sizes[-1]
    rungs_of = {s: [r for r in rungs if r["size"] == s] for s in sizes}
    has = {s: [m for m in MODELS if all(m in r["responses"] for r in rs)] for s, rs in rungs_of.items()}  # PPO-ptx
    models = [m for m in MODELS if any(m in has[s] for s in sizes)]                       # may miss a deadline
    u = {(r["size"], r["seed"]): _utilities(r) for r in rungs}
    figure1 = {m: {s: _pooled(rungs, (s, m), (large, "sft"), u, tau) for s in sizes if m in has[s]} for m in models}
    def fairness(i: int) -> tuple[dict, list[str]]:                   # each larger SFT model against size i's,
        checks = {b: _pooled(rungs, (b, "sft"), (sizes[i], "sft"), u, tau) for b in sizes[i + 1:]}
        return checks, [b for b, w in checks.items() if w["ci95"][0] > 0.5]   # and the sizes whose SFT beats it

    def versus(p: str, big: str, sft_check: dict) -> dict:             # p's RLHF models against big's base and SFT
        return {f"{p}_{m}_vs_{big}_{n}": _pooled(rungs, (p, m), (big, n), u, tau)
                for m in ("ppo", "ppo_ptx") if m in has[p] for n in ("base", "sft")} | {f"{big}_sft_vs_{p}_sft": sft_check}

    checks, fair = fairness(0)
    checks = checks or {small: _pooled(rungs, (small, "sft"), (small, "sft"), u, tau)}   # one size: itself
    headline = {}
    for big in dict.fromkeys([large] + fair[-1:]):                     # the largest, and the largest fair size
        headline |= versus(small, big, checks[big])
    by_size = {}                                                       # the same for every middle size
    for i, p in enumerate(sizes[1:-1], 1):
        checks, fair_p = fairness(i)
        by_size[p] = {"fair_size": fair_p[-1] if fair_p else None,
                      "comparisons": versus(p, fair_p[-1], checks[fair_p[-1]]) if fair_p else {}}
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
    table = {s: {m: {k: mean([r["rates"][m][k] for r in rs]) for k in
                     ("helpful_rate", "false_fact_rate", "harmful_rate", "gold_utility_mean")}
                 | {"corpus_loss": mean([r["corpus_loss"][m] for r in rs if m in r["corpus_loss"]])} for m in has[s]}
             for s, rs in rungs_of.items()}
    per_size = {s: {"params": params[s], "seeds": sorted(r["seed"] for r in rs),
                    "base_val_loss": mean([r["pretrain"]["val_loss"] for r in rs if r["pretrain"].get("val_loss")]),
                    "rm_accuracy_gold": mean([r["rm"]["accuracy_gold"] for r in rs if r["rm"]]),
                    "ppo_vs_own_sft": _pooled(rungs, (s, "ppo"), (s, "sft"), u, tau),
                    "ppo_ptx_vs_own_sft": _pooled(rungs, (s, "ppo_ptx"), (s, "sft"), u, tau)
                    if "ppo_ptx" in has[s] else None,
                    "rung_seconds": mean([r["timings_s"]["rung_total"] for r in rs])}
                for s, rs in rungs_of.items()}
    return {"baseline": f"{large} sft", "models": models, "sizes": per_size, "figure1": figure1,
            "headline": headline, "fair_size": fair[-1] if fair else None, "by_size": by_size, "table": table}


def _verdict(name: str, w: dict) -> str:
    verdict = "holds" if w["ci95"][0] > 0.5 else "does not hold" if w["ci95"][1] < 0.5 else "is within noise"
    return (f"{name.replace('_vs_', ' vs ').replace('_', ' ')}: gold win rate {w['gold']:.3f} "
            f"[{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}] over {w['n']} prompts x seeds (labelers {w['labelers']:.3f}): {verdict}")


def headline_lines(result: dict) -> list[str]:
    """The headline comparisons as sentences, each with its CI and whether it holds; then the
    same at each middle size's largest fair gap (``by_size``)."""
    lines = [_verdict(name, w) for name, w in result["headline"].items()]
    if "fair_size" in result:                                          # (older saved analyses lack it)
        sizes, fair = result["sizes"], result["fair_size"]
        small = next(iter(sizes))
        lines.append("fairness: no larger SFT model beats the smallest one on gold" if fair is None else
                     f"fairness: {fair} ({sizes[fair]['params'] / sizes[small]['params']:.1f}x the parameters) "
                     f"is the largest size whose SFT model beats the {small} SFT model on gold")
    for p, at in result.get("by_size", {}).items():
        if at["fair_size"] is None:
            lines.append(f"{p}: no larger SFT model beats the {p} SFT model on gold")
            continue
        ratio = result["sizes"][at["fair_size"]]["params"] / result["sizes"][p]["params"]
        lines += [f"{p} at its largest fair gap ({at['fair_size']}, {ratio:.1f}x): " + _verdict(name, w)
                  for name, w in at["comparisons"].items()]
    return lines


def report(ladder: dict) -> str:
    """A saved ladder as markdown: how it was made, the sizes, Figure 1 in numbers, the headline
    and the before/after table (``minirlhf ladder --analyse FILE --report OUT.md`` writes it)."""
    a = ladder["analysis"]
    f3 = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    ci = lambda w: f"{w['gold']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}]"  # noqa: E731
    made = ladder["made_by"] if isinstance(ladder["made_by"], list) else [ladder["made_by"]]
    lines = ["| part | command | commit | device | torch | date |", "|---|---|---|---|---|---|"]
    lines += [f"| {i} | `{m.get('command')}` | `{(m.get('commit') or '?')[:7]}` | {m.get('gpu') or m.get('device')} | "
              f"{m.get('torch')} | {m.get('date')} |" for i, m in enumerate(made)]
    lines += ["", "| size | parameters | seeds | base val loss | RM accuracy vs gold | PPO vs own SFT (gold) | "
              "rung time |", "|---|---|---|---|---|---|---|"]
    for s, r in a["sizes"].items():
        made_on = sorted({made[x["made_by"]].get("gpu") or made[x["made_by"]].get("device")
                          for x in ladder["rungs"] if x["size"] == s and "made_by" in x} or {"?"})
        lines.append(f"| {s} | {r['params'] / 1e6:.2f}M | {r['seeds']} | {f3(r['base_val_loss'])} | "
                     f"{f3(r['rm_accuracy_gold'])} | {ci(r['ppo_vs_own_sft'])} | {r['rung_seconds']:.0f} s "
                     f"({', '.join(made_on)}) |")
    sizes = list(a["sizes"])
    lines += ["", f"Gold win rate against the {a['baseline']} model (ties 1/2, 95% CI, seeds pooled):", "",
              "| model | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    lines += [f"| {m} | " + " | ".join(ci(a["figure1"][m][s]) if s in a["figure1"][m] else "–" for s in sizes) + " |"
              for m in a["figure1"]]
    lines += ["", "Headline:", ""] + [f"- {line}" for line in headline_lines(a)]
    lines += ["", "| size | model | helpful | false fact | harmful | mean gold utility | held-out corpus loss |",
              "|---|---|---|---|---|---|---|"]
    for s, by_model in a["table"].items():
        lines += [f"| {s} | {m} | {f3(r['helpful_rate'])} | {f3(r['false_fact_rate'])} | {f3(r['harmful_rate'])} | "
                  f"{f3(r['gold_utility_mean'])} | {f3(r['corpus_loss'])} |" for m, r in by_model.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- running the ladder

def _python_env(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), MPLBACKEND="Agg",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
    return env


def _launch(cmd: list[str], log: Path, env: dict, deadline: float) -> bool:
    """Run one child process, its output to ``log``; False if it failed or ran past the deadline."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        try:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                  timeout=max(1.0, deadline - time.time())).returncode == 0
        except subprocess.TimeoutExpired:
            f.write("\nstopped: past the ladder's deadline\n")
            return False


def run_ladder(rungs: dict[str, list[int]], out: str | Path, device: str | None = None, jobs: int = 4,
               deadline_s: float | None = None, fast: bool = False) -> dict:
    """Pretrain the sizes that are not shipped, run every (size, seed) rung, gather and analyse.

    ``rungs`` maps a size to its seeds, e.g. ``{"tiny": [0, 1, 2], "large": [0]}``. Writes
    ``out/ladder.json`` (the rungs, the analysis and how they were made) and returns it.
    """
    from .paths import base_model_dir
    from .pretrain import SIZES
    from .settings import get_settings
    unknown = sorted(set(rungs) - set(SIZES))
    if unknown:
        raise ValueError(f"unknown size(s) {unknown}: the ladder has {list(SIZES)}")
    out, t0 = Path(out), time.time()
    deadline = t0 + (deadline_s or 10 ** 9)
    device = get_settings(device=device).device
    threads = max(1, (os.cpu_count() or 2) // max(1, jobs))
    env, slots = _python_env(threads), threading.Semaphore(jobs)

    def size_chain(size: str, seeds: list[int]) -> None:
        base = base_model_dir(size)
        if not (base / "config.json").exists():
            base = out / f"base-{size}"     # pretrained here, unless an earlier run (or a sweep) left one
        if not (base / "config.json").exists():
            cmd = [sys.executable, "-m", "minirlhf.cli", "pretrain", "--size", size, "--out", str(base),
                   "--device", device] + (["--steps", "60"] if fast else [])
            with slots:
                if not _launch(cmd, out / f"base-{size}.log", env, deadline):
                    return

        def one(seed: int) -> None:
            cmd = [sys.executable, "-m", "minirlhf.ladder", "rung", "--size", size, "--seed", str(seed),
                   "--base", str(base), "--out", str(out / f"{size}-s{seed}"), "--device", device]
            with slots:   # a failed rung leaves no rung.json: gather lists it as missing
                _launch(cmd + (["--fast"] if fast else []), out / f"{size}-s{seed}.log", env, deadline)
        workers = [threading.Thread(target=one, args=(s,)) for s in seeds]
        [w.start() for w in workers]
        [w.join() for w in workers]

    chains = [threading.Thread(target=size_chain, args=item) for item in rungs.items()]
    [c.start() for c in chains]
    [c.join() for c in chains]
    return gather(out, rungs, device=device, seconds=time.time() - t0, jobs=jobs)


RESULT_PATHS = ("minirlhf", "benchmarks", "data", "pyproject.toml")   # what a result depends on


def code_commit(where: str | Path | None = None) -> str | None:
    """The git commit of this code (of the repository at ``where``; MINIRLHF_COMMIT where the code
    travelled without its .git), with "+dirty" when tracked files of the package, the benchmarks or
    the data (`RESULT_PATHS`) differ from it, so that a result made with uncommitted code says so
    (docs, tests and notebooks do not change a result)."""
    if os.environ.get("MINIRLHF_COMMIT"):
        return os.environ["MINIRLHF_COMMIT"]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=where or Path(__file__).parent).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *(f":/{p}" for p in RESULT_PATHS))
        return (sha + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(bench: str, argv: list[str] | None, device: str) -> dict:
    """Where a benchmark's result comes from: its name, the command line (``argv``, or the
    process's own), the commit, the device, torch and Python."""
    import platform

    import torch
    args = argv if argv is not None else sys.argv[1:]
    return {"bench": bench, "command": " ".join([Path(sys.argv[0]).name] + list(args)), "commit": code_commit(),
            "device": device, "torch": torch.__version__, "python": platform.python_version()}


def result_options(parser) -> None:
    """The options of a benchmark script that saves a result: ``--device``, ``--save`` and ``--show``."""
    import torch
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--save", default=None, help="write the result as JSON here")
    parser.add_argument("--show", default=None, help="print a saved result as markdown and stop")


def show_saved(path: str | Path, markdown) -> dict:
    """A benchmark's ``--show``: print the result saved at ``path`` with ``markdown(result)``; returns it."""
    result = io.read_json(path)
    print(markdown(result))
    return result


def emit_result(result: dict, save: str | Path | None) -> dict:
    """A benchmark's result: printed as one JSON line, and written to ``save`` (``--save``) when given."""
    print(json.dumps(result))
    if save:
        io.write_json_atomic(save, result)
    return result


def config_changes(text: str, config_class, option: str) -> dict:
    """A benchmark's settings: 'beta=0.05,adaptive_kl=true' -> {"beta": 0.05, "adaptive_kl": True}, typed as the
    fields of the dataclass ``config_class`` that take a number, true/false or a word; anything else stops with
    a usage error naming ``option`` and the fields it takes."""
    from dataclasses import fields
    kinds = {f.name: type(f.default) for f in fields(config_class) if isinstance(f.default, (bool, int, float, str))}
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in kinds:
            raise SystemExit(f"{option} {text!r}: {item!r} is not name=value with a {config_class.__name__} field that "
                             f"takes a number, true/false or a word ({', '.join(sorted(kinds))})")
        kind = kinds[key]
        if kind is bool:
            if value.lower() not in ("true", "false"):
                raise SystemExit(f"{option} {text!r}: {key} takes true or false, not {value!r}")
            out[key] = value.lower() == "true"
        else:
            try:
                out[key] = kind(value) if kind is not int else int(float(value))
            except ValueError:
                raise SystemExit(f"{option} {text!r}: {key} takes a {kind.__name__}, not {value!r}") from None
    return out


def require_run_folders(parser, runs: list[str], needs: tuple[str, ...], what: str) -> None:
    """Stop with a usage error unless every folder in ``runs`` has the files ``needs`` (``what``: the kind of
    `minirlhf run` folder the script wants, for the message)."""
    if not runs:
        parser.error("give --run FOLDER [FOLDER ...] or --show FILE")
    for run in runs:
        for need in needs:
            if not (Path(run) / need).is_file():
                parser.error(f"{run} is not {what}: {Path(run) / need} is missing")
        summary = Path(run) / "summary.json"
        if summary.is_file() and json.loads(summary.read_text()).get("rounds"):
            parser.error(f"{run} was made with `minirlhf run --rounds N`: its rm/ and ppo/ are round 1's and its "
                         "summary the last round's; give a run of one round")


def gather(out: str | Path, rungs: dict[str, list[int]], **meta) -> dict:
    """Collect ``out/*/rung.json``, analyse and write ``out/ladder.json``; missing rungs are listed."""
    import torch
    import transformers
    out = Path(out)
    records, missing = [], []
    for size, seeds in rungs.items():
        for seed in seeds:
            path = out / f"{size}-s{seed}" / "rung.json"
            (records.append(json.loads(path.read_text())) if path.exists() else missing.append(f"{size}-s{seed}"))
    pretrain = {}
    for size in rungs:
        info = out / f"base-{size}" / "pretrain_info.json"
        if info.exists():
            pretrain[size] = {k: v for k, v in json.loads(info.read_text()).items() if k != "config"}
    result = {
        "made_by": {"command": "minirlhf ladder --rungs " + " ".join(f"{s}:{','.join(map(str, v))}" for s, v in rungs.items()),
                    "commit": code_commit(), "torch": torch.__version__, "transformers": transformers.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "date": time.strftime("%Y-%m-%d"), **meta},
        "missing": missing, "pretrain": pretrain,
        "analysis": analyse(records) if records else None, "rungs": records,
    }
    io.write_json_atomic(out / "ladder.json", result, indent=None)
    return result


def merge(paths: list[str | Path], out: str | Path | None = None) -> dict:
    """One ladder from several ``ladder.json`` files (e.g. GPU sessions and CPU runs of the tiny
    rungs): rungs of a later file replace those of the same size and seed; every file's
    ``made_by`` is kept. Re-analyses the union and writes it to ``out`` if given."""
    rungs, made_by, pretrain = {}, [], {}
    for path in paths:
        saved = io.read_json(path)
        offset = len(made_by)
        made_by += saved["made_by"] if isinstance(saved["made_by"], list) else [saved["made_by"]]
        pretrain.update(saved.get("pretrain", {}))
        for r in saved["rungs"]:   # an index into made_by; a merged file's rungs keep their own part
            part = offset + r["made_by"] if isinstance(r.get("made_by"), int) else len(made_by) - 1
            rungs[(r["size"], r["seed"])] = {**r, "made_by": part}
    records = list(rungs.values())
    result = {"made_by": made_by, "missing": [], "pretrain": pretrain, "analysis": analyse(records), "rungs": records}
    if out is not None:
        io.write_json_atomic(out, result, indent=None)
    return result


def _parse_rungs(sizes: str, seeds: str, rungs: list[str] | None) -> dict[str, list[int]]:
    if rungs:
        spec = {}
        for item in rungs:
            size, _, s = item.partition(":")
            spec[size] = [int(x) for x in (s or "0").split(",")]
        return spec
    return {size: [int(x) for x in seeds.split(",")] for size in sizes.split(",")}


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(prog="minirlhf ladder", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what")
    r = sub.add_parser("rung", help="one size and seed (what the ladder runs in each child process)")
    r.add_argument("--size", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--base", default=None)
    r.add_argument("--out", required=True)
    r.add_argument("--device", default=None)
    r.add_argument("--fast", action="store_true")
    args, rest = p.parse_known_args(argv)
    if args.what == "rung":
        run_rung(args.size, args.seed, args.out, args.device, args.base, fast=args.fast or None)
        return None
    return cli(rest)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="nano,tiny,small,large", help="comma-separated sizes of the ladder")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, for every size")
    p.add_argument("--rungs", nargs="*", default=None, help="SIZE:SEEDS items instead, e.g. tiny:0,1,2 large:0")
    p.add_argument("--out", default="runs/ladder")
    p.add_argument("--device", default=None)
    p.add_argument("--jobs", type=int, default=4, help="rungs run at the same time (a GPU has room for several)")
    p.add_argument("--deadline", type=float, default=None, help="seconds; rungs still running are stopped")
    p.add_argument("--fast", action="store_true", help="shrink every stage (a smoke test)")
    p.add_argument("--analyse", default=None, metavar="LADDER_JSON", help="only analyse a saved ladder.json")
    p.add_argument("--update", action="store_true", help="with --analyse: write the new analysis into that file")
    p.add_argument("--report", default=None, metavar="MD", help="also write the analysis as markdown (and MD's .png)")
    p.add_argument("--merge", nargs="+", default=None, metavar="LADDER_JSON",
                   help="merge saved ladder.json files (later ones win) into --out/ladder.json, e.g. GPU and CPU rungs")


def cli(argv: list[str] | None = None, args=None) -> dict:
    if args is None:
        p = argparse.ArgumentParser(prog="minirlhf ladder")
        add_arguments(p)
        args = p.parse_args(argv)
    if args.analyse:
        saved = io.read_json(args.analyse)
        result = {**saved, "analysis": analyse(saved["rungs"])}
        if args.update:
            io.write_json_atomic(args.analyse, result, indent=None)
            print(f"ladder: {args.analyse} (analysis updated)")
    elif args.merge:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        result = merge(args.merge, Path(args.out) / "ladder.json")
        print(f"ladder: {Path(args.out) / 'ladder.json'}")
    else:
        result = run_ladder(_parse_rungs(args.sizes, args.seeds, args.rungs), args.out, args.device, args.jobs,
                            args.deadline, args.fast)
        print(f"ladder: {Path(args.out) / 'ladder.json'}")
    if result["analysis"]:
        print("\n".join(headline_lines(result["analysis"])))
    if args.report and result["analysis"]:
        from . import plots
        io.write_text_atomic(args.report, report(result))
        figure = plots.save(plots.ladder(result["analysis"]), Path(args.report).with_suffix(".png"))
        print(f"report: {args.report}\nplot:   {figure}")
    if result.get("missing"):
        print(f"missing rungs (failed or past the deadline; see their .log): {result['missing']}")
    return result


if __name__ == "__main__":
    main()
