"""Every RemoteModel and Client method against a real daemon."""
import numpy as np
import pytest

import traind
from conftest import batch, mlp
from traind import nn, optim


def test_health_and_sessions(client, model):
    assert client.health() == "SERVING"
    ids = [s.session_id for s in client.sessions()]
    assert model.session_id in ids


def test_create_model_info(model):
    info = model.info()
    assert info.session_id == model.session_id and len(info.session_id) == 32
    assert info.name == "test-mlp"
    assert info.num_parameters == 64 * 128 + 128 + 128 * 10 + 10
    assert info.parameters == [("0.weight", (128, 64), "float32"), ("0.bias", (128,), "float32"),
                               ("2.weight", (10, 128), "float32"), ("2.bias", (10,), "float32")]
    assert (info.optimizer, info.step, info.training) == ("sgd", 0, True)
    assert info.lr == pytest.approx(0.1)
    assert not info.recorded and not info.has_grad


def test_same_seed_same_weights(client):
    a = client.create_model(mlp(), seed=7)
    b = client.create_model(mlp(), seed=7)
    x, _ = batch()
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    a.close(), b.close()


def test_model_attaches_to_a_session(client, model):
    again = client.model(model.session_id)
    x, _ = batch()
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


def test_forward(model):
    x, y = batch()
    out = model.forward(x)
    assert out.shape == (32, 10) and out.dtype == np.float32 and out.flags.writeable
    out2, loss = model.forward(x, target=y, loss="cross_entropy")
    np.testing.assert_array_equal(out, out2)
    assert isinstance(loss, float) and loss > 0
    assert not model.info().recorded  # grad defaults to False outside record()
    np.testing.assert_array_equal(model(x), out)  # __call__ is forward


def test_record_backward_step(model):
    x, y = batch()
    with model.record():
        model.forward(x, target=y, loss=nn.CrossEntropyLoss())
        assert model.info().recorded
        norm = model.backward()
    assert norm > 0
    info = model.info()
    assert info.has_grad and not info.recorded
    r = model.step()
    assert r.step == 1 and r.lr == pytest.approx(0.1) and r.grad_norm == pytest.approx(norm)
    assert not model.info().has_grad


def test_backward_accumulates_and_clear_grad(model):
    x, y = batch()
    model.forward(x, target=y, loss="cross_entropy", grad=True)
    n1 = model.backward()
    model.forward(x, target=y, loss="cross_entropy", grad=True)
    n2 = model.backward()
    assert n2 == pytest.approx(2 * n1, rel=1e-4)
    model.clear_grad()
    assert not model.info().has_grad
    with pytest.raises(traind.FailedPrecondition):
        model.backward()


def test_backward_with_grad_output_and_keep_grad(model):
    x, _ = batch()
    with model.record():
        out = model.forward(x)
        norm = model.backward(grad_output=np.ones_like(out))
    assert norm > 0
    r = model.step(keep_grad=True)
    assert r.step == 1 and model.info().has_grad
    model.clear_grad()


def test_train_step(model):
    x, y = batch()
    r1 = model.train_step(x, y)
    r2 = model.train_step(x, y, loss=nn.CrossEntropyLoss(), return_output=True)
    assert (r1.step, r2.step) == (1, 2) and r1.output is None
    assert r2.output.shape == (32, 10) and r2.loss < r1.loss
    assert r1.lr == pytest.approx(0.1) and r1.grad_norm > 0


def test_train_and_eval(client):
    m = client.create_model(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), seed=0)
    x = np.ones((8, 4), np.float32)
    assert m.eval() is m and not m.info().training
    np.testing.assert_array_equal(m.forward(x), m.forward(x))  # dropout off
    assert m.train() is m and m.info().training
    assert (m.forward(x) == 0).any()  # dropout on
    m.close()


def test_state_dict(model):
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sd["0.weight"].shape == (128, 64) and sd["0.weight"].dtype == np.float32
    x, y = batch()
    model.train_step(x, y)
    full = model.state_dict(include_optimizer=True)
    assert any(k.startswith("optimizer/") for k in full)
    assert set(traind.torch_state_dict(full)) == set(sd)


def test_load_strict_and_not(model, client):
    sd = model.state_dict()
    other = client.create_model(mlp(), seed=1)
    assert other.load(sd) == ([], [])
    x, _ = batch()
    np.testing.assert_array_equal(other.forward(x), model.forward(x))
    partial = {k: v for k, v in sd.items() if k != "2.bias"}
    with pytest.raises(traind.InvalidArgument, match="2.bias"):
        other.load(partial)
    r = other.load(dict(partial, extra=np.zeros(3, np.float32)), strict=False)
    assert r.missing_keys == ["2.bias"] and r.unexpected_keys == ["extra"]
    with pytest.raises(TypeError):
        other.load(42)
    other.close()


def test_close(client):
    m = client.create_model(mlp())
    sid = m.session_id
    m.close()
    m.close()  # harmless
    with pytest.raises(traind.NotFound, match=sid):
        m.info()
    with client.create_model(mlp()) as m2:
        sid2 = m2.session_id
    assert sid2 not in [s.session_id for s in client.sessions()]


def test_evaluate_and_predict(model):
    x, y = batch(100)
    model.train()
    ev = model.evaluate(x, y, batch_size=30)
    out, loss = model.forward(x, target=y, loss="cross_entropy")
    assert ev["loss"] == pytest.approx(loss, rel=1e-5)
    assert ev["accuracy"] == pytest.approx(np.mean(out.argmax(1) == y))
    assert model.info().training  # mode restored
    np.testing.assert_allclose(model.predict(x, batch_size=30), out, rtol=1e-6, atol=1e-6)


def test_token_is_accepted(daemon):
    with traind.connect(daemon.address, token="secret") as c:
        assert c.health() == "SERVING"
        c.create_model(mlp()).close()


def test_optimizers_and_schedules(client):
    x, y = batch()
    cases = [
        (optim.SGD(lr=0.5, nesterov=True, momentum=0.9), "sgd", 0.5),
        (optim.Adam(lr=0.01, amsgrad=True), "adam", 0.01),
        (optim.AdamW(), "adamw", 1e-3),
        (optim.RMSprop(centered=True, momentum=0.5), "rmsprop", 1e-2),
        (optim.Adagrad(lr_decay=0.1), "adagrad", 1e-2),
        (optim.SGD(lr=1.0, grad_clip_norm=0.5, schedule=optim.StepLR(1, gamma=0.5)), "sgd", 1.0),
        (optim.SGD(lr=1.0, schedule=optim.MultiStepLR([1, 2], gamma=0.1)), "sgd", 1.0),
        (optim.SGD(lr=1.0, schedule=optim.CosineAnnealingLR(T_max=2)), "sgd", 1.0),
        (optim.SGD(lr=0.9, schedule=optim.Warmup(3)), "sgd", 0.3),
        (optim.SGD(lr=1.0, schedule=optim.StepLR(1, warmup=2, warmup_start_factor=0.5)),
         "sgd", 0.5),
    ]
    for spec, name, first_lr in cases:
        with client.create_model(mlp(), optimizer=spec) as m:
            assert m.info().optimizer == name, spec
            r = m.train_step(x, y)
            assert r.lr == pytest.approx(first_lr), spec
            assert np.isfinite(r.loss)
    with client.create_model(mlp(), optimizer=optim.SGD(lr=1.0, grad_clip_norm=1e-3)) as m:
        assert m.train_step(x, y).grad_norm > 1e-3  # reported before clipping


def test_losses(client):
    x, _ = batch()
    with client.create_model(nn.Sequential(nn.Linear(64, 3)), optimizer=optim.SGD(lr=0.1)) as m:
        t = np.random.default_rng(0).random((32, 3)).astype(np.float32)
        out = m.forward(x)
        for name, ref in [("mse", np.mean((out - t) ** 2)), ("l1", np.mean(np.abs(out - t))),
                          (nn.MSELoss(reduction="sum"), np.sum((out - t) ** 2))]:
            _, loss = m.forward(x, target=t, loss=name)
            assert loss == pytest.approx(ref, rel=1e-4), name
        _, loss = m.forward(x, target=t, loss=nn.BCEWithLogitsLoss())
        assert loss > 0
        y = np.zeros(32, np.int64)
        logp = out - np.log(np.exp(out).sum(1, keepdims=True))
        _, loss = m.forward(x, target=y, loss=nn.NLLLoss())
        assert loss == pytest.approx(-np.mean(out[:, 0]), rel=1e-4)
        _, loss = m.forward(x, target=y, loss=nn.CrossEntropyLoss(label_smoothing=0.1))
        ref = -np.mean(0.9 * logp[:, 0] + 0.1 * logp.mean(1))
        assert loss == pytest.approx(ref, rel=1e-4)
