"""Exceptions: each status family the server produces, the rest by mapping, and
TypeError for inputs that are not numeric arrays."""
import socket

import grpc
import numpy as np
import pytest

import traind
from conftest import batch, mlp
from traind import errors, nn, optim


def test_invalid_argument_names_the_layer(model):
    x, _ = batch(features=100)
    with pytest.raises(traind.InvalidArgument) as e:
        model.forward(x)
    err = e.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "100" in err.message and "64" in err.message
    assert isinstance(err, ValueError) and isinstance(err, traind.TraindError)
    assert str(err).startswith("INVALID_ARGUMENT: ")


def test_invalid_spec(client):
    with pytest.raises(traind.InvalidArgument, match="in_features"):
        client.create_model(nn.Sequential(nn.Linear(0, 3)))


def test_not_found(client):
    with pytest.raises(traind.NotFound) as e:
        client.model("0" * 32)
    assert e.value.code == grpc.StatusCode.NOT_FOUND and isinstance(e.value, LookupError)


def test_failed_precondition(client, model):
    with pytest.raises(traind.FailedPrecondition):
        model.backward()
    with client.create_model(mlp()) as no_opt:
        with pytest.raises(traind.FailedPrecondition):
            no_opt.step()


def test_out_of_range(model):
    x, y = batch()
    y[3] = 10
    with pytest.raises(traind.OutOfRange) as e:
        model.train_step(x, y)
    assert "10" in e.value.message
    assert model.info().step == 0  # a failed request changes nothing


def test_resource_exhausted(limited_daemon):
    with traind.connect(limited_daemon.address) as c:
        with pytest.raises(traind.ResourceExhausted):
            c.create_model(mlp())


def test_unavailable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with traind.connect(f"127.0.0.1:{port}", timeout=10) as c:
        with pytest.raises(traind.Unavailable):
            c.health()
        with pytest.raises(traind.Unavailable) as e:
            c.create_model(mlp())
        assert isinstance(e.value, ConnectionError)


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return f"details of {self._code.name}"


@pytest.mark.parametrize("code", list(grpc.StatusCode)[1:])  # every code but OK
def test_every_status_has_its_class(code):
    err = errors.from_rpc_error(_FakeRpcError(code))
    assert type(err).code == code and err.code == code
    assert type(err) is not traind.TraindError and isinstance(err, traind.TraindError)
    assert err.message == f"details of {code.name}"
    assert getattr(traind, type(err).__name__) is type(err)


def test_families_are_distinct():
    names = ["InvalidArgument", "NotFound", "FailedPrecondition", "ResourceExhausted",
             "OutOfRange", "Unavailable", "Unauthenticated", "PermissionDenied"]
    classes = [getattr(traind, n) for n in names]
    for a in classes:
        for b in classes:
            assert (a is b) == issubclass(a, b), (a, b)


@pytest.mark.parametrize("bad", ["abc", None, np.array(["a", "b"]), np.array([1 + 2j]),
                                 np.array([object()]), {"x": 1}])
def test_type_error_for_non_numeric_input(model, bad):
    with pytest.raises(TypeError):
        model.forward(bad)


def test_type_error_for_bad_target_and_grad_output(model):
    x, _ = batch()
    with pytest.raises(TypeError):
        model.forward(x, target="labels", loss="cross_entropy")
    with pytest.raises(TypeError):
        model.forward(x, loss="cross_entropy")  # no target
    with pytest.raises(TypeError):
        model.train_step(x, [object()] * 32)
    model.forward(x, grad=True)
    with pytest.raises(TypeError):
        model.backward(grad_output="ones")
    model.clear_grad()


def test_other_dtypes_are_converted(model):
    x, y = batch()
    ref = model.forward(x)
    np.testing.assert_array_equal(model.forward(x.astype(np.float64)), ref)
    np.testing.assert_array_equal(model.forward(x.tolist()), ref)
    r = model.train_step(x.astype(np.float16).astype(np.float64), y.astype(np.int32))
    assert r.step == 1
    import torch
    np.testing.assert_array_equal(model.forward(torch.from_numpy(x)), model.forward(x))


def test_spec_errors_are_local():
    with pytest.raises(ValueError, match="square"):
        nn.Conv2d(1, 2, (3, 5))
    with pytest.raises(TypeError):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(ValueError):
        nn.Sequential().add_module("a.b", nn.ReLU())
    with pytest.raises(ValueError, match="already"):
        nn.Sequential().add_module("a", nn.ReLU()).add_module("a", nn.ReLU())
    with pytest.raises(ValueError):
        nn.BatchNorm1d(4, momentum=None)
    with pytest.raises(ValueError, match="unknown loss"):
        nn.loss_spec("hinge")
    with pytest.raises(TypeError):
        optim.SGD(lr=0.1, schedule="cosine")


def test_tls_against_a_plaintext_server(daemon, tmp_path):
    """tls= makes a TLS channel (here refused by the plaintext daemon); bad values are TypeErrors."""
    with traind.connect(daemon.address, tls=True, timeout=10) as c:
        with pytest.raises(traind.Unavailable):
            c.health()
    with pytest.raises(TypeError):
        traind.connect(daemon.address, tls=42)
    with pytest.raises(FileNotFoundError):
        traind.connect(daemon.address, tls=str(tmp_path / "missing.pem"))
