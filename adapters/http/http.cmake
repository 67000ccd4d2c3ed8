# The HTTP sidecar (adapters/http/, docs/sidecar.md): the protocol as a function (service), the policy
# directory (policy_store) and the Boost.Beast server. Included from the top-level CMakeLists.txt once
# `toolwarden_cli` exists; `toolwarden serve` links it.
find_package(Boost 1.74 REQUIRED)
find_package(Threads REQUIRED)
add_library(toolwarden_http STATIC
  ${CMAKE_CURRENT_LIST_DIR}/policy_store.cc
  ${CMAKE_CURRENT_LIST_DIR}/server.cc
  ${CMAKE_CURRENT_LIST_DIR}/service.cc)
target_link_libraries(toolwarden_http PUBLIC toolwarden_log toolwarden_llm toolwarden_interpreter
                      Threads::Threads PRIVATE Boost::headers)
target_compile_options(toolwarden_http PRIVATE ${TW_WARNINGS})
set_target_properties(toolwarden_http PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(toolwarden_cli PUBLIC toolwarden_http)

if(TOOLWARDEN_BUILD_TESTS)
  cmake_language(EVAL CODE
    "cmake_language(DEFER CALL toolwarden_test http_test [[${CMAKE_CURRENT_LIST_DIR}/*_test.cc]] [[${CMAKE_SOURCE_DIR}/tests/llm/fake_llm.cc]])")
endif()
