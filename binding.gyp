{
  "targets": [
    {
      "target_name": "lmdr",
      "sources": ["<!@(node scripts/sources.mjs cpu)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "cpp"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED",
                  "LMDR_VERSION=\"<!(node -p \"require('./package.json').version\")\"",
                  "LMDR_BUILD_FLAGS=\"node-gyp cpu-only -O3\""],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions"],
      "libraries": ["-lpthread", "-ldl"]
    }
  ]
}
