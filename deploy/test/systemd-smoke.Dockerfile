# make test-deploy's check that deploy/systemd/traind.service really runs
# traind under systemd (DynamicUser, StateDirectory, the sandboxing options):
# systemd as PID 1 in a container, with the binaries of the image under test.
# Context: deploy/systemd.
ARG BASE=debian:bookworm-slim
ARG IMAGE=traind:latest
FROM ${IMAGE} AS bin

FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      systemd systemd-sysv procps \
      libgrpc29 libuv1 libprotobuf-c1 libopenblas0-pthread libjansson4 \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=bin /usr/local/bin/ /usr/local/bin/
COPY traind.service /etc/systemd/system/traind.service
RUN systemctl enable traind.service
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/lib/systemd/systemd"]
