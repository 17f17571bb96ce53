#include "control/exception_port.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <rte_ethdev.h>

#include "control/log.h"
#include "control/net_parse.h"

namespace exitgw {

namespace {

constexpr uint32_t kTailnetRange = 0x64400000;  // 100.64.0.0/10
constexpr uint32_t kTailnetMask = 0xffc00000;

// One ioctl on a throwaway AF_INET socket; the error names the interface and the request.
Status interface_ioctl(const std::string& name, unsigned long request, ifreq& ifr,
                       const char* what) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("exception port: socket: ") + std::strerror(errno));
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  const int rc = ioctl(fd, request, &ifr);
  const int err = errno;
  close(fd);
  if (rc != 0)
    return make_error("exception port " + name + ": cannot " + what + ": " + std::strerror(err));
  return Ok{};
}

void set_sockaddr(sockaddr& sa, uint32_t host_order) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(host_order);
  std::memcpy(&sa, &sin, sizeof(sin));
}

}  // namespace

Result<ExceptionInterface> ExceptionInterface::open(uint16_t port_id, uint16_t mtu) {
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0)
    return make_error(std::string("exception port: cannot read device info: ") + rte_strerror(-rc));
  char name[IF_NAMESIZE] = {};
  if (info.if_index == 0 || if_indextoname(info.if_index, name) == nullptr)
    return make_error(std::string("exception port: the driver ") + info.driver_name +
                      " has no kernel interface; use a TUN, e.g. --vdev=net_tun0,iface=exitgw0");
  ExceptionInterface e;
  e.name_ = name;
  ifreq ifr{};
  ifr.ifr_mtu = mtu;
  if (Status s = interface_ioctl(e.name_, SIOCSIFMTU, ifr, "set the MTU"); !s)
    return make_error(s.error());
  // IPv4 only for now: without this the kernel sends router solicitations into the TUN.
  std::ofstream(std::string("/proc/sys/net/ipv6/conf/") + e.name_ + "/disable_ipv6") << "1\n";
  ifr = {};
  if (Status s = interface_ioctl(e.name_, SIOCGIFFLAGS, ifr, "read the flags"); !s)
    return make_error(s.error());
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (Status s = interface_ioctl(e.name_, SIOCSIFFLAGS, ifr, "bring the interface up"); !s)
    return make_error(s.error());
  return e;
}

Status ExceptionInterface::set_address(uint32_t addr) {
  if (addr == addr_) return Ok{};
  ifreq ifr{};
  set_sockaddr(ifr.ifr_addr, addr);
  if (Status s = interface_ioctl(name_, SIOCSIFADDR, ifr, "set the address"); !s) return s;
  addr_ = addr;
  if (addr == 0) return Ok{};
  const bool in_range = (addr & kTailnetMask) == kTailnetRange;
  ifr = {};
  set_sockaddr(ifr.ifr_netmask, in_range ? kTailnetMask : 0xffffffff);
  if (Status s = interface_ioctl(name_, SIOCSIFNETMASK, ifr, "set the netmask"); !s) return s;
  if (!in_range)
    log_warn("exception port " + name_ + ": the tailnet address " + format_ipv4(addr) +
             " is outside 100.64.0.0/10; the host can answer only peers it has routes for");
  return Ok{};
}

Status ExceptionInterface::set_relay_address(uint32_t addr, uint8_t prefix_len) {
  const std::string label = name_ + ":r";
  if (label.size() >= IFNAMSIZ)
    return make_error("exception port " + name_ + ": the name is too long for the relay's label " +
                      label);
  ifreq ifr{};
  set_sockaddr(ifr.ifr_addr, addr);
  if (Status s = interface_ioctl(label, SIOCSIFADDR, ifr, "set the relay address"); !s) return s;
  ifr = {};
  set_sockaddr(ifr.ifr_netmask, prefix_len ? ~0u << (32 - prefix_len) : 0);
  return interface_ioctl(label, SIOCSIFNETMASK, ifr, "set the relay netmask");
}

}  // namespace exitgw
