/* An outside program using the installed toolwarden C API: loads a policy,
 * decides an allowed and a denied call, and exits non-zero on any surprise.
 *
 *   usage: consumer POLICY_FILE   (policies/examples/banking.policy) */
#include <stdio.h>
#include <string.h>
#include <toolwarden.h>

static int failures = 0;

/* Decides one call and checks that the decision record says `expected`. */
static void expect_decision(tw_session* session, const char* tool, const char* args,
                            const char* expected) {
  char* out = NULL;
  char wanted[64];
  tw_status status = tw_session_decide(session, tool, args, &out);
  snprintf(wanted, sizeof wanted, "\"decision\":\"%s\"", expected);
  if (status != TW_OK || out == NULL || strstr(out, wanted) == NULL) {
    fprintf(stderr, "FAIL %s %s: expected %s, got status %d: %s\n", tool, args, expected,
            (int)status, out != NULL ? out : "(no output)");
    failures++;
  } else {
    printf("ok   %s: %s\n", tool, expected);
  }
  tw_free(out);
}

int main(int argc, char** argv) {
  char* out = NULL;
  tw_policy* policy = NULL;
  tw_session* session = NULL;
  if (argc != 2) {
    fprintf(stderr, "usage: %s POLICY_FILE\n", argv[0]);
    return 2;
  }
  printf("toolwarden %s\n", tw_version());
  if (tw_policy_from_file(argv[1], NULL, &policy, &out) != TW_OK) {
    fprintf(stderr, "FAIL loading %s: %s\n", argv[1], out != NULL ? out : "(no output)");
    tw_free(out);
    return 1;
  }
  tw_free(out);
  if (tw_session_new(policy, "What is my balance? Then pay my rent.", NULL, &session, &out) !=
      TW_OK) {
    fprintf(stderr, "FAIL starting a session: %s\n", out != NULL ? out : "(no output)");
    tw_free(out);
    tw_policy_free(policy);
    return 1;
  }
  tw_free(out);
  tw_policy_free(policy); /* the session keeps what it needs */

  expect_decision(session, "get_balance", "{}", "allow");
  expect_decision(session, "send_money",
                  "{\"recipient\": \"UK12345678901234567890\", \"amount\": 100, "
                  "\"subject\": \"rent\", \"date\": \"2024-01-01\"}",
                  "allow");
  expect_decision(session, "send_money",
                  "{\"recipient\": \"US133000000121212121212\", \"amount\": 100, "
                  "\"subject\": \"x\", \"date\": \"2024-01-01\"}",
                  "deny");
  expect_decision(session, "delete_everything", "{}", "deny");
  /* Not JSON: an error status, which a host treats as a denial. */
  if (tw_session_decide(session, "get_balance", "{not json", &out) != TW_INVALID_ARGUMENT) {
    fprintf(stderr, "FAIL malformed JSON was not TW_INVALID_ARGUMENT\n");
    failures++;
  }
  tw_free(out);

  tw_session_free(session);
  if (failures > 0) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("all decisions as expected\n");
  return 0;
}
