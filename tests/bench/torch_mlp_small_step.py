#!/usr/bin/env python3
"""PyTorch's local in-process train step of mlp_small, the reference for bench_rpc.

Linear(64, 64), ReLU, Linear(64, 10); batch 32; CrossEntropyLoss; SGD(lr=0.01,
momentum=0.9); one step = zero_grad, forward, loss, backward, step (as the shared
anchor's bench_workload). Prints the median step in ms: the median of three rounds of
500 timed steps (after 200 warm-up steps), which steadies it on a shared machine.
usage: /usr/bin/python3 torch_mlp_small_step.py [THREADS]   (default 1)
"""
import statistics
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
crit = nn.CrossEntropyLoss()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def step():
    opt.zero_grad()
    crit(model(x), y).backward()
    opt.step()


for _ in range(200):
    step()
rounds = []
for _ in range(3):
    ts = []
    for _ in range(500):
        t = time.perf_counter_ns()
        step()
        ts.append((time.perf_counter_ns() - t) / 1e6)
    rounds.append(statistics.median(ts))
print(f"{statistics.median(rounds):.4f}")
