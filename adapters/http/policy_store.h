// PolicyStore: the compiled policies of one directory, reloaded when it
// changes. Each `NAME.policy` file in the directory (not its subdirectories)
// is the policy NAME; a relative `tools "FILE";` resolves in the directory.
//
//   PolicyStore store("/etc/toolwarden/policies");
//   store.Reload();                        // at start, then on a timer
//   std::shared_ptr<const Program> p = store.Get("banking");
//
// Reload() loads every file again when anything in the directory changed
// (names, sizes, modification times). A file that loads cleanly replaces its
// policy atomically; a file with errors keeps the last good version and its
// errors show in Summary() until it is fixed; a removed file removes its policy.
// Programs already handed out stay valid (sessions keep theirs). Thread-safe.
#ifndef TOOLWARDEN_ADAPTERS_HTTP_POLICY_STORE_H_
#define TOOLWARDEN_ADAPTERS_HTTP_POLICY_STORE_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "interpreter/program.h"
#include "nlohmann/json.hpp"
#include "policy/status.h"

namespace toolwarden {

// Most policy files one directory may hold.
inline constexpr size_t kMaxPolicyFiles = 1000;

struct ReloadReport {
  bool changed = false;              // the directory changed since the last reload
  std::vector<std::string> loaded;   // policies (re)loaded with a new text
  std::vector<std::string> failed;   // policies whose file has errors now
  std::vector<std::string> removed;  // policies whose file is gone
};

class PolicyStore {
 public:
  explicit PolicyStore(std::string dir);

  // Fails only when the directory cannot be read (then nothing changes).
  StatusOr<ReloadReport> Reload();

  // The current program of policy `name`, or null.
  std::shared_ptr<const Program> Get(const std::string& name) const;
  // {"NAME": {"hash", "rules", "file", "error"?: "diagnostics text"}}, and
  // whether every file currently loads cleanly.
  nlohmann::json Summary() const;
  bool healthy() const;
  // Why the directory could not be read (or was cut short); empty when fine.
  std::string dir_error() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    std::shared_ptr<const Program> program;  // last good version; null if never loaded
    std::string file;
    std::string error;  // the file's current errors; empty when clean
  };

  std::string dir_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::string fingerprint_;  // of the directory at the last reload
  std::string read_error_;   // why the directory could not be read at the last reload
  std::string dir_error_;    // what was wrong with its content (too many files)
};

}  // namespace toolwarden

#endif  // TOOLWARDEN_ADAPTERS_HTTP_POLICY_STORE_H_
