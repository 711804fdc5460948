"""SIGTERM / SIGINT: drain, in-flight calls finish or fail cleanly, exit 0."""
import signal
import threading
import time
import unittest

import grpc
import numpy as np

import daemon
import safetensors_np as st
import specs
from client import (batch, create, download, forward, state_dict, tensor, train_step,
                    upload_requests)
from daemon import health_pb2
from daemon import trainer_pb2 as pb

# A bound on a hang, not an assertion about speed.
CALL_TIMEOUT = 120
ACCEPTABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


class ShutdownTest(unittest.TestCase):
    def start(self, *flags):
        return daemon.Daemon("--blas-threads", "1", "--workers", "2", *flags).start()

    def test_sigterm_idle_with_sessions(self):
        d = self.start()
        stub = d.stub()
        sid = create(stub, specs.mlp_small(), specs.sgd(0.1)).session_id
        train_step(stub, sid, *batch(np.random.default_rng(0), 8), specs.cross_entropy())
        d.stop(signal.SIGTERM)

    def test_sigint(self):
        d = self.start()
        create(d.stub(), specs.mlp_small())
        d.stop(signal.SIGINT)

    def test_sigterm_with_calls_in_flight(self):
        d = self.start()
        model = specs.mlp(256, 512, 512, 10)  # a few ms per step: calls overlap the signal
        sids = [create(d.stub(), model, specs.adam(1e-3), seed=i).session_id for i in range(4)]
        started = threading.Barrier(len(sids) + 1)
        outcomes = [[] for _ in sids]  # per client: "ok" or a status code
        hung = []

        def client(i):
            stub = d.stub()  # own channel
            rng = np.random.default_rng(i)
            x, y = batch(rng, 128, (256,))
            first = True
            while True:
                try:
                    train_step_with_timeout(stub, sids[i], x, y)
                    outcomes[i].append("ok")
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        hung.append(i)
                    outcomes[i].append(e.code())
                    if first:
                        started.wait(30)
                    return
                if first:
                    first = False
                    started.wait(30)

        def train_step_with_timeout(stub, sid, x, y):
            stub.TrainStep(pb.TrainStepRequest(session_id=sid, input=tensor(x),
                                               target=tensor(y), loss=specs.cross_entropy()),
                           timeout=CALL_TIMEOUT)

        health_seen = []
        stop_health = threading.Event()

        def watch_health():
            health = d.health()
            while not stop_health.is_set():
                try:
                    r = health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
                    health_seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
                except grpc.RpcError as e:
                    health_seen.append(e.code().name)
                    if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        return

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(sids))]
        for t in threads:
            t.start()
        started.wait(60)  # every client finished one step: the daemon is busy
        watcher = threading.Thread(target=watch_health)
        watcher.start()
        d.send_signal(signal.SIGTERM)
        code = d.wait()
        stop_health.set()
        for t in threads + [watcher]:
            t.join(CALL_TIMEOUT + 10)
        if code is None:
            d.kill()
            self.fail(f"traind did not exit after SIGTERM\n{d.stderr()}")
        self.assertFalse([t for t in threads if t.is_alive()], "a client call hung")
        self.assertEqual(hung, [], f"calls hit the deadline\n{d.stderr()}")
        for i, seen in enumerate(outcomes):
            self.assertEqual(seen[:-1], ["ok"] * (len(seen) - 1))
            self.assertIn(seen[-1], ACCEPTABLE, f"client {i}: {seen[-1]}")
        d.assert_clean_exit()
        # Best effort (not asserted): the watcher may only catch the closed port.
        print(f"health during drain: {sorted(set(health_seen))}")
        self.assertNotIn("DEADLINE_EXCEEDED", health_seen)

    def test_draining_with_a_call_in_flight(self):
        # An upload stream is open when SIGTERM arrives (the client holds it
        # open: no timing involved): while it is, health says NOT_SERVING and
        # new work gets UNAVAILABLE; then the client finishes the upload, the
        # load completes, and the daemon exits 0.
        d = self.start("--grace-period", "600", "--log-level", "debug")
        stub = d.stub()
        sid = create(stub, specs.mlp_small()).session_id
        data = download(stub, sid)
        requests = upload_requests(sid, data, chunk=len(data) // 2 + 1)
        release = threading.Event()
        result = {}

        def held_stream():
            yield requests[0]
            release.wait(CALL_TIMEOUT)
            yield from requests[1:]

        def upload_call():
            try:
                resp = d.stub().LoadStateDict(held_stream(), timeout=CALL_TIMEOUT)
                result["missing"] = list(resp.missing_keys)
            except grpc.RpcError as e:
                result["error"] = (e.code().name, e.details())

        t = threading.Thread(target=upload_call)
        t.start()
        d.wait_for_log(f"session {sid}: LoadStateDict receiving")
        d.send_signal(signal.SIGTERM)
        d.wait_for_log("SIGTERM: draining")
        r = d.health().Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.NOT_SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.GetSession(pb.GetSessionRequest(session_id=sid), timeout=CALL_TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("shutting down", cm.exception.details())
        release.set()
        t.join(CALL_TIMEOUT)
        self.assertEqual(result, {"missing": []}, repr(result))
        self.assertEqual(d.wait(), 0, d.stderr())
        d.assert_clean_exit()

    def changed_checkpoint(self, stub, sid):
        """(the session's checkpoint with optimizer state, a valid one with
        every float32 value changed): as (tensors, metadata)."""
        tensors, meta = state_dict(stub, sid, include_optimizer=True)
        return (tensors, meta), ({k: (v + 1 if v.dtype == np.float32 else v)
                                  for k, v in tensors.items()}, meta)

    def test_load_state_dict_refused_while_draining(self):
        # After SIGTERM a LoadStateDict is refused whole (UNAVAILABLE, "shutting
        # down"), on an open connection or a new one; so is one whose stream
        # was open before SIGTERM but whose first message (the one naming the
        # session, where admission happens) comes after. That stream, held
        # by the client, keeps the daemon draining meanwhile: no timing.
        d = self.start("--grace-period", "600", "--log-level", "debug")
        stub = d.stub()
        sid = create(stub, specs.mlp_small(), specs.sgd(0.1, momentum=0.9)).session_id
        _, (tensors, meta) = self.changed_checkpoint(stub, sid)
        data = st.dumps(tensors, meta, sort=False)
        release = threading.Event()
        result = {}

        def late_first_message():
            release.wait(CALL_TIMEOUT)
            yield from upload_requests(sid, data)

        def late_call():
            try:
                d.stub().LoadStateDict(late_first_message(), timeout=CALL_TIMEOUT)
                result["ok"] = True
            except grpc.RpcError as e:
                result["error"] = (e.code(), e.details())

        t = threading.Thread(target=late_call)
        t.start()
        d.wait_for_log("rpc: /traind.v1.Trainer/LoadStateDict from")  # the stream is open
        d.send_signal(signal.SIGTERM)
        d.wait_for_log("SIGTERM: draining")
        self.assertIn("1 call in flight", d.stderr())
        for name, s in (("open connection", stub), ("new connection", d.stub())):
            with self.subTest(name):
                with self.assertRaises(grpc.RpcError) as cm:
                    s.LoadStateDict(iter(upload_requests(sid, data, chunk=1000)),
                                    timeout=CALL_TIMEOUT)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE,
                                 cm.exception.details())
                self.assertIn("shutting down", cm.exception.details())
        release.set()
        t.join(CALL_TIMEOUT)
        self.assertIn("error", result, "a LoadStateDict was admitted after SIGTERM")
        self.assertEqual(result["error"][0], grpc.StatusCode.UNAVAILABLE, result["error"][1])
        self.assertIn("shutting down", result["error"][1])
        self.assertEqual(d.wait(), 0, d.stderr())
        d.assert_clean_exit()
        self.assertNotIn("LoadStateDict receiving", d.stderr())
        self.assertNotIn("LoadStateDict running", d.stderr())

    def test_load_state_dict_queued_at_sigterm_is_whole(self):
        # One worker, busy with a long TrainStep of another session when
        # SIGTERM arrives; queued behind it, a LoadStateDict (its stream
        # complete) and then a StateDict of one session, both admitted before
        # the signal. The drain runs them: the StateDict, reading the session
        # after the load, sees all of the new checkpoint if the load said OK,
        # all of the old one if it was refused; never a mix.
        d = self.start("--grace-period", "600", "--log-level", "debug", "--workers", "1")
        stub = d.stub()
        rng = np.random.default_rng(5)
        sid = create(stub, specs.mlp_small(), specs.sgd(0.1, momentum=0.9), seed=5).session_id
        train_step(stub, sid, *batch(rng, 8), specs.cross_entropy())  # momentum buffers
        (old, old_meta), (new, new_meta) = self.changed_checkpoint(stub, sid)
        # About 2 s of one BLAS thread here: the window for the steps below.
        big = create(stub, specs.mlp(1024, 4096, 4096, 10), specs.sgd(0.01)).session_id
        x, y = batch(rng, 1024, (1024,))
        busy = stub.TrainStep.future(pb.TrainStepRequest(
            session_id=big, input=tensor(x), target=tensor(y), loss=specs.cross_entropy()),
            timeout=CALL_TIMEOUT)
        d.wait_for_log(f"session {big}: /traind.v1.Trainer/TrainStep running")
        ch = d.channel()  # the load, then the read, on one connection
        load = d.stub(ch).LoadStateDict.future(
            iter(upload_requests(sid, st.dumps(new, new_meta, sort=False), chunk=4096)),
            timeout=CALL_TIMEOUT)
        d.wait_for_log(f"session {sid}: LoadStateDict receiving")
        time.sleep(0.3)  # for the stream's end to be in first: the log below says if it was
        arrived = "rpc: /traind.v1.Trainer/StateDict from"
        before = d.stderr().count(arrived)
        reader = d.stub(ch).StateDict(pb.StateDictRequest(session_id=sid, include_optimizer=True),
                                      timeout=CALL_TIMEOUT)
        deadline = time.monotonic() + CALL_TIMEOUT
        while d.stderr().count(arrived) == before:
            self.assertLess(time.monotonic(), deadline, d.stderr())
            time.sleep(0.01)
        # A unary call is admitted on the completion-queue thread just after
        # that line: give it the moment, since the signal could overtake it.
        time.sleep(0.2)
        d.send_signal(signal.SIGTERM)
        d.wait_for_log("SIGTERM: draining")
        busy.result()
        try:
            load.result()
            loaded = True
        except grpc.RpcError as e:
            self.assertIn(e.code(), ACCEPTABLE, e.details())
            loaded = False
        try:
            seen, seen_meta = st.loads(b"".join(c.data for c in reader))
            read_error = None
        except grpc.RpcError as e:
            read_error = e
        self.assertEqual(d.wait(), 0, d.stderr())
        d.assert_clean_exit()
        if read_error is not None:
            self.assertEqual(read_error.code(), grpc.StatusCode.UNAVAILABLE, read_error.details())
            self.skipTest("SIGTERM overtook the StateDict's admission: nothing read to check")

        log = d.stderr().splitlines()

        def line_of(text):  # the last one
            found = [i for i, line in enumerate(log) if text in line]
            self.assertTrue(found, f"no log line {text!r}")
            return found[-1]

        drain = line_of("SIGTERM: draining")
        self.assertIn("3 calls in flight", log[drain],
                      "the TrainStep was over before SIGTERM: nothing was left to drain")
        ran_load = line_of(f"session {sid}: /traind.v1.Trainer/LoadStateDict running")
        ran_read = line_of(f"session {sid}: /traind.v1.Trainer/StateDict running")
        self.assertLess(drain, min(ran_load, ran_read))
        expect, expect_meta = (new, new_meta) if loaded and ran_load < ran_read else (old, old_meta)
        self.assertEqual(sorted(seen), sorted(expect))
        mixed = [k for k in seen if seen[k].tobytes() != expect[k].tobytes()]
        self.assertEqual(mixed, [], f"load {'OK' if loaded else 'refused'}, but these differ")
        self.assertEqual(seen_meta, expect_meta)
        print(f"load {'applied' if loaded else 'refused'}, read "
              f"{'after' if ran_load < ran_read else 'before'} it")

    def test_upload_held_past_grace_period_is_dropped(self):
        # A client that never finishes its upload does not hold the shutdown
        # past the grace period: the call is cancelled, exit 0.
        d = self.start("--grace-period", "1", "--log-level", "debug")
        stub = d.stub()
        sid = create(stub, specs.mlp_small()).session_id
        data = download(stub, sid)
        requests = upload_requests(sid, data, chunk=len(data) // 2 + 1)
        release = threading.Event()

        def held_stream():
            yield requests[0]
            release.wait(CALL_TIMEOUT)
            yield from requests[1:]

        future = d.stub().LoadStateDict.future(held_stream(), timeout=CALL_TIMEOUT)
        d.wait_for_log(f"session {sid}: LoadStateDict receiving")
        d.send_signal(signal.SIGTERM)
        code = d.wait()
        release.set()
        with self.assertRaises(grpc.RpcError) as cm:
            future.result(timeout=CALL_TIMEOUT)
        self.assertIn(cm.exception.code(), ACCEPTABLE, cm.exception.details())
        self.assertEqual(code, 0, d.stderr())
        d.assert_clean_exit()
        self.assertIn("grace period over: cancelling 1 call still in flight", d.stderr())
        self.assertNotIn("LoadStateDict running", d.stderr())

    def test_new_calls_refused_while_draining(self):
        # After SIGTERM, a new call on an open connection is refused (or the
        # connection is gone); it never runs and never hangs.
        d = self.start("--grace-period", "5")
        stub = d.stub()
        sid = create(stub, specs.mlp_small()).session_id
        x, _ = batch(np.random.default_rng(1), 4)
        forward(stub, sid, x)
        d.send_signal(signal.SIGTERM)
        try:
            stub.Forward(pb.ForwardRequest(session_id=sid, input=tensor(x)), timeout=CALL_TIMEOUT)
        except grpc.RpcError as e:
            self.assertIn(e.code(), ACCEPTABLE, e.details())
        self.assertIsNotNone(d.wait(), f"no exit after SIGTERM\n{d.stderr()}")
        d.assert_clean_exit()
        log = d.stderr()
        self.assertIn("SIGTERM", log)  # the drain and the stop are logged
        self.assertIn("stopped", log)


if __name__ == "__main__":
    daemon.main()
