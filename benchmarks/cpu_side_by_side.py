"""minirlhf's PPO benchmark and TRL's anchor on this CPU, taking turns, so that both see the same
machine (a shared 2-core machine drifts by 10% or more from one minute to the next).

    python benchmarks/cpu_side_by_side.py --trl-python /path/to/venv-with-trl/bin/python \\
        --anchor ../shared/bench/trl_ppo_anchor.py --rounds 3 --save data/results/ppo_speed_cpu.json

Each round runs `DEVICE=cpu trl_ppo_anchor.py`, then `benchmarks/ppo_speed.py --device cpu`, each in
its own process. Prints every JSON line, then the median over rounds of each side's median
seconds per iteration and their ratio; `--save` writes all of it, with the commit, as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from minirlhf.io import last_json_line

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], env: dict, cwd: Path | str) -> dict:
    proc = subprocess.run(cmd, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return last_json_line(proc.stdout)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trl-python", required=True, help="a Python with trl installed (TRL 1.12.0 in our runs)")
    p.add_argument("--anchor", required=True, help="path to trl_ppo_anchor.py")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--save", default=None, help="write the result as JSON here")
    args = p.parse_args(argv)
    anchor = Path(args.anchor).resolve()
    if not anchor.exists():
        raise SystemExit(f"--anchor: {anchor} does not exist")
    env = {"TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    trl, ours = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        trl.append(run([args.trl_python, str(anchor)], {**env, "DEVICE": "cpu"}, cwd="/tmp"))
        ours.append(run([sys.executable, str(ROOT / "benchmarks" / "ppo_speed.py"), "--device", "cpu"], env, ROOT))
        print(f"round {r + 1}: TRL {trl[-1]['iter_s_median']:.3f} s/it, minirlhf {ours[-1]['iter_s_median']:.3f} s/it "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    t, o = statistics.median(x["iter_s_median"] for x in trl), statistics.median(x["iter_s_median"] for x in ours)
    from minirlhf.ladder import code_commit
    out = {"machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
           "python": platform.python_version(), "commit": code_commit(), "rounds": args.rounds,
           "trl_iter_s_median": t, "minirlhf_iter_s_median": o, "speedup": round(t / o, 2),
           "trl": trl, "minirlhf": ours}
    print(json.dumps({k: v for k, v in out.items() if k not in ("trl", "minirlhf")}))
    if args.save:
        from minirlhf.io import write_json_atomic
        write_json_atomic(args.save, out)
    return out


if __name__ == "__main__":
    main()
