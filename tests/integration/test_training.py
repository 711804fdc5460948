"""Training over RPC: gradient accumulation, runs equal to the in-process engine,
train vs eval mode."""
import os
import struct
import subprocess
import tempfile

import numpy as np

import daemon
import safetensors_np as st
import specs
from client import array, batch, create, forward, state_dict, tensor, train_step
from daemon import trainer_pb2 as pb

INPROC = os.environ.get("TRAIND_INPROC_TRAIN",
                        os.path.join(daemon.ROOT, "build", "tests", "integration", "inproc_train"))
RTOL = 1e-5


def assert_close(test, a, b, rtol=RTOL, what=""):
    """Normwise relative error of b against a at most rtol, per key."""
    test.assertEqual(sorted(a), sorted(b), what)
    for k in a:
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        test.assertEqual(x.shape, y.shape, f"{what} {k}")
        err = np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-12)
        test.assertLessEqual(err, rtol, f"{what} {k}: relative error {err:.3g}")


class AccumulationTest(daemon.DaemonTestCase):
    """4 micro-batches Forward(grad)+Backward then one Step == one Step on the
    whole batch."""

    def run_both(self, reduction, micro_lr, whole_lr, optimizer=specs.sgd):
        rng = np.random.default_rng(2)
        x, y = batch(rng, 32)
        loss = specs.cross_entropy(reduction)
        micro = create(self.stub, specs.mlp_small(), optimizer(micro_lr), seed=11).session_id
        whole = create(self.stub, specs.mlp_small(), optimizer(whole_lr), seed=11).session_id
        for i in range(4):
            sl = slice(8 * i, 8 * (i + 1))
            forward(self.stub, micro, x[sl], grad=True, target=y[sl], loss=loss)
            self.stub.Backward(pb.BackwardRequest(session_id=micro))
        forward(self.stub, whole, x, grad=True, target=y, loss=loss)
        self.stub.Backward(pb.BackwardRequest(session_id=whole))
        self.assertEqual(self.stub.Step(pb.StepRequest(session_id=micro)).step, 1)
        self.assertEqual(self.stub.Step(pb.StepRequest(session_id=whole)).step, 1)
        initial = state_dict(self.stub, create(self.stub, specs.mlp_small(), seed=11).session_id)[0]
        a, b = state_dict(self.stub, micro)[0], state_dict(self.stub, whole)[0]
        # The update itself (not just the weights, which barely move) must agree.
        assert_close(self, {k: b[k] - initial[k] for k in b}, {k: a[k] - initial[k] for k in a},
                     rtol=1e-4, what="update")
        assert_close(self, b, a, what="parameters")

    def test_sum_reduction(self):
        # Sum over micro-batches of per-sample sums = sum over the whole batch.
        self.run_both(pb.LossSpec.SUM, 0.01, 0.01)

    def test_mean_reduction_scaled_lr(self):
        # Each micro-batch's MEAN is a sum / 8; the whole batch's is a sum / 32:
        # accumulated gradients are 4x the whole-batch one, so SGD with lr / 4 on
        # them takes the same step.
        self.run_both(pb.LossSpec.MEAN, 0.1 / 4, 0.1)

    def test_accumulated_grad_norm(self):
        # Backward reports the norm of the accumulated gradients: with SUM the
        # last micro-batch's report equals the whole batch's.
        rng = np.random.default_rng(3)
        x, y = batch(rng, 32)
        loss = specs.cross_entropy(pb.LossSpec.SUM)
        micro = create(self.stub, specs.mlp_small(), specs.sgd(0.1), seed=5).session_id
        whole = create(self.stub, specs.mlp_small(), specs.sgd(0.1), seed=5).session_id
        for i in range(4):
            forward(self.stub, micro, x[8 * i:8 * i + 8], grad=True, target=y[8 * i:8 * i + 8],
                    loss=loss)
            g_micro = self.stub.Backward(pb.BackwardRequest(session_id=micro)).grad_norm
        forward(self.stub, whole, x, grad=True, target=y, loss=loss)
        g_whole = self.stub.Backward(pb.BackwardRequest(session_id=whole)).grad_norm
        self.assertAlmostEqual(g_micro, g_whole, delta=1e-5 * g_whole)


class InProcessTest(daemon.DaemonTestCase):
    """A TrainStep run over RPC ends with the same checkpoint, bit for bit, as the
    same run done in-process by inproc_train (the engine + server/spec)."""

    STEPS = 12

    def run_case(self, model, optimizer, shape, seed):
        rng = np.random.default_rng(seed)
        req = pb.CreateModelRequest(model=model, optimizer=optimizer, seed=seed, name="inproc")
        loss = specs.cross_entropy()
        batches = [batch(rng, 16, shape) for _ in range(self.STEPS)]
        sid = self.stub.CreateModel(req).session_id
        for x, y in batches:
            train_step(self.stub, sid, x, y, loss)
        ours = state_dict(self.stub, sid, include_optimizer=True)

        with tempfile.TemporaryDirectory(prefix="traind-inproc-") as tmp:
            with open(os.path.join(tmp, "request.pb"), "wb") as f:
                f.write(req.SerializeToString())
            with open(os.path.join(tmp, "batches.bin"), "wb") as f:
                for x, y in batches:
                    msg = pb.TrainStepRequest(input=tensor(x), target=tensor(y),
                                              loss=loss).SerializeToString()
                    f.write(struct.pack("<I", len(msg)) + msg)
            out = os.path.join(tmp, "final.safetensors")
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
            p = subprocess.run([INPROC, os.path.join(tmp, "request.pb"),
                                os.path.join(tmp, "batches.bin"), out],
                               capture_output=True, text=True, env=env, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            theirs = st.load(out)

        tensors, meta = ours
        ref_tensors, ref_meta = theirs
        self.assertEqual(list(tensors), list(ref_tensors))
        self.assertTrue(any(k.startswith("optimizer/") for k in tensors))
        for k in ref_tensors:
            self.assertEqual(tensors[k].dtype, ref_tensors[k].dtype, k)
            self.assertEqual(tensors[k].shape, ref_tensors[k].shape, k)
            if tensors[k].tobytes() != ref_tensors[k].tobytes():
                a = tensors[k].astype(np.float64)
                b = ref_tensors[k].astype(np.float64)
                self.fail(f"{k} differs from the in-process run: max |diff| "
                          f"{np.abs(a - b).max():.3g}")
        self.assertEqual(meta, ref_meta)
        self.assertEqual(self.stub.GetSession(pb.GetSessionRequest(session_id=sid)).step,
                         self.STEPS)

    def test_sgd_momentum_schedule(self):
        opt = specs.sgd(0.05, momentum=0.9, weight_decay=1e-4, nesterov=True)
        opt.schedule.step.step_size = 4
        opt.schedule.step.gamma = 0.5
        self.run_case(specs.mlp_small(), opt, (64,), seed=21)

    def test_adam_clipped(self):
        self.run_case(specs.mlp_small(), specs.adam(1e-3, clip=0.5), (64,), seed=22)

    def test_cnn_dropout_batchnorm_adam(self):
        self.run_case(specs.cnn(), specs.adam(2e-3), (3, 8, 8), seed=23)

    def test_resnet_sgd(self):
        self.run_case(specs.tiny_resnet(), specs.sgd(0.05, momentum=0.9), (3, 8, 8), seed=24)

    def test_step_by_step_equals_train_step(self):
        # Forward(grad, loss) + Backward + Step is what TrainStep does.
        rng = np.random.default_rng(25)
        loss = specs.cross_entropy()
        a = create(self.stub, specs.mlp_small(), specs.sgd(0.05, momentum=0.9), seed=25).session_id
        b = create(self.stub, specs.mlp_small(), specs.sgd(0.05, momentum=0.9), seed=25).session_id
        for _ in range(5):
            x, y = batch(rng, 16)
            r = train_step(self.stub, a, x, y, loss)
            f = forward(self.stub, b, x, grad=True, target=y, loss=loss)
            self.stub.Backward(pb.BackwardRequest(session_id=b))
            s = self.stub.Step(pb.StepRequest(session_id=b))
            self.assertEqual(r.loss, f.loss)
            self.assertEqual(r.step, s.step)
        sa = state_dict(self.stub, a, include_optimizer=True)[0]
        sb = state_dict(self.stub, b, include_optimizer=True)[0]
        self.assertEqual(list(sa), list(sb))
        for k in sa:
            self.assertEqual(sa[k].tobytes(), sb[k].tobytes(), k)


class TrainEvalTest(daemon.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.sid = create(self.stub, specs.cnn(), specs.sgd(0.1), seed=31).session_id
        self.x = np.random.default_rng(31).standard_normal((6, 3, 8, 8)).astype(np.float32)

    def out(self, x=None):
        return array(forward(self.stub, self.sid, self.x if x is None else x).output)

    def set_training(self, mode):
        self.stub.SetTraining(pb.SetTrainingRequest(session_id=self.sid, training=mode))

    def buffers(self):
        sd = state_dict(self.stub, self.sid)[0]
        return {k: v for k, v in sd.items() if k.startswith("1.")}

    def test_dropout_random_in_train_identity_in_eval(self):
        self.assertFalse(np.array_equal(self.out(), self.out()))
        self.set_training(False)
        a = self.out()
        np.testing.assert_array_equal(a, self.out())

    def test_eval_uses_running_stats(self):
        # In eval mode a sample's output does not depend on the rest of its
        # batch (running statistics); in train mode it does (batch statistics).
        self.set_training(False)
        whole = self.out()
        np.testing.assert_allclose(self.out(self.x[:2]), whole[:2], rtol=1e-5, atol=1e-6)
        # Train mode without dropout noise: compare through a dropout-free model.
        sid = create(self.stub, specs.tiny_resnet(), seed=32).session_id
        a = array(forward(self.stub, sid, self.x).output)[:2]
        b = array(forward(self.stub, sid, self.x[:2]).output)
        self.assertFalse(np.allclose(a, b, rtol=1e-3))

    def test_running_stats_change_only_in_train_forward(self):
        start = self.buffers()
        self.assertEqual(int(start["1.num_batches_tracked"]), 0)
        self.set_training(False)
        self.out()
        after_eval = self.buffers()
        for k in start:
            np.testing.assert_array_equal(after_eval[k], start[k], err_msg=k)
        self.set_training(True)
        self.out()  # grad=False, train mode: still updates the running stats
        after_train = self.buffers()
        self.assertEqual(int(after_train["1.num_batches_tracked"]), 1)
        self.assertFalse(np.array_equal(after_train["1.running_mean"], start["1.running_mean"]))
        self.assertFalse(np.array_equal(after_train["1.running_var"], start["1.running_var"]))
        # weight and bias are parameters: a forward leaves them alone.
        np.testing.assert_array_equal(after_train["1.weight"], start["1.weight"])
        np.testing.assert_array_equal(after_train["1.bias"], start["1.bias"])


if __name__ == "__main__":
    daemon.main()
