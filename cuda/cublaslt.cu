// Run-time loading of cuBLASLt and the one GEMM lmdr needs. The declarations below mirror the
// public cublasLt.h API (enum values and signatures); the header itself is not needed.
#include "cublaslt.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "common.cuh"

namespace lmdr::cuda {
namespace {

// ---- the minimal cuBLASLt API ----
using Status = int;  // cublasStatus_t; 0 = CUBLAS_STATUS_SUCCESS
using LtHandle = void*;
using LtMatmulDesc = void*;
using LtLayout = void*;
using LtPreference = void*;
struct LtAlgo { uint64_t data[8]; };  // cublasLtMatmulAlgo_t
struct LtHeuristic {                   // cublasLtMatmulHeuristicResult_t
  LtAlgo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};
constexpr int kComputeF32 = 68;        // CUBLAS_COMPUTE_32F
constexpr int kR32F = 0;               // CUDA_R_32F
constexpr int kOpN = 0, kOpT = 1;      // CUBLAS_OP_N, CUBLAS_OP_T
constexpr int kDescTransA = 3;         // CUBLASLT_MATMUL_DESC_TRANSA
constexpr int kDescTransB = 4;         // CUBLASLT_MATMUL_DESC_TRANSB
constexpr int kPrefMaxWorkspace = 1;   // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64_t)
constexpr int kPrefAlignA = 5;         // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32_t)

struct Api {
  Status (*create)(LtHandle*);
  Status (*destroy)(LtHandle);
  size_t (*get_version)();
  Status (*desc_create)(LtMatmulDesc*, int compute_type, int scale_type);
  Status (*desc_destroy)(LtMatmulDesc);
  Status (*desc_set)(LtMatmulDesc, int attr, const void* buf, size_t size);
  Status (*layout_create)(LtLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layout_destroy)(LtLayout);
  Status (*pref_create)(LtPreference*);
  Status (*pref_destroy)(LtPreference);
  Status (*pref_set)(LtPreference, int attr, const void* buf, size_t size);
  Status (*heuristic)(LtHandle, LtMatmulDesc, LtLayout, LtLayout, LtLayout, LtLayout, LtPreference, int requested,
                      LtHeuristic* results, int* returned);
  Status (*matmul)(LtHandle, LtMatmulDesc, const void* alpha, const void* A, LtLayout, const void* B, LtLayout,
                   const void* beta, const void* C, LtLayout, void* D, LtLayout, const LtAlgo* algo,
                   void* workspace, size_t workspace_bytes, cudaStream_t stream);
};

std::mutex g_load_mutex;
Api g_api{};
bool g_loaded = false;
std::string g_path;

std::vector<std::string> glob_paths(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; i++) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  return out;
}

// Candidates in the order they are tried: $LMDR_CUBLASLT, the loader's own search (sonames),
// CUDA_HOME/CUDA_PATH, the usual system dirs, conda, and pip's nvidia-cublas wheels.
std::vector<std::string> candidates() {
  std::vector<std::string> out;
  const char* sonames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"};
  auto add_dir = [&](const std::string& dir) {
    for (const char* so : sonames) out.push_back(dir + "/" + so);
  };
  if (const char* env = std::getenv("LMDR_CUBLASLT"); env && *env) {
    std::string p = env;
    if (p.find(".so") != std::string::npos) out.push_back(p);
    else add_dir(p);
  }
  for (const char* so : sonames) out.emplace_back(so);
  for (const char* var : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"})
    if (const char* v = std::getenv(var); v && *v) {
      add_dir(std::string(v) + "/lib64");
      add_dir(std::string(v) + "/lib");
    }
  for (const char* dir : {"/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
                          "/usr/lib/aarch64-linux-gnu", "/opt/conda/lib"})
    add_dir(dir);
  for (const std::string& d : glob_paths("/usr/local/cuda-*/lib64")) add_dir(d);
  std::vector<std::string> prefixes;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* v = std::getenv(var); v && *v) prefixes.emplace_back(v);
  if (const char* home = std::getenv("HOME"); home && *home) prefixes.push_back(std::string(home) + "/.local");
  for (const char* p : {"/usr/local", "/usr", "/opt/conda"}) prefixes.emplace_back(p);
  for (const std::string& prefix : prefixes)
    for (const char* sub : {"site-packages", "dist-packages"})
      for (const char* lib : {"nvidia/cublas/lib", "nvidia/cu13/lib"})
        for (const std::string& d : glob_paths(prefix + "/lib/python3*/" + sub + "/" + lib)) add_dir(d);
  return out;
}

template <typename F>
void resolve(void* lib, const char* name, F& fn, std::string& missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
}

const Api& api() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (g_loaded) return g_api;
  std::vector<std::string> dirs;  // where we looked, for the error message
  void* lib = nullptr;
  for (const std::string& path : candidates()) {
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      g_path = path;
      break;
    }
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "the loader path (LD_LIBRARY_PATH, ld.so.cache)" : path.substr(0, slash);
    if (dirs.empty() || dirs.back() != dir) dirs.push_back(dir);
  }
  if (!lib) {
    std::string where;
    for (const std::string& d : dirs) where += (where.empty() ? "" : ", ") + d;
    throw Error(
        "cannot load libcublasLt.so (cuBLASLt, needed for GEMMs on the GPU): looked for libcublasLt.so.{13,12,11} "
        "and libcublasLt.so in " + where + ". Install the CUDA toolkit or `pip install nvidia-cublas-cu12`, or set "
        "LMDR_CUBLASLT to the library file or its directory.");
  }
  std::string missing;
  resolve(lib, "cublasLtCreate", g_api.create, missing);
  resolve(lib, "cublasLtDestroy", g_api.destroy, missing);
  resolve(lib, "cublasLtGetVersion", g_api.get_version, missing);
  resolve(lib, "cublasLtMatmulDescCreate", g_api.desc_create, missing);
  resolve(lib, "cublasLtMatmulDescDestroy", g_api.desc_destroy, missing);
  resolve(lib, "cublasLtMatmulDescSetAttribute", g_api.desc_set, missing);
  resolve(lib, "cublasLtMatrixLayoutCreate", g_api.layout_create, missing);
  resolve(lib, "cublasLtMatrixLayoutDestroy", g_api.layout_destroy, missing);
  resolve(lib, "cublasLtMatmulPreferenceCreate", g_api.pref_create, missing);
  resolve(lib, "cublasLtMatmulPreferenceDestroy", g_api.pref_destroy, missing);
  resolve(lib, "cublasLtMatmulPreferenceSetAttribute", g_api.pref_set, missing);
  resolve(lib, "cublasLtMatmulAlgoGetHeuristic", g_api.heuristic, missing);
  resolve(lib, "cublasLtMatmul", g_api.matmul, missing);
  if (!missing.empty()) {
    dlclose(lib);
    throw Error(g_path + " lacks cuBLASLt functions: " + missing);
  }
  g_loaded = true;
  return g_api;
}

void check(Status s, const char* what) {
  if (s != 0)
    throw Error(std::string(current_op()) + ": " + what + " failed with cublasStatus " + std::to_string(s) +
                " (" + g_path + ")");
}

// Largest power of two (<= 256) dividing the address: what the kernels may assume.
uint32_t alignment(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al)) al >>= 1;
  return al;
}

// RAII holders so an exception never leaks a descriptor.
struct Desc {
  LtMatmulDesc d = nullptr;
  ~Desc() { if (d) api().desc_destroy(d); }
};
struct Layout {
  LtLayout l = nullptr;
  ~Layout() { if (l) api().layout_destroy(l); }
};
struct Pref {
  LtPreference p = nullptr;
  ~Pref() { if (p) api().pref_destroy(p); }
};

std::mutex g_algo_mutex;
std::map<std::vector<int64_t>, LtHeuristic> g_algo_cache;  // (device, shapes, types, alignments) -> algo

}  // namespace

const std::string& CublasLt::library_path() { return g_path; }

CublasLt::CublasLt() { check(api().create(&handle_), "cublasLtCreate"); }

CublasLt::~CublasLt() {
  if (handle_ && g_loaded) g_api.destroy(handle_);
}

void CublasLt::gemm(const GemmArgs& g, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (g.M == 0 || g.N == 0) return;
  const Api& lt = api();
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands; each
  // row-major matrix read column-major is its transpose, so the transpose flags carry over.
  int op_a = g.trans_b ? kOpT : kOpN, op_b = g.trans_a ? kOpT : kOpN;
  uint64_t a_rows = g.trans_b ? g.K : g.N, a_cols = g.trans_b ? g.N : g.K;  // first operand = B
  uint64_t b_rows = g.trans_a ? g.M : g.K, b_cols = g.trans_a ? g.K : g.M;  // second operand = A
  Desc desc;
  check(lt.desc_create(&desc.d, kComputeF32, kR32F), "cublasLtMatmulDescCreate");
  check(lt.desc_set(desc.d, kDescTransA, &op_a, sizeof(op_a)), "cublasLtMatmulDescSetAttribute(TRANSA)");
  check(lt.desc_set(desc.d, kDescTransB, &op_b, sizeof(op_b)), "cublasLtMatmulDescSetAttribute(TRANSB)");
  Layout la, lb, lc;
  check(lt.layout_create(&la.l, g.b_type, a_rows, a_cols, g.ldb), "cublasLtMatrixLayoutCreate(B)");
  check(lt.layout_create(&lb.l, g.a_type, b_rows, b_cols, g.lda), "cublasLtMatrixLayoutCreate(A)");
  check(lt.layout_create(&lc.l, g.c_type, uint64_t(g.N), uint64_t(g.M), g.ldc), "cublasLtMatrixLayoutCreate(C)");

  uint32_t align[4] = {alignment(g.B), alignment(g.A), alignment(g.C), alignment(g.C)};
  int device = 0;
  LMDR_CUDA_CHECK(cudaGetDevice(&device));
  std::vector<int64_t> key = {device, g.M, g.N, g.K, g.lda, g.ldb, g.ldc, g.trans_a, g.trans_b, g.a_type, g.b_type,
                              g.c_type, align[0], align[1], align[2], int64_t(workspace_bytes), g.K == 0};
  LtHeuristic h{};
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(g_algo_mutex);
    auto it = g_algo_cache.find(key);
    if (it != g_algo_cache.end()) h = it->second, cached = true;
  }
  if (!cached) {
    Pref pref;
    check(lt.pref_create(&pref.p), "cublasLtMatmulPreferenceCreate");
    uint64_t ws = workspace_bytes;
    check(lt.pref_set(pref.p, kPrefMaxWorkspace, &ws, sizeof(ws)), "cublasLtMatmulPreferenceSetAttribute");
    for (int i = 0; i < 4; i++)
      check(lt.pref_set(pref.p, kPrefAlignA + i, &align[i], sizeof(uint32_t)), "cublasLtMatmulPreferenceSetAttribute");
    int returned = 0;
    check(lt.heuristic(handle_, desc.d, la.l, lb.l, lc.l, lc.l, pref.p, 1, &h, &returned),
          "cublasLtMatmulAlgoGetHeuristic");
    if (returned == 0)
      throw Error(std::string(current_op()) + ": cuBLASLt has no algorithm for a " + std::to_string(g.M) + "x" +
                  std::to_string(g.N) + "x" + std::to_string(g.K) + " GEMM with types (" + std::to_string(g.a_type) +
                  "," + std::to_string(g.b_type) + "," + std::to_string(g.c_type) + ")");
    std::lock_guard<std::mutex> lock(g_algo_mutex);
    g_algo_cache[key] = h;
  }
  check(lt.matmul(handle_, desc.d, &g.alpha, g.B, la.l, g.A, lb.l, &g.beta, g.C, lc.l, g.C, lc.l, &h.algo, workspace,
                  workspace_bytes, stream),
        "cublasLtMatmul");
}

}  // namespace lmdr::cuda
