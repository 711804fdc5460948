"""check_manifests: the deployment files agree with each other and with the daemon.

    /usr/bin/python3 deploy/test/check_manifests.py [--traind BIN]

Schema-level checks of deploy/compose.yaml and deploy/k8s/*.yaml (required fields, probe
and service ports = the port the Dockerfile's TRAIND_LISTEN serves, image names, every
TRAIND_* variable one traind reads (server/util/config.c), volumes at the Dockerfile's data
dir, the non-root uid, stop grace > traind's grace period), of deploy/Dockerfile itself, and
`systemd-analyze verify` + `systemd-analyze security` on deploy/systemd/traind.service in a
temporary root (verify needs ExecStart to exist: BIN, default build/server/traind, is put at
the unit's ExecStart path there). Then it proves the checks can fail: each of a list of
small breakages, applied to an in-memory copy, must be reported.
Exit 0 when everything holds; otherwise every problem is printed.
"""
import argparse
import copy
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
IMAGE_REPO = "traind"  # what make test-deploy tags, and what compose and k8s run


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def duration_seconds(text):
    """Compose durations: "30s", "1m30s", "250ms"; a bare number is seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r}")
    return total


def listen_port(value):
    return int(str(value).rsplit(":", 1)[1])


def image_repo(image):
    """"localhost/traind:1.0" -> "traind"."""
    name = image.split("@")[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.rsplit("/", 1)[-1]


# ---- the facts the others must match -------------------------------------------------------


def config_env_names():
    """Every environment variable traind reads (its option table)."""
    names = set(re.findall(r'"(TRAIND_[A-Z_]+)"', read(os.path.join(ROOT, "server/util/config.c"))))
    if not names:
        raise SystemExit("check_manifests: no TRAIND_* names found in server/util/config.c")
    return names


def install_deps_packages():
    text = read(os.path.join(DEPLOY, "install-deps.sh"))
    body = re.search(r"packages=\((.*?)\n\)", text, re.S).group(1)
    return {w for line in body.splitlines() for w in line.split("#")[0].split()}


def parse_dockerfile(text):
    """{'stages': [(name, [(INSTR, args)])], ...} with continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    stages, args = [], {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append({"from": m.group(1), "name": m.group(2), "instr": []})
        elif not stages and instr == "ARG":
            k, _, v = rest.partition("=")
            args[k] = v
        else:
            stages[-1]["instr"].append((instr, rest.strip()))
    return {"args": args, "stages": stages}


def apt_packages(run):
    m = re.search(r"apt-get install ((?:-\S+\s+)*)(.*?)(?:&&|$)", run)
    return set(m.group(2).split()) if m else set()


def dockerfile_facts(df, env_names, deps, errors):
    """Checks the Dockerfile; returns what compose and k8s must agree with."""
    e = errors.append
    facts = {}
    if df["args"].get("BASE") != "debian:bookworm-slim":
        e("Dockerfile: ARG BASE must default to debian:bookworm-slim")
    if len(df["stages"]) < 2:
        e("Dockerfile: needs a build stage and a runtime stage")
        return facts
    runtime = df["stages"][-1]
    build_instr = [x for st in df["stages"][:-1] for x in st["instr"]]
    names = {st["name"] for st in df["stages"]}
    for st in df["stages"]:
        if st["from"] not in ("${BASE}", "$BASE") and st["from"] not in names:
            e(f"Dockerfile: stage {st['name']} is FROM {st['from']}, not the BASE argument")
    build_pkgs = set().union(*[apt_packages(a) for i, a in build_instr if i == "RUN"])
    if not build_pkgs:
        e("Dockerfile: the build stage installs no packages")
    for p in sorted(build_pkgs - deps):
        e(f"Dockerfile: build package {p} is not in deploy/install-deps.sh")
    runtime_pkgs = set().union(*[apt_packages(a) for i, a in runtime["instr"] if i == "RUN"])
    for p in sorted(runtime_pkgs):
        if p.endswith("-dev") or p in ("build-essential", "cmake", "pkg-config"):
            e(f"Dockerfile: runtime stage installs build package {p}")
    ri = runtime["instr"]
    env = {}
    for i, a in ri:
        if i == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", a):
                env[k] = v
    for k in env:
        if k.startswith("TRAIND_") and k not in env_names:
            e(f"Dockerfile: ENV {k} is not a variable traind reads")
    for k in ("TRAIND_LISTEN", "TRAIND_DATA_DIR"):
        if k not in env:
            e(f"Dockerfile: ENV {k} is not set")
    listen = env.get("TRAIND_LISTEN", ":0")
    if not listen.startswith("0.0.0.0:"):
        e(f"Dockerfile: TRAIND_LISTEN {listen} does not listen on every interface")
    facts["port"] = listen_port(listen)
    facts["data_dir"] = env.get("TRAIND_DATA_DIR")
    facts["grace"] = float(env.get("TRAIND_GRACE_PERIOD", 10))
    expose = [a for i, a in ri if i == "EXPOSE"]
    if expose != [str(facts["port"])]:
        e(f"Dockerfile: EXPOSE {expose} is not the listen port {facts['port']}")
    volumes = [a for i, a in ri if i == "VOLUME"]
    if not volumes or facts["data_dir"] not in volumes[0]:
        e(f"Dockerfile: VOLUME {volumes} is not TRAIND_DATA_DIR {facts['data_dir']}")
    users = [a for i, a in ri if i == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        e("Dockerfile: the runtime stage must end as a non-root USER")
    uid = re.search(r"useradd .*--uid (\d+)", " ".join(a for i, a in ri if i == "RUN"))
    facts["uid"] = int(uid.group(1)) if uid else None
    if facts["uid"] in (None, 0):
        e("Dockerfile: the runtime user needs a fixed non-zero --uid")
    health = [a for i, a in ri if i == "HEALTHCHECK"]
    if not health or not re.search(r"trainctl\b.*\bhealth\b", health[0]):
        e("Dockerfile: HEALTHCHECK must run `trainctl health`")
    if ("STOPSIGNAL", "SIGTERM") not in ri:
        e("Dockerfile: STOPSIGNAL SIGTERM is missing")
    if not any(i == "ENTRYPOINT" and "traind" in a for i, a in ri):
        e("Dockerfile: ENTRYPOINT must run traind")
    copies = " ".join(a for i, a in ri if i == "COPY")
    if "--from=" not in copies:
        e("Dockerfile: the runtime stage copies nothing from the build stage")
    built = " ".join(a for i, a in build_instr if i == "RUN")
    for target in ("traind_daemon", "trainctl"):
        if not re.search(rf"--target\b[^&]*\b{target}\b", built):
            e(f"Dockerfile: the build stage does not build target {target}")
    return facts


# ---- compose -------------------------------------------------------------------------------


def check_compose(doc, facts, env_names, errors):
    e = lambda msg: errors.append(f"compose.yaml: {msg}")  # noqa: E731
    services = (doc or {}).get("services") or {}
    if "traind" not in services:
        e("no service `traind`")
        return
    s = services["traind"]
    if image_repo(str(s.get("image", ""))) != IMAGE_REPO:
        e(f"image {s.get('image')!r} is not {IMAGE_REPO}")
    build = s.get("build") or {}
    if not isinstance(build, dict) or not str(build.get("dockerfile", "")).endswith("Dockerfile"):
        e("build.dockerfile must name deploy/Dockerfile")
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(x.split("=", 1) for x in env)
    for k in env:
        if k not in env_names:
            e(f"environment {k} is not a variable traind reads")
    port = listen_port(env["TRAIND_LISTEN"]) if "TRAIND_LISTEN" in env else facts.get("port")
    if port != facts.get("port"):
        e(f"TRAIND_LISTEN port {port} is not the image's {facts.get('port')}")
    targets = []
    for p in s.get("ports") or []:
        targets.append(int(p["target"]) if isinstance(p, dict) else int(str(p).rsplit(":", 1)[-1]))
    if port not in targets:
        e(f"ports {s.get('ports')} publish no container port {port}")
    data_dir = env.get("TRAIND_DATA_DIR", facts.get("data_dir"))
    named = set((doc.get("volumes") or {}).keys())
    mounts = [str(v).split(":") for v in s.get("volumes") or []]
    if not any(len(m) >= 2 and m[1] == data_dir and m[0] in named for m in mounts):
        e(f"no named volume (declared under volumes:) mounted at {data_dir}")
    hc = s.get("healthcheck") or {}
    test = hc.get("test")
    test_text = " ".join(test) if isinstance(test, list) else str(test or "")
    if not re.search(r"trainctl\b.*\bhealth\b", test_text):
        e("healthcheck.test must run `trainctl health`")
    if f":{port}" not in test_text:
        e(f"healthcheck does not probe port {port}")
    for k in ("interval", "timeout", "retries"):
        if k not in hc:
            e(f"healthcheck.{k} is missing")
    if s.get("restart") not in ("always", "unless-stopped", "on-failure"):
        e(f"restart policy {s.get('restart')!r} does not restart the server")
    limits = (((s.get("deploy") or {}).get("resources") or {}).get("limits") or {})
    if not {"cpus", "memory"} <= set(limits):
        e("deploy.resources.limits needs cpus and memory")
    grace = float(env.get("TRAIND_GRACE_PERIOD", facts.get("grace", 10)))
    if duration_seconds(s.get("stop_grace_period", "10s")) <= grace:
        e(f"stop_grace_period must exceed TRAIND_GRACE_PERIOD ({grace} s)")
    if s.get("stop_signal", "SIGTERM") != "SIGTERM":
        e("stop_signal must be SIGTERM")
    declared = set((doc.get("secrets") or {}).keys())
    used = {x if isinstance(x, str) else x.get("source") for x in s.get("secrets") or []}
    if not used:
        e("the token secret is not given to the service")
    for name in used - declared:
        e(f"secret {name} is used but not declared")


# ---- kubernetes ----------------------------------------------------------------------------


def k8s_docs(paths):
    docs = []
    for path in paths:
        for d in yaml.safe_load_all(read(path)):
            if d is not None:
                docs.append((os.path.basename(path), d))
    return docs


def check_k8s(docs, facts, env_names, errors):
    e = errors.append
    by_kind = {}
    for fname, d in docs:
        for field in ("apiVersion", "kind", "metadata"):
            if field not in d and not (field == "metadata" and d.get("kind") == "Kustomization"):
                e(f"k8s/{fname}: no {field}")
        if not (d.get("metadata") or {}).get("name") and d.get("kind") != "Kustomization":
            e(f"k8s/{fname}: {d.get('kind')} has no metadata.name")
        by_kind.setdefault(d.get("kind"), []).append((fname, d))
    for kind in ("StatefulSet", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"):
        if kind not in by_kind:
            e(f"k8s: no {kind}")
    if "StatefulSet" not in by_kind:
        return
    port = facts.get("port")
    fname, sts = by_kind["StatefulSet"][0]
    where = f"k8s/{fname}"
    spec = sts.get("spec") or {}
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        e(f"{where}: selector {sel} does not match the pod labels {labels}")
    services = {d["metadata"]["name"]: d for _, d in by_kind.get("Service", [])}
    headless = services.get(spec.get("serviceName"))
    if not headless or (headless.get("spec") or {}).get("clusterIP") != "None":
        e(f"{where}: serviceName {spec.get('serviceName')!r} is not a headless Service")
    pod = tmpl.get("spec") or {}
    containers = pod.get("containers") or []
    if len(containers) != 1:
        e(f"{where}: expected one container, found {len(containers)}")
        return
    c = containers[0]
    if image_repo(str(c.get("image", ""))) != IMAGE_REPO:
        e(f"{where}: image {c.get('image')!r} is not {IMAGE_REPO}")
    named_ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    if port not in named_ports.values():
        e(f"{where}: containerPort {list(named_ports.values())} is not {port}")
    for probe in ("readinessProbe", "livenessProbe"):
        p = c.get(probe)
        if not p or "grpc" not in p:
            e(f"{where}: {probe} must be a native grpc probe")
        elif p["grpc"].get("port") != port:
            e(f"{where}: {probe} probes port {p['grpc'].get('port')}, the server listens on {port}")
    if c.get("startupProbe") and (c["startupProbe"].get("grpc") or {}).get("port") != port:
        e(f"{where}: startupProbe does not probe port {port}")
    res = c.get("resources") or {}
    for k in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(res.get(k) or {}):
            e(f"{where}: resources.{k} needs cpu and memory")
    # Config: the ConfigMap (through envFrom) and any inline env.
    env = {x["name"]: x.get("value") for x in c.get("env") or []}
    configmaps = {d["metadata"]["name"]: d for _, d in by_kind.get("ConfigMap", [])}
    refs = [x["configMapRef"]["name"] for x in c.get("envFrom") or [] if "configMapRef" in x]
    if not refs:
        e(f"{where}: config does not come from a ConfigMap (envFrom)")
    for ref in refs:
        if ref not in configmaps:
            e(f"{where}: envFrom names ConfigMap {ref!r}, which is not defined")
        else:
            env.update(configmaps[ref].get("data") or {})
    for k in env:
        if k not in env_names:
            e(f"k8s: config variable {k} is not one traind reads")
    if "TRAIND_LISTEN" in env and listen_port(env["TRAIND_LISTEN"]) != port:
        e(f"k8s: TRAIND_LISTEN {env['TRAIND_LISTEN']} is not port {port}")
    data_dir = env.get("TRAIND_DATA_DIR", facts.get("data_dir"))
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts") or []}
    claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or []]
    if not any(mounts.get(cl) == data_dir for cl in claims):
        e(f"{where}: no volumeClaimTemplate mounted at {data_dir}")
    for t in spec.get("volumeClaimTemplates") or []:
        if not ((t.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage"):
            e(f"{where}: volumeClaimTemplate {t['metadata']['name']} requests no storage")
    secrets = {d["metadata"]["name"] for _, d in by_kind.get("Secret", [])}
    secret_vols = {v["name"]: v["secret"].get("secretName") for v in pod.get("volumes") or []
                   if "secret" in v}
    if not any(n in mounts and s in secrets for n, s in secret_vols.items()):
        e(f"{where}: the token Secret {sorted(secrets)} is not mounted")
    sc = pod.get("securityContext") or {}
    if not sc.get("runAsNonRoot") or sc.get("runAsUser") != facts.get("uid"):
        e(f"{where}: must run as non-root uid {facts.get('uid')} (the image's traind user)")
    if sc.get("fsGroup") is None:
        e(f"{where}: fsGroup unset: the volume would not be writable by the traind user")
    grace = float(env.get("TRAIND_GRACE_PERIOD", facts.get("grace", 10)))
    if pod.get("terminationGracePeriodSeconds", 30) <= grace:
        e(f"{where}: terminationGracePeriodSeconds must exceed TRAIND_GRACE_PERIOD ({grace})")
    for fname2, svc in by_kind.get("Service", []):
        ss = svc.get("spec") or {}
        sel2 = ss.get("selector") or {}
        if not sel2 or any(labels.get(k) != v for k, v in sel2.items()):
            e(f"k8s/{fname2}: Service {svc['metadata']['name']} selects {sel2}, not the pods")
        for p in ss.get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            if named_ports.get(tp, tp) != port:
                e(f"k8s/{fname2}: Service {svc['metadata']['name']} targets {tp}, not {port}")
    for fname2, pdb in by_kind.get("PodDisruptionBudget", []):
        ps = pdb.get("spec") or {}
        sel2 = (ps.get("selector") or {}).get("matchLabels") or {}
        if not sel2 or any(labels.get(k) != v for k, v in sel2.items()):
            e(f"k8s/{fname2}: PodDisruptionBudget selects {sel2}, not the pods")
        if ("minAvailable" in ps) == ("maxUnavailable" in ps):
            e(f"k8s/{fname2}: set exactly one of minAvailable / maxUnavailable")
    for fname2, k in by_kind.get("Kustomization", []):
        for r in k.get("resources") or []:
            if not os.path.exists(os.path.join(DEPLOY, "k8s", r)):
                e(f"k8s/{fname2}: resource {r} does not exist")


# ---- systemd -------------------------------------------------------------------------------


def check_systemd(traind_bin, errors):
    unit_path = os.path.join(DEPLOY, "systemd", "traind.service")
    unit = read(unit_path)
    e = lambda msg: errors.append(f"traind.service: {msg}")  # noqa: E731
    for want in ("ProtectSystem=strict", "NoNewPrivileges=yes", "Restart=on-failure",
                 "StateDirectory=traind", "EnvironmentFile=", "KillSignal=SIGTERM"):
        if want not in unit:
            e(f"{want} is missing")
    if "DynamicUser=yes" not in unit and not re.search(r"^User=(?!root)\S+", unit, re.M):
        e("needs DynamicUser=yes or a dedicated User=")
    exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        e("systemd-analyze not found (deploy/test/install-container-tools.sh installs it)")
        return
    if not os.access(traind_bin, os.X_OK):
        e(f"{traind_bin} (for ExecStart) is not an executable; build traind_daemon first")
        return
    # verify wants the unit's binary and the standard units (sysinit.target, ...) under
    # its root: a scratch root with the real traind at the ExecStart path.
    with tempfile.TemporaryDirectory(prefix="traind-unit-") as root:
        os.makedirs(os.path.join(root, "etc/systemd/system"))
        os.makedirs(os.path.dirname(os.path.join(root, exec_start.lstrip("/"))))
        shutil.copy(traind_bin, os.path.join(root, exec_start.lstrip("/")))
        shutil.copy(unit_path, os.path.join(root, "etc/systemd/system/traind.service"))
        units = next(d for d in ("/usr/lib/systemd/system", "/lib/systemd/system")
                     if os.path.exists(os.path.join(d, "sysinit.target")))
        shutil.copytree(units, os.path.join(root, "usr/lib/systemd/system"), symlinks=True)
        r = subprocess.run([analyze, "verify", f"--root={root}", "traind.service"],
                           capture_output=True, text=True)
        # verify exits 0 on lines it ignores ("Failed to parse ..., ignoring"): any
        # output at all is a finding.
        out = (r.stdout + r.stderr).strip()
        if r.returncode or out:
            e(f"systemd-analyze verify (exit {r.returncode}):\n{out}")
        r = subprocess.run([analyze, "security", "--offline=yes", f"--root={root}",
                            "--threshold=20", "--no-pager", "traind.service"],
                           capture_output=True, text=True)
        score = re.search(r"Overall exposure level for traind.service: (\S+)", r.stdout)
        print(f"check_manifests: systemd-analyze security: exposure "
              f"{score.group(1) if score else '?'} (of 10; must be <= 2.0)")
        if r.returncode:
            e(f"systemd-analyze security: exposure above 2.0 (exit {r.returncode})\n"
              f"{r.stdout[-2000:]}{r.stderr}")


# ---- proving the checks can fail -----------------------------------------------------------


def _sts_container(docs):
    return next(d for _, d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"][
        "containers"][0]


MUTATIONS = [
    ("k8s readiness probe on another port",
     lambda c, k: _sts_container(k)["readinessProbe"]["grpc"].update(port=50052)),
    ("k8s liveness probe not grpc",
     lambda c, k: _sts_container(k)["livenessProbe"].pop("grpc")),
    ("k8s image renamed",
     lambda c, k: _sts_container(k).update(image="other:1")),
    ("k8s unknown config variable",
     lambda c, k: next(d for _, d in k if d["kind"] == "ConfigMap")["data"].update(
         TRAIND_LISTN="0.0.0.0:50051")),
    ("k8s no resources",
     lambda c, k: _sts_container(k).pop("resources")),
    ("k8s service targets another port",
     lambda c, k: next(d for _, d in k if d["kind"] == "Service")["spec"]["ports"][0].update(
         targetPort=8080)),
    ("k8s PDB missing",
     lambda c, k: k.__setitem__(slice(None), [x for x in k if x[1]["kind"] != "PodDisruptionBudget"])),
    ("compose healthcheck on another port",
     lambda c, k: c["services"]["traind"]["healthcheck"].update(
         test=["CMD", "trainctl", "--server", "127.0.0.1:9999", "health"])),
    ("compose volume not named",
     lambda c, k: c["services"]["traind"].update(volumes=["./data:/var/lib/traind"])),
    ("compose unknown env",
     lambda c, k: c["services"]["traind"]["environment"].update(TRAIND_PORT="1")),
    ("compose no restart", lambda c, k: c["services"]["traind"].pop("restart")),
]


def self_test(compose, docs, facts, env_names):
    failures = []
    for name, mutate in MUTATIONS:
        c, k = copy.deepcopy(compose), copy.deepcopy(docs)
        mutate(c, k)
        errs = []
        check_compose(c, facts, env_names, errs)
        check_k8s(k, facts, env_names, errs)
        if not errs:
            failures.append(f"self-test: breakage not detected: {name}")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traind", default=os.path.join(ROOT, "build", "server", "traind"))
    args = ap.parse_args()

    env_names = config_env_names()
    errors = []
    facts = dockerfile_facts(parse_dockerfile(read(os.path.join(DEPLOY, "Dockerfile"))),
                             env_names, install_deps_packages(), errors)
    compose = yaml.safe_load(read(os.path.join(DEPLOY, "compose.yaml")))
    docs = k8s_docs(sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))))
    check_compose(compose, facts, env_names, errors)
    check_k8s(docs, facts, env_names, errors)
    if not os.path.exists(os.path.join(ROOT, ".dockerignore")):
        errors.append(".dockerignore is missing")
    else:
        ignored = read(os.path.join(ROOT, ".dockerignore")).split()
        for want in (".git", "build*/"):
            if want not in ignored:
                errors.append(f".dockerignore does not exclude {want}")
    check_systemd(args.traind, errors)
    if not errors:
        errors += self_test(compose, docs, facts, env_names)
    for msg in errors:
        print(f"FAIL {msg}")
    if errors:
        return 1
    print(f"check_manifests: OK (Dockerfile, compose.yaml, {len(docs)} k8s documents, "
          f"traind.service; {len(MUTATIONS)} breakages detected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
