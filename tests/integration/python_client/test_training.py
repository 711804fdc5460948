"""fit() with validation and progress, large tensors, checkpoints into torch and back."""
import os

import numpy as np
import pytest
import torch

import traind
from conftest import batch, mlp
from traind import nn, optim


def test_fit_with_validation(client, digits_data, capsys):
    x_train, y_train, x_test, y_test = digits_data
    with client.create_model(mlp(), optimizer=optim.SGD(lr=0.1, momentum=0.9), seed=0) as m:
        h = m.fit(x_train, y_train, epochs=5, batch_size=32, validation=(x_test, y_test),
                  seed=0, progress=False)
        assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert all(len(v) == 5 for v in h.values())
        assert h["loss"][-1] < h["loss"][0] and h["val_accuracy"][-1] > 0.9
        assert h.steps == 5 * -(-len(x_train) // 32) == m.info().step
        assert not h.reordered and h.train_time > 0
        ev = m.evaluate(x_test, y_test)
        assert ev["accuracy"] == pytest.approx(h["val_accuracy"][-1])
        assert capsys.readouterr().out == ""  # progress=False is silent


def test_fit_is_deterministic_and_pipelining_changes_nothing(client, digits_data):
    x, y = digits_data[0][:500], digits_data[1][:500]
    losses = []
    for pipeline in (1, 2, 4):
        with client.create_model(mlp(), optimizer=optim.SGD(lr=0.1), seed=0) as m:
            h = m.fit(x, y, epochs=2, batch_size=50, seed=1, progress=False, pipeline=pipeline)
            losses.append((h["loss"], m.state_dict()["2.bias"].tolist()))
    assert losses[0] == losses[1] == losses[2]


def test_fit_validation_fraction_lines_and_bar(client, digits_data, capsys):
    x, y = digits_data[0][:400], digits_data[1][:400]
    with client.create_model(mlp(), optimizer=optim.Adam(), seed=0) as m:
        h = m.fit(x, y, epochs=2, batch_size=64, validation=0.25, progress="auto")
        assert h.steps == 2 * -(-300 // 64)
        out = capsys.readouterr().out  # not a terminal: one line per epoch
        assert "epoch 1/2" in out and "val_accuracy" in out
        m.fit(x, y, epochs=1, batch_size=64, progress=True)  # a tqdm bar on stderr
        err = capsys.readouterr().err
        assert "epoch 1/1" in err and "100%" in err and "loss" in err


def test_fit_regression_and_errors(client):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
    with client.create_model(nn.Linear(4, 1), optimizer=optim.SGD(lr=0.1), seed=0) as m:
        h = m.fit(x, y, epochs=20, batch_size=32, loss="mse", progress=False)
        assert set(h) == {"loss"} and h["loss"][-1] < 1e-3
        with pytest.raises(ValueError, match="first dimension"):
            m.fit(x, y[:10], progress=False)
        with pytest.raises(ValueError):
            m.fit(x, y, batch_size=0, progress=False)
        with pytest.raises(traind.InvalidArgument):
            m.fit(x[:, :3], y, loss="mse", progress=False)


def test_large_tensors(client):
    """Inputs and outputs above gRPC's 4 MiB default, both ways."""
    with client.create_model(nn.Sequential(nn.Linear(1024, 1024)),
                             optimizer=optim.SGD(lr=0.01), seed=0) as m:
        x = np.random.default_rng(0).standard_normal((1536, 1024)).astype(np.float32)  # 6 MiB
        out = m.forward(x)
        assert out.shape == (1536, 1024)
        sd = m.state_dict()
        ref = x @ sd["0.weight"].T + sd["0.bias"]
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
        r = m.train_step(x, np.zeros_like(x), loss="mse", return_output=True)
        assert r.step == 1 and r.output.shape == x.shape


def test_large_checkpoint_round_trip(client, tmp_path):
    """A 16 MiB checkpoint streamed both ways, with the optimizer's state."""
    spec = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
    x, y = batch(8, features=2048)
    with client.create_model(spec, optimizer=optim.Adam(), seed=0) as a, \
            client.create_model(spec, optimizer=optim.Adam(), seed=1) as b:
        a.train_step(x, y)
        path = tmp_path / "big.safetensors"
        size = a.save(path, include_optimizer=True)
        assert size == os.path.getsize(path) > 16 << 20
        assert b.load(path) == ([], [])
        assert b.info().step == 1
        ra, rb = a.train_step(x, y), b.train_step(x, y)
        assert ra.loss == rb.loss and ra.step == rb.step == 2
        np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_save_load_round_trip_into_torch(client, digits_data, tmp_path):
    x_train, y_train, x_test, _ = digits_data
    spec = mlp()
    with client.create_model(spec, optimizer=optim.SGD(lr=0.1, momentum=0.9), seed=0) as m:
        m.fit(x_train, y_train, epochs=2, progress=False)
        path = tmp_path / "mlp.safetensors"
        m.save(path)
        with open(path, "rb") as f:
            state, _ = traind.safetensors.loads(f.read())
        net = spec.to_torch()
        net.load_state_dict(traind.torch_state_dict(state), strict=True)
        with torch.no_grad():
            ref = net(torch.from_numpy(x_test)).numpy()
        np.testing.assert_allclose(m.predict(x_test), ref, rtol=1e-5, atol=1e-5)

        # and back: torch's weights into a fresh session give torch's outputs
        torch.manual_seed(5)
        net2 = spec.to_torch()
        with client.create_model(spec) as m2:
            assert m2.load(net2.state_dict()) == ([], [])
            with torch.no_grad():
                ref2 = net2(torch.from_numpy(x_test)).numpy()
            np.testing.assert_allclose(m2.predict(x_test), ref2, rtol=1e-5, atol=1e-5)
            # a file written by torch's side (our writer) loads as a path too
            torch_path = tmp_path / "from_torch.safetensors"
            torch_path.write_bytes(traind.safetensors.dumps(net.state_dict()))
            assert m2.load(str(torch_path)) == ([], [])
            np.testing.assert_allclose(m2.predict(x_test), ref, rtol=1e-5, atol=1e-5)
