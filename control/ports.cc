// Port bring-up: validate queue counts against what the device offers, explain shortfalls.
#include "control/ports.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>

#include <rte_ethdev.h>

namespace exitgw {

std::string port_name(uint16_t port_id) {
  char name[RTE_ETH_NAME_MAX_LEN] = {};
  if (rte_eth_dev_get_name_by_port(port_id, name) != 0) return "port" + std::to_string(port_id);
  return name;
}

static std::string available_ports() {
  std::string s;
  uint16_t pid;
  RTE_ETH_FOREACH_DEV(pid) {
    if (!s.empty()) s += ", ";
    s += std::to_string(pid) + "=" + port_name(pid);
  }
  return s.empty() ? "none (give a PCI device bound to vfio-pci, or --vdev=net_af_packet0,iface=IF)"
                   : s;
}

Result<uint16_t> find_port(const std::string& spec) {
  uint16_t pid = 0;
  const auto [p, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), pid);
  if (ec == std::errc() && p == spec.data() + spec.size()) {
    if (!rte_eth_dev_is_valid_port(pid))
      return make_error("no DPDK port number " + spec + "; available: " + available_ports());
    return pid;
  }
  if (rte_eth_dev_get_port_by_name(spec.c_str(), &pid) != 0)
    return make_error("no DPDK port named '" + spec + "'; available: " + available_ports());
  return pid;
}

Result<uint16_t> start_port(uint16_t port_id, const PortOptions& opt, rte_mempool* pool,
                            std::string* notes) {
  const std::string name = port_name(port_id);
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0)
    return make_error("port " + name + ": cannot read device info: " + rte_strerror(-rc));
  unsigned nb_rx = opt.workers;
  const unsigned nb_tx = opt.workers + 1;
  // af_packet spreads frames over all its qpair sockets by the kernel's fanout hash, configured
  // or not: every one must be polled, or the flows hashed to it vanish.
  if (std::string(info.driver_name) == "net_af_packet")
    nb_rx = std::max(nb_rx, unsigned{info.max_rx_queues});
  // The TAP/TUN driver wants as many RX queues as TX queues (one kernel queue fd each); the
  // kernel spreads its packets over all of them, and the workers poll every one.
  const std::string driver = info.driver_name;
  if (driver == "net_tap" || driver == "net_tun") nb_rx = nb_tx;
  if (info.max_rx_queues < nb_rx || info.max_tx_queues < nb_tx)
    return make_error("port " + name + " offers " + std::to_string(info.max_rx_queues) +
                      " RX and " + std::to_string(info.max_tx_queues) + " TX queues, but " +
                      std::to_string(opt.workers) + " worker(s) need " + std::to_string(nb_rx) +
                      " RX and " + std::to_string(nb_tx) +
                      " TX (one per worker plus one for control); for af_packet add "
                      "qpairs=" +
                      std::to_string(nb_tx) + " to the --vdev arguments");
  rte_eth_conf conf{};
  if (nb_rx > 1 && opt.rss && info.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
  } else if (nb_rx > 1) {
    *notes += "port " + name +
              " has no RSS; flows spread over queues only if the device does it itself "
              "(af_packet: kernel fanout hash). ";
  }
  // Let the NIC verify checksums where it can; software checks whatever it leaves unknown.
  conf.rxmode.offloads =
      info.rx_offload_capa &
      (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
  if (int rc = rte_eth_dev_configure(port_id, nb_rx, nb_tx, &conf); rc != 0)
    return make_error("port " + name + ": configure failed: " + rte_strerror(-rc));
  uint16_t rx_desc = opt.rx_desc, tx_desc = opt.tx_desc;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_desc, &tx_desc); rc != 0)
    return make_error("port " + name + ": descriptor counts refused: " + rte_strerror(-rc));
  const int socket = rte_eth_dev_socket_id(port_id);
  for (unsigned q = 0; q < nb_rx; ++q) {
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    if (int rc = rte_eth_rx_queue_setup(port_id, q, rx_desc, socket, &rxconf, pool); rc != 0)
      return make_error("port " + name + ": RX queue " + std::to_string(q) +
                        " setup failed: " + rte_strerror(-rc));
  }
  for (unsigned q = 0; q < nb_tx; ++q) {
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    if (int rc = rte_eth_tx_queue_setup(port_id, q, tx_desc, socket, &txconf); rc != 0)
      return make_error("port " + name + ": TX queue " + std::to_string(q) +
                        " setup failed: " + rte_strerror(-rc));
  }
  if (int rc = rte_eth_dev_start(port_id); rc != 0)
    return make_error("port " + name + ": start failed: " + rte_strerror(-rc));
  return static_cast<uint16_t>(nb_rx);
}

// True when the kernel interface if_index is up and has carrier (IFF_UP and IFF_RUNNING).
static bool kernel_interface_up(unsigned if_index) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  ifr.ifr_ifindex = static_cast<int>(if_index);
  const bool up = ioctl(fd, SIOCGIFNAME, &ifr) == 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 &&
                  (ifr.ifr_flags & IFF_UP) != 0 && (ifr.ifr_flags & IFF_RUNNING) != 0;
  close(fd);
  return up;
}

bool port_link_up(uint16_t port_id) {
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port_id, &link) != 0 || link.link_status != RTE_ETH_LINK_UP)
    return false;
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port_id, &info) != 0) return false;
  return info.if_index == 0 || kernel_interface_up(info.if_index);
}

}  // namespace exitgw
