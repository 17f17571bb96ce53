// Tests only: a real etcd (/usr/bin/etcd) on loopback, on free ports with a temporary data dir,
// that a test can kill -9 and start again on the same data dir and ports. Header-only; not part
// of the exitgw_control library.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "control/etcd/etcd_client.h"

namespace exitgw::etcd::testing {

inline constexpr const char* kEtcdBinary = "/usr/bin/etcd";

inline bool etcd_available() {
  return access(kEtcdBinary, X_OK) == 0;
}

// A port nothing listens on now (bound to 0 and released; fine for tests).
inline uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

template <typename F>
bool wait_until(F&& f, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

class EtcdProcess {
 public:
  EtcdProcess() {
    char tmpl[] = "/tmp/exitgw-etcd-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) dir_ = tmpl;
    client_port_ = free_port();
    peer_port_ = free_port();
    while (peer_port_ == client_port_) peer_port_ = free_port();
  }
  ~EtcdProcess() {
    kill9();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  pid_t pid() const { return pid_; }

  // Starts etcd (on the same data dir and ports each time) and waits until it answers.
  bool start() {
    if (dir_.empty() || client_port_ == 0 || peer_port_ == 0) return false;
    const std::string client = endpoint();
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    const std::string log = dir_ + "/etcd.log";
    pid_ = fork();
    if (pid_ == 0) {
      const std::string data = "--data-dir=" + dir_ + "/data";
      const std::string lc = "--listen-client-urls=" + client;
      const std::string ac = "--advertise-client-urls=" + client;
      const std::string lp = "--listen-peer-urls=" + peer;
      const std::string ap = "--initial-advertise-peer-urls=" + peer;
      const std::string ic = "--initial-cluster=default=" + peer;
      FILE* f = freopen(log.c_str(), "a", stderr);
      (void)f;
      f = freopen(log.c_str(), "a", stdout);
      (void)f;
      execl(kEtcdBinary, kEtcdBinary, "--name=default", data.c_str(), lc.c_str(), ac.c_str(),
            lp.c_str(), ap.c_str(), ic.c_str(), "--logger=zap", "--log-level=warn",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid_ < 0) return false;
    auto eps = parse_endpoints(client);
    ClientOptions o;
    o.endpoints = *eps;
    o.connect_timeout = std::chrono::milliseconds(200);
    o.request_timeout = std::chrono::milliseconds(500);
    EtcdClient c(o);
    return wait_until([&] { return c.range("probe", "").ok(); }, std::chrono::seconds(20));
  }

  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  ClientOptions client_options() const {
    ClientOptions o;
    o.endpoints = *parse_endpoints(endpoint());
    o.connect_timeout = std::chrono::milliseconds(500);
    o.request_timeout = std::chrono::milliseconds(3000);
    return o;
  }

 private:
  std::string dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace exitgw::etcd::testing
