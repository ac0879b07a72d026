"""The GPU side by side as one JSON file: what ``benchmarks/gpu_session.sh`` left in its folder
(env.txt, bench_minirlhf.json, bench_trl.json, profile.md, and the other bench_*.json runs of
ppo_speed.py as "variants") -> data/results/ppo_speed_gpu.json.

    python benchmarks/gpu_results.py /path/to/session/folder [--out data/results/ppo_speed_gpu.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from minirlhf.io import last_json_line


def collect(folder: str | Path) -> dict:
    folder = Path(folder)
    env = (folder / "env.txt").read_text().splitlines()
    ours, trl = (last_json_line(p.read_text(), str(p)) for p in (folder / "bench_minirlhf.json", folder / "bench_trl.json"))
    commit = next((line.split()[1] for line in env if line.startswith("commit ")), None)
    profile = folder / "profile.md"
    parts = [line for line in profile.read_text().splitlines() if line.startswith("| ppo/")] if profile.exists() else []
    variants = {}                # the other runs of ppo_speed.py in the session: --compile, --no-cuda-graphs, a baseline
    for path in sorted(folder.glob("bench_*.json")):
        name = path.stem.removeprefix("bench_").removeprefix("minirlhf_")
        if name not in ("minirlhf", "trl") and path.stat().st_size:
            run = last_json_line(path.read_text(), str(path))
            variants[name] = {**run, "speedup": round(trl["iter_s_median"] / run["iter_s_median"], 2)}
    return {
        "made_by": {"command": "bash benchmarks/gpu_session.sh (benchmarks/ppo_speed.py, then TRL's trl_ppo_anchor.py, "
                               "one after the other on the same GPU); benchmarks/gpu_results.py",
                    "commit": commit, "gpu": env[0], "python_torch_transformers": env[2] if len(env) > 2 else None,
                    "date": time.strftime("%Y-%m-%d", time.gmtime((folder / "bench_trl.json").stat().st_mtime))},
        "minirlhf": ours, "trl": trl,
        "speedup": round(trl["iter_s_median"] / ours["iter_s_median"], 2),
        "peak_memory_ratio": round(ours["peak_gpu_GiB"] / trl["peak_gpu_GiB"], 2),
        "profile_one_iteration": parts,
        "variants": variants,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--out", default="data/results/ppo_speed_gpu.json")
    args = p.parse_args()
    result = collect(args.folder)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.out}: minirlhf {result['minirlhf']['iter_s_median']} s/it, TRL {result['trl']['iter_s_median']} s/it, "
          f"{result['speedup']}x, peak memory {result['peak_memory_ratio']}x"
          + "".join(f"; {name} {v['iter_s_median']} s/it, {v['speedup']}x" for name, v in result["variants"].items()))
