"""drive_session: train a real model on a traind at ADDRESS (the container, from the host).

    /usr/bin/python3 deploy/test/drive_session.py 127.0.0.1:PORT OUT_DIR

Uses the generated grpcio stubs (build/python) through tests/integration's helpers: checks
health, creates an MLP session, trains it until the loss has clearly fallen, downloads its
checkpoint (model and optimizer) to OUT_DIR/container.safetensors and checks that the file
holds the model's parameters. Prints the session id on the last line of stdout, so the
caller can drive the same session with trainctl. The session is left open on purpose:
the container must then stop cleanly with a session in it.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))

import numpy as np  # noqa: E402

import client  # noqa: E402
import daemon  # noqa: E402
import safetensors_np as st  # noqa: E402
import specs  # noqa: E402
from health.v1 import health_pb2  # noqa: E402
from traind.v1 import trainer_pb2 as pb  # noqa: E402

import grpc  # noqa: E402


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor):
    """Adds "authorization: Bearer TOKEN" to every call (the container's
    traind requires it: it listens beyond loopback)."""

    def __init__(self, token):
        self.md = ("authorization", f"Bearer {token}")

    def _details(self, d):
        return d._replace(metadata=list(d.metadata or []) + [self.md])

    def intercept_unary_unary(self, cont, details, request):
        return cont(self._details(details), request)

    def intercept_unary_stream(self, cont, details, request):
        return cont(self._details(details), request)

    def intercept_stream_unary(self, cont, details, requests):
        return cont(self._details(details), requests)


def main(address, out_dir):
    channel = grpc.insecure_channel(address, options=daemon.CHANNEL_OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=30)
    if os.environ.get("TRAIND_TOKEN"):
        channel = grpc.intercept_channel(channel, BearerToken(os.environ["TRAIND_TOKEN"]))
    health = daemon.health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING, f"health: {status}"
    stub = daemon.trainer_pb2_grpc.TrainerStub(channel)

    # A learnable task: 4 classes, each a Gaussian blob around its own centre.
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16)).astype(np.float32)
    y = rng.integers(0, 4, 256).astype(np.int64)
    x = (centres[y] + rng.standard_normal((256, 16)).astype(np.float32)).astype(np.float32)

    created = client.create(stub, specs.mlp(16, 32, 4), specs.sgd(0.1, momentum=0.9), seed=1,
                            name="container-test")
    sid = created.session_id
    losses = []
    for epoch in range(10):
        for i in range(0, 256, 32):
            r = client.train_step(stub, sid, x[i:i + 32], y[i:i + 32], specs.cross_entropy())
            losses.append(r.loss)
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    print(f"drive_session: {len(losses)} steps, mean loss {first:.4f} -> {last:.4f}")
    assert last < first * 0.5, f"loss did not fall: {first} -> {last}"

    info = stub.GetSession(pb.GetSessionRequest(session_id=sid))
    assert info.step == len(losses), f"step {info.step}, expected {len(losses)}"

    data = client.download(stub, sid, include_optimizer=True)
    path = os.path.join(out_dir, "container.safetensors")
    with open(path, "wb") as f:
        f.write(data)
    tensors, _ = st.loads(data)
    model = client.model_keys(tensors)
    want = {p.name: list(p.shape) for p in info.parameters}
    got = {k: list(v.shape) for k, v in model.items()}
    assert got == want, f"checkpoint keys/shapes {got}, session has {want}"
    assert any(k.startswith("optimizer/") for k in tensors), "no optimizer state in checkpoint"
    print(f"drive_session: checkpoint {len(data)} bytes, {len(model)} model tensors -> {path}")
    channel.close()
    print(sid)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
