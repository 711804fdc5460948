"""Every bad input of issue 4: the right status code, a message naming the
layer / field / shapes, and the session (and server) left unchanged."""
import threading

import grpc
import numpy as np

import daemon
import safetensors_np as st
import specs
from client import (array, batch, create, download, forward, raw_tensor, snapshot, tensor,
                    train_step, upload, upload_requests)
from daemon import trainer_pb2 as pb

C = grpc.StatusCode
UNKNOWN_ID = "0123456789abcdef0123456789abcdef"
MAX_PARAMETERS = 200000


class SessionTestCase(daemon.DaemonTestCase):
    """A trained mlp_small session (optimizer state included) and its snapshot."""

    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(51)
        self.sid = create(self.stub, specs.mlp_small(), specs.sgd(0.05, momentum=0.9),
                          seed=51).session_id
        x, y = batch(self.rng, 8)
        train_step(self.stub, self.sid, x, y, specs.cross_entropy())
        self.probe = batch(self.rng, 3)[0]
        self.before = snapshot(self.stub, self.sid, self.probe)
        # A cleanup, not tearDown: it runs after the ones a test adds (LIFO).
        self.addCleanup(self.assert_unchanged)

    def clear_grad_at_end(self):
        """For tests that leave a recording on purpose (the snapshot has none)."""
        self.addCleanup(self.stub.ClearGrad, pb.ClearGradRequest(session_id=self.sid))

    def assert_unchanged(self, sid=None):
        info, tensors, meta, out = snapshot(self.stub, sid or self.sid, self.probe)
        b_info, b_tensors, b_meta, b_out = self.before
        self.assertEqual(info, b_info, "SessionInfo changed")
        self.assertEqual(sorted(tensors), sorted(b_tensors))
        for k in tensors:
            self.assertEqual(tensors[k], b_tensors[k], f"checkpoint tensor {k} changed")
        self.assertEqual(meta, b_meta, "checkpoint metadata changed")
        self.assertEqual(out, b_out, "Forward output changed")

    def num_sessions(self):
        return len(self.stub.ListSessions(pb.ListSessionsRequest()).sessions)

    def fwd(self, x, **kw):
        return forward(self.stub, self.sid, x, **kw)


class BadInputTest(SessionTestCase):
    FLAGS = daemon.DaemonTestCase.FLAGS + ("--max-parameters", str(MAX_PARAMETERS))

    # ---- sessions ------------------------------------------------------------------

    def test_unknown_session(self):
        x, y = batch(self.rng, 2)
        calls = {
            "Forward": lambda: forward(self.stub, UNKNOWN_ID, x),
            "Backward": lambda: self.stub.Backward(pb.BackwardRequest(session_id=UNKNOWN_ID)),
            "Step": lambda: self.stub.Step(pb.StepRequest(session_id=UNKNOWN_ID)),
            "ClearGrad": lambda: self.stub.ClearGrad(pb.ClearGradRequest(session_id=UNKNOWN_ID)),
            "TrainStep": lambda: train_step(self.stub, UNKNOWN_ID, x, y, specs.cross_entropy()),
            "SetTraining": lambda: self.stub.SetTraining(
                pb.SetTrainingRequest(session_id=UNKNOWN_ID, training=False)),
            "StateDict": lambda: list(self.stub.StateDict(
                pb.StateDictRequest(session_id=UNKNOWN_ID))),
            "LoadStateDict": lambda: upload(self.stub, UNKNOWN_ID, download(self.stub, self.sid)),
            "GetSession": lambda: self.stub.GetSession(pb.GetSessionRequest(session_id=UNKNOWN_ID)),
            "CloseSession": lambda: self.stub.CloseSession(
                pb.CloseSessionRequest(session_id=UNKNOWN_ID)),
        }
        n = self.num_sessions()
        for name, call in calls.items():
            with self.subTest(rpc=name):
                self.assertRpcError(C.NOT_FOUND, call, contains="session")
        self.assertEqual(self.num_sessions(), n)

    def test_missing_or_malformed_session_id(self):
        x, _ = batch(self.rng, 2)
        for sid in ("", "not-a-session", UNKNOWN_ID.upper(), self.sid + "0"):
            with self.subTest(session_id=sid):
                with self.assertRaises(grpc.RpcError) as cm:
                    forward(self.stub, sid, x)
                self.assertIn(cm.exception.code(), (C.NOT_FOUND, C.INVALID_ARGUMENT),
                              cm.exception.details())
                self.assertIn("session", cm.exception.details().lower())

    # ---- specs ------------------------------------------------------------------------

    def assert_create_fails(self, code, model, optimizer=None, contains=()):
        n = self.num_sessions()
        msg = self.assertRpcError(code, create, self.stub, model, optimizer, contains=contains)
        self.assertEqual(self.num_sessions(), n)
        return msg

    def test_spec_without_kind(self):
        self.assert_create_fails(C.INVALID_ARGUMENT, pb.Module(), contains=("model", "kind"))
        nested = specs.seq(specs.linear(64, 64), pb.Module(name="empty"))
        self.assert_create_fails(C.INVALID_ARGUMENT, nested, contains=("modules[1]", "kind"))
        n = self.num_sessions()
        self.assertRpcError(C.INVALID_ARGUMENT, self.stub.CreateModel, pb.CreateModelRequest(),
                            contains="model")
        self.assertEqual(self.num_sessions(), n)

    def test_spec_with_unknown_kind(self):
        # A Module holding only field 99 (a kind from a newer proto): parsers
        # keep it as an unknown field, so no known kind is set.
        unknown_module = bytes([0x9a, 0x06, 0x00])  # field 99, length-delimited, empty
        request = bytes([0x0a, len(unknown_module)]) + unknown_module  # CreateModelRequest.model
        call = self.channel.unary_unary("/traind.v1.Trainer/CreateModel")
        n = self.num_sessions()
        self.assertRpcError(C.INVALID_ARGUMENT, call, request, contains="kind")
        self.assertEqual(self.num_sessions(), n)

    def test_spec_bad_sizes(self):
        cases = [
            (specs.linear(0, 10), ("in_features", "0")),
            (specs.linear(64, -3), ("out_features", "-3")),
            (specs.seq(specs.linear(64, 64), specs.conv2d(3, 8, 0)), ("modules[1]", "kernel_size")),
            (specs.seq(specs.conv2d(3, -8, 3)), ("modules[0]", "out_channels", "-8")),
            (specs.batch_norm2d(-1), ("num_features", "-1")),
            (specs.embedding(0, 8), ("num_embeddings",)),
            (specs.seq(specs.dropout(1.5)), ("dropout", "1.5")),
        ]
        for model, contains in cases:
            with self.subTest(contains=contains):
                self.assert_create_fails(C.INVALID_ARGUMENT, model, contains=contains)

    def test_bad_optimizer(self):
        self.assert_create_fails(C.INVALID_ARGUMENT, specs.mlp_small(),
                                 pb.OptimizerSpec(sgd=pb.SGD()), contains="lr")
        self.assert_create_fails(C.INVALID_ARGUMENT, specs.mlp_small(),
                                 pb.OptimizerSpec(adam=pb.Adam(beta1=1.5)),
                                 contains=("beta1", "1.5"))
        self.assert_create_fails(C.INVALID_ARGUMENT, specs.mlp_small(), specs.sgd(-0.1),
                                 contains=("lr", "-0.1"))

    def test_too_many_parameters(self):
        msg = self.assert_create_fails(C.RESOURCE_EXHAUSTED, specs.mlp(1000, 1000),
                                       contains=("parameters", str(MAX_PARAMETERS)))
        self.assertIn("1001000", msg)  # how many the model would have

    # ---- tensors -----------------------------------------------------------------------

    def test_data_length_mismatch(self):
        x = np.zeros((4, 63), np.float32)
        self.assertRpcError(C.INVALID_ARGUMENT, self.stub.Forward, pb.ForwardRequest(
            session_id=self.sid, input=raw_tensor(pb.FLOAT32, (4, 64), x.tobytes())),
            contains=("input", "1008", "1024"))
        x, y = batch(self.rng, 4)
        self.assertRpcError(C.INVALID_ARGUMENT, self.stub.TrainStep, pb.TrainStepRequest(
            session_id=self.sid, input=tensor(x),
            target=raw_tensor(pb.INT64, (4,), y.tobytes()[:-8]), loss=specs.cross_entropy()),
            contains=("target", "24", "32"))

    def test_unspecified_dtype(self):
        x, _ = batch(self.rng, 4)
        self.assertRpcError(C.INVALID_ARGUMENT, self.stub.Forward, pb.ForwardRequest(
            session_id=self.sid, input=pb.Tensor(shape=[4, 64], data=x.tobytes())),
            contains=("input", "dtype"))

    def test_missing_input(self):
        self.assertRpcError(C.INVALID_ARGUMENT, self.stub.Forward,
                            pb.ForwardRequest(session_id=self.sid), contains="input")

    def test_float_target_for_cross_entropy(self):
        x, y = batch(self.rng, 4)
        for grad in (False, True):
            self.assertRpcError(C.INVALID_ARGUMENT, self.fwd, x, grad=grad,
                                target=y.astype(np.float32), loss=specs.cross_entropy(),
                                contains=("cross_entropy", "target", "int64"))
        self.assertRpcError(C.INVALID_ARGUMENT, train_step, self.stub, self.sid, x,
                            y.astype(np.float32), specs.cross_entropy(),
                            contains=("cross_entropy", "target", "int64"))

    def test_loss_without_target_or_kind(self):
        x, y = batch(self.rng, 4)
        self.assertRpcError(C.INVALID_ARGUMENT, self.fwd, x, loss=specs.cross_entropy(),
                            contains="target")
        self.assertRpcError(C.INVALID_ARGUMENT, self.fwd, x, target=y, loss=pb.LossSpec(),
                            contains="kind")

    def test_input_shape_does_not_fit(self):
        x = np.zeros((4, 63), np.float32)
        for grad in (False, True):
            self.assertRpcError(C.INVALID_ARGUMENT, self.fwd, x, grad=grad,
                                contains=("linear", "[4,63]", "64"))
        y = np.zeros(4, np.int64)
        self.assertRpcError(C.INVALID_ARGUMENT, train_step, self.stub, self.sid, x, y,
                            specs.cross_entropy(), contains=("linear", "[4,63]", "64"))
        # Output [4,10] against targets for 5 samples.
        x, y = batch(self.rng, 4)
        self.assertRpcError(C.INVALID_ARGUMENT, self.fwd, x, target=np.zeros(5, np.int64),
                            loss=specs.cross_entropy(), contains=("[4,10]", "[5]"))

    def test_conv_input_shape(self):
        sid = create(self.stub, specs.cnn(), seed=3).session_id
        x = np.zeros((2, 3, 8), np.float32)
        self.assertRpcError(C.INVALID_ARGUMENT, forward, self.stub, sid, x,
                            contains=("conv2d", "[2,3,8]"))
        x = np.zeros((2, 4, 8, 8), np.float32)
        self.assertRpcError(C.INVALID_ARGUMENT, forward, self.stub, sid, x,
                            contains=("conv2d", "[2,4,8,8]", "3"))

    def test_class_target_out_of_range(self):
        x, y = batch(self.rng, 4)
        for bad in (10, -1):
            y2 = y.copy()
            y2[2] = bad
            self.assertRpcError(C.OUT_OF_RANGE, self.fwd, x, grad=True, target=y2,
                                loss=specs.cross_entropy(), contains=str(bad))
            self.assertRpcError(C.OUT_OF_RANGE, train_step, self.stub, self.sid, x, y2,
                                specs.cross_entropy(), contains=str(bad))

    def test_embedding_input(self):
        sid = create(self.stub, specs.seq(specs.embedding(50, 8)), specs.sgd(0.1),
                     seed=4).session_id
        self.assertRpcError(C.INVALID_ARGUMENT, forward, self.stub, sid,
                            np.zeros((2, 3), np.float32), contains=("embedding", "int64"))
        idx = np.array([[1, 2, 50]], np.int64)
        self.assertRpcError(C.OUT_OF_RANGE, forward, self.stub, sid, idx,
                            contains=("embedding", "50"))
        out = array(forward(self.stub, sid, np.array([[1, 2, 49]], np.int64)).output)
        self.assertEqual(out.shape, (1, 3, 8))

    def test_nan_and_inf(self):
        x, y = batch(self.rng, 4)
        bad = x.copy()
        bad.flat[77] = np.nan
        self.assertRpcError(C.INVALID_ARGUMENT, self.fwd, bad, contains=("input", "77"))
        bad = x.copy()
        bad.flat[201] = -np.inf
        self.assertRpcError(C.INVALID_ARGUMENT, train_step, self.stub, self.sid, bad, y,
                            specs.cross_entropy(), contains=("input", "201"))
        target = np.zeros((4, 10), np.float32)
        target.flat[23] = np.inf
        self.assertRpcError(C.INVALID_ARGUMENT, self.fwd, x, target=target, loss=specs.mse(),
                            contains=("target", "23"))

    def test_bad_grad_output_keeps_recording(self):
        self.clear_grad_at_end()
        x, _ = batch(self.rng, 4)
        y = array(self.fwd(x, grad=True).output)
        g = 2 * y
        g.flat[7] = np.nan
        self.assertRpcError(C.INVALID_ARGUMENT, self.stub.Backward, pb.BackwardRequest(
            session_id=self.sid, grad_output=tensor(g)), contains=("grad_output", "7"))
        with self.subTest("grad_output of the wrong shape"):
            self.assertRpcError(C.INVALID_ARGUMENT, self.stub.Backward, pb.BackwardRequest(
                session_id=self.sid, grad_output=tensor(np.zeros((4, 11), np.float32))),
                contains=("grad_output", "[4,11]", "[4,10]"))
        info = self.stub.GetSession(pb.GetSessionRequest(session_id=self.sid))
        self.assertTrue(info.recorded)
        self.assertFalse(info.has_grad)
        # The recording is intact: a valid Backward now works.
        self.assertGreater(self.stub.Backward(pb.BackwardRequest(
            session_id=self.sid, grad_output=tensor(2 * y))).grad_norm, 0)

    def test_bad_forward_keeps_pending_recording(self):
        # A failed Forward(grad=true) or TrainStep must not drop the recording
        # a previous Forward left for Backward (nor its gradients).
        self.clear_grad_at_end()
        x, y = batch(self.rng, 4)
        loss = specs.cross_entropy()
        self.fwd(x, grad=True, target=y, loss=loss)
        g1 = self.stub.Backward(pb.BackwardRequest(session_id=self.sid)).grad_norm
        self.stub.ClearGrad(pb.ClearGradRequest(session_id=self.sid))
        bad_calls = {
            "Forward, input shape": lambda: self.fwd(np.zeros((4, 63), np.float32), grad=True,
                                                     target=y, loss=loss),
            "Forward, float target": lambda: self.fwd(x, grad=True, target=y.astype(np.float32),
                                                      loss=loss),
            "Forward, class out of range": lambda: self.fwd(x, grad=True, target=y + 10,
                                                            loss=loss),
            "TrainStep, class out of range": lambda: train_step(self.stub, self.sid, x, y + 10,
                                                                loss),
        }
        for name, call in bad_calls.items():
            with self.subTest(name):
                self.stub.ClearGrad(pb.ClearGradRequest(session_id=self.sid))
                self.fwd(x, grad=True, target=y, loss=loss)
                with self.assertRaises(grpc.RpcError):
                    call()
                info = self.stub.GetSession(pb.GetSessionRequest(session_id=self.sid))
                self.assertTrue(info.recorded, "the pending recording was dropped")
                g2 = self.stub.Backward(pb.BackwardRequest(session_id=self.sid)).grad_norm
                self.assertEqual(g1, g2)

    def test_bad_shapes(self):
        cases = [
            ((1 << 40, 1 << 40), b"", ("input",)),       # element count overflows int64
            ((1 << 32,) * 3, b"", ("input",)),
            ((-1, 64), b"", ("input", "-1")),
            ((1,) * 9 + (64,), b"\0" * 256, ("input", "dim")),
        ]
        for shape, data, contains in cases:
            with self.subTest(shape=shape):
                self.assertRpcError(C.INVALID_ARGUMENT, self.stub.Forward, pb.ForwardRequest(
                    session_id=self.sid, input=raw_tensor(pb.FLOAT32, shape, data)),
                    contains=contains)

    # ---- checkpoints -------------------------------------------------------------------

    def test_truncated_and_corrupt_checkpoints(self):
        good = download(self.stub, self.sid)
        tensors, _ = st.loads(good)
        wrong_shape = dict(tensors, **{"0.weight": np.zeros((64, 63), np.float32)})
        wrong_dtype = dict(tensors, **{"0.bias": np.zeros(64, np.float64)})
        cases = {
            "empty": (b"", ()),
            "truncated header length": (good[:5], ()),
            "truncated header": (good[:20], ()),
            "truncated data": (good[:len(good) - 100], ()),
            "one byte short": (good[:-1], ()),
            "header length past the end": ((1 << 40).to_bytes(8, "little") + good[8:], ()),
            "header not JSON": (len(b"{not json}   ").to_bytes(8, "little") + b"{not json}   "
                                + good[8 + int.from_bytes(good[:8], "little"):], ()),
            "garbage": (bytes(range(256)) * 4, ()),
            "shape mismatch": (st.dumps(wrong_shape), ("0.weight", "[64,63]", "[64,64]")),
            "dtype mismatch": (st.dumps(wrong_dtype), ("0.bias",)),
        }
        for name, (data, contains) in cases.items():
            with self.subTest(case=name):
                self.assertRpcError(C.INVALID_ARGUMENT, upload, self.stub, self.sid, data,
                                    chunk=1000, contains=contains)
                self.assert_unchanged()

    def test_bit_flip_in_data_is_loaded_not_crashed(self):
        # Corrupt tensor bytes are still a well-formed file: NaN weights are the
        # user's business, but the server must stay up and the session usable.
        good = bytearray(download(self.stub, self.sid))
        good[-3] ^= 0xFF
        upload(self.stub, self.sid, bytes(good))
        upload(self.stub, self.sid, download(self.stub, self.sid))  # still works
        self.before = snapshot(self.stub, self.sid, self.probe)

    def test_client_disconnects_mid_upload(self):
        data = download(self.stub, self.sid, include_optimizer=True)
        tensors, meta = st.loads(data)
        # A different, valid checkpoint: if any of it were applied it would show.
        changed = st.dumps({k: (v + 1 if v.dtype == np.float32 else v) for k, v in
                            tensors.items()}, meta, sort=False)
        reqs = upload_requests(self.sid, changed, chunk=1000)
        self.assertGreater(len(reqs), 6)
        for how in ("cancel", "close channel"):
            with self.subTest(how=how):
                sent, release = threading.Event(), threading.Event()

                def stream():
                    for r in reqs[:5]:
                        yield r
                    sent.set()
                    release.wait(30)  # then stop: the call is gone by now

                ch = self.daemon.channel() if how == "close channel" else self.channel
                future = self.daemon.stub(ch).LoadStateDict.future(stream())
                self.assertTrue(sent.wait(30))
                if how == "cancel":
                    future.cancel()
                else:
                    ch.close()
                release.set()
                with self.assertRaises((grpc.RpcError, grpc.FutureCancelledError)) as cm:
                    future.result(timeout=30)
                if isinstance(cm.exception, grpc.RpcError):
                    self.assertEqual(cm.exception.code(), C.CANCELLED)
                self.assert_unchanged()
        # The server still takes a whole upload.
        upload(self.stub, self.sid, data, chunk=1000)

    # ---- bytes that are not protobuf ----------------------------------------------------

    def test_not_protobuf(self):
        garbage = [
            bytes([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),  # field 1, length past the end
            bytes([0x0a, 0x05, 0x61, 0x62]),              # field 1, 5 bytes announced, 2 sent
            bytes([0x08]),                                # a tag and no value
            bytes([0xff] * 11),                           # a varint longer than 10 bytes
        ]
        unary = ["CreateModel", "Forward", "Backward", "Step", "ClearGrad", "TrainStep",
                 "SetTraining", "GetSession", "CloseSession", "ListSessions"]
        n = self.num_sessions()
        for method in unary:
            call = self.channel.unary_unary(f"/traind.v1.Trainer/{method}")
            for g in garbage:
                with self.subTest(method=method, data=g.hex()):
                    self.assertRpcError(C.INVALID_ARGUMENT, call, g)
        state_dict = self.channel.unary_stream("/traind.v1.Trainer/StateDict")
        load = self.channel.stream_unary("/traind.v1.Trainer/LoadStateDict")
        for g in garbage:
            with self.subTest(method="StateDict", data=g.hex()):
                self.assertRpcError(C.INVALID_ARGUMENT, lambda: list(state_dict(g)))
            with self.subTest(method="LoadStateDict", data=g.hex()):
                self.assertRpcError(C.INVALID_ARGUMENT, load, iter([g]))
                first = upload_requests(self.sid, download(self.stub, self.sid), 1000)[0]
                self.assertRpcError(C.INVALID_ARGUMENT, load,
                                    iter([first.SerializeToString(), g]))
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        self.assertRpcError(C.INVALID_ARGUMENT, check, garbage[0])
        self.assertEqual(self.num_sessions(), n)


class DeepNestingTest(SessionTestCase):
    """A regression: protobuf-c unpacks nested messages by recursion without a
    limit, and a Module tree nests, so a small request nested 200 000 deep
    overflowed the daemon's stack. The daemon now measures the nesting first."""

    @staticmethod
    def nested_create_request(depth):
        def varint(n):
            out = b""
            while True:
                b, n = n & 0x7F, n >> 7
                if not n:
                    return out + bytes([b])
                out += bytes([b | 0x80])

        def field(number, payload):  # a length-delimited field
            return varint(number << 3 | 2) + varint(len(payload)) + payload

        inner = b""
        for _ in range(depth):  # Module{sequential: Sequential{modules: [inner]}}
            inner = field(10, field(1, inner))
        return field(1, inner)  # CreateModelRequest{model: ...}

    def test_deeply_nested_request(self):
        call = self.channel.unary_unary("/traind.v1.Trainer/CreateModel")
        n = self.num_sessions()
        self.assertRpcError(C.INVALID_ARGUMENT, call, self.nested_create_request(200_000),
                            contains="nests messages more than")
        # Deep but within what protobuf can carry: the spec builder's own
        # depth limit names the path.
        self.assertRpcError(C.INVALID_ARGUMENT, call, self.nested_create_request(70),
                            contains="deeper than 64")
        self.assertEqual(self.num_sessions(), n)


class MessageSizeTest(SessionTestCase):
    LIMIT = 256 * 1024
    FLAGS = daemon.DaemonTestCase.FLAGS + ("--max-message-size", str(LIMIT))

    def test_request_over_limit(self):
        x = np.zeros((1100, 64), np.float32)  # 281,600 bytes of data
        self.assertRpcError(C.RESOURCE_EXHAUSTED, self.fwd, x)
        self.assertEqual(array(self.fwd(x[:1000]).output).shape, (1000, 10))

    def test_upload_chunk_over_limit(self):
        data = download(self.stub, self.sid)
        big = data + b"\0" * self.LIMIT
        self.assertRpcError(C.RESOURCE_EXHAUSTED, upload, self.stub, self.sid, big,
                            chunk=len(big))
        upload(self.stub, self.sid, data, chunk=1000)


class UploadSizeTest(SessionTestCase):
    """LoadStateDict's limit on a whole upload (load_state_dict.c): 16 bytes
    per parameter of the largest model (--max-parameters: weights and up to
    three optimizer buffers) plus 64 MiB for the header and headroom. An
    upload is refused as soon as it passes it, whatever its chunks."""
    MAX_PARAMETERS = 5000  # mlp_small has 4810
    LIMIT = MAX_PARAMETERS * 16 + (64 << 20)
    FLAGS = daemon.DaemonTestCase.FLAGS + ("--max-parameters", str(MAX_PARAMETERS))

    @staticmethod
    def checkpoint_of_size(tensors, meta, size):
        """A valid checkpoint of exactly `size` bytes: `tensors`, then an
        extra F32 tensor "padding" (an unexpected key: strict=False reports
        it), then spaces after the header's JSON for the last few bytes."""
        def build(n, pad):
            data = st.dumps(dict(tensors, padding=np.zeros(n, np.float32)), meta, sort=False)
            head = int.from_bytes(data[:8], "little")
            text = data[8:8 + head].rstrip(b" ") + b" " * pad
            return len(text).to_bytes(8, "little") + text + data[8 + head:]

        n = (size - len(build(0, 0))) // 4
        while len(build(n, 0)) > size:  # the offsets' digits lengthen the header
            n -= 1
        data = build(n, size - len(build(n, 0)))
        assert len(data) == size, (len(data), size)
        return data

    def test_upload_over_the_limit(self):
        tensors, meta = st.loads(download(self.stub, self.sid, include_optimizer=True))
        # One byte over, and a checkpoint that would change the session if
        # any of it were loaded.
        changed = {k: (v + 1 if v.dtype == np.float32 else v) for k, v in tensors.items()}
        over = self.checkpoint_of_size(changed, meta, self.LIMIT + 1)
        for chunk in (1 << 20, 3 << 20):
            with self.subTest(chunk=chunk):
                self.assertRpcError(C.RESOURCE_EXHAUSTED, upload, self.stub, self.sid, over,
                                    chunk=chunk, strict=False,
                                    contains=(str(self.LIMIT), "--max-parameters"))
                self.assert_unchanged()
        del over
        # Exactly the limit is taken (and the session's own values in it
        # change nothing).
        resp = upload(self.stub, self.sid, self.checkpoint_of_size(tensors, meta, self.LIMIT),
                      strict=False)
        self.assertEqual(list(resp.unexpected_keys), ["padding"])
        self.assertEqual(list(resp.missing_keys), [])


class SessionLimitTest(daemon.DaemonTestCase):
    FLAGS = daemon.DaemonTestCase.FLAGS + ("--max-sessions", "2")

    def test_max_sessions(self):
        a = create(self.stub, specs.mlp_small()).session_id
        create(self.stub, specs.mlp_small())
        self.assertRpcError(C.RESOURCE_EXHAUSTED, create, self.stub, specs.mlp_small(),
                            contains="session")
        self.stub.CloseSession(pb.CloseSessionRequest(session_id=a))
        create(self.stub, specs.mlp_small())


if __name__ == "__main__":
    daemon.main()
