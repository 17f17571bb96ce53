// Control-thread logging to stderr (journald/docker pick it up). Never used on workers.
#pragma once

#include <cstdio>
#include <ctime>
#include <string>

namespace exitgw {

enum class LogLevel { kInfo, kWarn, kError };

inline void log(LogLevel level, const std::string& msg) {
  static const char* names[] = {"info", "warn", "error"};
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char when[32];
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &t);
  std::fprintf(stderr, "%s.%03ldZ exitgw %s: %s\n", when, ts.tv_nsec / 1000000,
               names[static_cast<int>(level)], msg.c_str());
}
inline void log_info(const std::string& msg) {
  log(LogLevel::kInfo, msg);
}
inline void log_warn(const std::string& msg) {
  log(LogLevel::kWarn, msg);
}
inline void log_error(const std::string& msg) {
  log(LogLevel::kError, msg);
}

}  // namespace exitgw
