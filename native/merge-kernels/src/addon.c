// N-API glue for the native merge kernels (ties.c, masked.c). Each function takes the wasm arena's memory (an ArrayBuffer)
// and the same byte offsets, tables and results as the wasm kernel it stands in for (wasm/kernels.ts):
//   ta_consensus3_topk_bf16_out(memory, b, models, sel, normalize, lambda, out, n)
//   delta_band3_bf16(memory, x0, x1, x2, b, n, recs)
//   ta_consensus3_bf16_out(memory, b, models, normalize, lambda, out, n)   (keep-masks of bytes 0 / 1)
//   l1_sums3_bf16(memory, x0, m0, x1, m1, x2, m2, b, n, acc)
//   bernoulli(memory, k0, k1, lo, threshold, mask, n)
// Every region a call reads or writes (tables included) is checked against the memory's length and alignment, so a
// wrong call throws a RangeError instead of touching memory outside the arena. `supported` says whether this CPU
// runs them (AVX-512); the JS side uses the wasm kernels otherwise.
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "masked.h"
#include "ties.h"

/** Set at load: the kernels' instructions are there (a call on another CPU throws rather than faulting). */
static int cpu_ok = 0;

static napi_value fail(napi_env env, const char* code, const char* msg) {
  napi_throw_range_error(env, code, msg);
  return NULL;
}

static int get_u32(napi_env env, napi_value v, uint32_t* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) return 0;
  *out = (uint32_t)d;
  return 1;
}

static int get_f32(napi_env env, napi_value v, float* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  *out = (float)d;
  return 1;
}

static int get_memory(napi_env env, napi_value v, uint8_t** data, size_t* length) {
  bool is;
  if (napi_is_arraybuffer(env, v, &is) != napi_ok || !is) return 0;
  void* p;
  if (napi_get_arraybuffer_info(env, v, &p, length) != napi_ok) return 0;
  *data = (uint8_t*)p;
  return 1;
}

/** Whether [at, at + bytes) lies inside the memory and `at` is a multiple of align. */
static int inside(size_t length, uint64_t at, uint64_t bytes, uint64_t align) {
  return at % align == 0 && at <= length && bytes <= length - at;
}

static uint32_t read_u32(const uint8_t* mem, uint32_t at) {
  uint32_t v;
  memcpy(&v, mem + at, 4);
  return v;
}

/**
 * A kernel call's arguments, on a CPU that runs the kernels: exactly 1 + count of them, the memory first, then u32
 * offsets / counts into u[] in order, except argument `float_at` (1-based; 0 = none), a number, into *f. Else it
 * throws (ERR_ARGS with the call's usage, or ERR_CPU) and returns 0.
 */
static int call_args(napi_env env, napi_callback_info info, size_t count, const char* usage, uint8_t** mem,
                     size_t* length, uint32_t* u, size_t float_at, float* f) {
  napi_value argv[10];
  size_t argc = 10;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  int ok = argc == 1 + count && get_memory(env, argv[0], mem, length);
  for (size_t j = 1; ok && j <= count; j++) ok = j == float_at ? get_f32(env, argv[j], f) : get_u32(env, argv[j], u++);
  if (!ok) {
    fail(env, "ERR_ARGS", usage);
    return 0;
  }
  if (!cpu_ok) {
    fail(env, "ERR_CPU", "this CPU lacks AVX-512");
    return 0;
  }
  return 1;
}

/** The three model records of a combine's table (x, keep (0 = all), scale, w), every region checked. */
static int model_table(napi_env env, uint8_t* mem, size_t length, uint32_t models, uint64_t n, const uint16_t* x[3],
                       const uint8_t* keep[3], float scale[3], float w[3], const char* name) {
  char msg[128];
  if (!inside(length, models, 48, 4)) {
    snprintf(msg, sizeof msg, "%s: the model table lies outside the memory", name);
    fail(env, "ERR_SIZE", msg);
    return 0;
  }
  for (int m = 0; m < 3; m++) {
    const uint32_t at = read_u32(mem, models + 16 * m);
    const uint32_t k = read_u32(mem, models + 16 * m + 4);
    if (!inside(length, at, 2 * n, 2) || (keep != NULL && k != 0 && !inside(length, k, n, 1))) {
      snprintf(msg, sizeof msg, "%s: a model lies outside the memory", name);
      fail(env, "ERR_SIZE", msg);
      return 0;
    }
    x[m] = (const uint16_t*)(mem + at);
    if (keep != NULL) keep[m] = k == 0 ? NULL : mem + k;
    memcpy(&scale[m], mem + models + 16 * m + 8, 4);
    memcpy(&w[m], mem + models + 16 * m + 12, 4);
  }
  return 1;
}

static napi_value consensus3_topk_bf16_out(napi_env env, napi_callback_info info) {
  uint8_t* mem;
  size_t length;
  uint32_t p[6];
  float lambda;
  if (!call_args(env, info, 7, "ta_consensus3_topk_bf16_out(memory, b, models, sel, normalize, lambda, out, n)", &mem,
                 &length, p, 5, &lambda))
    return NULL;
  const uint32_t b = p[0], models = p[1], sel = p[2], normalize = p[3], out = p[4], n = p[5];
  const uint64_t bytes = 2 * (uint64_t)n;
  if (!inside(length, sel, 24, 4) || !inside(length, b, bytes, 2) || !inside(length, out, bytes, 2))
    return fail(env, "ERR_SIZE", "ta_consensus3_topk_bf16_out: a region lies outside the memory");
  const uint16_t* x[3];
  float scale[3], w[3];
  int32_t thr[3], left[3];
  if (!model_table(env, mem, length, models, n, x, NULL, scale, w, "ta_consensus3_topk_bf16_out")) return NULL;
  memcpy(thr, mem + sel, 12);
  memcpy(left, mem + sel + 12, 12);
  ties_consensus3_topk_bf16((const uint16_t*)(mem + b), x, scale, w, thr, left, normalize != 0, lambda,
                            (uint16_t*)(mem + out), n);
  memcpy(mem + sel + 12, left, 12);
  return NULL;
}

static napi_value band3_bf16(napi_env env, napi_callback_info info) {
  uint8_t* mem;
  size_t length;
  uint32_t p[6];
  if (!call_args(env, info, 6, "delta_band3_bf16(memory, x0, x1, x2, b, n, recs)", &mem, &length, p, 0, NULL))
    return NULL;
  const uint32_t xs[3] = {p[0], p[1], p[2]}, b = p[3], n = p[4], recs = p[5];
  const uint64_t bytes = 2 * (uint64_t)n;
  if (!inside(length, b, bytes, 2) || !inside(length, recs, 96, 4))
    return fail(env, "ERR_SIZE", "delta_band3_bf16: a region lies outside the memory");
  const uint16_t* x[3];
  TiesBand band[3];
  for (int m = 0; m < 3; m++) {
    const uint32_t at = recs + 32 * m;
    const uint32_t keys = read_u32(mem, at + 8);
    const uint32_t counts = read_u32(mem, at + 16);
    band[m].lo = read_u32(mem, at);
    band[m].hi = read_u32(mem, at + 4);
    band[m].cap = read_u32(mem, at + 12);
    if (!inside(length, xs[m], bytes, 2) || !inside(length, keys, 4 * ((uint64_t)band[m].cap + 4), 4) ||
        !inside(length, counts, 8, 4))
      return fail(env, "ERR_SIZE", "delta_band3_bf16: a model's region lies outside the memory");
    if (band[m].lo > 0x7fffffffu || band[m].hi > 0x7fffffffu)
      return fail(env, "ERR_ARGS", "delta_band3_bf16: band bounds must be below 2^31");
    x[m] = (const uint16_t*)(mem + xs[m]);
    band[m].keys = (uint32_t*)(mem + keys);
    band[m].counts = (uint32_t*)(mem + counts);
  }
  ties_band3_bf16(x, (const uint16_t*)(mem + b), n, band);
  return NULL;
}

static napi_value consensus3_bf16_out(napi_env env, napi_callback_info info) {
  uint8_t* mem;
  size_t length;
  uint32_t p[5];
  float lambda;
  if (!call_args(env, info, 6, "ta_consensus3_bf16_out(memory, b, models, normalize, lambda, out, n)", &mem, &length, p,
                 4, &lambda))
    return NULL;
  const uint32_t b = p[0], models = p[1], normalize = p[2], out = p[3], n = p[4];
  if (!inside(length, b, 2 * (uint64_t)n, 2) || !inside(length, out, 2 * (uint64_t)n, 2))
    return fail(env, "ERR_SIZE", "ta_consensus3_bf16_out: a region lies outside the memory");
  const uint16_t* x[3];
  const uint8_t* keep[3];
  float scale[3], w[3];
  if (!model_table(env, mem, length, models, n, x, keep, scale, w, "ta_consensus3_bf16_out")) return NULL;
  masked_consensus3_bf16((const uint16_t*)(mem + b), x, keep, scale, w, normalize != 0, lambda, (uint16_t*)(mem + out),
                         n);
  return NULL;
}

static napi_value l1_sums3_bf16(napi_env env, napi_callback_info info) {
  uint8_t* mem;
  size_t length;
  uint32_t p[9];
  if (!call_args(env, info, 9, "l1_sums3_bf16(memory, x0, m0, x1, m1, x2, m2, b, n, acc)", &mem, &length, p, 0, NULL))
    return NULL;
  const uint64_t n = p[7];
  if (!inside(length, p[6], 2 * n, 2) || !inside(length, p[8], 9 * 3 * 8, 8))
    return fail(env, "ERR_SIZE", "l1_sums3_bf16: a region lies outside the memory");
  const uint16_t* x[3];
  const uint8_t* keep[3];
  for (int m = 0; m < 3; m++) {
    if (!inside(length, p[2 * m], 2 * n, 2) || !inside(length, p[2 * m + 1], n, 1))
      return fail(env, "ERR_SIZE", "l1_sums3_bf16: a model or its mask lies outside the memory");
    x[m] = (const uint16_t*)(mem + p[2 * m]);
    keep[m] = mem + p[2 * m + 1];
  }
  masked_l1_sums3_bf16(x, keep, (const uint16_t*)(mem + p[6]), (int64_t)n, (double*)(mem + p[8]));
  return NULL;
}

static napi_value bernoulli(napi_env env, napi_callback_info info) {
  uint8_t* mem;
  size_t length;
  uint32_t p[6];
  if (!call_args(env, info, 6, "bernoulli(memory, k0, k1, lo, threshold, mask, n)", &mem, &length, p, 0, NULL))
    return NULL;
  if (!inside(length, p[4], p[5], 1)) return fail(env, "ERR_SIZE", "bernoulli: the mask lies outside the memory");
  masked_bernoulli(p[0], p[1], p[2], p[3], mem + p[4], p[5]);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct {
    const char* name;
    napi_callback fn;
  } kernels[] = {
      {"ta_consensus3_topk_bf16_out", consensus3_topk_bf16_out},
      {"delta_band3_bf16", band3_bf16},
      {"ta_consensus3_bf16_out", consensus3_bf16_out},
      {"l1_sums3_bf16", l1_sums3_bf16},
      {"bernoulli", bernoulli},
  };
  cpu_ok = ties_supported();
  napi_value supported;
  napi_get_boolean(env, cpu_ok != 0, &supported);
  napi_set_named_property(env, exports, "supported", supported);
  for (size_t j = 0; j < sizeof kernels / sizeof kernels[0]; j++) {
    napi_value f;
    napi_create_function(env, kernels[j].name, NAPI_AUTO_LENGTH, kernels[j].fn, NULL, &f);
    napi_set_named_property(env, exports, kernels[j].name, f);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
