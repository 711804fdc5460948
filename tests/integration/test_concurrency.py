"""Sessions driven concurrently give the same results as one after the other."""
import threading

import numpy as np

import daemon
import specs
from client import batch, create, state_dict, train_step
from daemon import trainer_pb2 as pb

SESSIONS = 8
STEPS = 8


def run(stub, i):
    """Session i's whole life: its own seed, data and optimizer; its final
    checkpoint (with optimizer state) as {key: bytes}."""
    rng = np.random.default_rng(100 + i)
    opt = specs.adam(1e-3) if i % 2 else specs.sgd(0.05, momentum=0.9)
    model = specs.cnn() if i % 4 == 3 else specs.mlp_small()
    shape = (3, 8, 8) if i % 4 == 3 else (64,)
    sid = create(stub, model, opt, seed=100 + i, name=f"conc-{i}").session_id
    losses = [train_step(stub, sid, *batch(rng, 16, shape), specs.cross_entropy()).loss
              for _ in range(STEPS)]
    tensors, meta = state_dict(stub, sid, include_optimizer=True)
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    return {k: v.tobytes() for k, v in tensors.items()}, meta, losses


class ConcurrencyTest(daemon.DaemonTestCase):
    FLAGS = ("--blas-threads", "1", "--workers", "4")

    def test_concurrent_equals_sequential(self):
        sequential = [run(self.stub, i) for i in range(SESSIONS)]
        results, errors = [None] * SESSIONS, []
        start = threading.Barrier(SESSIONS)

        def worker(i):
            try:
                stub = self.daemon.stub()  # its own channel: a separate client
                start.wait(30)
                results[i] = run(stub, i)
            except Exception as e:  # reported below, with the session index
                errors.append((i, e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse([t for t in threads if t.is_alive()], "a client thread hung")
        self.assertEqual(errors, [])
        for i in range(SESSIONS):
            seq_tensors, seq_meta, seq_losses = sequential[i]
            tensors, meta, losses = results[i]
            self.assertEqual(losses, seq_losses, f"session {i}")
            self.assertEqual(list(tensors), list(seq_tensors), f"session {i}")
            for k in tensors:
                self.assertEqual(tensors[k], seq_tensors[k], f"session {i} {k}")
            self.assertEqual(meta, seq_meta, f"session {i}")

    def test_one_session_many_clients(self):
        # Requests for one session run one at a time: 4 clients x 5 TrainSteps
        # are 20 steps, none lost, each step number seen exactly once.
        sid = create(self.stub, specs.mlp_small(), specs.sgd(0.01), seed=7).session_id
        steps, errors = [], []
        lock = threading.Lock()

        def worker(seed):
            try:
                stub = self.daemon.stub()
                rng = np.random.default_rng(seed)
                for _ in range(5):
                    r = train_step(stub, sid, *batch(rng, 8), specs.cross_entropy())
                    with lock:
                        steps.append(r.step)
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(steps), list(range(1, 21)))
        self.assertEqual(self.stub.GetSession(pb.GetSessionRequest(session_id=sid)).step, 20)


if __name__ == "__main__":
    daemon.main()
