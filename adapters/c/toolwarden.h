/* toolwarden C API: privilege control for LLM agent tool calls.
 *
 *   char* out = NULL;
 *   tw_policy* policy = NULL;
 *   if (tw_policy_from_file("banking.policy", NULL, &policy, &out) != TW_OK) {
 *     fprintf(stderr, "%s\n", out);            // {"error": ..., "diagnostics": [...]}
 *   }
 *   tw_free(out);
 *   tw_session* session = NULL;
 *   tw_session_new(policy, "Pay the bill", NULL, &session, &out);
 *   tw_free(out);
 *   if (tw_session_decide(session, "send_money", "{\"amount\": 10}", &out) == TW_OK) {
 *     puts(out);                                // the decision record (JSON)
 *   }
 *   tw_free(out);
 *   tw_session_free(session);
 *   tw_policy_free(policy);
 *
 * Conventions:
 * - Every function that can fail returns a tw_status. Its `char** out`
 *   receives a NUL-terminated JSON text the caller frees with tw_free: the
 *   result when the status is TW_OK, else an error object
 *   {"error": {"code": "invalid_argument", "message": "..."},
 *    "diagnostics": [...]}   ("code" names the status in lower case;
 *   "diagnostics" is [] except for problems in policy text, in the form of
 *   `toolwarden lint --json`). `out` may be NULL to ignore it. `*out` is NULL
 *   only when even the error text could not be allocated
 *   (TW_RESOURCE_EXHAUSTED, "out of memory").
 * - A NULL pointer argument gives TW_INVALID_ARGUMENT unless its comment
 *   allows NULL. A function that makes an object sets `*policy` or `*session`
 *   to NULL when it fails.
 * - Fail closed: a host must treat any status other than TW_OK from
 *   tw_session_decide or tw_session_check as a denial of the call.
 * - All strings in and out are UTF-8. No C++ exception crosses this API.
 *
 * Thread safety: a tw_policy is immutable and may be shared by any number of
 * sessions on any number of threads. A tw_session serialises its own calls
 * with an internal lock, so one session may be used from several threads;
 * calls on it then happen one at a time, in some order. A session keeps what
 * it needs of its policy alive: tw_policy_free may be called while sessions
 * made from the policy are still in use. Freeing an object while another
 * thread uses it is undefined.
 */
#ifndef TOOLWARDEN_H_
#define TOOLWARDEN_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TW_API __attribute__((visibility("default")))
#else
#define TW_API
#endif

typedef enum tw_status {
  TW_OK = 0,
  TW_INVALID_ARGUMENT = 1,    /* malformed input: bad JSON, NULL pointer, wrong types */
  TW_NOT_FOUND = 2,           /* a file or recorded call does not exist, or a file is unreadable */
  TW_RESOURCE_EXHAUSTED = 3,  /* a named limit was exceeded, or memory ran out */
  TW_FAILED_PRECONDITION = 4, /* does not fit the current state (result attached twice) */
  TW_POLICY_ERROR = 5,        /* the policy text has errors: see "diagnostics" */
  TW_INTERNAL = 6             /* a bug in toolwarden */
} tw_status;

typedef struct tw_policy tw_policy;   /* a compiled policy (immutable, shareable) */
typedef struct tw_session tw_session; /* one agent run under one policy */

/* The library's version, e.g. "0.1.0". Static storage; do not free. */
TW_API const char* tw_version(void);
/* Frees a string this API returned. NULL is fine. */
TW_API void tw_free(char* text);

/* Compiles a policy from text. `name` names it in rule ids ("NAME:LINE");
 * `base_dir` resolves a relative `tools "FILE";` (NULL: current directory);
 * `tools_path` (NULL: the policy's own `tools` item) gives the tool schemas to
 * check against. On TW_OK `*out` is {"name", "hash", "rules", "warnings": [...]}. */
TW_API tw_status tw_policy_from_text(const char* name, const char* text, size_t text_len,
                                     const char* base_dir, const char* tools_path,
                                     tw_policy** policy, char** out);
/* Compiles a policy file, as tw_policy_from_text. */
TW_API tw_status tw_policy_from_file(const char* path, const char* tools_path, tw_policy** policy,
                                     char** out);
TW_API void tw_policy_free(tw_policy* policy);

/* Starts a session. `trusted_json` is NULL or a JSON array of strings the host
 * trusts (`X from trusted`). On TW_OK `*out` is {"policy": "sha256:..."}. */
TW_API tw_status tw_session_new(const tw_policy* policy, const char* query,
                                const char* trusted_json, tw_session** session, char** out);
TW_API void tw_session_free(tw_session* session);

/* Decides a call: `args_json` is the arguments as a JSON object. On TW_OK
 * `*out` is the decision record; an allowed call is recorded in the session's
 * history and its record carries "call", the index to attach its result to.
 * Arguments that are valid JSON but not acceptable (not an object, more than
 * 64 levels deep or 100,000 values), and a tool name that is not UTF-8, give
 * TW_OK with a deny decision; text that is not JSON (including invalid UTF-8)
 * gives TW_INVALID_ARGUMENT, and JSON beyond the parser's limits (16 MiB, 128
 * levels) TW_RESOURCE_EXHAUSTED. */
TW_API tw_status tw_session_decide(tw_session* session, const char* tool, const char* args_json,
                                   char** out);
/* As tw_session_decide, for a call a person approved after it came out "ask":
 * if it still asks, it is recorded (budgets count it) and returned as
 * "allow" with the reason "approved: ..."; a deny stays a deny. */
TW_API tw_status tw_session_approve(tw_session* session, const char* tool, const char* args_json,
                                    char** out);
/* As tw_session_decide, but changes nothing ("would this be allowed?"). */
TW_API tw_status tw_session_check(tw_session* session, const char* tool, const char* args_json,
                                  char** out);
/* Attaches the JSON result of the allowed call number `call`. `*out` is {}. */
TW_API tw_status tw_session_attach_result(tw_session* session, size_t call, const char* result_json,
                                          char** out);
/* Registers one more trusted value. `*out` is {}. */
TW_API tw_status tw_session_add_trusted(tw_session* session, const char* value, char** out);
/* Adds rules (no `let`s) in the policy language to this session only, after
 * the policy's own rules in the decision order. `name` (1 to 64 of
 * [A-Za-z0-9_.-], unused in the session) names them in rule ids. `mode` is
 * "narrow-only" (only `forbid` rules that cannot widen anything: a denied call
 * stays denied, a terminate stays a terminate) or "any". At most 100 texts and
 * 256 KiB per session. Nothing is added unless all of it is valid. On TW_OK `*out` is {"rules":
 * ["NAME:LINE", ...], "policy": "sha256:...", "warnings": [...]}; on TW_POLICY_ERROR its
 * diagnostics are positioned in `text`. */
TW_API tw_status tw_session_add_rules(tw_session* session, const char* name, const char* text,
                                      size_t text_len, const char* mode, char** out);
/* The session's state: {"query", "policy", "history": [{"tool", "args",
 * "result"?}], "added_rules": [...], "trusted": [...], "drafted": [...]}
 * ("drafted": the names of the drafted texts now deciding, see
 * tw_session_draft). */
TW_API tw_status tw_session_state(tw_session* session, char** out);

/* Drafting (docs/llm.md): a model server writes least-privilege `allow` rules
 * for the session from its query and the tools of its policy's `tools` file,
 * and updates them as results arrive. Every reply is checked like a policy
 * file; drafted rules run after every rule of the policy and of the host, so
 * none gets past a `forbid`. These calls hold the session's lock for the
 * whole model conversation (seconds to minutes, at most about twice
 * "timeout_ms" per model call plus retries): other calls on the same session
 * wait for it, and other sessions do not.
 *
 * `llm_json` is NULL or a JSON object of model settings, every field
 * optional, over the environment's (TOOLWARDEN_LLM_URL, TOOLWARDEN_LLM_MODEL,
 * TOOLWARDEN_LLM_API_KEY, TOOLWARDEN_LLM_PROTOCOL): {"url", "model",
 * "protocol": "openai"|"llama.cpp"|"anthropic"|"ollama", "format":
 * "json"|"policy", "max_repairs": 0..5, "max_tokens", "timeout_ms"}. The API
 * key comes only from the environment. An unknown field, a bad value, or no
 * URL or model in either gives TW_INVALID_ARGUMENT.
 *
 * Fail closed: what the model does is not an error. A dead server, an HTTP
 * error, a cut-off or refused reply, or rules still invalid after the repairs
 * give TW_OK with an outcome that says so, and the session keeps its rules. */

/* Drafts rules for the session (named "draft" in rule ids, "draft:LINE").
 * On TW_OK `*out` is {"ok": true, "name", "rules" (the policy text added),
 * "rule_ids": [...], "policy": "sha256:...", "model_calls", "warnings": [...]}
 * or {"ok": false, "error", "problems": [...], "model_calls"} (nothing added).
 * TW_FAILED_PRECONDITION: the policy has no `tools` file, or the session
 * already has a text named "draft". */
TW_API tw_status tw_session_draft(tw_session* session, const char* llm_json, char** out);
/* Progent's update after the allowed call number `call` got its result
 * (tw_session_attach_result first). The model first says whether the drafted
 * rules need to change, without seeing the result; if so, it sees the result
 * and writes new rules, which replace the latest drafted ones according to
 * `mode`: "narrow-only" (only when the engine proves they allow no more),
 * "ask" (proven-narrower ones apply; others come back "pending" for a person,
 * see tw_session_apply_update) or "any". On TW_OK `*out` is {"result":
 * "no-update"|"applied"|"pending"|"refused"|"failed", "error"? (for
 * "failed"), "problems": [...], "model_calls", "change": CHANGE or null},
 * with CHANGE {"kind": "update", "name", "replaces", "before", "after",
 * "mode", "policy"} for applied, pending and refused. Only "applied" changes
 * the session. TW_NOT_FOUND: no recorded call `call`; TW_FAILED_PRECONDITION:
 * it has no result yet, the session has no drafted rules, or the policy has
 * no `tools` file. */
TW_API tw_status tw_session_update(tw_session* session, size_t call, const char* mode,
                                   const char* llm_json, char** out);
/* Applies a change a person approved: `change_json` is the "change" of a
 * "pending" tw_session_update outcome (at least "name" and "after"; the
 * change replaces the drafted text "replaces"). No model call is made; the
 * rules are checked again as drafted rules. `llm_json` is read as above but
 * needs no URL or model (NULL is fine). On TW_OK `*out` is an update outcome
 * as above: "applied", or "failed" with "error" when the rules it replaces
 * are no longer the session's latest draft (another update came first) or
 * they do not check. TW_INVALID_ARGUMENT: `change_json` is not a change. */
TW_API tw_status tw_session_apply_update(tw_session* session, const char* change_json,
                                         const char* llm_json, char** out);

#ifdef __cplusplus
}
#endif

#endif /* TOOLWARDEN_H_ */
