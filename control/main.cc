// exitgw: EAL arguments, "--", then the daemon's flags. Never reads standard input.
#include <csignal>
#include <cstdio>
#include <cstring>

#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include "control/af_packet_fanout.h"
#include "control/flags.h"
#include "control/gateway.h"
#include "control/log.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop.store(true);
}

const char* eal_hint(int err) {
  if (geteuid() != 0)
    return "exitgw needs root (or CAP_NET_RAW, CAP_NET_ADMIN, CAP_IPC_LOCK, CAP_SYS_ADMIN) for "
           "DPDK devices and memory";
  switch (err) {
    case ENOMEM:
      return "no DPDK memory: reserve hugepages (echo 512 > /proc/sys/vm/nr_hugepages; mount -t "
             "hugetlbfs nodev /dev/hugepages) or pass --no-huge -m 512";
    case EALREADY:
      return "EAL was initialised twice";
    case ENODEV:
    case ENOENT:
      return "a device was not found: check the --vdev interface names and PCI addresses";
    default:
      return "check the EAL arguments before '--' (run with --help for the daemon's flags); "
             "another DPDK process may be using the same --file-prefix";
  }
}

// EAL has created the ports: af_packet's queue sockets must have joined their fanout groups
// without the kernel's IPv4 reassembly (control/af_packet_fanout.cc), or fragments from the
// internet reach the NAT reassembled and cut at the ring's frame size.
void check_af_packet_fanout() {
  unsigned af_packet_ports = 0;
  uint16_t pid;
  RTE_ETH_FOREACH_DEV(pid) {
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(pid, &info) == 0 && info.driver_name != nullptr &&
        std::strcmp(info.driver_name, "net_af_packet") == 0)
      ++af_packet_ports;
  }
  if (af_packet_ports == 0) return;
  const unsigned removed = exitgw::af_packet_defrag_removed();
  if (removed == 0)
    exitgw::log_warn(
        "af_packet: the driver's fanout join did not pass through exitgw's setsockopt, so the "
        "kernel reassembles IPv4 fragments before exitgw sees them (datagrams longer than the "
        "ring frame arrive cut and are dropped as ipv4_bad_total_length)");
  else
    exitgw::log_info("af_packet: " + std::to_string(removed) +
                     " queue socket(s) joined their fanout group without kernel IPv4 "
                     "reassembly; fragments reach exitgw as fragments");
}

}  // namespace

int main(int argc, char** argv) {
  // Signals first: a SIGTERM during start-up still ends in a clean exit.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  gflags::SetUsageMessage(
      "exitgw [EAL options] -- [--flagfile=conf/exitgw.flags] [flags]\n"
      "A DPDK WireGuard exit gateway. EAL options select lcores and ports, e.g.\n"
      "  exitgw -l 0-1 --no-pci --vdev=net_af_packet0,iface=veth0,qpairs=2 -- "
      "--tunnel_port=net_af_packet0");
  gflags::SetVersionString("0.1");
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      gflags::ShowUsageWithFlagsRestrict(argv[0], "control/flags.cc");
      return 0;
    }
  }
  const int consumed = rte_eal_init(argc, argv);
  if (consumed < 0) {
    const int err = rte_errno;
    std::fprintf(stderr, "exitgw: DPDK EAL initialisation failed: %s\nexitgw: %s\n",
                 rte_strerror(err), eal_hint(err));
    return 1;
  }
  argc -= consumed;
  argv += consumed;
  check_af_packet_fanout();
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc > 1) {
    std::fprintf(stderr, "exitgw: unexpected argument '%s' (flags take --name=value)\n", argv[1]);
    rte_eal_cleanup();
    return 1;
  }
  int rc = 1;
  {
    exitgw::Gateway gw;
    if (exitgw::Status s = gw.init(); !s) {
      exitgw::log_error(s.error());
    } else {
      rc = gw.run(g_stop);
    }
  }
  rte_eal_cleanup();
  return rc;
}
