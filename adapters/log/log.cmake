# The tamper-evident decision log (adapters/log/decision_log.h, docs/decision-log.md). Included from
# the top-level CMakeLists.txt once `toolwarden_cli` exists; `toolwarden verify-log` links it.
find_package(Threads REQUIRED)
add_library(toolwarden_log STATIC ${CMAKE_CURRENT_LIST_DIR}/decision_log.cc)
target_link_libraries(toolwarden_log PUBLIC toolwarden_interpreter Threads::Threads)
target_compile_options(toolwarden_log PRIVATE ${TW_WARNINGS})
set_target_properties(toolwarden_log PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(toolwarden_cli PUBLIC toolwarden_log)

if(TOOLWARDEN_BUILD_TESTS)
  # toolwarden_test is defined further down the top-level CMakeLists.txt: call it once the directory
  # is processed. EVAL fixes the path now; a deferred call's arguments are expanded when it runs.
  cmake_language(EVAL CODE
    "cmake_language(DEFER CALL toolwarden_test log_test [[${CMAKE_CURRENT_LIST_DIR}/*_test.cc]])")
endif()
