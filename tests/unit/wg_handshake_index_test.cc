// Receiver-index table: random unique non-zero indices, bounded, checked against a naive model.
#include "control/wg/index_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace exitgw::wg {
namespace {

TEST(WgHandshakeIndexTable, AllocatesDistinctNonZeroIndicesUpToCapacity) {
  IndexTable table(1000);
  std::set<uint32_t> seen;
  for (uint64_t i = 0; i < 1000; ++i) {
    auto index = table.allocate(i);
    ASSERT_TRUE(index.ok()) << index.error();
    EXPECT_NE(*index, 0u);
    EXPECT_TRUE(seen.insert(*index).second);
    EXPECT_EQ(table.lookup(*index), i);
  }
  auto full = table.allocate(1000);
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.error().find("full"), std::string::npos);
}

TEST(WgHandshakeIndexTable, ReleaseFreesASlotAndIsIdempotent) {
  IndexTable table(1);
  auto a = table.allocate(5);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(table.release(*a));
  EXPECT_FALSE(table.release(*a));
  EXPECT_FALSE(table.lookup(*a).has_value());
  EXPECT_TRUE(table.allocate(6).ok());
}

TEST(WgHandshakeIndexTable, MatchesNaiveModelOnRandomOperations) {
  IndexTable table(64);
  std::map<uint32_t, uint64_t> model;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 2 == 0) {
      auto index = table.allocate(static_cast<uint64_t>(step));
      ASSERT_EQ(index.ok(), model.size() < 64);
      if (index.ok()) {
        ASSERT_FALSE(model.contains(*index));
        model[*index] = static_cast<uint64_t>(step);
      }
    } else if (!model.empty()) {
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      ASSERT_TRUE(table.release(it->first));
      model.erase(it);
    }
    ASSERT_EQ(table.size(), model.size());
  }
  for (const auto& [index, owner] : model) EXPECT_EQ(table.lookup(index), owner);
}

}  // namespace
}  // namespace exitgw::wg
