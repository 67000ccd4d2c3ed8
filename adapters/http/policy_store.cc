#include "adapters/http/policy_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "interpreter/loader.h"

namespace toolwarden {

namespace fs = std::filesystem;

namespace {

constexpr char kExtension[] = ".policy";

struct Listing {
  std::string fingerprint;                // every entry's name, size and mtime
  std::vector<std::string> policy_files;  // sorted
  std::string error;
};

Listing List(const std::string& dir) {
  Listing out;
  std::error_code ec;
  std::vector<std::string> names;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) names.push_back(it->path().filename().string());
  if (ec) {
    out.error = "cannot read the policy directory `" + dir + "`: " + ec.message();
    return out;
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string path = JoinPath(dir, name);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;  // vanished while listing
    out.fingerprint += name + '\0' + std::to_string(st.st_size) + '\0' +
                       std::to_string(st.st_mtim.tv_sec) + '.' +
                       std::to_string(st.st_mtim.tv_nsec) + '\n';
    const size_t ext = sizeof(kExtension) - 1;
    if (S_ISREG(st.st_mode) && name.size() > ext &&
        name.compare(name.size() - ext, ext, kExtension) == 0) {
      out.policy_files.push_back(name);
    }
  }
  return out;
}

}  // namespace

PolicyStore::PolicyStore(std::string dir) : dir_(std::move(dir)) {}

StatusOr<ReloadReport> PolicyStore::Reload() {
  Listing listing = List(dir_);
  std::lock_guard<std::mutex> lock(mutex_);
  read_error_ = listing.error;
  if (!listing.error.empty()) return Status(StatusCode::kUnavailable, listing.error);
  ReloadReport report;
  if (listing.fingerprint == fingerprint_) return report;
  report.changed = true;
  fingerprint_ = listing.fingerprint;
  dir_error_.clear();
  if (listing.policy_files.size() > kMaxPolicyFiles) {
    listing.policy_files.resize(kMaxPolicyFiles);
    dir_error_ = "the policy directory holds more than " + std::to_string(kMaxPolicyFiles) +
                 " policy files; the rest are ignored";
  }
  std::map<std::string, Entry> next;
  for (const std::string& file : listing.policy_files) {
    std::string name = file.substr(0, file.size() - (sizeof(kExtension) - 1));
    Entry entry;
    auto old = entries_.find(name);
    if (old != entries_.end()) entry = old->second;
    entry.file = file;
    LoadedPolicy loaded = LoadPolicyFile(JoinPath(dir_, file));
    if (loaded.ok()) {
      entry.error.clear();
      if (entry.program == nullptr || entry.program->hash() != loaded.program->hash()) {
        entry.program = loaded.program;
        report.loaded.push_back(name);
      }
    } else {
      entry.error = loaded.ErrorText();
      report.failed.push_back(name);
    }
    next.emplace(std::move(name), std::move(entry));
  }
  for (const auto& [name, entry] : entries_) {
    if (next.count(name) == 0) report.removed.push_back(name);
  }
  entries_ = std::move(next);
  return report;
}

std::shared_ptr<const Program> PolicyStore::Get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.program;
}

nlohmann::json PolicyStore::Summary() const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, entry] : entries_) {
    nlohmann::json e = {{"file", entry.file}};
    e["hash"] = entry.program ? nlohmann::json(entry.program->hash()) : nlohmann::json(nullptr);
    e["rules"] = entry.program ? entry.program->rule_count() : 0;
    if (!entry.error.empty()) e["error"] = entry.error;
    out[name] = std::move(e);
  }
  return out;
}

std::string PolicyStore::dir_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return read_error_.empty() ? dir_error_ : read_error_;
}

bool PolicyStore::healthy() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!dir_error_.empty() || !read_error_.empty()) return false;
  for (const auto& [name, entry] : entries_) {
    if (!entry.error.empty()) return false;
  }
  return true;
}

}  // namespace toolwarden
