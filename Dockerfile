# exitgw production image. The build stage runs the same installer and build script that CI
# runs (tools/install-deps, tools/build), so what CI proves is what the image contains.
FROM debian:12 AS build
# exitgw-connector is Go (connector/go.mod needs Go >= 1.26.6; Debian 12 has 1.19).
COPY --from=golang:1.26.8-bookworm /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH
WORKDIR /src
COPY . .
RUN EXITGW_HUGEPAGES=0 tools/install-deps && tools/build release

FROM debian:12
# Runtime only: the DPDK libraries exitgw links, the mempool driver, and the poll-mode drivers
# for the NICs an exit fleet runs (Intel E810/X710/82599 and their SR-IOV VFs, Mellanox
# ConnectX) plus af_packet/af_xdp/memif/null for hosts without a spare NIC.
RUN apt-get update && apt-get install -y --no-install-recommends \
      librte-acl23 librte-eal23 librte-ethdev23 librte-hash23 librte-kvargs23 librte-lpm23 \
      librte-mbuf23 librte-mempool23 librte-mempool-ring23 librte-meter23 librte-net23 \
      librte-rcu23 librte-ring23 librte-telemetry23 librte-bus-pci23 librte-bus-vdev23 \
      librte-net-iavf23 librte-net-ice23 librte-net-i40e23 librte-net-ixgbe23 \
      librte-net-mlx5-23 librte-net-af-packet23 librte-net-af-xdp23 librte-net-memif23 \
      librte-net-null23 libipsec-mb1 libsodium23 libssl3 libprometheus-cpp-core1.0 \
      libgflags2.2 libcpp-httplib0.11 libhyperscan5 wireguard-tools iproute2 ethtool curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/control/exitgw /usr/local/bin/exitgw
# The tailnet connector (a second container from this image: --entrypoint exitgw-connector).
COPY --from=build /src/build/connector/exitgw-connector /usr/local/bin/exitgw-connector
COPY conf/ /etc/exitgw/
# /etc/exitgw/private.key (chmod 600), peers.conf, policy.hujson and approvals.conf are the
# operator's: mount them over the examples.
# Run on bare metal with: --privileged (or CAP_NET_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK,
# CAP_SYS_ADMIN), -v /dev/hugepages:/dev/hugepages, --device /dev/vfio, host networking for
# af_packet/af_xdp; bind the NIC's VFs to vfio-pci on the host first (see README, Operation).
ENTRYPOINT ["/usr/local/bin/exitgw"]
CMD ["-l", "0-1", "--", "--flagfile=/etc/exitgw/exitgw.flags"]
