// ICMP errors the worker's rate limit holds back are counted per worker (they were silently
// skipped): the packet that caused each is dropped under its own reason, the error under
// icmp_errors_rate_limited.
#include <gtest/gtest.h>

#include "common/dataplane_context.h"
#include "dataplane/worker.h"
#include "tests/support/eal_environment.h"

namespace exitgw {
namespace {

EXITGW_EAL_ENVIRONMENT("icmp_rate_limit_test", 64);

TEST(IcmpRateLimit, ErrorsBeyondTheBurstAreHeldBackAndCountedPerWorker) {
  dp::DataplaneContext ctx;
  ctx.n_workers = 2;
  ctx.icmp_burst = 3;
  ctx.icmp_rate_per_sec = 0;  // no refill: exactly the burst goes out
  dp::Worker w0(ctx, 0), w1(ctx, 1);
  int sent = 0;
  for (int i = 0; i < 10; ++i) sent += w0.icmp_error_within_rate();
  EXPECT_EQ(sent, 3);
  EXPECT_EQ(ctx.workers[0].counters.icmp_errors_rate_limited.get(), 7u);
  EXPECT_EQ(ctx.workers[1].counters.icmp_errors_rate_limited.get(), 0u);
  EXPECT_TRUE(w1.icmp_error_within_rate());  // each worker has its own bucket
}

}  // namespace
}  // namespace exitgw
