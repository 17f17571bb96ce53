// main() of every GoogleTest unit test: skipped tests made visible to ctest.
// A binary in which a test skipped (e.g. no /usr/bin/etcd) exits with kSkipReturnCode, which
// tests/unit/CMakeLists.txt declares as SKIP_RETURN_CODE, so ctest reports "Skipped" instead
// of passed; with EXITGW_REQUIRE_ALL=1 (tools/run-tests) a skip is a failure.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kSkipReturnCode = 77;

bool require_all() {
  const char* v = std::getenv("EXITGW_REQUIRE_ALL");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (rc != 0) return rc;
  const testing::UnitTest& unit = *testing::UnitTest::GetInstance();
  if (unit.skipped_test_count() == 0) return 0;
  std::fprintf(stderr, "\n%d skipped:\n", unit.skipped_test_count());
  for (int s = 0; s < unit.total_test_suite_count(); ++s) {
    const testing::TestSuite& suite = *unit.GetTestSuite(s);
    for (int t = 0; t < suite.total_test_count(); ++t) {
      const testing::TestInfo& info = *suite.GetTestInfo(t);
      if (info.result() != nullptr && info.result()->Skipped())
        std::fprintf(stderr, "  %s.%s\n", suite.name(), info.name());
    }
  }
  if (require_all()) {
    std::fprintf(stderr,
                 "EXITGW_REQUIRE_ALL=1: a skip fails the run; install what is missing "
                 "(tools/install-deps)\n");
    return 1;
  }
  return kSkipReturnCode;
}
