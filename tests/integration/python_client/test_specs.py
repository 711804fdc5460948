"""The nn builders: every layer builds on the server, and to_torch() gives the
same state-dict keys, shapes and outputs."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import traind
from traind import nn


def every_layer():
    """A model using every builder (except Embedding, which takes int64)."""
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(3, 8, 3, padding=1, bias=False),
        bn=nn.BatchNorm2d(8),
        act=nn.LeakyReLU(0.1),
        res=nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.GELU()),
                        nn.Conv2d(8, 8, 1)),
        mp=nn.MaxPool2d(2),
        ap=nn.AvgPool2d(3, stride=1, padding=1),
        gap=nn.AdaptiveAvgPool2d((2, 2)),
        flat=nn.Flatten(),
        fc=nn.Linear(32, 16),
        bn1=nn.BatchNorm1d(16, momentum=0.2),
        ln=nn.LayerNorm(16),
        seq=nn.Sequential(nn.SiLU(), nn.Tanh(), nn.Identity(), nn.Sigmoid(), nn.ReLU(),
                          nn.Dropout(0.0)),
        out=nn.Linear(16, 5),
        sm=nn.Softmax(dim=1),
    ))


def assert_same_state(remote, module):
    ours = traind.torch_state_dict(remote.state_dict())
    theirs = module.state_dict()
    assert list(ours) == list(theirs)
    for k in ours:
        assert tuple(ours[k].shape) == tuple(theirs[k].shape), k
        assert ours[k].dtype == theirs[k].dtype, k


@pytest.mark.parametrize("spec, shape, dtype", [
    (every_layer(), (4, 3, 8, 8), np.float32),
    (nn.Sequential(nn.Embedding(20, 6), nn.Flatten(), nn.Linear(18, 2)), (5, 3), np.int64),
])
def test_to_torch_matches_the_server(client, spec, shape, dtype):
    with client.create_model(spec, seed=3) as m:
        module = spec.to_torch()
        assert_same_state(m, module)
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(shape).astype(np.float32) if dtype == np.float32
             else rng.integers(0, 20, shape))
        m.eval()
        torch_module = m.to_torch()
        assert not torch_module.training
        with torch.no_grad():
            ref = torch_module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(m.forward(x), ref, rtol=1e-4, atol=1e-5)


def test_proto_fields():
    msg = nn.Sequential(OrderedDict(a=nn.Linear(2, 3, bias=False)), ).to_proto()
    assert msg.sequential.modules[0].name == "a"
    assert not msg.sequential.modules[0].linear.bias
    conv = nn.Conv2d(1, 2, (3, 3), stride=2, padding=(1, 1)).to_proto().conv2d
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == (3, 2, 1, 1)
    assert nn.ReLU().to_proto().HasField("relu")
    assert nn.MaxPool2d(3).to_proto().max_pool2d.stride == 3
    assert nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.2).to_proto().reduction == 1


def test_repr_reads_like_torch():
    text = repr(nn.Sequential(nn.Linear(64, 128), nn.ReLU()))
    assert text == ("Sequential(\n  (0): Linear(in_features=64, out_features=128, bias=True)\n"
                    "  (1): ReLU()\n)")
