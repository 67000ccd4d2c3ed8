// Replays inputs through a fuzz target without libFuzzer: the `main` that
// fuzz/fuzz.cmake links into each target when TOOLWARDEN_FUZZ is off, so the
// normal and the sanitizer builds run the committed regressions and the seed
// corpus under CTest.
//
//   policy_fuzz fuzz/regressions/policy_fuzz build/fuzz-seeds/policy_fuzz FILE...
//
// Each argument is a file or a directory (its regular files, not recursively,
// in name order). Arguments starting with `-` (libFuzzer flags) are ignored. A
// missing or unreadable path fails the run, and so does finding no input at
// all; a finding aborts inside the target.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ListDirectory(const std::string& dir, std::vector<std::string>* files) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  std::vector<std::string> names;
  while (dirent* entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) names.push_back(path);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  files->insert(files->end(), names.begin(), names.end());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;
    if (IsDirectory(arg)) {
      if (!ListDirectory(arg, &files)) {
        std::fprintf(stderr, "cannot read directory %s\n", arg.c_str());
        return 1;
      }
    } else {
      files.push_back(arg);
    }
  }
  for (const std::string& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot open %s\n", path.c_str());
      return 1;
    }
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", path.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  std::fprintf(stderr, "replayed %zu inputs\n", files.size());
  return files.empty() ? 1 : 0;  // nothing replayed is a broken corpus, not a pass
}
