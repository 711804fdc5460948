"""Deadlines and cancellation: work for a call whose client stopped waiting
stops at the next op boundary, and leaves the session as it was."""
import os
import time

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


class CancelledCreateTest(daemon.DaemonTestCase):
    """One worker, so that the order of jobs is the pool's FIFO."""
    FLAGS = ("--blas-threads", "1", "--workers", "1")

    def test_create_cancelled_after_it_was_built_leaves_no_session(self):
        # B's forward holds the only worker; the CreateModel's build is
        # queued behind it, and its answer (the session's first job) behind
        # C's forward. The client cancels once the session is built (it shows
        # in ListSessions, which the worker does not serve) and before the
        # answer. That session must go, not linger (unusable: its id was
        # never told) against the tenant's quota until it expires.
        b, c = (create(self.stub, slow_model(layers=12), seed=i).session_id for i in (1, 2))
        x = np.random.default_rng(0).standard_normal((8, 32, 64, 64)).astype(np.float32)
        forward(self.stub, b, x)  # warm: the first one also allocates
        t0 = time.monotonic()
        forward(self.stub, b, x)
        took = time.monotonic() - t0
        fb = self.stub.Forward.future(trainer_pb2.ForwardRequest(session_id=b, input=tensor(x)))
        time.sleep(took * 0.2)
        req = trainer_pb2.CreateModelRequest(model=specs.mlp_small(), seed=9, name="orphan")
        fcreate = self.stub.CreateModel.future(req)
        time.sleep(took * 0.2)
        fc = self.stub.Forward.future(trainer_pb2.ForwardRequest(session_id=c, input=tensor(x)))

        def names():
            return [s.name for s in
                    self.stub.ListSessions(trainer_pb2.ListSessionsRequest()).sessions]
        deadline = time.monotonic() + 60
        while "orphan" not in names() and time.monotonic() < deadline:
            time.sleep(0.002)
        self.assertIn("orphan", names())
        self.assertFalse(fcreate.done(), "answered before C's forward ran: no race to test")
        fcreate.cancel()
        fb.result()
        fc.result()
        self.daemon.wait_for_log("its CreateModel was cancelled before it answered")
        listed = self.stub.ListSessions(trainer_pb2.ListSessionsRequest()).sessions
        self.assertEqual(sorted(s.session_id for s in listed), sorted([b, c]))
        files = sorted(os.listdir(os.path.join(self.daemon.data_dir, "sessions")))
        self.assertEqual(files, sorted(f"{s}.session" for s in (b, c)))

if __name__ == "__main__":
    daemon.main()
