// af_packet without the kernel's IPv4 reassembly. DPDK 22.11's af_packet driver joins every
// queue's socket to a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG, hard-coded (an
// upstream patch proposes a defrag=0 devarg). The kernel then reassembles IPv4 fragments
// before the ring sees them, holds incomplete datagrams out of sight, and cuts a datagram
// longer than the ring's frame (2048 bytes by default, 1982 of them packet) to the frame: a
// 3028-byte reply that left the internet as three fragments reached a worker as one 1982-byte
// frame whose IPv4 header said 3028 (ipv4_bad_total_length), and the NAT's fragment handling
// and the fragment park never saw a fragment. exitgw handles fragments itself, as it must
// behind a NIC, so the daemon defines setsockopt(2): PACKET_FANOUT without the defrag flag,
// every other call passed to the C library unchanged. The definition is linked into the daemon
// (and its unit test) only, and exported (--export-dynamic-symbol) so the driver, which EAL
// dlopen()s from DPDK's driver directory, binds to it. Every setsockopt of the process passes
// through here (the driver's while EAL creates the ports, the control thread's); no worker
// calls it.
#include "control/af_packet_fanout.h"

#include <dlfcn.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace exitgw {

namespace {

using SetsockoptFn = int (*)(int, int, int, const void*, socklen_t);

std::atomic<unsigned> g_defrag_removed{0};

SetsockoptFn c_library_setsockopt() noexcept {
  static const auto fn = reinterpret_cast<SetsockoptFn>(dlsym(RTLD_NEXT, "setsockopt"));
  return fn;
}

// PACKET_FANOUT takes an int or, since Linux 5.13, struct fanout_args (the int's 32 bits
// first, laid out as the int is on either byte order, then max_num_members).
constexpr socklen_t kFanoutArgsMax = 8;

}  // namespace

unsigned af_packet_defrag_removed() noexcept {
  return g_defrag_removed.load(std::memory_order_relaxed);
}

}  // namespace exitgw

extern "C" int setsockopt(int fd, int level, int name, const void* value, socklen_t len) noexcept {
  const exitgw::SetsockoptFn real = exitgw::c_library_setsockopt();
  if (real == nullptr) [[unlikely]] {
    errno = ENOSYS;
    return -1;
  }
  if (level != SOL_PACKET || name != PACKET_FANOUT || value == nullptr || len < sizeof(unsigned) ||
      len > exitgw::kFanoutArgsMax)
    return real(fd, level, name, value, len);
  unsigned char args[exitgw::kFanoutArgsMax];
  std::memcpy(args, value, len);
  unsigned arg;
  std::memcpy(&arg, args, sizeof(arg));
  if (arg == exitgw::fanout_without_defrag(arg)) return real(fd, level, name, value, len);
  arg = exitgw::fanout_without_defrag(arg);
  std::memcpy(args, &arg, sizeof(arg));
  const int rc = real(fd, level, name, args, len);
  if (rc == 0) exitgw::g_defrag_removed.fetch_add(1, std::memory_order_relaxed);
  return rc;
}
