# LLM adapters (adapters/llm/, docs/llm.md): the libcurl transport, one request builder and reply
# parser per chat API, and the drafter that turns a model's reply into checked rules. Included from
# the top-level CMakeLists.txt once `toolwarden_cli` exists; `toolwarden draft` and the sidecar link it.
find_package(CURL REQUIRED)
add_library(toolwarden_llm STATIC
  ${CMAKE_CURRENT_LIST_DIR}/transport.cc
  ${CMAKE_CURRENT_LIST_DIR}/protocol.cc
  ${CMAKE_CURRENT_LIST_DIR}/drafter.cc)
target_link_libraries(toolwarden_llm PUBLIC toolwarden_interpreter PRIVATE CURL::libcurl)
target_compile_options(toolwarden_llm PRIVATE ${TW_WARNINGS})
set_target_properties(toolwarden_llm PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(toolwarden_cli PUBLIC toolwarden_llm)

if(TOOLWARDEN_BUILD_TESTS)
  # tests/llm/fake_llm.{h,cc} start tests/llm/fake_llm.py, the fake model server, on loopback.
  cmake_language(EVAL CODE
    "cmake_language(DEFER CALL toolwarden_test llm_test [[${CMAKE_CURRENT_LIST_DIR}/*_test.cc]] [[${CMAKE_SOURCE_DIR}/tests/llm/fake_llm.cc]])")
endif()
