// The data-path bed for fuzz targets: EAL on two net_null ports (no hugepages, no PCI, a file
// prefix of the target's name and pid) and a DataplaneBed on them, built once per process;
// any failure aborts, so a fuzz run never passes on a bed that did not come up.
#pragma once

#include <rte_eal.h>
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/dataplane_bed.h"

namespace exitgw::testing {

inline DataplaneBed* make_fuzz_bed(const std::string& name, const BedOptions& options) {
  const std::string prefix = "--file-prefix=" + name + std::to_string(getpid());
  std::vector<std::string> args = {name,
                                   "--no-huge",
                                   "-m",
                                   "512",
                                   "--no-pci",
                                   "--vdev=net_null0",
                                   "--vdev=net_null1",
                                   "--vdev=net_null2",  // an exception port, for who wants one
                                   "-l",
                                   "0",
                                   prefix,
                                   "--log-level=*:error",
                                   "--no-telemetry"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0 || sodium_init() < 0) {
    std::fprintf(stderr, "%s: EAL init failed (root needed)\n", name.c_str());
    std::abort();
  }
  auto* bed = new DataplaneBed;
  if (Status s = bed->init(options); !s) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), s.error().c_str());
    std::abort();
  }
  return bed;
}

}  // namespace exitgw::testing
