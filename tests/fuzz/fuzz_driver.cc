// Runs a libFuzzer target without libFuzzer: every file of a seed corpus, then N random
// mutations of them (bit flips, truncations, extensions), with a fixed seed so runs repeat.
// A missing or empty corpus directory is an error: a target with no seeds proves nothing.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [ITERATIONS]\n", argv[0]);
    return 2;
  }
  std::vector<std::vector<uint8_t>> seeds;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1], ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (ec) {
    std::fprintf(stderr, "%s: cannot read the seed corpus %s: %s\n", argv[0], argv[1],
                 ec.message().c_str());
    return 1;
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: the seed corpus %s has no files; add seeds for this target\n",
                 argv[0], argv[1]);
    return 1;
  }
  const long iterations = argc > 2 ? std::stol(argv[2]) : 10000;
  for (const auto& s : seeds) LLVMFuzzerTestOneInput(s.data(), s.size());
  std::mt19937_64 rng(0x5eed);
  for (long i = 0; i < iterations; ++i) {
    std::vector<uint8_t> buf = seeds[rng() % seeds.size()];
    const int edits = 1 + rng() % 8;
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:
          if (!buf.empty()) buf[rng() % buf.size()] ^= uint8_t(1u << (rng() % 8));
          break;
        case 1:
          if (!buf.empty()) buf.resize(rng() % buf.size());
          break;
        case 2:
          buf.push_back(uint8_t(rng()));
          break;
        default:
          if (!buf.empty()) buf[rng() % buf.size()] = uint8_t(rng());
      }
    }
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
  }
  std::printf("%zu seeds, %ld mutations: no crash\n", seeds.size(), iterations);
  return 0;
}
