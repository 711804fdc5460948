"""PyTorch twins of the C test model zoo (tests/common/models.c).

Same architectures as ../shared/anchors/torch_bench.py's workloads, built so
that the module tree, and therefore every state_dict key, matches what
traind's Sequential/Residual tree produces: a Residual has children `body`
and `shortcut` (absent shortcut = identity), Sequential children are indexed
unless named.
"""
import torch
import torch.nn as nn


class Residual(nn.Module):
    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut
        else:
            self.shortcut = None

    def forward(self, x):
        s = x if self.shortcut is None else self.shortcut(x)
        return self.body(x) + s


def named(**children):
    s = nn.Sequential()
    for k, v in children.items():
        s.add_module(k, v)
    return s


def basic_block(cin, cout, stride):
    body = nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(Residual(body, shortcut), nn.ReLU())


def make(name):
    """(model, input shape, number of classes or None for the embedding model)."""
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10)), (128, 784)
    if name == "mlp_small":
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), (32, 64)
    if name == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10)), (64, 1, 28, 28)
    if name == "cnn_bn":
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 10)), (32, 3, 32, 32)
    if name == "resnet_tiny":
        return named(
            stem=nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                               nn.ReLU()),
            layer1=basic_block(16, 16, 1),
            layer2=basic_block(16, 32, 2),
            layer3=basic_block(32, 64, 2),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(64, 10)), (32, 3, 32, 32)
    if name == "embed_ln":
        # token ids [N, T] -> Embedding -> LayerNorm -> Linear -> GELU -> Flatten -> Linear
        return nn.Sequential(
            nn.Embedding(50, 16), nn.LayerNorm(16), nn.Linear(16, 32), nn.GELU(),
            nn.Flatten(), nn.Linear(8 * 32, 10)), (16, 8)
    raise ValueError(name)


WORKLOADS = ["mlp", "mlp_small", "lenet", "cnn_bn", "resnet_tiny", "embed_ln"]
