"""Registry of PyTorch reference implementations for op parity.

Each tests/parity/torch_<family>.py registers functions with @op("name"):
    fn(inputs: list[torch.Tensor | None], params: dict) -> torch.Tensor
`inputs` arrive in float64 (int64 stays int64), with requires_grad set on the
ones traind computed gradients for. `name` is the case's "op" key.
"""
OPS = {}


def op(name):
    def register(fn):
        if name in OPS:
            raise ValueError(f"op {name} registered twice")
        OPS[name] = fn
        return fn
    return register
