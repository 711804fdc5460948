#!/usr/bin/env python3
"""An MLP learns the handwritten digits on a traind server.

usage: mlp_digits.py [--server HOST:PORT] [--epochs 30] [--out mlp.safetensors]

Trains Linear(64,128)-ReLU-Linear(128,10) with SGD (lr 0.1, momentum 0.9),
batch 32, on 80% of tests/data/digits.csv, reports the accuracy on the other
20%, and downloads the checkpoint (PyTorch's state_dict keys).
"""
import argparse
import os

import digits

traind = digits.import_traind()
from traind import nn, optim  # noqa: E402


def build_spec():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=os.environ.get("TRAIND_SERVER", "127.0.0.1:50051"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="mlp_digits.safetensors")
    args = ap.parse_args()

    x_train, y_train, x_test, y_test = digits.split(*digits.load())
    with traind.connect(args.server) as client:
        with client.create_model(build_spec(), optimizer=optim.SGD(lr=0.1, momentum=0.9),
                                 seed=0, name="mlp-digits") as model:
            history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, seed=0)
            test = model.evaluate(x_test, y_test)
            print(f"trained {history.steps} steps in {history.train_time:.2f} s; "
                  f"test accuracy {test['accuracy']:.2%}")
            model.save(args.out)
            print(f"checkpoint: {args.out}")


if __name__ == "__main__":
    main()
