// exitgwctl: the operator's command line over the gateway's admin API.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tools/exitgwctl_lib.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  exitgw::admin::CtlEnvironment env;
  if (const char* token = std::getenv("EXITGW_TOKEN"); token != nullptr) env.token = token;
  return exitgw::admin::run_ctl(args, env, std::cout, std::cerr);
}
