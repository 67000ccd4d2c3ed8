// Compile: CheckedPolicy -> Program, the immutable, thread-safe form of a policy
// that sessions evaluate. Compile once, share the Program among any number of
// Sessions (session.h) on any number of threads.
//
// What compiling does once, so deciding a call does not: rules are indexed by
// tool name (globs resolved against every tool name the policy or its catalog
// knows), constants are inlined, literal lists become hash sets, regexes are
// compiled (RE2, de-duplicated, size-checked) and argument names are resolved.
// Evaluating a condition on the common path allocates nothing.
#ifndef TOOLWARDEN_INTERPRETER_PROGRAM_H_
#define TOOLWARDEN_INTERPRETER_PROGRAM_H_

#include <memory>
#include <string>
#include <string_view>

#include "policy/checker.h"
#include "policy/status.h"

namespace toolwarden {

namespace internal {
struct Plan;
}  // namespace internal

class Program {
 public:
  explicit Program(std::unique_ptr<const internal::Plan> plan);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  const std::string& name() const;  // the policy's name
  const std::string& hash() const;  // "sha256:<hex>" of the policy text
  size_t rule_count() const;        // top-level rules (not counting update blocks)
  // Whether the policy `trust`s `tool`: only such results feed `from trusted`,
  // so a host may keep the others' results or not.
  bool trusts(std::string_view tool) const;
  // The tool schemas the policy was checked against, or null.
  const ToolCatalog* catalog() const;
  const internal::Plan& plan() const { return *plan_; }

 private:
  std::unique_ptr<const internal::Plan> plan_;
};

StatusOr<std::shared_ptr<const Program>> Compile(std::shared_ptr<const CheckedPolicy> policy);

}  // namespace toolwarden

#endif  // TOOLWARDEN_INTERPRETER_PROGRAM_H_
