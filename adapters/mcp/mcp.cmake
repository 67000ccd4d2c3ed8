# The MCP proxy (adapters/mcp/, docs/mcp.md): the protocol logic as a state machine (proxy) and the
# child process and poll loop around it (stdio). Included from the top-level CMakeLists.txt once
# `toolwarden_cli` exists; `toolwarden mcp` links it.
find_package(Boost 1.74 REQUIRED)
find_package(CURL REQUIRED)
find_package(Threads REQUIRED)
add_library(toolwarden_mcp STATIC
  ${CMAKE_CURRENT_LIST_DIR}/http.cc
  ${CMAKE_CURRENT_LIST_DIR}/proxy.cc
  ${CMAKE_CURRENT_LIST_DIR}/stdio.cc)
target_link_libraries(toolwarden_mcp PUBLIC toolwarden_log toolwarden_interpreter Threads::Threads
                      PRIVATE CURL::libcurl Boost::headers)
target_compile_options(toolwarden_mcp PRIVATE ${TW_WARNINGS})
target_link_libraries(toolwarden_cli PUBLIC toolwarden_mcp)

if(TOOLWARDEN_BUILD_TESTS)
  cmake_language(EVAL CODE
    "cmake_language(DEFER CALL toolwarden_test mcp_test [[${CMAKE_CURRENT_LIST_DIR}/*_test.cc]])")
endif()
