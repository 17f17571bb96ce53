# exitgw production image. The build stage runs the same installer and build script that CI
# runs (tools/install-deps, tools/build), so what CI proves is what the image contains.
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN EXITGW_HUGEPAGES=0 tools/install-deps && tools/build release

FROM debian:12
RUN apt-get update && apt-get install -y --no-install-recommends \
      libdpdk23 dpdk libipsec-mb1 libsodium23 libssl3 libprometheus-cpp-core1.0 \
      libgflags2.2 libcpp-httplib0.11 wireguard-tools iproute2 ethtool curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/control/exitgw /usr/local/bin/exitgw
COPY conf/ /etc/exitgw/
# Run on bare metal with: --privileged (or CAP_NET_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK,
# CAP_SYS_ADMIN), -v /dev/hugepages:/dev/hugepages, --device /dev/vfio, host networking for
# af_packet/af_xdp; bind the NIC's VFs to vfio-pci on the host first (see README, Operation).
ENTRYPOINT ["/usr/local/bin/exitgw"]
CMD ["-l", "0-1", "--", "--flagfile=/etc/exitgw/exitgw.flags"]
