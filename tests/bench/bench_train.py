#!/usr/bin/env python3
"""Training-step benchmark: traind vs PyTorch, side by side in one run.

usage: bench_train.py --bin BUILD/tests/bench_train [--threads 1 2]
                      [--workloads ...] [--budget S] [--json OUT]
                      [--anchor ../shared/anchors/torch_bench.py]

For each workload and thread count: traind's bench_train (one process per
row) and PyTorch through the anchor's own bench_workload (also one process
per row, so peak memory is per workload). Both time the same step:
zero_grad/clear_grad, forward, cross-entropy, backward, SGD momentum step.
Reports median ms, the ratio traind/PyTorch, and training memory: peak RSS
growth over the process's peak just before the model is built.
"""
import argparse
import json
import os
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ANCHOR = os.path.normpath(os.path.join(HERE, "../../../shared/anchors/torch_bench.py"))
WORKLOADS = ["mlp", "mlp_small", "lenet", "cnn_bn", "resnet_tiny"]


def torch_row(anchor, workload, threads, budget):
    """Runs in a child process: the anchor's bench_workload plus memory."""
    sys.path.insert(0, os.path.dirname(anchor))
    import torch_bench as tb
    binfo = tb.blas_info()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    r = tb.bench_workload(workload, threads, binfo, budget)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    r["peak_rss_mib"], r["baseline_rss_mib"] = peak, base
    return r


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workloads", nargs="+", default=WORKLOADS)
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--json")
    ap.add_argument("--anchor", default=DEFAULT_ANCHOR)
    ap.add_argument("--torch-one", nargs=2, metavar=("WORKLOAD", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_one:
        print(json.dumps(torch_row(args.anchor, args.torch_one[0], int(args.torch_one[1]),
                                   args.budget)))
        return 0

    rows = []
    for th in args.threads:
        for w in args.workloads:
            ours = run_json([args.bin, w, str(th), str(args.budget)])
            ref = run_json([sys.executable, __file__, "--bin", args.bin, "--anchor", args.anchor,
                            "--budget", str(args.budget), "--torch-one", w, str(th)])
            rows.append({"workload": w, "threads": th, "traind": ours, "torch": ref})
            print(f"  done {w} t={th}", file=sys.stderr, flush=True)

    hdr = (f"{'workload':12s} {'thr':>3s} {'traind ms':>10s} {'torch ms':>10s} {'ratio':>6s}"
           f" {'fwd ratio':>9s} {'traind MiB':>10s} {'torch MiB':>9s} {'mem ratio':>9s}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        o, t = r["traind"], r["torch"]
        ratio = o["train"]["median_ms"] / t["train"]["median_ms"]
        fratio = o["forward"]["median_ms"] / t["forward"]["median_ms"]
        om = o["peak_rss_mib"] - o["baseline_rss_mib"]
        tm = t["peak_rss_mib"] - t["baseline_rss_mib"]
        r["ratio"], r["forward_ratio"] = ratio, fratio
        r["traind_mem_mib"], r["torch_mem_mib"] = om, tm
        print(f"{r['workload']:12s} {r['threads']:3d} {o['train']['median_ms']:10.3f}"
              f" {t['train']['median_ms']:10.3f} {ratio:6.2f} {fratio:9.2f}"
              f" {om:10.1f} {tm:9.1f} {om / tm if tm > 0 else float('nan'):9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
