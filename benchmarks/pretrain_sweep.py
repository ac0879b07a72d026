"""Pretrain one size of the ladder with several settings at once and keep the best.

    python benchmarks/pretrain_sweep.py --size large --device cuda --out runs/sweep-large \\
        --try lr=3e-4,steps=1500,dropout=0.2,eval_every=100 --try lr=2e-4,steps=2000,dropout=0.2,eval_every=100 \\
        --best runs/ladder/base-large

Each ``--try`` is one ``minirlhf pretrain`` run (keys: lr, steps, dropout, eval_every,
batch_size), all started together: the ladder's small models leave a GPU mostly idle, so they
share it well. Every run keeps its lowest held-out loss (early stopping); the lowest of those
is copied to ``--best`` (where ``minirlhf ladder --out`` picks it up as the size's base).
Writes ``OUT/sweep.json``: each setting's held-out loss, best step, time and loss curve.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

KEYS = {"lr": float, "steps": int, "dropout": float, "eval_every": int, "batch_size": int}


def parse(text: str) -> dict:
    """'lr=3e-4,steps=1500' -> {"lr": 0.0003, "steps": 1500}, with a clear error for a bad key."""
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in KEYS or not value:
            raise SystemExit(f"--try {text!r}: {item!r} is not KEY=VALUE with KEY one of {', '.join(KEYS)}")
        out[key] = KEYS[key](value)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", required=True)
    p.add_argument("--try", dest="tries", action="append", required=True, help="one setting, e.g. lr=3e-4,steps=1500")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument("--best", default=None, help="copy the best run's model folder here")
    p.add_argument("--timeout", type=float, default=None, help="seconds for the whole sweep")
    args = p.parse_args(argv)
    out, settings = Path(args.out), [parse(t) for t in args.tries]
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // len(settings)))}
    procs, t0 = [], time.time()
    for i, s in enumerate(settings):
        cmd = [sys.executable, "-m", "minirlhf.cli", "pretrain", "--size", args.size, "--out", str(out / f"run{i}"),
               "--quiet"] + (["--device", args.device] if args.device else [])
        cmd += [a for k, v in s.items() for a in (f"--{k.replace('_', '-')}", str(v))]
        log = open(out / f"run{i}.log", "w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    for proc, log in procs:
        try:
            proc.wait(timeout=None if args.timeout is None else max(1.0, args.timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    runs = []
    for i, s in enumerate(settings):
        info_path = out / f"run{i}" / "pretrain_info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        runs.append({"setting": s, "folder": f"run{i}", "val_loss": info.get("val_loss"), "best_step": info.get("best_step"),
                     "steps_run": info.get("steps"), "seconds": info.get("seconds"), "params": info.get("params"),
                     "history": info.get("history")})
    done = [r for r in runs if r["val_loss"] is not None]
    best = min(done, key=lambda r: r["val_loss"]) if done else None
    result = {"size": args.size, "device": args.device, "runs": runs, "best": best and best["folder"],
              "seconds": round(time.time() - t0, 1)}
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    if best and args.best:
        tmp = Path(str(args.best) + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(out / best["folder"], tmp)
        shutil.rmtree(args.best, ignore_errors=True)
        tmp.rename(args.best)
    for r in runs:
        print(f"{r['setting']}: held-out loss {r['val_loss']} at step {r['best_step']} ({r['seconds']} s)")
    print(f"best: {best and best['setting']}" + (f" -> {args.best}" if best and args.best else ""))
    return result


if __name__ == "__main__":
    main()
