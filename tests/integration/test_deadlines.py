"""Deadlines and cancellation: work for a call whose client stopped waiting
stops at the next op boundary, and leaves the session as it was."""
import numpy as np

import daemon
from client import array, create, forward, state_dict, tensor
import specs
from daemon import grpc, trainer_pb2


def slow_model(layers=24, channels=32):
    """BatchNorm first (so a train-mode forward moves its running stats at
    once), then enough 3x3 convolutions that a forward takes seconds."""
    mods = [specs.batch_norm2d(channels)]
    for _ in range(layers):
        mods += [specs.conv2d(channels, channels, 3, padding=1), specs.relu()]
    return specs.seq(*mods)


class DeadlineTest(daemon.DaemonTestCase):
    def test_deadline_stops_forward_and_changes_nothing(self):
        sid = create(self.stub, slow_model(), seed=3).session_id
        before = state_dict(self.stub, sid)[0]
        x = np.random.default_rng(0).standard_normal((16, 32, 96, 96)).astype(np.float32)
        req = trainer_pb2.ForwardRequest(session_id=sid, input=tensor(x), grad=True)
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.Forward(req, timeout=0.3)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        # Queued behind the cancelled forward: it sees the session as it was
        # before it (a completed train-mode forward would have moved the
        # BatchNorm statistics and counted a batch).
        after = state_dict(self.stub, sid)[0]
        self.assertEqual(list(before), list(after))
        for k in before:
            np.testing.assert_array_equal(before[k], after[k], err_msg=k)
        info = self.stub.GetSession(trainer_pb2.GetSessionRequest(session_id=sid))
        self.assertFalse(info.recorded)
        # The session still works.
        out = array(forward(self.stub, sid, x[:1, :, :8, :8]).output)
        self.assertEqual(out.shape, (1, 32, 8, 8))


if __name__ == "__main__":
    daemon.main()
