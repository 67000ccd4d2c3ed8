# Tests that run the built `toolwarden` binary on the repository's data files.
file(GLOB TOOLWARDEN_CONFORMANCE CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/conformance/*.json)
add_test(NAME conformance_cli COMMAND toolwarden test ${TOOLWARDEN_CONFORMANCE})
set_tests_properties(conformance_cli PROPERTIES PASS_REGULAR_EXPRESSION " 0 failed")

file(GLOB TOOLWARDEN_EXAMPLES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/policies/examples/*.policy)
add_test(NAME examples_lint COMMAND toolwarden lint ${TOOLWARDEN_EXAMPLES})
foreach(policy ${TOOLWARDEN_EXAMPLES})
  get_filename_component(name ${policy} NAME_WE)
  add_test(NAME examples_fmt_${name} COMMAND toolwarden fmt --check ${policy})
endforeach()
add_test(NAME examples_demo COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/policies/examples/demo.sh $<TARGET_FILE:toolwarden>)

# AgentDojo: the full offline replay of the shipped policies (a second or so), and the attack variants.
add_test(NAME agentdojo_replay
         COMMAND toolwarden replay --policy-dir ${CMAKE_CURRENT_SOURCE_DIR}/policies/agentdojo
                 --data ${CMAKE_CURRENT_SOURCE_DIR}/bench/agentdojo/data
                 --criteria ${CMAKE_CURRENT_SOURCE_DIR}/bench/agentdojo/criteria --require-all)
file(GLOB TOOLWARDEN_AGENTDOJO_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/agentdojo/*.json)
add_test(NAME agentdojo_variants COMMAND toolwarden test ${TOOLWARDEN_AGENTDOJO_TESTS})
set_tests_properties(agentdojo_variants PROPERTIES PASS_REGULAR_EXPRESSION " 0 failed")
file(GLOB TOOLWARDEN_AGENTDOJO_POLICIES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/policies/agentdojo/*.policy)
add_test(NAME agentdojo_lint COMMAND toolwarden lint ${TOOLWARDEN_AGENTDOJO_POLICIES})
foreach(policy ${TOOLWARDEN_AGENTDOJO_POLICIES})
  get_filename_component(name ${policy} NAME_WE)
  add_test(NAME agentdojo_fmt_${name} COMMAND toolwarden fmt --check ${policy})
endforeach()
