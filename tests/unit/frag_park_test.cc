// The fragment park: bounded holding of fragments that beat their first one, order kept,
// owners learned at the home worker, and every fragment that cannot wait counted as a drop.
#include "dataplane/frag_park.h"

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/dataplane_context.h"
#include "dataplane/worker.h"
#include "tests/support/eal_environment.h"

namespace exitgw::dp {
namespace {

EXITGW_EAL_ENVIRONMENT("frag_park_test", 128);

struct Bed {
  Bed() {
    static int n = 0;
    pool = rte_pktmbuf_pool_create(("fp" + std::to_string(n++)).c_str(), 1023, 0,
                                   sizeof(PacketMeta), RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ctx = std::make_unique<DataplaneContext>();
    ctx->n_workers = 1;
    worker = std::make_unique<Worker>(*ctx, 0);
    park.set_timeout(1000);
  }
  ~Bed() {
    worker->flush();
    rte_mempool_free(pool);
  }
  rte_mbuf* mbuf() {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    meta(m)->in_port = 0;
    return m;
  }
  uint64_t drops(DropReason r) const {
    return ctx->workers[0].counters.drops[0][static_cast<size_t>(r)].get();
  }
  rte_mempool* pool;
  std::unique_ptr<DataplaneContext> ctx;
  std::unique_ptr<Worker> worker;
  FragmentPark park;
};

FragmentPark::Key key(uint16_t id, bool inbound = true) {
  return FragmentPark::Key{0x0a000001, 0xcb007101, id, 17, static_cast<uint8_t>(inbound)};
}

TEST(FragmentPark, HeldFragmentsComeBackInArrivalOrderOnceAndOnlyForTheirDatagram) {
  Bed b;
  rte_mbuf* a[3] = {b.mbuf(), b.mbuf(), b.mbuf()};
  rte_mbuf* other = b.mbuf();
  for (rte_mbuf* m : a) ASSERT_TRUE(b.park.hold(*b.worker, key(1), m, 10));
  ASSERT_TRUE(b.park.hold(*b.worker, key(2), other, 10));
  ASSERT_TRUE(b.park.hold(*b.worker, key(1, false), b.mbuf(), 10));  // the other direction
  rte_mbuf* out[FragmentPark::kHeld];
  ASSERT_EQ(b.park.release(key(1), out), 3u);
  EXPECT_EQ(out[0], a[0]);
  EXPECT_EQ(out[1], a[1]);
  EXPECT_EQ(out[2], a[2]);
  EXPECT_EQ(b.park.release(key(1), out), 0u);
  ASSERT_EQ(b.park.release(key(2), out), 1u);
  EXPECT_EQ(out[0], other);
  for (rte_mbuf* m : a) rte_pktmbuf_free(m);
  rte_pktmbuf_free(other);
  b.park.expire(*b.worker, UINT64_MAX);  // the other direction's fragment: dropped, counted
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), 1u);
  EXPECT_FALSE(b.park.holding());
}

TEST(FragmentPark, ADatagramHoldsAtMostKHeldFragments) {
  Bed b;
  for (unsigned i = 0; i < FragmentPark::kHeld; ++i)
    ASSERT_TRUE(b.park.hold(*b.worker, key(7), b.mbuf(), 0));
  rte_mbuf* extra = b.mbuf();
  EXPECT_FALSE(b.park.hold(*b.worker, key(7), extra, 0));  // the caller drops it
  rte_pktmbuf_free(extra);
  b.park.expire(*b.worker, UINT64_MAX);
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), FragmentPark::kHeld);
}

TEST(FragmentPark, TheTableIsBoundedAndRefusesRatherThanEvictsWaitingDatagrams) {
  Bed b;
  unsigned held = 0, refused = 0;
  for (uint16_t id = 0; id < 1000; ++id) {
    rte_mbuf* m = b.mbuf();
    if (b.park.hold(*b.worker, key(id), m, 0)) {
      ++held;
    } else {
      ++refused;
      rte_pktmbuf_free(m);
    }
  }
  EXPECT_LE(held, FragmentPark::kSets * FragmentPark::kWays);
  EXPECT_GT(refused, 0u);
  EXPECT_EQ(b.drops(DropReason::kFragmentParkFull), 0u);  // nothing waiting was thrown out
  b.park.expire(*b.worker, 999);                          // not yet due
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), 0u);
  b.park.expire(*b.worker, 1000);
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), held);
  EXPECT_FALSE(b.park.holding());
  // Room again once the old ones timed out.
  EXPECT_TRUE(b.park.hold(*b.worker, key(5), b.mbuf(), 2000));
  b.park.expire(*b.worker, UINT64_MAX);
}

TEST(FragmentPark, HomeWorkerLearnsTheOwnerFromTheFirstFragmentAndKeepsIt) {
  Bed b;
  rte_mbuf* early = b.mbuf();
  ASSERT_EQ(b.park.owner(key(9), 0), FragmentPark::kNoOwner);
  ASSERT_TRUE(b.park.hold(*b.worker, key(9), early, 0));
  rte_mbuf* out[FragmentPark::kHeld];
  ASSERT_EQ(b.park.learn(*b.worker, key(9), 1, 5, out), 1u);
  EXPECT_EQ(out[0], early);
  EXPECT_EQ(b.park.owner(key(9), 6), 1u);  // later fragments go straight to worker 1
  EXPECT_EQ(b.park.release(key(9), out), 0u);
  EXPECT_EQ(b.park.owner(key(9), 7), 1u);                         // release keeps a learned owner
  EXPECT_EQ(b.park.owner(key(9), 2000), FragmentPark::kNoOwner);  // until the timeout
  rte_pktmbuf_free(early);
}

TEST(FragmentPark, LearningEvictsTheOldestDatagramAndCountsWhatItHeld) {
  Bed b;
  // Fill the table until a hold is refused: that key's set is full of waiting datagrams.
  uint16_t refused = 0;
  for (uint16_t id = 1; id < 1000 && refused == 0; ++id) {
    rte_mbuf* m = b.mbuf();
    if (!b.park.hold(*b.worker, key(id), m, id)) {
      rte_pktmbuf_free(m);
      refused = id;
    }
  }
  ASSERT_NE(refused, 0);
  // Its first fragment arrives at the home worker: the owner must be learned, so the oldest
  // waiting datagram of the set gives way and its fragment is a counted drop.
  rte_mbuf* out[FragmentPark::kHeld];
  EXPECT_EQ(b.park.learn(*b.worker, key(refused), 1, 1000, out), 0u);
  EXPECT_EQ(b.drops(DropReason::kFragmentParkFull), 1u);
  EXPECT_EQ(b.park.owner(key(refused), 1001), 1u);
  b.park.expire(*b.worker, UINT64_MAX);
}

}  // namespace
}  // namespace exitgw::dp
