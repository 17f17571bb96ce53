// Domain policy on the control thread: reads the domain list (watched), compiles it into one
// Hyperscan database, publishes it to the workers by pointer swap and frees the old one after
// an RCU grace period. A bad list is rejected whole and the running one stays.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "common/result.h"
#include "control/file_watch.h"
#include "dataplane/context.h"
#include "dataplane/domain/domain_database.h"

namespace exitgw {

class DomainPolicy {
 public:
  DomainPolicy(dp::DataplaneContext& ctx, std::string path) : ctx_(ctx), path_(std::move(path)) {}
  ~DomainPolicy();
  Status init();
  void tick(uint64_t now_ns);
  size_t rules() const { return rules_.load(); }
  uint64_t reloads() const { return reloads_.load(); }
  uint64_t reload_errors() const { return reload_errors_.load(); }
  // The pattern of rule i of the running list, for logs (control thread only).
  std::string rule_text(uint32_t i) const;

 private:
  Status load_and_publish();

  dp::DataplaneContext& ctx_;
  std::string path_;
  std::unique_ptr<dp::domain::DomainDatabase> current_;
  struct Retired {
    uint64_t token;
    std::unique_ptr<dp::domain::DomainDatabase> db;
  };
  std::deque<Retired> retired_;
  FileWatch watch_;
  uint64_t reload_due_ns_ = 0;
  std::atomic<size_t> rules_{0};
  std::atomic<uint64_t> reloads_{0}, reload_errors_{0};
};

}  // namespace exitgw
