// The daemon's setsockopt: af_packet's fanout groups without the kernel's IPv4 reassembly,
// every other socket option passed through (control/af_packet_fanout.cc).
#include "control/af_packet_fanout.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

namespace exitgw {
namespace {

// DPDK 22.11 drivers/net/af_packet: (getpid() ^ ifindex) & 0xffff, hash mode, defrag, rollover.
constexpr unsigned kDpdkFlags =
    PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG | PACKET_FANOUT_FLAG_ROLLOVER;

TEST(FanoutWithoutDefrag, TakesOffTheDefragFlagAndKeepsGroupModeAndOtherFlags) {
  EXPECT_EQ(fanout_without_defrag(0x1234u | kDpdkFlags << 16),
            0x1234u | (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_ROLLOVER) << 16);
  const unsigned lb = 0xbeefu | (PACKET_FANOUT_LB | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
  EXPECT_EQ(fanout_without_defrag(lb), lb);
  EXPECT_EQ(fanout_without_defrag(0xffffu | unsigned{PACKET_FANOUT_FLAG_DEFRAG} << 16), 0xffffu);
}

using SetsockoptFn = int (*)(int, int, int, const void*, socklen_t);

// The definition a library loaded with dlopen() (as EAL loads DPDK's drivers) binds to: the
// executable's only if the executable exports it.
SetsockoptFn global_setsockopt() {
  return reinterpret_cast<SetsockoptFn>(dlsym(RTLD_DEFAULT, "setsockopt"));
}

TEST(AfPacketFanout, ADriverJoiningWithDefragGetsAGroupWithoutIt) {
  const int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0 && (errno == EPERM || errno == EACCES))
    GTEST_SKIP() << "AF_PACKET sockets need CAP_NET_RAW (run as root)";
  ASSERT_GE(fd, 0) << std::strerror(errno);
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
  ASSERT_NE(ll.sll_ifindex, 0);
  ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&ll), sizeof(ll)), 0)
      << std::strerror(errno);
  // The kernel picks the group id (UNIQUEID, a flag it does not keep), so no other process's
  // group can clash.
  const unsigned before = af_packet_defrag_removed();
  const int arg = static_cast<int>((kDpdkFlags | PACKET_FANOUT_FLAG_UNIQUEID) << 16);
  const SetsockoptFn join = global_setsockopt();
  ASSERT_NE(join, nullptr);
  ASSERT_EQ(join(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)), 0) << std::strerror(errno);
  EXPECT_EQ(af_packet_defrag_removed(), before + 1);
  // getsockopt(PACKET_FANOUT): id | mode << 16 | flags << 24 (the flags' high byte).
  unsigned got = 0;
  socklen_t len = sizeof(got);
  ASSERT_EQ(getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &len), 0) << std::strerror(errno);
  EXPECT_EQ((got >> 16) & 0xffu, unsigned{PACKET_FANOUT_HASH});
  const unsigned flags = (got >> 24) << 8;
  EXPECT_EQ(flags & PACKET_FANOUT_FLAG_DEFRAG, 0u) << "the kernel would reassemble fragments";
  EXPECT_NE(flags & PACKET_FANOUT_FLAG_ROLLOVER, 0u);
  close(fd);
}

TEST(AfPacketFanout, OtherSocketOptionsPassThroughUnchanged) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const SetsockoptFn set = global_setsockopt();
  ASSERT_NE(set, nullptr);
  const unsigned before = af_packet_defrag_removed();
  const int on = 1;
  ASSERT_EQ(set(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0) << std::strerror(errno);
  int got = 0;
  socklen_t len = sizeof(got);
  ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &got, &len), 0);
  EXPECT_EQ(got, 1);
  // A bad call still fails as the C library fails it.
  errno = 0;
  EXPECT_EQ(set(-1, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(af_packet_defrag_removed(), before);
  close(fd);
}

}  // namespace
}  // namespace exitgw
