# The pinned ggml reference (scripts/setup-llama-ref.sh) for tests/quant and bench/bench_quant.
# Defines target temper_ggml_ref (callers test if(TARGET temper_ggml_ref)); with -DTEMPER_LLAMA_REF=OFF it only warns.
include_guard(GLOBAL)
option(TEMPER_LLAMA_REF "Build the tests and benches that compare against ggml (node-llama-cpp)" ON)
set(TEMPER_LLAMA_REF_DIR ${CMAKE_SOURCE_DIR}/.llama-ref CACHE PATH
    "Folder made by scripts/setup-llama-ref.sh (node-llama-cpp's ggml libraries + llama.cpp headers)")
if(NOT TEMPER_LLAMA_REF)
  message(WARNING "TEMPER_LLAMA_REF=OFF: the quant tests and bench against ggml are not built")
  return()
endif()
set(_ggml_lib_dir ${TEMPER_LLAMA_REF_DIR}/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64)
set(_ggml_inc_dir ${TEMPER_LLAMA_REF_DIR}/llama.cpp/ggml/include)
if(NOT EXISTS ${_ggml_lib_dir}/libggml-base.so OR NOT EXISTS ${_ggml_inc_dir}/ggml.h)
  message(FATAL_ERROR "ggml reference not found in TEMPER_LLAMA_REF_DIR=${TEMPER_LLAMA_REF_DIR} "
          "(need ${_ggml_lib_dir}/libggml-base.so and ${_ggml_inc_dir}/ggml.h). "
          "Run: scripts/setup-llama-ref.sh ${TEMPER_LLAMA_REF_DIR}   "
          "or configure with -DTEMPER_LLAMA_REF=OFF to skip the tests against ggml.")
endif()
add_library(temper_ggml_ref STATIC ${CMAKE_SOURCE_DIR}/tests/quant/ggml_ref.cpp)
target_include_directories(temper_ggml_ref PUBLIC ${CMAKE_SOURCE_DIR}/tests PRIVATE ${_ggml_inc_dir})
target_compile_definitions(temper_ggml_ref PRIVATE TEMPER_GGML_LIB_DIR="${_ggml_lib_dir}")
target_link_libraries(temper_ggml_ref PUBLIC temper_runtime ${CMAKE_DL_LIBS})
