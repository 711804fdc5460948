"""Durable sessions: saved in the data dir, restored after a restart or a crash.

A session's file (<data-dir>/sessions/<id>.session) is written when it is
created, every --autosave-steps steps, after LoadStateDict and SetTraining,
and at shutdown; CloseSession and expiry delete it. These tests restart the
real daemon on the same data dir (SIGTERM, and kill -9 at random moments,
many of them in the middle of a save) and check that every session comes
back under its old id with exactly the state of its last completed save,
that training then continues bit for bit as if nothing had happened, and
that a full or read-only disk is reported while the previous save stays.
"""
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np

import daemon
import safetensors_np as st
import specs
from client import batch, create, download, train_step, upload
from daemon import trainer_pb2 as pb

FLAGS = ("--blas-threads", "1", "--workers", "2")
CE = specs.cross_entropy()


def step_batch(step, n=16, features=64):
    """The batch a test sends for the session's step `step`: a function of
    the step alone, so a replay after any crash sends the same data."""
    return batch(np.random.default_rng(1000 + step), n, (features,))


def tensors(data):
    """{key: (dtype, shape, bytes)} of a checkpoint (metadata aside)."""
    sd, _ = st.loads(data)
    return {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in sd.items()}


def session_files(data_dir):
    d = os.path.join(data_dir, "sessions")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def info(stub, sid):
    return stub.GetSession(pb.GetSessionRequest(session_id=sid))


class DurabilityTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="traind-durable-")
        self.addCleanup(self.tmp.cleanup)
        self.data_dir = os.path.join(self.tmp.name, "data")

    def start(self, *flags, data_dir=None):
        d = daemon.Daemon(*FLAGS, *flags, data_dir=data_dir or self.data_dir).start()
        self.addCleanup(d.kill)
        return d

    def crash(self, d):
        """kill -9: no drain, no shutdown save."""
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(30)
        d._reader.join(10)

    def replay(self, stub, spec, opt, seed, steps, features=64):
        """A fresh session trained `steps` steps on the same batches."""
        sid = create(stub, spec, opt, seed=seed).session_id
        for k in range(steps):
            train_step(stub, sid, *step_batch(k, features=features), CE)
        return sid

    # ---- restart ----------------------------------------------------------------

    def test_sigterm_restart_restores_every_session_exactly(self):
        d = self.start("--autosave-steps", "3")
        stub = d.stub()
        # Dropout and BatchNorm: their generators and running statistics must
        # come back too, or the continued run would differ.
        net = specs.seq(specs.linear(64, 32), specs.batch_norm1d(32), specs.relu(),
                        specs.dropout(0.3), specs.linear(32, 10))
        a = create(stub, net, specs.adam(1e-3), seed=5, name="resnet / trial 1").session_id
        b = create(stub, specs.mlp_small(), None, seed=6, name="no optimizer").session_id
        for k in range(7):
            train_step(stub, a, *step_batch(k), CE)
        stub.SetTraining(pb.SetTrainingRequest(session_id=b, training=False))
        ia = info(stub, a)
        self.assertEqual((ia.step, ia.saved_step, ia.save_error), (7, 6, ""))
        self.assertGreater(ia.saved_unix_ms, 0)
        before = {sid: download(stub, sid, include_optimizer=True) for sid in (a, b)}
        infos = {sid: info(stub, sid) for sid in (a, b)}
        d.stop()
        self.assertEqual(session_files(self.data_dir), sorted(f"{s}.session" for s in (a, b)))

        d = self.start("--autosave-steps", "3")
        stub = d.stub()
        listed = {s.session_id: s for s in stub.ListSessions(pb.ListSessionsRequest()).sessions}
        self.assertEqual(set(listed), {a, b})
        for sid in (a, b):
            got = listed[sid]
            want = infos[sid]
            self.assertEqual((got.name, got.step, got.training, got.optimizer, got.num_parameters,
                              got.created_unix_ms),
                             (want.name, want.step, want.training, want.optimizer,
                              want.num_parameters, want.created_unix_ms))
            self.assertEqual(got.saved_step, want.step)
            self.assertEqual(download(stub, sid, include_optimizer=True), before[sid], sid)
        self.assertIn(f"session {a} restored", d.stderr())

        # Training goes on exactly as a run that never stopped.
        for k in range(7, 10):
            train_step(stub, a, *step_batch(k), CE)
        ref = self.replay(stub, net, specs.adam(1e-3), 5, 10)
        self.assertEqual(tensors(download(stub, a, True)), tensors(download(stub, ref, True)))
        d.stop()

    def test_kill9_loses_only_the_steps_since_the_last_autosave(self):
        d = self.start("--autosave-steps", "4")
        stub = d.stub()
        sid = create(stub, specs.mlp_small(), specs.sgd(0.05, momentum=0.9), seed=3).session_id
        for k in range(10):
            train_step(stub, sid, *step_batch(k), CE)
        self.assertEqual(info(stub, sid).saved_step, 8)
        self.crash(d)

        d = self.start("--autosave-steps", "4")
        stub = d.stub()
        self.assertEqual(info(stub, sid).step, 8)
        ref = self.replay(stub, specs.mlp_small(), specs.sgd(0.05, momentum=0.9), 3, 8)
        self.assertEqual(tensors(download(stub, sid, True)), tensors(download(stub, ref, True)))
        d.stop()

    def test_acknowledged_create_load_and_mode_survive_kill9(self):
        d = self.start("--autosave-steps", "0")
        stub = d.stub()
        sid = create(stub, specs.mlp_small(), specs.adam(1e-3), seed=1).session_id
        other = create(stub, specs.mlp_small(), specs.adam(1e-3), seed=2).session_id
        for k in range(3):
            train_step(stub, other, *step_batch(k), CE)
        trained = download(stub, other, include_optimizer=True)
        upload(stub, sid, trained)  # acknowledged: must be durable
        stub.SetTraining(pb.SetTrainingRequest(session_id=sid, training=False))
        self.crash(d)

        d = self.start()
        stub = d.stub()
        got = info(stub, sid)
        self.assertEqual((got.step, got.training), (3, False))
        self.assertEqual(tensors(download(stub, sid, True)), tensors(trained))
        # `other` was created (saved) but its steps were never autosaved.
        self.assertEqual(info(stub, other).step, 0)
        d.stop()

    def test_closed_and_expired_sessions_are_deleted_not_restored(self):
        d = self.start("--idle-timeout", "1")
        stub = d.stub()
        closed = create(stub, specs.mlp_small(), specs.sgd(0.1)).session_id
        expiring = create(stub, specs.mlp_small(), specs.sgd(0.1)).session_id
        self.assertEqual(len(session_files(self.data_dir)), 2)
        stub.CloseSession(pb.CloseSessionRequest(session_id=closed))
        # The close is acknowledged once the file is gone.
        self.assertEqual(session_files(self.data_dir), [f"{expiring}.session"])
        d.wait_for_log(f"session {expiring} expired")
        deadline = time.monotonic() + 30
        while session_files(self.data_dir) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(session_files(self.data_dir), [])
        self.crash(d)
        d = self.start()
        self.assertEqual(list(d.stub().ListSessions(pb.ListSessionsRequest()).sessions), [])
        d.stop()

    def test_owner_survives_restart(self):
        tokens = os.path.join(self.tmp.name, "tokens")
        with open(tokens, "w") as f:
            f.write("tok-alice alice\ntok-bob bob\n")
        d = self.start("--tokens-file", tokens)
        md = lambda t: (("authorization", f"Bearer {t}"),)  # noqa: E731
        stub = d.stub()
        req = pb.CreateModelRequest(model=specs.mlp_small(), seed=1)
        sid = stub.CreateModel(req, metadata=md("tok-alice")).session_id
        d.stop()
        d = self.start("--tokens-file", tokens)
        stub = d.stub()
        self.assertEqual(stub.GetSession(pb.GetSessionRequest(session_id=sid),
                                         metadata=md("tok-alice")).session_id, sid)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.GetSession(pb.GetSessionRequest(session_id=sid), metadata=md("tok-bob"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(len(stub.ListSessions(pb.ListSessionsRequest(),
                                               metadata=md("tok-bob")).sessions), 0)
        d.stop()

    # ---- damaged files ------------------------------------------------------------

    def test_damaged_or_truncated_file_is_set_aside_and_the_rest_restored(self):
        d = self.start()
        stub = d.stub()
        ids = [create(stub, specs.mlp_small(), specs.sgd(0.1), seed=i).session_id
               for i in range(3)]
        d.stop()
        sessions = os.path.join(self.data_dir, "sessions")
        flipped, cut = (os.path.join(sessions, f"{s}.session") for s in ids[:2])
        with open(flipped, "r+b") as f:
            f.seek(os.path.getsize(flipped) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x10]))
        with open(cut, "r+b") as f:
            f.truncate(os.path.getsize(cut) - 100)
        # A stray temporary, as a crash during a save leaves one.
        stray = os.path.join(sessions, f"{ids[2]}.session.tmp-1-0")
        with open(stray, "wb") as f:
            f.write(b"half a save")

        d = self.start()
        stub = d.stub()
        listed = [s.session_id for s in stub.ListSessions(pb.ListSessionsRequest()).sessions]
        self.assertEqual(listed, [ids[2]])
        log = d.stderr()
        self.assertIn("checksum mismatch", log)
        self.assertIn("payload bytes, the file has", log)
        self.assertFalse(os.path.exists(stray))
        self.assertEqual(session_files(self.data_dir),
                         sorted([f"{ids[0]}.session.corrupt", f"{ids[1]}.session.corrupt",
                                 f"{ids[2]}.session"]))
        d.stop()

    def test_session_over_the_new_limits_waits_for_a_start_that_allows_it(self):
        # A restart with a smaller --max-parameters or --max-sessions cannot
        # take some sessions back: they are logged as not restored, their
        # files stay, and a later start with room restores them.
        d = self.start()
        stub = d.stub()
        big = create(stub, specs.mlp(64, 512, 10), specs.sgd(0.1)).session_id  # 38k parameters
        small = create(stub, specs.mlp(4, 2), specs.sgd(0.1)).session_id
        d.stop()

        d = self.start("--max-parameters", "1000")
        listed = [s.session_id for s in d.stub().ListSessions(pb.ListSessionsRequest()).sessions]
        self.assertEqual(listed, [small])
        self.assertIn(f"session {big} not restored", d.stderr())
        self.assertIn("--max-parameters", d.stderr())
        d.stop()
        self.assertEqual(session_files(self.data_dir), sorted(f"{s}.session" for s in (big, small)))

        d = self.start("--max-sessions", "1")
        self.assertEqual(len(d.stub().ListSessions(pb.ListSessionsRequest()).sessions), 1)
        self.assertIn("not restored: --max-sessions (1) are open", d.stderr())
        d.stop()
        self.assertEqual(len(session_files(self.data_dir)), 2)

        d = self.start()
        listed = {s.session_id for s in d.stub().ListSessions(pb.ListSessionsRequest()).sessions}
        self.assertEqual(listed, {big, small})
        d.stop()

    def test_unusable_sessions_directory_stops_the_start(self):
        os.makedirs(self.data_dir)
        with open(os.path.join(self.data_dir, "sessions"), "w") as f:
            f.write("not a directory")
        r = subprocess.run([daemon.BIN, "--listen", "127.0.0.1:0", "--data-dir", self.data_dir],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"{self.data_dir}/sessions' is not a directory", r.stderr)

    # ---- kill -9 at random moments, many inside a save ----------------------------

    def test_kill9_at_random_moments_never_leaves_a_partial_session(self):
        """autosave every step on a model whose file takes a while to write:
        kills land inside saves (seen as a leftover temporary file). After
        each restart the session is at its last completed save (never before
        the last acknowledged step), and the final state equals a replay."""
        features = 256
        net = specs.mlp(features, 1024, 1024, 10)  # ~1.3M parameters: a 15 MB file with Adam
        opt = specs.adam(1e-3)
        rounds, min_mid_write = int(os.environ.get("TRAIND_KILL_ROUNDS", "12")), 3
        rnd = random.Random(7)
        d = self.start("--autosave-steps", "1")
        sid = create(d.stub(), net, opt, seed=11).session_id
        mid_write = 0
        r = 0
        while r < rounds or (mid_write < min_mid_write and r < 4 * rounds):
            r += 1
            stub = d.stub()
            acked = [info(stub, sid).step]
            stop = threading.Event()

            def trainer():
                try:
                    while not stop.is_set():
                        k = acked[-1]
                        resp = train_step(stub, sid, *step_batch(k, features=features), CE)
                        acked.append(resp.step)
                except grpc.RpcError:
                    pass  # the daemon died under it

            t = threading.Thread(target=trainer)
            t.start()
            # Once a step (and its save) has been answered, kill at a random
            # moment within about the next step: its compute or its save.
            began = time.monotonic()
            while len(acked) < 2 and time.monotonic() - began < 60:
                time.sleep(0.001)
            step_time = (time.monotonic() - began) * 1.2
            time.sleep(rnd.uniform(0, step_time))
            self.crash(d)
            stop.set()
            t.join(60)
            files = session_files(self.data_dir)
            temps = [f for f in files if ".tmp-" in f]
            if os.environ.get("TRAIND_DEBUG_KILLS"):
                print(f"round {r}: acked {acked[-3:]}, window {step_time:.3f} s, files {files}")
            mid_write += bool(temps)
            self.assertIn(f"{sid}.session", files)

            d = self.start("--autosave-steps", "1")
            restored = info(d.stub(), sid).step
            # Saved before each answer: nothing acknowledged is lost; at most
            # the one step in flight was saved without being answered.
            self.assertIn(restored, (acked[-1], acked[-1] + 1), f"round {r}: acked {acked[-3:]}")
            self.assertNotIn("not restored", d.stderr())
            self.assertEqual([f for f in session_files(self.data_dir) if ".tmp-" in f], [])
        self.assertGreaterEqual(mid_write, min_mid_write,
                                f"only {mid_write} of {r} kills landed inside a save")
        stub = d.stub()
        final = info(stub, sid).step
        ref = self.replay(stub, net, opt, 11, final, features=features)
        self.assertEqual(tensors(download(stub, sid, True)), tensors(download(stub, ref, True)))
        print(f"kill -9 rounds: {r}, inside a save: {mid_write}, steps trained: {final}")
        d.stop()


def mount(*args):
    return subprocess.run(["mount", *args], capture_output=True, text=True)


class FullOrReadOnlyDiskTest(unittest.TestCase):
    """A small tmpfs as the data dir: full, then read-only (needs root's mount)."""

    def setUp(self):
        self.mnt = tempfile.mkdtemp(prefix="traind-tmpfs-")
        self.addCleanup(os.rmdir, self.mnt)
        # Room for one file of the model below and half of another.
        r = mount("-t", "tmpfs", "-o", "size=1536k", "tmpfs", self.mnt)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here ({r.stderr.strip()}): run as root")
        self.addCleanup(self.unmount)
        self.data_dir = os.path.join(self.mnt, "data")

    def unmount(self):
        mount("-o", "remount,rw", self.mnt)
        subprocess.run(["umount", "-l", self.mnt], check=True)

    def test_full_then_read_only_disk_keeps_the_previous_save(self):
        d = daemon.Daemon(*FLAGS, "--autosave-steps", "1", data_dir=self.data_dir).start()
        self.addCleanup(d.kill)
        stub = d.stub()
        # 250k parameters, plain SGD: a 1 MB file; the tmpfs holds 1.5 MB.
        sid = create(stub, specs.mlp(256, 900, 10), specs.sgd(0.1), seed=2).session_id
        i = info(stub, sid)
        self.assertEqual((i.saved_step, i.save_error), (0, ""))
        saved = download(stub, sid, include_optimizer=True)

        # Full: the step succeeds, its save does not, the old file stays.
        resp = train_step(stub, sid, *step_batch(0, features=256), CE)
        self.assertEqual(resp.step, 1)
        i = info(stub, sid)
        self.assertEqual(i.saved_step, 0)
        self.assertIn("No space left on device", i.save_error)
        d.wait_for_log("its previous save stays")
        self.assertEqual(session_files(self.data_dir), [f"{sid}.session"])

        # Read-only: the same.
        self.assertEqual(mount("-o", "remount,ro", self.mnt).returncode, 0)
        train_step(stub, sid, *step_batch(1, features=256), CE)
        i = info(stub, sid)
        self.assertEqual(i.saved_step, 0)
        self.assertIn("Read-only file system", i.save_error)
        self.assertEqual(session_files(self.data_dir), [f"{sid}.session"])

        # A crash now restores the last completed save.
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(30)
        self.assertEqual(mount("-o", "remount,rw", self.mnt).returncode, 0)
        d2 = daemon.Daemon(*FLAGS, "--autosave-steps", "1", data_dir=self.data_dir).start()
        self.addCleanup(d2.kill)
        stub = d2.stub()
        self.assertEqual(info(stub, sid).step, 0)
        self.assertEqual(tensors(download(stub, sid, True)), tensors(saved))
        d2.stop()


if __name__ == "__main__":
    daemon.main()
