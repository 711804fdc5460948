"""Memory: each session's tensors are accounted (SessionInfo.memory_bytes),
and a server-wide limit (--max-memory) turns a request that would pass it
into RESOURCE_EXHAUSTED, leaving the session and the server as they were."""
import grpc
import numpy as np

import daemon
import specs
from client import create, download, forward, tensor, upload
from daemon import trainer_pb2 as pb

MIB = 1 << 20


class MemoryTest(daemon.DaemonTestCase):
    FLAGS = daemon.DaemonTestCase.FLAGS + ("--max-memory", "64M")

    def info(self, sid):
        return self.stub.GetSession(pb.GetSessionRequest(session_id=sid))

    def test_session_memory_follows_its_tensors(self):
        sid = create(self.stub, specs.mlp_small(), specs.sgd(0.1, momentum=0.9)).session_id
        params = 4810 * 4
        base = self.info(sid).memory_bytes
        self.assertGreaterEqual(base, params)
        self.assertLess(base, 2 * params + 64 * 1024)
        x = np.random.default_rng(0).standard_normal((256, 64)).astype(np.float32)
        y = np.zeros(256, np.int64)
        self.stub.Forward(pb.ForwardRequest(session_id=sid, input=tensor(x), target=tensor(y),
                                            loss=specs.cross_entropy(), grad=True))
        recorded = self.info(sid).memory_bytes
        self.assertGreater(recorded, base + 256 * 64 * 4)  # the activations the tape keeps
        self.stub.Backward(pb.BackwardRequest(session_id=sid))
        with_grads = self.info(sid).memory_bytes
        self.assertLess(with_grads, recorded)              # the tape is gone...
        self.assertGreaterEqual(with_grads, base + params)  # ...the gradients are there
        self.stub.Step(pb.StepRequest(session_id=sid))
        after = self.info(sid).memory_bytes                 # + momentum buffers, - grads
        self.assertGreaterEqual(after, base + params)
        self.assertLess(after, with_grads + 4096)

    def test_limit_refuses_a_request_and_changes_nothing(self):
        # 32 MiB of weights fit; a forward on 1024 rows needs 32 MiB more for
        # its output: over 64 MiB with the rest.
        sid = create(self.stub, specs.seq(specs.linear(1024, 8192))).session_id
        before = self.info(sid)
        x = np.ones((1024, 1024), np.float32)
        msg = self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, forward, self.stub, sid, x,
                                  contains=["memory limit", "67108864"])
        self.assertIn("linear", msg)
        after = self.info(sid)
        self.assertEqual(after.memory_bytes, before.memory_bytes)
        self.assertFalse(after.recorded)
        out = forward(self.stub, sid, x[:16]).output  # a smaller batch still runs
        self.assertEqual(list(out.shape), [16, 8192])
        # A model that alone would pass the limit is refused at creation.
        self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, create, self.stub,
                            specs.seq(specs.linear(4096, 8192)), contains="memory limit")
        self.stub.CloseSession(pb.CloseSessionRequest(session_id=sid))

    def test_uploads_in_flight_count_against_the_limit(self):
        # A checkpoint upload is buffered until its stream ends: 80 MiB of it
        # (its header claims as much) must meet the 64 MiB limit, not the
        # kernel. The upload's own limit (from --max-parameters) is far above.
        sid = create(self.stub, specs.mlp_small(), specs.sgd(0.1)).session_id
        before = download(self.stub, sid, include_optimizer=True)
        junk = before + bytes(80 * MIB)
        self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, upload, self.stub, sid, junk,
                            contains=["memory limit", "checkpoint upload", "67108864"])
        self.assertEqual(download(self.stub, sid, include_optimizer=True), before)
        self.assertLess(self.info(sid).memory_bytes, MIB)  # the buffer was given back
        upload(self.stub, sid, before)  # a real one still loads
        self.stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


if __name__ == "__main__":
    daemon.main()
