#include "control/exception_port.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
// After netinet/in.h, whose definitions linux/in6.h then leaves alone: struct in6_ifreq.
#include <linux/ipv6.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <rte_ethdev.h>

#include "control/log.h"
#include "control/net_parse.h"

namespace exitgw {

namespace {

constexpr uint32_t kTailnetRange = 0x64400000;  // 100.64.0.0/10
constexpr uint32_t kTailnetMask = 0xffc00000;

// Tailscale's (and Headscale's) tailnet IPv6 range, fd7a:115c:a1e0::/48.
constexpr uint8_t kTailnetRange6[6] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
constexpr unsigned kTailnetPrefix6 = 48;

// One ioctl on a throwaway socket of `family`; the error names the interface and the request.
Status family_ioctl(int family, const std::string& name, unsigned long request, void* arg,
                    const char* what) {
  const int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("exception port: socket: ") + std::strerror(errno));
  const int rc = ioctl(fd, request, arg);
  const int err = errno;
  close(fd);
  if (rc != 0)
    return make_error("exception port " + name + ": cannot " + what + ": " + std::strerror(err));
  return Ok{};
}

Status interface_ioctl(const std::string& name, unsigned long request, ifreq& ifr,
                       const char* what) {
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return family_ioctl(AF_INET, name, request, &ifr, what);
}

// Adds (SIOCSIFADDR) or removes (SIOCDIFADDR) an IPv6 address, as `ip -6 addr` does.
Status address6_ioctl(const std::string& name, unsigned long request,
                      const std::array<uint8_t, 16>& addr, unsigned prefix_len, const char* what) {
  in6_ifreq req{};
  std::memcpy(&req.ifr6_addr, addr.data(), 16);
  req.ifr6_prefixlen = prefix_len;
  req.ifr6_ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (req.ifr6_ifindex == 0)
    return make_error("exception port " + name + ": cannot " + what + ": " + std::strerror(errno));
  return family_ioctl(AF_INET6, name, request, &req, what);
}

// Writes one of the interface's IPv6 settings in /proc/sys/net/ipv6/conf/NAME/.
Status write_ipv6_conf(const std::string& name, const char* key, const char* value) {
  const std::string path = "/proc/sys/net/ipv6/conf/" + name + "/" + key;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  const size_t len = std::strlen(value);
  const bool ok = fd >= 0 && ::write(fd, value, len) == static_cast<ssize_t>(len);
  const int err = errno;
  if (fd >= 0) close(fd);
  if (!ok)
    return make_error("write " + std::string(value) + " to " + path + ": " + std::strerror(err));
  return Ok{};
}

unsigned prefix_len6(const std::array<uint8_t, 16>& addr) {
  return std::memcmp(addr.data(), kTailnetRange6, sizeof(kTailnetRange6)) == 0 ? kTailnetPrefix6
                                                                               : 128;
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
  // IPv6 on (the lab's namespaces, and some hosts, start interfaces with it off), without a
  // link-local address: addr_gen_mode 1 first, so the kernel never has an address of its own to
  // send router solicitations or MLD reports from. On a TUN (IFF_NOARP) it runs no duplicate
  // address detection and joins no solicited-node group either.
  for (const auto& [key, value] : {std::pair{"addr_gen_mode", "1"}, {"disable_ipv6", "0"}}) {
    if (Status s = write_ipv6_conf(e.name_, key, value); !s) {
      e.ipv6_error_ = "cannot enable IPv6 (" + s.error() +
                      "): IPv6 needs a kernel with IPv6 on and --tunnel_mtu of at least 1280";
      log_error("exception port " + e.name_ + ": " + e.ipv6_error_ +
                "; the node's tailnet IPv6 address stays off the host");
      break;
    }
  }
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

Status ExceptionInterface::set_address6(const std::array<uint8_t, 16>& addr) {
  if (addr == addr6_) return Ok{};
  if (!ipv6_error_.empty()) return make_error("exception port " + name_ + ": " + ipv6_error_);
  static constexpr std::array<uint8_t, 16> kNone{};
  if (addr6_ != kNone) {
    if (Status s = address6_ioctl(name_, SIOCDIFADDR, addr6_, prefix_len6(addr6_),
                                  "remove the IPv6 address");
        !s)
      return s;
    addr6_ = kNone;
  }
  if (addr == kNone) return Ok{};
  const unsigned prefix_len = prefix_len6(addr);
  if (Status s = address6_ioctl(name_, SIOCSIFADDR, addr, prefix_len, "set the IPv6 address"); !s)
    return s;
  addr6_ = addr;
  if (prefix_len != kTailnetPrefix6)
    log_warn("exception port " + name_ + ": the tailnet address " + format_ipv6(addr.data()) +
             " is outside fd7a:115c:a1e0::/48; the host can answer only peers it has routes for");
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
