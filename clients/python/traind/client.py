"""connect() and Client: a channel to one traind server.

    client = traind.connect("127.0.0.1:50051")           # token=..., tls=...
    model = client.create_model(spec, optimizer=optim.SGD(lr=0.1), seed=0, name="mlp")
    client.sessions(); client.health(); client.close()
"""
import os

import grpc

from . import errors
from .health.v1 import health_pb2
from .v1 import trainer_pb2 as pb
from .v1 import trainer_pb2_grpc as pb_grpc

MIB = 1 << 20
# traind accepts messages up to --max-message-size (64 MiB by default); the
# client must raise gRPC's 4 MiB default to match, both ways. Larger here, so
# that the server's limit is the one a user meets (as RESOURCE_EXHAUSTED with
# its message).
MAX_MESSAGE_SIZE = 256 * MIB
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE)]
CHUNK_SIZE = 1 * MIB  # checkpoint upload pieces (the server streams downloads the same way)

# The standard health service. Its stubs are generated as traind.health.v1
# (a top-level grpc.health.v1 would be shadowed by grpcio's `grpc` package);
# the wire name stays /grpc.health.v1.Health/Check.
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def connect(address, token=None, tls=None, timeout=None, options=()):
    """A Client for the traind server at `address` ("host:port").

    token:   sent with every call as "authorization: Bearer <token>".
    tls:     None for plaintext; True for TLS with the system's root
             certificates; bytes (PEM) or a path to a PEM file for TLS with
             those root certificates.
    timeout: default deadline in seconds for each call (None: no deadline).
    options: extra gRPC channel options, (key, value) pairs.

    The channel connects lazily: an unreachable server shows up as
    traind.Unavailable on the first call (or from client.health()).
    """
    opts = CHANNEL_OPTIONS + list(options)
    if tls is None or tls is False:
        channel = grpc.insecure_channel(address, options=opts)
    else:
        if tls is True:
            roots = None
        elif isinstance(tls, (bytes, bytearray)):
            roots = bytes(tls)
        elif isinstance(tls, (str, os.PathLike)):
            with open(tls, "rb") as f:
                roots = f.read()
        else:
            raise TypeError(f"tls: expected None, True, PEM bytes or a path, got "
                            f"{type(tls).__name__}")
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=opts)
    return Client(channel, address=address, token=token, timeout=timeout)


class Client:
    """Calls to one server. Use as a context manager or call close()."""

    def __init__(self, channel, address=None, token=None, timeout=None):
        self.address = address
        self._channel = channel
        self._stub = pb_grpc.TrainerStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.timeout = timeout
        self._health = channel.unary_unary(
            _HEALTH_CHECK, request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)

    # ---- calls -----------------------------------------------------------------

    def _call(self, method, request, timeout=None):
        """One unary call; grpc.RpcError becomes the matching traind error."""
        try:
            return getattr(self._stub, method)(request, metadata=self._metadata,
                                               timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    def _future(self, method, request):
        """Starts a unary call without waiting (see _result)."""
        return getattr(self._stub, method).future(request, metadata=self._metadata,
                                                  timeout=self.timeout)

    @staticmethod
    def _result(future):
        try:
            return future.result()
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    def _stream_out(self, method, request):
        """A server-streaming call's responses, errors mapped."""
        try:
            for msg in getattr(self._stub, method)(request, metadata=self._metadata,
                                                   timeout=self.timeout):
                yield msg
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    def _stream_in(self, method, requests):
        try:
            return getattr(self._stub, method)(requests, metadata=self._metadata,
                                               timeout=self.timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    # ---- the API ---------------------------------------------------------------

    def create_model(self, spec, optimizer=None, seed=0, name=""):
        """Builds `spec` (a traind.nn module, or a traind.v1.Module message) with
        `optimizer` (a traind.optim spec, an OptimizerSpec, or None: no Step) on
        the server; returns its RemoteModel. The same spec and seed give the
        same initial weights."""
        from .model import RemoteModel
        from .nn import Module as SpecModule
        if isinstance(spec, SpecModule):
            model_msg = spec.to_proto()
        elif isinstance(spec, pb.Module):
            model_msg = spec
        else:
            raise TypeError(f"create_model: spec must be a traind.nn module, got "
                            f"{type(spec).__name__}")
        req = pb.CreateModelRequest(model=model_msg, seed=seed, name=name)
        if optimizer is not None:
            req.optimizer.CopyFrom(optimizer if isinstance(optimizer, pb.OptimizerSpec)
                                   else optimizer.to_proto())
        resp = self._call("CreateModel", req)
        return RemoteModel(self, resp.session_id, spec=spec if isinstance(spec, SpecModule)
                           else None)

    def model(self, session_id):
        """The RemoteModel of an existing session (NotFound if there is none)."""
        from .model import RemoteModel
        m = RemoteModel(self, session_id)
        m.info()
        return m

    def sessions(self):
        """SessionInfo of every open session, oldest first."""
        from .model import SessionInfo
        resp = self._call("ListSessions", pb.ListSessionsRequest())
        return [SessionInfo.from_proto(s) for s in resp.sessions]

    def health(self, service="", timeout=5.0):
        """The server's health status: "SERVING", "NOT_SERVING", ..."""
        try:
            resp = self._health(health_pb2.HealthCheckRequest(service=service),
                                metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"traind.Client({self.address!r})"
