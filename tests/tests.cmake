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
