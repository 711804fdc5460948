"""client: numpy <-> Tensor protos, checkpoint streaming, session snapshots."""
import numpy as np

import daemon  # noqa: F401  (stubs and safetensors_np on sys.path)
import safetensors_np as st
from traind.v1 import trainer_pb2 as pb

CHUNK_LIMIT = 1 << 20

_DTYPES = {np.dtype("float32"): pb.FLOAT32, np.dtype("int64"): pb.INT64}
_NP = {pb.FLOAT32: "<f4", pb.INT64: "<i8"}


def tensor(a):
    """A Tensor proto holding numpy array a (float32 or int64)."""
    a = np.ascontiguousarray(a)
    return pb.Tensor(dtype=_DTYPES[a.dtype], shape=list(a.shape), data=a.tobytes())


def raw_tensor(dtype, shape, data):
    """A Tensor proto exactly as given (for malformed ones)."""
    return pb.Tensor(dtype=dtype, shape=list(shape), data=bytes(data))


def array(t):
    """The numpy array a Tensor proto holds."""
    return np.frombuffer(t.data, dtype=_NP[t.dtype]).reshape(list(t.shape)).copy()


def batch(rng, n, shape=(64,), classes=10):
    """A float32 input [n, *shape] and int64 class targets [n]."""
    x = rng.standard_normal((n,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int64)
    return x, y


def create(stub, model, optimizer=None, seed=0, name=""):
    req = pb.CreateModelRequest(model=model, seed=seed, name=name)
    if optimizer is not None:
        req.optimizer.CopyFrom(optimizer)
    return stub.CreateModel(req)


def forward(stub, sid, x, grad=False, target=None, loss=None):
    req = pb.ForwardRequest(session_id=sid, input=tensor(x), grad=grad)
    if target is not None:
        req.target.CopyFrom(tensor(target))
    if loss is not None:
        req.loss.CopyFrom(loss)
    return stub.Forward(req)


def train_step(stub, sid, x, y, loss, return_output=False):
    return stub.TrainStep(pb.TrainStepRequest(session_id=sid, input=tensor(x), target=tensor(y),
                                              loss=loss, return_output=return_output))


def download_chunks(stub, sid, include_optimizer=False):
    return list(stub.StateDict(pb.StateDictRequest(session_id=sid,
                                                   include_optimizer=include_optimizer)))


def download(stub, sid, include_optimizer=False):
    """The session's checkpoint as safetensors bytes."""
    return b"".join(c.data for c in download_chunks(stub, sid, include_optimizer))


def state_dict(stub, sid, include_optimizer=False):
    """({key: np.ndarray}, metadata) of the session's checkpoint."""
    return st.loads(download(stub, sid, include_optimizer))


def upload_requests(sid, data, chunk=CHUNK_LIMIT, strict=None):
    """LoadStateDictRequests carrying `data` in pieces of `chunk` bytes; ids first."""
    first = pb.LoadStateDictRequest(session_id=sid)
    if strict is not None:
        first.strict = strict
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    first.data = pieces[0]
    return [first] + [pb.LoadStateDictRequest(data=p) for p in pieces[1:]]


def upload(stub, sid, data, chunk=CHUNK_LIMIT, strict=None):
    return stub.LoadStateDict(iter(upload_requests(sid, data, chunk, strict)))


def model_keys(sd):
    """The state_dict without traind's own "optimizer/" and "rng/" entries."""
    return {k: v for k, v in sd.items() if not k.startswith(("optimizer/", "rng/"))}


def info_state(info):
    """The SessionInfo fields a failed request must not change."""
    return (info.session_id, info.name, info.num_parameters, info.step, info.training,
            info.optimizer, info.lr, info.recorded, info.has_grad,
            [(p.name, tuple(p.shape), p.dtype) for p in info.parameters])


def snapshot(stub, sid, probe):
    """What a failed request must leave as it was: the session's info, its full
    checkpoint (with optimizer state) and its output on `probe` (grad=False).
    Only for models whose forward changes nothing (no BatchNorm or Dropout in
    train mode)."""
    info = stub.GetSession(pb.GetSessionRequest(session_id=sid))
    tensors, meta = state_dict(stub, sid, include_optimizer=True)
    out = array(forward(stub, sid, probe).output)
    return info_state(info), {k: (v.dtype, v.shape, v.tobytes()) for k, v in tensors.items()}, \
        meta, out.tobytes()
