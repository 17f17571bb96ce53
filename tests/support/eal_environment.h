// DPDK's EAL brought up once per GoogleTest binary, for unit tests that need mbufs, rte_acl,
// rte_lpm or RCU: no hugepages, no PCI, no shared runtime files, one lcore, a file prefix of
// the binary's name and pid so tests run side by side. Register it in the test file with
//   EXITGW_EAL_ENVIRONMENT("name", megabytes);
#pragma once

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace exitgw::testing {

class EalEnvironment : public ::testing::Environment {
 public:
  EalEnvironment(std::string name, unsigned megabytes) : name_(std::move(name)), mb_(megabytes) {}
  void SetUp() override {
    std::vector<std::string> args{name_,
                                  "--no-huge",
                                  "--no-pci",
                                  "-m",
                                  std::to_string(mb_),
                                  "--no-shconf",
                                  "--file-prefix=" + name_ + std::to_string(getpid()),
                                  "--log-level=error",
                                  "-l",
                                  "0"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0) << "rte_eal_init";
  }
  void TearDown() override { rte_eal_cleanup(); }

 private:
  std::string name_;
  unsigned mb_;
};

}  // namespace exitgw::testing

#define EXITGW_EAL_ENVIRONMENT(name, megabytes)                 \
  [[maybe_unused]] static auto* const exitgw_eal_environment_ = \
      ::testing::AddGlobalTestEnvironment(                      \
          new ::exitgw::testing::EalEnvironment((name), (megabytes)))
