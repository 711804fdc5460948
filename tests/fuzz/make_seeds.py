#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/<target>/), committed so
that every fuzz run starts from inputs that reach deep: valid requests of each
type, real checkpoints, the example JSON specs, and session files written by
the real daemon. Rerun after a proto or file-format change:

    /usr/bin/python3 tests/fuzz/make_seeds.py build/python build/server/traind
"""
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import safetensors_np as st  # noqa: E402
import specs  # noqa: E402
from traind.v1 import trainer_pb2 as pb  # noqa: E402

# fuzz_requests.c's order of request types (the first byte of an input).
CREATE, FORWARD, BACKWARD, TRAIN_STEP, LOAD = 0, 1, 2, 3, 4


def tensor(a):
    dtype = pb.FLOAT32 if a.dtype == np.float32 else pb.INT64
    return pb.Tensor(dtype=dtype, shape=list(a.shape), data=a.tobytes())


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def linear_checkpoint(rng, with_optimizer=False):
    """A checkpoint of fuzz_safetensors.c's Sequential(Linear(4,3), BatchNorm1d(3))."""
    t = {"0.weight": rng.standard_normal((3, 4)).astype(np.float32),
         "0.bias": rng.standard_normal(3).astype(np.float32),
         "1.weight": np.ones(3, np.float32), "1.bias": np.zeros(3, np.float32),
         "1.running_mean": np.zeros(3, np.float32), "1.running_var": np.ones(3, np.float32),
         "1.num_batches_tracked": np.array(0, np.int64)}
    meta = None
    if with_optimizer:
        for i, k in enumerate(["0.weight", "0.bias", "1.weight", "1.bias"]):
            t[f"optimizer/state.{i}.step"] = np.array(1, np.int64)
            t[f"optimizer/state.{i}.momentum_buffer"] = np.zeros_like(t[k])
        meta = {"optimizer/optimizer": "sgd", "optimizer/step": "1"}
    return st.dumps(t, meta, sort=False)


def session_files(traind):
    """Files of a few sessions (BatchNorm, Dropout, optimizers, eval mode), as
    the daemon saves them. fuzz_session_file's first byte: 1 = the file as it
    is, 0 = its payload (the target writes the header)."""
    import daemon
    daemon.BIN = os.path.abspath(traind)
    with tempfile.TemporaryDirectory() as tmp:
        d = daemon.Daemon("--workers", "1", data_dir=os.path.join(tmp, "data"))
        d.start()
        stub = d.stub()
        net = specs.seq(specs.linear(8, 6), specs.batch_norm1d(6), specs.relu(),
                        specs.dropout(0.2), specs.linear(6, 3))
        kinds = [("mlp_sgd", specs.mlp(8, 16, 4), specs.sgd(0.1, momentum=0.9)),
                 ("bn_dropout_adam", net, specs.adam(1e-3)),
                 ("no_optimizer", specs.mlp(4, 2), None)]
        for name, model, opt in kinds:
            req = pb.CreateModelRequest(model=model, seed=1, name=name)
            if opt is not None:
                req.optimizer.CopyFrom(opt)
            sid = stub.CreateModel(req).session_id
            if name == "no_optimizer":
                stub.SetTraining(pb.SetTrainingRequest(session_id=sid, training=False))
            with open(os.path.join(d.data_dir, "sessions", f"{sid}.session"), "rb") as f:
                data = f.read()
            write("fuzz_session_file", name, b"\x01" + data)
            write("fuzz_session_file", name + "_payload", b"\x00" + data[24:])
        d.stop()


def main():
    # Overwrites its own seeds only: the corpora also keep inputs the fuzzer
    # found (hash-named), which must survive a rerun.
    rng = np.random.default_rng(0)
    ce = specs.cross_entropy()

    # fuzz_requests: one of each kind, built as clients build them.
    models = {"mlp": specs.mlp(8, 16, 4), "mlp_small": specs.mlp_small()}
    for name in dir(specs):
        if name in ("cnn", "resnet_tiny", "small_cnn", "tiny_resnet"):
            models[name] = getattr(specs, name)()
    optimizers = [specs.sgd(0.1, momentum=0.9), specs.adam(1e-3)]
    for i, (name, model) in enumerate(sorted(models.items())):
        req = pb.CreateModelRequest(model=model, optimizer=optimizers[i % 2], seed=i, name=name)
        write("fuzz_requests", f"create_{name}", bytes([CREATE]) + req.SerializeToString())
    x = rng.standard_normal((2, 8)).astype(np.float32)
    y = np.array([1, 3], np.int64)
    fwd = pb.ForwardRequest(session_id="0" * 32, input=tensor(x), target=tensor(y), loss=ce,
                            grad=True)
    write("fuzz_requests", "forward", bytes([FORWARD]) + fwd.SerializeToString())
    ts = pb.TrainStepRequest(session_id="0" * 32, input=tensor(x), target=tensor(y), loss=ce)
    write("fuzz_requests", "train_step", bytes([TRAIN_STEP]) + ts.SerializeToString())
    bwd = pb.BackwardRequest(session_id="0" * 32,
                             grad_output=tensor(np.ones((2, 4), np.float32)))
    write("fuzz_requests", "backward", bytes([BACKWARD]) + bwd.SerializeToString())
    lin = {"weight": rng.standard_normal((4, 8)).astype(np.float32),
           "bias": np.zeros(4, np.float32)}
    load = pb.LoadStateDictRequest(session_id="0" * 32, strict=True, data=st.dumps(lin))
    write("fuzz_requests", "load_state_dict", bytes([LOAD]) + load.SerializeToString())

    # fuzz_safetensors: the fixed target's own checkpoints.
    write("fuzz_safetensors", "model", linear_checkpoint(rng))
    write("fuzz_safetensors", "model_optimizer", linear_checkpoint(rng, with_optimizer=True))

    # fuzz_spec_json: trainctl's examples and a few shapes of the format.
    examples = os.path.join(ROOT, "clients", "c", "examples")
    for f in sorted(os.listdir(examples)):
        if f.endswith(".json"):
            with open(os.path.join(examples, f), "rb") as src:
                write("fuzz_spec_json", f, src.read())
    write("fuzz_spec_json", "residual.json",
          b'{"sequential": [{"residual": {"body": {"sequential": [{"linear": {"in_features": 4,'
          b' "out_features": 4}}, "relu"]}}}, {"name": "head", "linear": {"in_features": 4,'
          b' "out_features": 2, "bias": false}}]}')
    write("fuzz_spec_json", "request.json",
          b'{"model": {"sequential": [{"conv2d": {"in_channels": 1, "out_channels": 2,'
          b' "kernel_size": 3, "padding": 1}}, {"batch_norm2d": {"num_features": 2}}, "flatten"]},'
          b' "optimizer": {"adamw": {"lr": 0.001}, "schedule": {"cosine": {"t_max": 10},'
          b' "warmup_steps": 2}}, "seed": 3}')

    if len(sys.argv) > 2:
        session_files(sys.argv[2])


if __name__ == "__main__":
    main()
