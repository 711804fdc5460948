"""Exceptions: one class per gRPC status family, all carrying the server's words.

    try:
        model.forward(x)
    except traind.InvalidArgument as e:   # also a ValueError
        print(e.code, e.message)          # grpc.StatusCode.INVALID_ARGUMENT, "linear '0': ..."

Every class derives from TraindError; a few also derive from the builtin
exception a Python user would reach for (InvalidArgument is a ValueError,
NotFound a LookupError, Unavailable a ConnectionError, ...), so generic
handlers keep working.
"""
import grpc


class TraindError(Exception):
    """A call to traind failed. .code is the grpc.StatusCode, .message the server's
    message, .rpc_error the original grpc.RpcError (None when raised locally)."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message, code=None, rpc_error=None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.rpc_error = rpc_error

    def __str__(self):
        return f"{self.code.name}: {self.message}"


class Cancelled(TraindError):
    code = grpc.StatusCode.CANCELLED


class Unknown(TraindError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(TraindError, ValueError):
    """A bad spec, tensor, shape, dtype or value; the message names the layer or field."""
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(TraindError, TimeoutError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(TraindError, LookupError):
    """An unknown, closed or expired session."""
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TraindError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(TraindError, PermissionError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(TraindError):
    """A server limit: sessions, parameters, tensor elements, message size."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(TraindError):
    """Valid request, wrong session state (backward with nothing recorded, step
    without an optimizer)."""
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(TraindError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(TraindError, IndexError):
    """A class target or embedding index outside its range."""
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(TraindError, NotImplementedError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(TraindError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(TraindError, ConnectionError):
    """The server is unreachable or shutting down."""
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(TraindError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(TraindError):
    """No or a wrong token."""
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {cls.code: cls for cls in (
    Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
    PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented,
    Internal, Unavailable, DataLoss, Unauthenticated)}

__all__ = ["TraindError"] + [cls.__name__ for cls in _BY_CODE.values()]


def from_rpc_error(err):
    """The TraindError subclass instance for a grpc.RpcError."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else None) or str(err)
    return _BY_CODE.get(code, TraindError)(message, code=code, rpc_error=err)
