// The emulator's fiber scheduler and the CUDA runtime calls lmdr makes, on host memory.
// One "device" named "emulated GPU"; streams are synchronous; cudaMalloc is malloc.
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_emu.h"

namespace emu {

ThreadState* current = nullptr;
uint3 block_idx;
dim3 block_dim, grid_dim;

namespace {

enum class St { Run, BlockWait, WarpWait, Done };
struct Fiber {
  ThreadState state;
  ucontext_t ctx;
  St st = St::Run;
  int linear = 0;
  unsigned shfl_gen = 0;
  std::vector<char> stack;
};
struct Warp {
  uint64_t buf[2][32];
};

constexpr size_t kStack = 256 * 1024;
std::vector<Fiber> fibers;
std::vector<Warp> warps;
std::vector<unsigned char> smem_buf;
ucontext_t scheduler;
Fiber* running = nullptr;
const std::function<void()>* body_fn = nullptr;

void entry(int index) {
  (*body_fn)();
  fibers[size_t(index)].st = St::Done;
  swapcontext(&fibers[size_t(index)].ctx, &scheduler);
}

void wait(St s) {
  running->st = s;
  swapcontext(&running->ctx, &scheduler);
}

void run_block(const std::function<void()>& body) {
  const int n = int(block_dim.x * block_dim.y * block_dim.z);
  fibers.resize(size_t(n));
  warps.assign(size_t((n + 31) / 32), Warp{});
  body_fn = &body;
  for (int i = 0; i < n; i++) {
    Fiber& f = fibers[size_t(i)];
    f.state.tid = make_uint3(unsigned(i) % block_dim.x, (unsigned(i) / block_dim.x) % block_dim.y,
                             unsigned(i) / (block_dim.x * block_dim.y));
    f.st = St::Run;
    f.linear = i;
    f.shfl_gen = 0;
    if (f.stack.size() != kStack) f.stack.resize(kStack);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.data();
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, reinterpret_cast<void (*)()>(entry), 1, i);
  }
  bool forward = true;
  for (;;) {
    for (int k = 0; k < n; k++) {  // alternate the order so missing barriers show either way
      Fiber& f = fibers[size_t(forward ? k : n - 1 - k)];
      if (f.st != St::Run) continue;
      running = &f;
      current = &f.state;
      swapcontext(&scheduler, &f.ctx);
    }
    forward = !forward;
    int live = 0, at_block = 0;
    for (Fiber& f : fibers) {
      if (f.st != St::Done) live++;
      if (f.st == St::BlockWait) at_block++;
    }
    if (live == 0) break;
    bool released = false;
    if (at_block == live) {
      for (Fiber& f : fibers)
        if (f.st == St::BlockWait) f.st = St::Run;
      released = true;
    }
    for (size_t w = 0; w < warps.size(); w++) {
      int wl = 0, ww = 0;
      for (int l = 0; l < 32 && int(w) * 32 + l < n; l++) {
        St s = fibers[w * 32 + size_t(l)].st;
        if (s != St::Done) wl++;
        if (s == St::WarpWait) ww++;
      }
      if (ww > 0 && ww == wl) {
        for (int l = 0; l < 32 && int(w) * 32 + l < n; l++)
          if (fibers[w * 32 + size_t(l)].st == St::WarpWait) fibers[w * 32 + size_t(l)].st = St::Run;
        released = true;
      }
    }
    if (!released)
      throw std::runtime_error("emulated GPU: deadlock in block (" + std::to_string(block_idx.x) + "," +
                               std::to_string(block_idx.y) + "," + std::to_string(block_idx.z) + "): " +
                               std::to_string(at_block) + " of " + std::to_string(live) +
                               " live threads wait at __syncthreads, the rest at a warp shuffle");
  }
  current = nullptr;
}

}  // namespace

unsigned char* dyn_smem() {  // 256-byte aligned, like the start of a block's shared window
  uintptr_t p = reinterpret_cast<uintptr_t>(smem_buf.data());
  return smem_buf.data() + ((256 - p % 256) % 256);
}
int lane() { return running->linear & 31; }
void sync_block() { wait(St::BlockWait); }
void sync_warp() { wait(St::WarpWait); }

uint64_t shfl_bits(uint64_t bits, int src) {
  Fiber* f = running;
  Warp& w = warps[size_t(f->linear / 32)];
  int phase = int(f->shfl_gen++ & 1u);
  w.buf[phase][f->linear & 31] = bits;
  wait(St::WarpWait);
  if (src < 0 || src > 31) src = f->linear & 31;
  return w.buf[phase][src];
}

void warp_gather(const uint32_t* mine, int n, uint32_t* all) {
  static std::vector<uint32_t> scratch;  // [warp][lane][n]; blocks run one at a time
  const size_t w = size_t(running->linear / 32), l = size_t(running->linear & 31);
  if (scratch.size() < (w + 1) * 32 * size_t(n)) scratch.resize((w + 1) * 32 * size_t(n));
  std::memcpy(&scratch[(w * 32 + l) * size_t(n)], mine, sizeof(uint32_t) * size_t(n));
  wait(St::WarpWait);  // every lane has written
  std::memcpy(all, &scratch[w * 32 * size_t(n)], sizeof(uint32_t) * 32 * size_t(n));
  wait(St::WarpWait);  // every lane has read before the next gather overwrites
}

void launch_impl(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || threads % 32)
    throw std::runtime_error("emulated GPU: block of " + std::to_string(threads) + " threads (lmdr uses multiples of 32, <= 1024)");
  if (grid.y > 65535 || grid.z > 65535 || grid.x == 0 || grid.y == 0 || grid.z == 0)
    throw std::runtime_error("emulated GPU: bad grid");
  if (smem > 227 * 1024) throw std::runtime_error("emulated GPU: " + std::to_string(smem) + " bytes of dynamic shared memory");
  smem_buf.assign(smem + 256, 0xCD);  // garbage, like real shared memory
  grid_dim = grid;
  block_dim = block;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        block_idx = make_uint3(x, y, z);
        run_block(body);
      }
}

}  // namespace emu

// ---- the CUDA runtime calls lmdr makes ----
extern "C" {

cudaError_t cudaGetDeviceCount(int* count) { *count = 1; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "emulated GPU");
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = size_t(8) << 30;
  return cudaSuccess;
}
const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { *s = nullptr; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) { std::memset(p, v, n); return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::malloc(n);
  if (*p) std::memset(*p, 0xCD, n);  // garbage, like fresh device memory
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
  *free_b = size_t(4) << 30;
  *total_b = size_t(8) << 30;
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
// events (LMDR_CUDA_PROFILE): work is synchronous here, so every op takes 0 ms
cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = reinterpret_cast<cudaEvent_t>(new int(0)); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) { *ms = 0.f; return cudaSuccess; }

}  // extern "C"
