"""PyTorch CPU reference for bench/nn.ts: the same MLP and CNN, batch 128, Adam step and forward pass, 2 threads.

Run by bench/nn.ts with Debian's /usr/bin/python3 (python3-torch); prints one JSON object of median milliseconds.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
torch.manual_seed(0)
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def mlp():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)), (784,)


def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(12 * 12 * 64, 10)), (1, 28, 28)


def median_ms(fn, n):
    fn()
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


out = {"torch": torch.__version__}
for name, make in (("mlp", mlp), ("cnn", cnn)):
    model, shape = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(128, *shape)
    y = torch.randint(0, 10, (128,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()

    def forward():
        with torch.no_grad():
            model(x).sum().item()

    out[name] = {"train": median_ms(step, reps), "forward": median_ms(forward, reps)}
print(json.dumps(out))
