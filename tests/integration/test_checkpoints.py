"""Checkpoints over RPC: StateDict download into PyTorch, LoadStateDict upload,
round trips, strict=false, and checkpoints written by PyTorch."""
import numpy as np
import torch
import torch.nn as nn

import daemon
import safetensors_np as st
import specs
from client import (CHUNK_LIMIT, array, batch, create, download, download_chunks, forward,
                    model_keys, state_dict, train_step, upload)
from daemon import trainer_pb2 as pb

TOL = 1e-5


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)


class CheckpointTest(daemon.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(41)

    def trained(self, model, shape, optimizer=None, steps=3, seed=41):
        """A session trained a few steps (so BatchNorm buffers moved)."""
        sid = create(self.stub, model, optimizer or specs.sgd(0.05, momentum=0.9),
                     seed=seed).session_id
        for _ in range(steps):
            x, y = batch(self.rng, 8, shape)
            train_step(self.stub, sid, x, y, specs.cross_entropy())
        return sid

    def set_training(self, sid, mode):
        self.stub.SetTraining(pb.SetTrainingRequest(session_id=sid, training=mode))

    # ---- download ------------------------------------------------------------

    def test_chunks_at_most_one_mib(self):
        # 256*1100 + 1100*10 floats: a checkpoint of about 1.2 MB, two chunks or more.
        sid = create(self.stub, specs.mlp(256, 1100, 10), seed=1).session_id
        chunks = download_chunks(self.stub, sid)
        self.assertGreaterEqual(len(chunks), 2)
        for c in chunks:
            self.assertLessEqual(len(c.data), CHUNK_LIMIT)
        total = sum(len(c.data) for c in chunks)
        self.assertTrue(chunks[0].HasField("total_size"))
        self.assertEqual(chunks[0].total_size, total)
        tensors, _ = st.loads(b"".join(c.data for c in chunks))
        self.assertEqual(list(tensors), ["0.weight", "0.bias", "2.weight", "2.bias"])

    def check_torch_matches(self, model, shape, modes):
        sid = self.trained(model, shape)
        sd, _ = state_dict(self.stub, sid)
        net = specs.torch_model(model)
        # Without include_optimizer the download is PyTorch's state_dict as it
        # is: strict=True, nothing filtered (the CNN's Dropout keeps its
        # generator under rng/ only in resume checkpoints).
        self.assertEqual(list(sd), list(net.state_dict()))
        net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
        x = self.rng.standard_normal((5,) + shape).astype(np.float32)
        for mode in modes:
            self.set_training(sid, mode)
            net.train(mode)
            ours = array(forward(self.stub, sid, x).output)
            with torch.no_grad():
                ref = net(torch.from_numpy(x)).numpy()
            err = rel_err(ours, ref)
            self.assertLessEqual(err, TOL, f"training={mode}: relative error {err:.3g}")
            if mode:  # train mode moved both sides' running stats the same way
                after = model_keys(state_dict(self.stub, sid)[0])
                for k, v in net.state_dict().items():
                    self.assertLessEqual(rel_err(after[k], v.numpy()), TOL, k)

    def test_mlp_loads_into_torch(self):
        self.check_torch_matches(specs.mlp_small(), (64,), [False, True])

    def test_cnn_loads_into_torch(self):
        self.check_torch_matches(specs.cnn(), (3, 8, 8), [False])

    def test_resnet_loads_into_torch(self):
        self.check_torch_matches(specs.tiny_resnet(), (3, 8, 8), [False, True])

    def test_include_optimizer(self):
        sid = self.trained(specs.mlp_small(), (64,), specs.adam(1e-3))
        plain, _ = state_dict(self.stub, sid)
        self.assertFalse([k for k in plain if k.startswith("optimizer/")])
        full, meta = state_dict(self.stub, sid, include_optimizer=True)
        opt_keys = [k for k in full if k.startswith("optimizer/")]
        for i, p in enumerate(["0.weight", "0.bias", "2.weight", "2.bias"]):
            for buf in ("exp_avg", "exp_avg_sq"):
                key = f"optimizer/state.{i}.{buf}"
                self.assertIn(key, opt_keys)
                self.assertEqual(full[key].shape, plain[p].shape)
            self.assertEqual(int(full[f"optimizer/state.{i}.step"]), 3)
        self.assertEqual(model_keys(full).keys(), plain.keys())
        self.assertEqual(meta.get("optimizer/optimizer"), "adam")
        self.assertEqual(meta.get("optimizer/step"), "3")

    # ---- upload ----------------------------------------------------------------

    def assert_same_tensors(self, a, b):
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(a[k].dtype, b[k].dtype, k)
            self.assertEqual(a[k].shape, b[k].shape, k)
            self.assertEqual(a[k].tobytes(), b[k].tobytes(), k)

    def test_upload_download_round_trip(self):
        src = self.trained(specs.tiny_resnet(), (3, 8, 8))
        data = download(self.stub, src)
        dst = create(self.stub, specs.tiny_resnet(), specs.sgd(0.05, momentum=0.9),
                     seed=999).session_id
        resp = upload(self.stub, dst, data, chunk=4096)  # many chunks
        self.assertEqual(list(resp.missing_keys), [])
        self.assertEqual(list(resp.unexpected_keys), [])
        self.assert_same_tensors(st.loads(download(self.stub, dst))[0], st.loads(data)[0])
        x = self.rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
        for sid in (src, dst):
            self.set_training(sid, False)
        np.testing.assert_array_equal(array(forward(self.stub, dst, x).output),
                                      array(forward(self.stub, src, x).output))

    def test_round_trip_with_optimizer_resumes_exactly(self):
        src = self.trained(specs.cnn(), (3, 8, 8), specs.adam(1e-3))
        data = download(self.stub, src, include_optimizer=True)
        dst = create(self.stub, specs.cnn(), specs.adam(1e-3), seed=998).session_id
        upload(self.stub, dst, data, chunk=10000)
        self.assert_same_tensors(st.loads(download(self.stub, dst, include_optimizer=True))[0],
                                 st.loads(data)[0])
        self.assertEqual(self.stub.GetSession(pb.GetSessionRequest(session_id=dst)).step, 3)
        # Both continue identically (optimizer state and dropout generator restored).
        x, y = batch(self.rng, 8, (3, 8, 8))
        for sid in (src, dst):
            train_step(self.stub, sid, x, y, specs.cross_entropy())
        self.assert_same_tensors(st.loads(download(self.stub, dst, include_optimizer=True))[0],
                                 st.loads(download(self.stub, src, include_optimizer=True))[0])

    def test_non_strict_reports_keys(self):
        src = self.trained(specs.mlp_small(), (64,))
        sd, _ = state_dict(self.stub, src)
        partial = {k: v for k, v in sd.items() if k != "2.bias"}
        partial["extra.weight"] = np.ones((2, 2), np.float32)
        data = st.dumps(partial)
        dst = create(self.stub, specs.mlp_small(), seed=997).session_id
        before, _ = state_dict(self.stub, dst)

        msg = self.assertRpcError(daemon.grpc.StatusCode.INVALID_ARGUMENT, upload, self.stub, dst,
                                  data, contains=("2.bias", "extra.weight"))
        self.assert_same_tensors(state_dict(self.stub, dst)[0], before)
        del msg

        resp = upload(self.stub, dst, data, strict=False)
        self.assertEqual(list(resp.missing_keys), ["2.bias"])
        self.assertEqual(list(resp.unexpected_keys), ["extra.weight"])
        after, _ = state_dict(self.stub, dst)
        for k in ("0.weight", "0.bias", "2.weight"):
            np.testing.assert_array_equal(after[k], sd[k], err_msg=k)
        np.testing.assert_array_equal(after["2.bias"], before["2.bias"])

    def test_torch_checkpoint_uploads(self):
        for model, shape in ((specs.tiny_resnet(), (3, 8, 8)), (specs.cnn(), (3, 8, 8)),
                             (specs.mlp_small(), (64,))):
            torch.manual_seed(5)
            net = specs.torch_model(model)
            x = torch.randn(8, *shape)
            y = torch.randint(0, 10, (8,))
            opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
            for _ in range(2):  # moves the BatchNorm buffers off their defaults
                opt.zero_grad()
                nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                ref = net(x).numpy()
            data = st.dumps(net.state_dict())  # sorted keys, as safetensors.torch does
            sid = create(self.stub, model, seed=12345).session_id
            resp = upload(self.stub, sid, data, chunk=3000)
            self.assertEqual(list(resp.missing_keys), [])
            self.assertEqual(list(resp.unexpected_keys), [])
            self.set_training(sid, False)
            ours = array(forward(self.stub, sid, x.numpy()).output)
            self.assertLessEqual(rel_err(ours, ref), TOL)


if __name__ == "__main__":
    daemon.main()
