"""Security: TLS (and mutual TLS), bearer tokens with tenants, tenant
isolation, token reload on SIGHUP, and refusing to serve a non-loopback
address unprotected. Certificates are made for each run with openssl."""
import os
import signal
import subprocess
import tempfile
import unittest
import uuid

import grpc
import numpy as np

import daemon
import specs
from client import batch, create, download, forward, tensor, train_step, upload
from daemon import health_pb2, trainer_pb2 as pb, trainer_pb2_grpc as pbg

TOKENS = {"tok-alice-0123456789": "alice", "tok-bob-9876543210": "bob"}
TRAINCTL = os.environ.get("TRAINCTL_BIN", os.path.join(daemon.ROOT, "build", "clients", "c",
                                                        "trainctl"))


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


# `openssl ca` is how openssl 3.0 sets a certificate's start and end dates
# (x509 -req has only -days): an expired certificate without a fake clock.
CA_CONFIG = """[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
"""
EXPIRED = ("-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
NOT_YET_VALID = ("-startdate", "20990101000000Z", "-enddate", "20990102000000Z")


def make_pki(d):
    """A CA, a server certificate for localhost/127.0.0.1, a client
    certificate, and a second CA that signed nothing of ours. Then the bad
    ones, for the same keys: server and client certificates signed by the
    other CA, expired ones, and a server certificate not valid yet."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                f"/CN=traind test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, subj in (("server", "/CN=localhost"), ("client", "/CN=traind test client")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=d)
        for ca, out in (("ca", name), ("other-ca", f"{name}-other-ca")):
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                    f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out",
                    f"{out}.pem", cwd=d)
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CONFIG)
    with open(os.path.join(d, "index.txt"), "w"):
        pass
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    for csr, out, dates in (("server", "server-expired", EXPIRED),
                            ("server", "server-not-yet-valid", NOT_YET_VALID),
                            ("client", "client-expired", EXPIRED)):
        openssl("ca", "-config", "ca.cnf", "-batch", "-notext", "-cert", "ca.pem", "-keyfile",
                "ca.key", "-in", f"{csr}.csr", "-extfile", "san.ext", "-out", f"{out}.pem",
                *dates, cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


class PkiTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.TemporaryDirectory(prefix="traind-pki-")
        make_pki(cls.pki.name)

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def path(self, name):
        return os.path.join(self.pki.name, name)

    def tls_stub(self, d, ca="ca.pem", client_cert=False):
        """A stub over TLS trusting `ca`; client_cert: True for client.pem,
        or the name of another certificate for client.key."""
        cert = "client.pem" if client_cert is True else client_cert
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(self.pki.name, ca),
            private_key=read(self.pki.name, "client.key") if cert else None,
            certificate_chain=read(self.pki.name, cert) if cert else None)
        port = d.address.rsplit(":", 1)[1]
        channel = grpc.secure_channel(f"localhost:{port}", creds, options=daemon.CHANNEL_OPTIONS)
        self.addCleanup(channel.close)
        return pbg.TrainerStub(channel)


class TlsTest(PkiTestCase):
    def test_tls(self):
        with daemon.Daemon("--tls-cert", self.path("server.pem"),
                           "--tls-key", self.path("server.key")) as d:
            stub = self.tls_stub(d)
            sid = create(stub, specs.mlp_small()).session_id
            forward(stub, sid, batch(np.random.default_rng(0), 2)[0])
            self.assertIn("security: TLS", d.stderr())
            # Plaintext to a TLS port, or a CA that did not sign it: no call.
            for bad in (d.stub(), self.tls_stub(d, ca="other-ca.pem")):
                with self.assertRaises(grpc.RpcError) as cm:
                    bad.ListSessions(pb.ListSessionsRequest(), timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_tls_clients(self):
        # trainctl and the Python package speak TLS too (the C library under
        # trainctl takes the same files).
        with daemon.Daemon("--tls-cert", self.path("server.pem"),
                           "--tls-key", self.path("server.key")) as d:
            target = "localhost:" + d.address.rsplit(":", 1)[1]
            # trainctl by IP (the certificate names 127.0.0.1 too): gRPC's DNS
            # resolver (c-ares) leaks a few bytes per name, which a sanitizer
            # build of trainctl would report.
            ok = subprocess.run([TRAINCTL, "--server", d.address, "--tls-ca", self.path("ca.pem"),
                                 "health"], capture_output=True, text=True, timeout=60)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertIn("SERVING", ok.stdout)
            plain = subprocess.run([TRAINCTL, "--server", d.address, "health"],
                                   capture_output=True, text=True, timeout=60)
            self.assertEqual(plain.returncode, 3, plain.stderr)
            import traind
            with traind.connect(target, tls=self.path("ca.pem")) as client:
                model = client.create_model(traind.nn.Sequential(traind.nn.Linear(4, 2)))
                self.assertEqual(model.forward(np.zeros((1, 4), np.float32)).shape, (1, 2))

    def test_mutual_tls(self):
        with daemon.Daemon("--tls-cert", self.path("server.pem"),
                           "--tls-key", self.path("server.key"),
                           "--tls-client-ca", self.path("ca.pem")) as d:
            ok = self.tls_stub(d, client_cert=True)
            self.assertEqual(len(ok.ListSessions(pb.ListSessionsRequest()).sessions), 0)
            with self.assertRaises(grpc.RpcError) as cm:
                self.tls_stub(d).ListSessions(pb.ListSessionsRequest(), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            target = "localhost:" + d.address.rsplit(":", 1)[1]
            r = subprocess.run([TRAINCTL, "--server", d.address, "--tls-ca", self.path("ca.pem"),
                                "--tls-cert", self.path("client.pem"),
                                "--tls-key", self.path("client.key"), "sessions"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            import traind
            with traind.connect(target, tls=self.path("ca.pem"),
                                client_cert=(self.path("client.pem"),
                                             self.path("client.key"))) as client:
                self.assertEqual(client.sessions(), [])


    def trainctl(self, d, *args):
        return subprocess.run([TRAINCTL, "--server", d.address, "--tls-ca", self.path("ca.pem"),
                               *args], capture_output=True, text=True, timeout=60)

    def assert_names_certificate(self, msg):
        # OpenSSL says "certificate verify failed", BoringSSL (pip's grpcio)
        # "CERTIFICATE_VERIFY_FAILED".
        self.assertIn("certificate", msg.lower())
        self.assertIn("verif", msg.lower())

    def test_bad_server_certificate(self):
        # A server certificate that is expired, not valid yet, or signed by a
        # CA the client does not trust: every client refuses the connection
        # (UNAVAILABLE) and says it is the certificate; no call reaches traind.
        import traind
        for cert in ("server-expired.pem", "server-not-yet-valid.pem", "server-other-ca.pem"):
            with self.subTest(cert=cert), \
                    daemon.Daemon("--tls-cert", self.path(cert), "--tls-key",
                                  self.path("server.key"), "--log-level", "debug") as d:
                with self.assertRaises(grpc.RpcError) as cm:
                    self.tls_stub(d).ListSessions(pb.ListSessionsRequest(), timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                self.assert_names_certificate(cm.exception.details())
                r = self.trainctl(d, "health")
                self.assertEqual(r.returncode, 3, r.stderr)  # trainctl's "cannot reach"
                self.assertIn("UNAVAILABLE", r.stderr)
                self.assert_names_certificate(r.stderr)
                target = "localhost:" + d.address.rsplit(":", 1)[1]
                with traind.connect(target, tls=self.path("ca.pem")) as client:
                    with self.assertRaises(traind.Unavailable) as cm:
                        client.sessions()
                self.assert_names_certificate(str(cm.exception))
                self.assertNotIn("rpc: /", d.stderr())

    def test_mutual_tls_bad_client_certificate(self):
        # With --tls-client-ca, a client certificate that is expired or signed
        # by another CA is refused at the handshake (under TLS 1.3 the client
        # only sees the connection closed: UNAVAILABLE), from every client;
        # the daemon logs why, served none of it, and serves good clients after.
        import traind
        with daemon.Daemon("--tls-cert", self.path("server.pem"),
                           "--tls-key", self.path("server.key"),
                           "--tls-client-ca", self.path("ca.pem"), "--log-level", "debug") as d:
            target = "localhost:" + d.address.rsplit(":", 1)[1]
            for cert in ("client-expired.pem", "client-other-ca.pem"):
                with self.subTest(cert=cert):
                    with self.assertRaises(grpc.RpcError) as cm:
                        self.tls_stub(d, client_cert=cert).ListSessions(
                            pb.ListSessionsRequest(), timeout=10)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                    r = self.trainctl(d, "--tls-cert", self.path(cert),
                                      "--tls-key", self.path("client.key"), "sessions")
                    self.assertEqual(r.returncode, 3, r.stderr)
                    self.assertIn("UNAVAILABLE", r.stderr)
                    with traind.connect(target, tls=self.path("ca.pem"),
                                        client_cert=(self.path(cert),
                                                     self.path("client.key"))) as client:
                        with self.assertRaises(traind.Unavailable):
                            client.sessions()
            self.assert_names_certificate(d.stderr())  # gRPC's own line, on the server
            self.assertNotIn("rpc: /", d.stderr())
            ok = self.tls_stub(d, client_cert=True)
            sid = create(ok, specs.mlp_small()).session_id
            forward(ok, sid, batch(np.random.default_rng(0), 2)[0])
            r = self.trainctl(d, "--tls-cert", self.path("client.pem"),
                              "--tls-key", self.path("client.key"), "sessions")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(sid, r.stdout)
            with traind.connect(target, tls=self.path("ca.pem"),
                                client_cert=(self.path("client.pem"),
                                             self.path("client.key"))) as client:
                self.assertEqual([s.session_id for s in client.sessions()], [sid])


class TokenTest(daemon.DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="traind-tokens-")
        cls.tokens_file = os.path.join(cls.dir.name, "tokens")
        cls.write_tokens(TOKENS)
        cls.FLAGS = daemon.DaemonTestCase.FLAGS + ("--tokens-file", cls.tokens_file)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.dir.cleanup()

    @classmethod
    def write_tokens(cls, tokens, extra=""):
        with open(cls.tokens_file, "w") as f:
            f.write("# token tenant\n\n")
            for tok, tenant in tokens.items():
                f.write(f"{tok} {tenant}\n")
            f.write(extra)

    def md(self, token):
        return [("authorization", f"Bearer {token}")]

    def test_missing_wrong_or_malformed_token(self):
        for md in ([], self.md("not-a-token"), [("authorization", "tok-alice-0123456789")],
                   self.md("tok-alice-012345678"), self.md("tok-alice-0123456789x")):
            for call in (lambda: self.stub.ListSessions(pb.ListSessionsRequest(), metadata=md),
                         lambda: self.stub.CreateModel(
                             pb.CreateModelRequest(model=specs.mlp_small()), metadata=md)):
                msg = self.assertRpcError(grpc.StatusCode.UNAUTHENTICATED, call,
                                          contains="bearer token")
                self.assertNotIn("tok-", msg)
        # Health needs no token: probes and load balancers ask it.
        r = self.daemon.health().Check(health_pb2.HealthCheckRequest())
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)

    def test_tenants_see_only_their_sessions(self):
        alice, bob = self.md("tok-alice-0123456789"), self.md("tok-bob-9876543210")
        sid = self.stub.CreateModel(pb.CreateModelRequest(model=specs.mlp_small()),
                                    metadata=alice).session_id
        x = tensor(np.zeros((1, 64), np.float32))
        for call in (lambda: self.stub.GetSession(pb.GetSessionRequest(session_id=sid),
                                                  metadata=bob),
                     lambda: self.stub.Forward(pb.ForwardRequest(session_id=sid, input=x),
                                               metadata=bob),
                     lambda: self.stub.CloseSession(pb.CloseSessionRequest(session_id=sid),
                                                    metadata=bob)):
            # Exactly what a session that never existed gives.
            msg = self.assertRpcError(grpc.StatusCode.NOT_FOUND, call, contains="not found")
            self.assertIn("never created, closed, or expired", msg)
        mine = self.stub.ListSessions(pb.ListSessionsRequest(), metadata=alice).sessions
        theirs = self.stub.ListSessions(pb.ListSessionsRequest(), metadata=bob).sessions
        self.assertIn(sid, [s.session_id for s in mine])
        self.assertNotIn(sid, [s.session_id for s in theirs])
        # Still alice's, untouched by bob's attempts.
        self.stub.Forward(pb.ForwardRequest(session_id=sid, input=x), metadata=alice)
        self.stub.CloseSession(pb.CloseSessionRequest(session_id=sid), metadata=alice)
        for tok in TOKENS:
            self.assertNotIn(tok, self.daemon.stderr())

    def test_token_clients(self):
        import traind
        with traind.connect(self.daemon.address, token="tok-bob-9876543210") as client:
            model = client.create_model(traind.nn.Sequential(traind.nn.Linear(4, 2)))
            self.assertEqual([s.session_id for s in client.sessions()], [model.session_id])
        with traind.connect(self.daemon.address, token="wrong") as client:
            with self.assertRaises(traind.Unauthenticated):
                client.sessions()
        r = subprocess.run([TRAINCTL, "--server", self.daemon.address, "sessions"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("UNAUTHENTICATED", r.stderr)
        r = subprocess.run([TRAINCTL, "--server", self.daemon.address, "sessions"],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, TRAIND_TOKEN="tok-bob-9876543210"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_sighup_reloads_tokens(self):
        carol = self.md("tok-carol-555")
        list_as_carol = lambda: self.stub.ListSessions(pb.ListSessionsRequest(), metadata=carol)
        self.assertRpcError(grpc.StatusCode.UNAUTHENTICATED, list_as_carol)
        try:
            self.write_tokens(dict(TOKENS, **{"tok-carol-555": "carol"}))
            self.daemon.send_signal(signal.SIGHUP)
            self.daemon.wait_for_log("SIGHUP: tokens reloaded (3)")
            list_as_carol()
            # A broken file changes nothing: the error names the line.
            self.write_tokens(TOKENS, extra="only-a-token\n")
            self.daemon.send_signal(signal.SIGHUP)
            self.daemon.wait_for_log("tokens not reloaded")
            self.assertIn(":5: expected 'TOKEN TENANT'", self.daemon.stderr())
            list_as_carol()
        finally:
            self.write_tokens(TOKENS)
            self.daemon.send_signal(signal.SIGHUP)


class QuotaTest(unittest.TestCase):
    """Per-tenant quotas: one tenant at its limit does not stop another."""

    def test_session_and_parameter_quotas(self):
        with tempfile.TemporaryDirectory() as tmp:
            tokens = os.path.join(tmp, "tokens")
            with open(tokens, "w") as f:
                f.write("tok-alice-0123456789 alice\ntok-bob-9876543210 bob\n")
            # mlp_small has 4810 parameters: two fit in 10000, three do not.
            with daemon.Daemon("--tokens-file", tokens, "--tenant-max-sessions", "3",
                               "--tenant-max-parameters", "10000") as d:
                stub = d.stub()
                alice = [("authorization", "Bearer tok-alice-0123456789")]
                bob = [("authorization", "Bearer tok-bob-9876543210")]
                req = pb.CreateModelRequest(model=specs.mlp_small())
                sids = [stub.CreateModel(req, metadata=alice).session_id for _ in range(2)]
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.CreateModel(req, metadata=alice)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("--tenant-max-parameters", cm.exception.details())
                # A small model still fits the parameter quota; then the
                # session quota is reached.
                small = pb.CreateModelRequest(model=specs.seq(specs.linear(4, 2)))
                stub.CreateModel(small, metadata=alice)
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.CreateModel(small, metadata=alice)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("--tenant-max-sessions", cm.exception.details())
                # Bob is not affected; closing frees alice's quota.
                stub.CreateModel(req, metadata=bob)
                stub.CloseSession(pb.CloseSessionRequest(session_id=sids[0]), metadata=alice)
                stub.CreateModel(small, metadata=alice)


class HostileNameTest(unittest.TestCase):
    """A session's name is the client's string: it must never become a path.
    traind builds no path from a client string today; persistence under
    --data-dir (files named by the server's hex session ids) must keep it so.
    The daemon runs from a sandbox, in a data dir DEPTH levels down, so that
    wherever a name could lead a file, that file lands where the test sees it."""

    MARK = "pwned"
    DEPTH = 90  # more levels than a name of 256 bytes (the most taken) has "../"

    def hostile_names(self, sandbox, outside):
        m = self.MARK
        return [
            f"../{m}-x", f"../../{m}-y/../{m}-z", "../../../../etc/passwd", "..", ".", "/",
            *outside, os.path.join(sandbox, f"{m}-abs-in-sandbox"),
            f"{m}-a/{m}-b", f"{m}-dir/", f"./{m}-dot", f"{m}\\..\\{m}-backslash",
            f"{m}-%2e%2e%2f{m}-encoded", f"{m}-nul\x00/../../{m}-after-nul", f"~/{m}-home",
            f"{m}\n../{m}-newline", "../" * 83 + m, f"{m}-" + "L" * 250,
            f"{m}-" + "L" * 251, "../" * 1400 + m,  # over 256 bytes: refused today
            f"{m}-ünïcødé-名前-🚀", f"{m}-\u202e-rtl", f"{m}-\u2215-division-slash",
            f"{m}-\uff0f-fullwidth-slash", f"{m}-\u2024\u2024-one-dot-leaders",
        ]

    @staticmethod
    def tree(root):
        """Every path under root (symlinks as themselves, not followed)."""
        out = set()
        for dirpath, dirnames, filenames in os.walk(root):
            out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
        return out

    def test_session_names_make_no_paths(self):
        with tempfile.TemporaryDirectory(prefix="traind-names-") as sandbox:
            work = os.path.join(sandbox, *["d"] * self.DEPTH)
            data_dir = os.path.join(work, "data")
            os.makedirs(work)
            tag = uuid.uuid4().hex
            outside = (f"/{self.MARK}-{tag}", os.path.join(tempfile.gettempdir(),
                                                             f"{self.MARK}-{tag}"))
            names = self.hostile_names(sandbox, outside)
            before = self.tree(sandbox)
            rng = np.random.default_rng(0)
            with daemon.Daemon("--blas-threads", "1", "--workers", "2", "--data-dir", data_dir,
                               cwd=work, env={"HOME": sandbox}) as d:
                stub = d.stub()
                sids = []
                for name in names:
                    with self.subTest(name=name):
                        try:
                            sid = create(stub, specs.seq(specs.linear(4, 2)), specs.sgd(0.1),
                                         name=name).session_id
                        except grpc.RpcError as e:  # refusing a name is fine, failing is not
                            self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT,
                                             e.details())
                            continue
                        sids.append(sid)
                        x, y = batch(rng, 4, (4,), classes=2)
                        train_step(stub, sid, x, y, specs.cross_entropy())
                        upload(stub, sid, download(stub, sid, include_optimizer=True))
                self.assertTrue(sids, "no session was created at all")
                for sid in sids[::2]:  # closed ones, and open ones at SIGTERM
                    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
            # The daemon is gone (SIGTERM, exit 0): what did it leave?
            created = self.tree(sandbox) - before
            self.assertFalse([p for p in outside if os.path.lexists(p)])
            real_data = os.path.realpath(data_dir)
            escaped = sorted(p for p in created if p != data_dir and
                             not p.startswith(data_dir + os.sep))
            self.assertEqual(escaped, [], "files outside --data-dir")
            for p in sorted(created):
                rel = os.path.relpath(p, data_dir)
                self.assertTrue(os.path.realpath(p) == real_data or
                                os.path.realpath(p).startswith(real_data + os.sep),
                                f"{p} leads outside --data-dir")
                for bad in (self.MARK, "passwd", "名前"):
                    self.assertNotIn(bad, rel, f"{p}: a file named after a session name")

    def test_session_name_cannot_forge_log_lines(self):
        # The name is logged ("session ... created (name ...)"): a newline or
        # a terminal escape in it must not start a line of its own or reach
        # the operator's terminal raw.
        forged = "2026-01-01T00:00:00.000Z error FORGED: tokens file replaced"
        name = f"x\n{forged}\r\x1b[2Jy"
        with daemon.Daemon("--blas-threads", "1", "--workers", "1") as d:
            stub = d.stub()
            sid = create(stub, specs.seq(specs.linear(4, 2)), name=name).session_id
            self.assertEqual(stub.GetSession(pb.GetSessionRequest(session_id=sid)).name, name)
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
            d.wait_for_log(f"session {sid} closed")
        lines = d.lines
        mine = [line for line in lines if "FORGED" in line]
        self.assertEqual(len(mine), 2, lines)  # created and closed, one line each
        for line in mine:
            self.assertIn(f"session {sid}", line)
            self.assertFalse([c for c in line if ord(c) < 0x20 or ord(c) == 0x7f], repr(line))
            self.assertIn(f'name "x\\n{forged}\\r\\x1b[2Jy"', line)  # escaped, not lost


class SecureByDefaultTest(unittest.TestCase):
    def run_traind(self, *flags):
        with tempfile.TemporaryDirectory() as tmp:
            return subprocess.run([daemon.BIN, "--data-dir", os.path.join(tmp, "d"), *flags],
                                  capture_output=True, text=True, timeout=30)

    def test_non_loopback_needs_tls_tokens_or_insecure(self):
        r = self.run_traind("--listen", "0.0.0.0:0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("refusing to listen on 0.0.0.0:0 without TLS", r.stderr)
        self.assertIn("--insecure", r.stderr)

    def test_insecure_starts(self):
        with daemon.Daemon("--listen", "0.0.0.0:0", "--insecure") as d:
            self.assertIn("plaintext, no authentication", d.stderr())

    def test_tls_flags_go_together(self):
        r = self.run_traind("--tls-cert", "/nonexistent.pem")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls-cert and --tls-key go together", r.stderr)
        r = self.run_traind("--tokens-file", "/nonexistent-tokens")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot read /nonexistent-tokens", r.stderr)


if __name__ == "__main__":
    daemon.main()
