# Tests that run the built `toolwarden` binary on the repository's data files.

# `toolwarden test` over every test file matching GLOB, passing only with " 0 failed".
function(toolwarden_data_tests name glob)
  file(GLOB files CONFIGURE_DEPENDS ${glob})
  add_test(NAME ${name} COMMAND toolwarden test ${files})
  set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION " 0 failed")
endfunction()

# `lint` of all the policies matching GLOB, and `fmt --check` of each.
function(toolwarden_policy_checks prefix glob)
  file(GLOB policies CONFIGURE_DEPENDS ${glob})
  add_test(NAME ${prefix}_lint COMMAND toolwarden lint ${policies})
  foreach(policy ${policies})
    get_filename_component(name ${policy} NAME_WE)
    add_test(NAME ${prefix}_fmt_${name} COMMAND toolwarden fmt --check ${policy})
  endforeach()
endfunction()

set(src ${CMAKE_CURRENT_SOURCE_DIR})
toolwarden_data_tests(conformance_cli ${src}/tests/conformance/*.json)
toolwarden_policy_checks(examples ${src}/policies/examples/*.policy)
add_test(NAME examples_demo COMMAND sh ${src}/policies/examples/demo.sh $<TARGET_FILE:toolwarden>)

# AgentDojo: the full offline replay of the shipped policies (under a second), the attack variants,
# and the policies themselves.
add_test(NAME agentdojo_replay
         COMMAND toolwarden replay --policy-dir ${src}/policies/agentdojo
                 --data ${src}/bench/agentdojo/data --criteria ${src}/bench/agentdojo/criteria
                 --require-all)
toolwarden_data_tests(agentdojo_variants ${src}/tests/agentdojo/*.json)
toolwarden_policy_checks(agentdojo ${src}/policies/agentdojo/*.policy)

# Differential test: an independent Python model of the decision semantics against the engine, on
# 10,000 seeded random policy-and-call cases.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_test(NAME differential
         COMMAND ${Python3_EXECUTABLE} ${src}/tests/differential/differential.py
                 --toolwarden $<TARGET_FILE:toolwarden> --cases 10000)

# The sidecar as a process: real sockets, hot reload of real files, signals, and the decision log.
add_test(NAME sidecar_e2e
         COMMAND ${Python3_EXECUTABLE} ${src}/tests/sidecar/sidecar_e2e.py
                 --toolwarden $<TARGET_FILE:toolwarden>)

# Resource bounds end to end (docs/limits.md): every limit of the language, the sidecar and the MCP
# proxy, exceeded through the front door it protects, with its error checked and a well-formed call
# after it decided as before. One test per front door, so that they can run in parallel.
foreach(section cli sidecar_language sidecar_http mcp_stdio mcp_http)
  add_test(NAME limits_e2e_${section}
           COMMAND ${Python3_EXECUTABLE} ${src}/tests/limits/limits_e2e.py
                   --toolwarden $<TARGET_FILE:toolwarden> --only ${section})
  set_tests_properties(limits_e2e_${section} PROPERTIES TIMEOUT 600)
endforeach()

# The sidecar load benchmark, briefly, as a smoke test: it must run with no failed request. The
# measured numbers come from a full run (docs/performance.md), not from here.
add_test(NAME sidecar_load_smoke
         COMMAND ${Python3_EXECUTABLE} ${src}/bench/sidecar_load.py
                 --toolwarden $<TARGET_FILE:toolwarden> --duration 1 --long 0 --sessions 200)

# `toolwarden draft` as a process against the fake model server (tests/llm/fake_llm.py): the
# drafted policies for AgentDojo's banking tasks are lint-clean, and failures print nothing.
add_test(NAME draft_e2e
         COMMAND ${Python3_EXECUTABLE} ${src}/tests/llm/draft_e2e.py
                 --toolwarden $<TARGET_FILE:toolwarden>)

# scripts/llm-smoke.sh is for machines with a GPU; here it runs against the fake model server so
# that its plumbing (draft, update, replay, reports) is known to work.
add_test(NAME llm_smoke_plumbing
         COMMAND ${Python3_EXECUTABLE} ${src}/tests/llm/smoke_plumbing.py
                 --toolwarden $<TARGET_FILE:toolwarden>)

# The MCP proxy's example policies (docs/mcp.md), and the proxy itself against real MCP servers from
# npm, driven by the official TypeScript SDK client (tests/e2e/mcp/; versions pinned in its lock
# file). Without node, npm or the registry the test is reported as skipped, not passed; CI sets
# TOOLWARDEN_REQUIRE_NPM=1 so that there it fails instead.
toolwarden_policy_checks(mcp ${src}/policies/mcp/*.policy)
toolwarden_data_tests(mcp_policies ${src}/policies/mcp/*.test.json)
add_test(NAME mcp_e2e
         COMMAND sh ${src}/tests/e2e/mcp/run.sh ${CMAKE_CURRENT_BINARY_DIR} $<TARGET_FILE:toolwarden>)
set_tests_properties(mcp_e2e PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
