"""traind: train models on a traind server from Python.

    import numpy as np
    import traind
    from traind import nn, optim

    client = traind.connect("127.0.0.1:50051")
    model = client.create_model(
        nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
        optimizer=optim.SGD(lr=0.1, momentum=0.9), seed=0)
    history = model.fit(x, y, epochs=30, batch_size=32, validation=0.2)
    model.save("mlp.safetensors")

See traind.nn (model specs and losses), traind.optim (optimizers and
schedules), RemoteModel (the session's methods) and traind.errors (one
exception class per gRPC status family).
"""
from . import nn, optim  # noqa: F401
from .client import Client, connect  # noqa: F401
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _error_names
from .model import (History, LoadResult, RemoteModel, SessionInfo, StepResult,  # noqa: F401
                    TrainStepResult, torch_state_dict)

__version__ = "0.1.0"
__all__ = ["connect", "Client", "RemoteModel", "SessionInfo", "History", "StepResult",
           "TrainStepResult", "LoadResult", "torch_state_dict", "nn", "optim"] + _error_names
