"""Every RPC of traind.v1.Trainer and the health service, over real gRPC."""
import subprocess
import time

import grpc
import numpy as np

import daemon
import specs
from client import (array, batch, create, download_chunks, forward, info_state, state_dict,
                    tensor, train_step, upload)
from daemon import health_pb2
from daemon import trainer_pb2 as pb


def softmax_ce(logits, y, reduction="mean"):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    losses = -logp[np.arange(len(y)), y]
    return losses.mean() if reduction == "mean" else losses.sum()


class RpcTest(daemon.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(1)

    def new(self, optimizer=None, name="", model=None, seed=7):
        return create(self.stub, model or specs.mlp_small(), optimizer, seed=seed, name=name)

    def info(self, sid):
        return self.stub.GetSession(pb.GetSessionRequest(session_id=sid))

    def test_health_serving(self):
        health = self.daemon.health(self.channel)
        resp = health.Check(health_pb2.HealthCheckRequest(service=""))
        self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)

    def test_create_model_session_info(self):
        before_ms = int(time.time() * 1000)
        resp = self.new(specs.sgd(0.05, momentum=0.9), name="rpc-test")
        after_ms = int(time.time() * 1000)
        self.assertRegex(resp.session_id, r"^[0-9a-f]{32}$")
        info = resp.info
        self.assertEqual(info.session_id, resp.session_id)
        self.assertEqual(info.name, "rpc-test")
        self.assertEqual(info.num_parameters, 64 * 64 + 64 + 64 * 10 + 10)
        self.assertEqual(info.step, 0)
        self.assertTrue(info.training)
        self.assertEqual([(p.name, list(p.shape), p.dtype) for p in info.parameters],
                         [("0.weight", [64, 64], pb.FLOAT32), ("0.bias", [64], pb.FLOAT32),
                          ("2.weight", [10, 64], pb.FLOAT32), ("2.bias", [10], pb.FLOAT32)])
        self.assertEqual(info.optimizer, "sgd")
        self.assertAlmostEqual(info.lr, 0.05)
        self.assertFalse(info.recorded)
        self.assertFalse(info.has_grad)
        # The clock may be coarse; only order matters (1 s slack for rounding).
        self.assertLessEqual(before_ms - 1000, info.created_unix_ms)
        self.assertLessEqual(info.created_unix_ms, after_ms + 1000)
        self.assertGreaterEqual(info.last_used_unix_ms, info.created_unix_ms)

    def test_get_session_matches_create(self):
        resp = self.new(specs.adam(1e-3))
        self.assertEqual(info_state(self.info(resp.session_id)), info_state(resp.info))
        self.assertEqual(resp.info.optimizer, "adam")

    def test_session_ids_differ(self):
        ids = {self.new().session_id for _ in range(4)}
        self.assertEqual(len(ids), 4)

    def test_same_seed_same_weights(self):
        a, b, c = self.new(seed=3), self.new(seed=3), self.new(seed=4)
        sa = state_dict(self.stub, a.session_id)[0]
        sb = state_dict(self.stub, b.session_id)[0]
        sc = state_dict(self.stub, c.session_id)[0]
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
        self.assertFalse(np.array_equal(sa["0.weight"], sc["0.weight"]))

    def test_list_sessions_oldest_first(self):
        ids = [self.new(name=f"list-{i}").session_id for i in range(3)]
        listed = [s.session_id for s in self.stub.ListSessions(pb.ListSessionsRequest()).sessions]
        self.assertEqual([i for i in listed if i in ids], ids)
        named = {s.session_id: s.name for s in self.stub.ListSessions(
            pb.ListSessionsRequest()).sessions}
        self.assertEqual([named[i] for i in ids], ["list-0", "list-1", "list-2"])

    def test_close_session(self):
        sid = self.new().session_id
        self.stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
        listed = [s.session_id for s in self.stub.ListSessions(pb.ListSessionsRequest()).sessions]
        self.assertNotIn(sid, listed)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.info, sid)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.stub.CloseSession,
                            pb.CloseSessionRequest(session_id=sid))
        x, _ = batch(self.rng, 2)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, forward, self.stub, sid, x)

    def test_forward_output_and_loss(self):
        sid = self.new().session_id
        x, y = batch(self.rng, 5)
        plain = forward(self.stub, sid, x)
        self.assertFalse(plain.HasField("loss"))
        out = array(plain.output)
        self.assertEqual(out.shape, (5, 10))
        self.assertEqual(out.dtype, np.float32)
        with_loss = forward(self.stub, sid, x, target=y, loss=specs.cross_entropy())
        self.assertTrue(with_loss.HasField("loss"))
        np.testing.assert_array_equal(array(with_loss.output), out)
        self.assertAlmostEqual(with_loss.loss, softmax_ce(out, y), delta=1e-5 * abs(
            softmax_ce(out, y)) + 1e-6)
        summed = forward(self.stub, sid, x, target=y, loss=specs.cross_entropy(pb.LossSpec.SUM))
        self.assertAlmostEqual(summed.loss, softmax_ce(out, y, "sum"), delta=1e-4)

    def test_forward_without_grad_records_nothing(self):
        sid = self.new(specs.sgd(0.1)).session_id
        x, y = batch(self.rng, 4)
        forward(self.stub, sid, x, grad=False, target=y, loss=specs.cross_entropy())
        self.assertFalse(self.info(sid).recorded)
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.stub.Backward,
                            pb.BackwardRequest(session_id=sid))

    def test_backward_without_forward(self):
        sid = self.new(specs.sgd(0.1)).session_id
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.stub.Backward,
                            pb.BackwardRequest(session_id=sid))
        info = self.info(sid)
        self.assertFalse(info.recorded)
        self.assertFalse(info.has_grad)

    def test_forward_backward_step_clear(self):
        sid = self.new(specs.sgd(0.1)).session_id
        x, y = batch(self.rng, 8)
        forward(self.stub, sid, x, grad=True, target=y, loss=specs.cross_entropy())
        info = self.info(sid)
        self.assertTrue(info.recorded)
        self.assertFalse(info.has_grad)
        g1 = self.stub.Backward(pb.BackwardRequest(session_id=sid)).grad_norm
        self.assertGreater(g1, 0)
        info = self.info(sid)
        self.assertFalse(info.recorded)
        self.assertTrue(info.has_grad)
        # The recording is consumed.
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.stub.Backward,
                            pb.BackwardRequest(session_id=sid))
        # A second identical micro-batch doubles the accumulated gradient.
        forward(self.stub, sid, x, grad=True, target=y, loss=specs.cross_entropy())
        g2 = self.stub.Backward(pb.BackwardRequest(session_id=sid)).grad_norm
        self.assertAlmostEqual(g2, 2 * g1, delta=1e-5 * g2)

        step = self.stub.Step(pb.StepRequest(session_id=sid))
        self.assertEqual(step.step, 1)
        self.assertAlmostEqual(step.lr, 0.1)
        info = self.info(sid)
        self.assertEqual(info.step, 1)
        self.assertFalse(info.has_grad)

        # keep_grad keeps them; ClearGrad drops them.
        forward(self.stub, sid, x, grad=True, target=y, loss=specs.cross_entropy())
        self.stub.Backward(pb.BackwardRequest(session_id=sid))
        self.assertEqual(self.stub.Step(pb.StepRequest(session_id=sid, keep_grad=True)).step, 2)
        self.assertTrue(self.info(sid).has_grad)
        self.stub.ClearGrad(pb.ClearGradRequest(session_id=sid))
        info = self.info(sid)
        self.assertFalse(info.has_grad)
        self.assertEqual(info.step, 2)

    def test_clear_grad_drops_recording(self):
        sid = self.new(specs.sgd(0.1)).session_id
        x, y = batch(self.rng, 4)
        forward(self.stub, sid, x, grad=True, target=y, loss=specs.cross_entropy())
        self.stub.ClearGrad(pb.ClearGradRequest(session_id=sid))
        self.assertFalse(self.info(sid).recorded)
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.stub.Backward,
                            pb.BackwardRequest(session_id=sid))

    def test_backward_with_grad_output(self):
        # loss = sum(y^2) (MSE, SUM, target 0) has dloss/dy = 2y: backpropagating
        # the loss or the output with grad_output 2y gives the same gradients.
        sid = self.new(specs.sgd(0.1)).session_id
        x, _ = batch(self.rng, 6)
        zeros = np.zeros((6, 10), np.float32)
        forward(self.stub, sid, x, grad=True, target=zeros, loss=specs.mse(pb.LossSpec.SUM))
        g_loss = self.stub.Backward(pb.BackwardRequest(session_id=sid)).grad_norm
        self.stub.ClearGrad(pb.ClearGradRequest(session_id=sid))
        y = array(forward(self.stub, sid, x, grad=True).output)
        g_out = self.stub.Backward(pb.BackwardRequest(session_id=sid,
                                                      grad_output=tensor(2 * y))).grad_norm
        self.assertAlmostEqual(g_out, g_loss, delta=1e-5 * g_loss)

    def test_step_without_optimizer(self):
        resp = self.new(None)
        sid = resp.session_id
        self.assertEqual(resp.info.optimizer, "")
        x, y = batch(self.rng, 4)
        forward(self.stub, sid, x, grad=True, target=y, loss=specs.cross_entropy())
        self.stub.Backward(pb.BackwardRequest(session_id=sid))
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.stub.Step,
                            pb.StepRequest(session_id=sid), contains="optimizer")
        self.assertEqual(self.info(sid).step, 0)

    def test_train_step(self):
        sid = self.new(specs.sgd(0.1)).session_id
        x, y = batch(self.rng, 8)
        before = array(forward(self.stub, sid, x).output)
        r = train_step(self.stub, sid, x, y, specs.cross_entropy(), return_output=True)
        self.assertEqual(r.step, 1)
        self.assertGreater(r.grad_norm, 0)
        self.assertAlmostEqual(r.lr, 0.1)
        # The output is the forward before the update, and so is the loss.
        np.testing.assert_array_equal(array(r.output), before)
        self.assertAlmostEqual(r.loss, softmax_ce(before, y), delta=1e-5)
        r2 = train_step(self.stub, sid, x, y, specs.cross_entropy())
        self.assertEqual(r2.step, 2)
        self.assertFalse(r2.HasField("output"))
        self.assertLess(r2.loss, r.loss)  # lr 0.1 on the same batch: loss goes down
        info = self.info(sid)
        self.assertEqual(info.step, 2)
        self.assertFalse(info.has_grad)
        self.assertFalse(info.recorded)

    def test_set_training(self):
        sid = self.new().session_id
        r = self.stub.SetTraining(pb.SetTrainingRequest(session_id=sid, training=False))
        self.assertFalse(r.training)
        self.assertFalse(self.info(sid).training)
        r = self.stub.SetTraining(pb.SetTrainingRequest(session_id=sid, training=True))
        self.assertTrue(r.training)
        self.assertTrue(self.info(sid).training)

    def test_state_dict_and_load_rpcs(self):
        sid = self.new().session_id
        chunks = download_chunks(self.stub, sid)
        self.assertGreaterEqual(len(chunks), 1)
        data = b"".join(c.data for c in chunks)
        self.assertEqual(chunks[0].total_size, len(data))
        other = self.new(seed=99).session_id
        resp = upload(self.stub, other, data)
        self.assertEqual(list(resp.missing_keys), [])
        self.assertEqual(list(resp.unexpected_keys), [])
        x, _ = batch(self.rng, 3)
        np.testing.assert_array_equal(array(forward(self.stub, other, x).output),
                                      array(forward(self.stub, sid, x).output))

    def test_unknown_method(self):
        call = self.channel.unary_unary("/traind.v1.Trainer/NoSuchMethod")
        self.assertRpcError(grpc.StatusCode.UNIMPLEMENTED, call, b"")


class IdleExpiryTest(daemon.DaemonTestCase):
    FLAGS = daemon.DaemonTestCase.FLAGS + ("--idle-timeout", "1")

    def test_idle_session_expires(self):
        sid = create(self.stub, specs.mlp_small()).session_id
        # Poll (bounded) until the expiry timer has run: not a timing assertion.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = [s.session_id for s in
                      self.stub.ListSessions(pb.ListSessionsRequest()).sessions]
            if sid not in listed:
                break
            time.sleep(0.2)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.stub.GetSession,
                            pb.GetSessionRequest(session_id=sid))
        self.assertIn("expired", self.daemon.stderr())
        self.assertIn(sid, self.daemon.stderr())


class FlagsTest(daemon.unittest.TestCase):
    def test_help_exits_zero(self):
        p = subprocess.run([daemon.BIN, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout + p.stderr
        for flag in ("--listen", "--data-dir", "--workers", "--max-message-size",
                     "--max-sessions", "--max-parameters", "--idle-timeout", "--log-level"):
            self.assertIn(flag, text)

    def test_bad_flag_exits_two(self):
        for argv in (["--no-such-flag"], ["--workers", "zero"], ["--listen"]):
            p = subprocess.run([daemon.BIN] + argv, capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, f"{argv}: {p.stderr}")
            self.assertTrue(p.stderr.strip(), f"{argv}: no message")


if __name__ == "__main__":
    daemon.main()
