"""drive_session: train a real model on a traind at ADDRESS (the container, from the host).

    TRAIND_TOKEN=... /usr/bin/python3 deploy/test/drive_session.py 127.0.0.1:PORT OUT_DIR

Uses the Python client (the `traind` package, as built into build/python): checks health,
creates an MLP session, trains it until the loss has clearly fallen, downloads its
checkpoint (model and optimizer) to OUT_DIR/container.safetensors and checks that the file
holds the model's parameters. Prints the session id on the last line of stdout, so the
caller can drive the same session with trainctl. The session is left open on purpose:
the container must then stop cleanly with a session in it.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.environ.get("TRAIND_PY_STUBS", os.path.join(ROOT, "build", "python")))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))

import numpy as np  # noqa: E402

import safetensors_np as st  # noqa: E402
import traind  # noqa: E402
from traind import nn, optim  # noqa: E402


def main(address, out_dir):
    client = traind.connect(address, token=os.environ.get("TRAIND_TOKEN"), timeout=60)
    status = client.health(timeout=10)
    assert status == "SERVING", f"health: {status}"

    # A learnable task: 4 classes, each a Gaussian blob around its own centre.
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16)).astype(np.float32)
    y = rng.integers(0, 4, 256).astype(np.int64)
    x = (centres[y] + rng.standard_normal((256, 16)).astype(np.float32)).astype(np.float32)

    model = client.create_model(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)),
                                optimizer=optim.SGD(lr=0.1, momentum=0.9), seed=1,
                                name="container-test")
    losses = []
    for epoch in range(10):
        for i in range(0, 256, 32):
            losses.append(model.train_step(x[i:i + 32], y[i:i + 32]).loss)
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    print(f"drive_session: {len(losses)} steps, mean loss {first:.4f} -> {last:.4f}")
    assert last < first * 0.5, f"loss did not fall: {first} -> {last}"

    info = model.info()
    assert info.step == len(losses), f"step {info.step}, expected {len(losses)}"

    path = os.path.join(out_dir, "container.safetensors")
    model.save(path, include_optimizer=True)
    tensors, _ = st.load(path)
    params = {k: list(v.shape) for k, v in tensors.items()
              if not k.startswith(("optimizer/", "rng/"))}
    want = {name: list(shape) for name, shape, _ in info.parameters}
    assert params == want, f"checkpoint keys/shapes {params}, session has {want}"
    assert any(k.startswith("optimizer/") for k in tensors), "no optimizer state in checkpoint"
    print(f"drive_session: checkpoint {os.path.getsize(path)} bytes, {len(params)} model tensors"
          f" -> {path}")
    client.close()
    print(model.session_id)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
