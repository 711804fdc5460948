#!/usr/bin/env python3
"""A small CNN learns the handwritten digits on a traind server.

usage: cnn_digits.py [--server HOST:PORT] [--epochs 15] [--out cnn.safetensors]

The 8x8 images as [N, 1, 8, 8]: two conv blocks with batch norm and a
residual, pooling, then a linear classifier; Adam with a cosine schedule after
a warm-up, and a validation split reported every epoch. The checkpoint loads
into the same architecture in PyTorch (model.spec.to_torch()).
"""
import argparse
import os
from collections import OrderedDict

import digits

traind = digits.import_traind()
from traind import nn, optim  # noqa: E402


def build_spec():
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        block=nn.Residual(nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16),
                                        nn.ReLU())),
        pool=nn.MaxPool2d(2),                       # 8x8 -> 4x4
        head=nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(16 * 4 * 4, 10)),
    ))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=os.environ.get("TRAIND_SERVER", "127.0.0.1:50051"))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--out", default="cnn_digits.safetensors")
    args = ap.parse_args()

    x_train, y_train, x_test, y_test = digits.split(*digits.load())
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    steps = args.epochs * -(-int(len(x_train) * 0.9) // 64)
    opt = optim.Adam(lr=3e-3, schedule=optim.CosineAnnealingLR(T_max=steps, warmup=20))
    with traind.connect(args.server) as client:
        with client.create_model(build_spec(), optimizer=opt, seed=0, name="cnn-digits") as model:
            print(model.spec)
            print(f"{model.info().num_parameters} parameters")
            history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64,
                                validation=0.1, seed=0)
            test = model.evaluate(x_test, y_test)
            print(f"best validation accuracy {max(history['val_accuracy']):.2%}; "
                  f"test accuracy {test['accuracy']:.2%}")
            model.save(args.out)
            print(f"checkpoint: {args.out}")


if __name__ == "__main__":
    main()
