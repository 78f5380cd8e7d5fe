// TIES kernels over raw bf16 checkpoints with AVX-512: the same arithmetic, bit for bit, as wasm/kernels.ts's
// ta_consensus3_topk_bf16_out and delta_band3_bf16 (float32 operations in the same order, no contraction), sixteen
// elements a step instead of four. Yadav et al. 2023, "TIES-Merging" (mergekit: mergekit/merge_methods/generalized_task_arithmetic.py).
#include "ties.h"

#include <immintrin.h>
#include <stdint.h>

#define ABS 0x7fffffff
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,bmi2,popcnt")))

int ties_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
}

static inline float bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
  return v.f;
}

static inline uint32_t f32_bits(float f) {
  union { float f; uint32_t u; } v = {.f = f};
  return v.u;
}

static inline uint16_t bf16_round(uint32_t u) {
  if ((u & ABS) > 0x7f800000) return (uint16_t)(((u >> 16) | 0x40) & 0xffff);
  return (uint16_t)(((u + 0x7fff + ((u >> 16) & 1)) >> 16) & 0xffff);
}

TARGET static inline __m512 widen16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}

/** Keep-mask of sixteen keys: key > thr, plus the first *left keys equal to thr in lane order (*left drops). */
TARGET static inline __mmask16 keep16(__m512i key, __m512i thr, int32_t* left) {
  __mmask16 k = _mm512_cmpgt_epi32_mask(key, thr);
  if (*left > 0) {
    const uint32_t q = _mm512_cmpeq_epi32_mask(key, thr);
    const int32_t count = __builtin_popcount(q);
    if (*left >= count) {
      k |= (__mmask16)q;
      *left -= count;
    } else {
      k |= (__mmask16)_pdep_u32((1u << *left) - 1, q);
      *left = 0;
    }
  }
  return k;
}

/** v = kept ? fround(fround(d * scale) * w) : 0 * w (the scale only when it is not 1), as wasm's weightedDelta. */
TARGET static inline __m512 weighted16(__m512 d, float scale, float w, __mmask16 keep, int finite) {
  __m512 t = d;
  if (scale != 1.0f) t = _mm512_mul_ps(t, _mm512_set1_ps(scale));
  const __m512 v = _mm512_mul_ps(t, _mm512_set1_ps(w));
  if (finite) return _mm512_maskz_mov_ps(keep, v);
  return _mm512_mask_blend_ps(keep, _mm512_set1_ps(0.0f * w), v);
}

/** The sign election of three weighted deltas and the combine (wasm's elect3). */
TARGET static inline __m512 elect16(__m512 b, __m512 v0, __m512 v1, __m512 v2, const float* w, int normalize,
                                    float lambda) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 vote = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(zero, v0), v1), v2);
  const __mmask16 ge = _mm512_cmp_ps_mask(vote, zero, _CMP_GE_OQ);
  const __m512i flip = _mm512_maskz_mov_epi32((__mmask16)~ge, _mm512_set1_epi32((int32_t)0x80000000));
  const __mmask16 t0 = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v0), flip)), zero, _CMP_GT_OQ);
  const __mmask16 t1 = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v1), flip)), zero, _CMP_GT_OQ);
  const __mmask16 t2 = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v2), flip)), zero, _CMP_GT_OQ);
  __m512 mixed = _mm512_add_ps(
      _mm512_add_ps(_mm512_add_ps(zero, _mm512_maskz_mov_ps(t0, v0)), _mm512_maskz_mov_ps(t1, v1)),
      _mm512_maskz_mov_ps(t2, v2));
  if (normalize) {
    const __m512 div = _mm512_add_ps(
        _mm512_add_ps(_mm512_add_ps(zero, _mm512_maskz_mov_ps(t0, _mm512_set1_ps(w[0]))),
                      _mm512_maskz_mov_ps(t1, _mm512_set1_ps(w[1]))),
        _mm512_maskz_mov_ps(t2, _mm512_set1_ps(w[2])));
    const __mmask16 none = _mm512_cmp_ps_mask(div, zero, _CMP_EQ_OQ);
    mixed = _mm512_div_ps(mixed, _mm512_mask_blend_ps(none, div, _mm512_set1_ps(1.0f)));
  }
  if (lambda != 1.0f) mixed = _mm512_mul_ps(mixed, _mm512_set1_ps(lambda));
  return _mm512_add_ps(b, mixed);
}

/** Sixteen float32 results stored as bf16 bits, rounded to nearest even, NaN quieted (wasm's bf16Bits). */
TARGET static inline void store_bf16x16(uint16_t* p, __m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i high = _mm512_srli_epi32(u, 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(ABS)), _mm512_set1_epi32(0x7f800000));
  const __m512i odd = _mm512_and_si512(high, _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd), 16);
  const __m512i bits = _mm512_mask_blend_epi32(nan, rounded, _mm512_or_si512(high, _mm512_set1_epi32(0x40)));
  _mm256_storeu_si256((__m256i*)p, _mm512_cvtepi32_epi16(bits));
}

/** Scalar tie step: whether an element with key `key` is kept, as keep16 lane by lane. */
static inline int keep1(uint32_t key, int32_t thr, int32_t* left) {
  if ((int32_t)key > thr) return 1;
  if ((int32_t)key == thr && *left > 0) {
    (*left)--;
    return 1;
  }
  return 0;
}

static inline float weighted1(float d, float scale, float w, int keep) {
  float t = d;
  if (scale != 1.0f) t = t * scale;
  return keep ? t * w : 0.0f * w;
}

static inline float elect1(float b, float v0, float v1, float v2, const float* w, int normalize, float lambda) {
  const float vote = 0.0f + v0 + v1 + v2;
  float mixed = 0.0f;
  float div = 0.0f;
  if (vote >= 0 ? v0 > 0 : v0 < 0) {
    mixed = mixed + v0;
    div = div + w[0];
  }
  if (vote >= 0 ? v1 > 0 : v1 < 0) {
    mixed = mixed + v1;
    div = div + w[1];
  }
  if (vote >= 0 ? v2 > 0 : v2 < 0) {
    mixed = mixed + v2;
    div = div + w[2];
  }
  if (normalize) mixed = mixed / (div == 0 ? 1.0f : div);
  if (lambda != 1.0f) mixed = mixed * lambda;
  return b + mixed;
}

TARGET void ties_consensus3_topk_bf16(const uint16_t* b, const uint16_t* const x[3], const float scale[3],
                                      const float w[3], const int32_t thr[3], int32_t left[3], int normalize,
                                      float lambda, uint16_t* out, int64_t n) {
  const __m512i abs = _mm512_set1_epi32(ABS);
  const __m512i tv0 = _mm512_set1_epi32(thr[0]);
  const __m512i tv1 = _mm512_set1_epi32(thr[1]);
  const __m512i tv2 = _mm512_set1_epi32(thr[2]);
  int32_t l0 = left[0], l1 = left[1], l2 = left[2];
  const int finite = __builtin_fabsf(w[0]) < __builtin_inff() && __builtin_fabsf(w[1]) < __builtin_inff() &&
                     __builtin_fabsf(w[2]) < __builtin_inff();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 bv = widen16(b + i);
    const __m512 d0 = _mm512_sub_ps(widen16(x[0] + i), bv);
    const __m512 d1 = _mm512_sub_ps(widen16(x[1] + i), bv);
    const __m512 d2 = _mm512_sub_ps(widen16(x[2] + i), bv);
    const __mmask16 k0 = keep16(_mm512_and_si512(_mm512_castps_si512(d0), abs), tv0, &l0);
    const __mmask16 k1 = keep16(_mm512_and_si512(_mm512_castps_si512(d1), abs), tv1, &l1);
    const __mmask16 k2 = keep16(_mm512_and_si512(_mm512_castps_si512(d2), abs), tv2, &l2);
    const __m512 r = elect16(bv, weighted16(d0, scale[0], w[0], k0, finite), weighted16(d1, scale[1], w[1], k1, finite),
                             weighted16(d2, scale[2], w[2], k2, finite), w, normalize, lambda);
    store_bf16x16(out + i, r);
  }
  for (; i < n; i++) {
    const float bs = bf16_to_f32(b[i]);
    const float d0 = bf16_to_f32(x[0][i]) - bs;
    const float d1 = bf16_to_f32(x[1][i]) - bs;
    const float d2 = bf16_to_f32(x[2][i]) - bs;
    const int k0 = keep1(f32_bits(d0) & ABS, thr[0], &l0);
    const int k1 = keep1(f32_bits(d1) & ABS, thr[1], &l1);
    const int k2 = keep1(f32_bits(d2) & ABS, thr[2], &l2);
    const float r = elect1(bs, weighted1(d0, scale[0], w[0], k0), weighted1(d1, scale[1], w[1], k1),
                           weighted1(d2, scale[2], w[2], k2), w, normalize, lambda);
    out[i] = bf16_round(f32_bits(r));
  }
  left[0] = l0;
  left[1] = l1;
  left[2] = l2;
}

TARGET void ties_band3_bf16(const uint16_t* const x[3], const uint16_t* b, int64_t n, TiesBand band[3]) {
  const __m512i abs = _mm512_set1_epi32(ABS);
  __m512i lov[3], hiv[3];
  uint32_t g[3];
  uint64_t below[3] = {0, 0, 0};
  for (int m = 0; m < 3; m++) {
    lov[m] = _mm512_set1_epi32((int32_t)band[m].lo);
    hiv[m] = _mm512_set1_epi32((int32_t)band[m].hi);
    g[m] = band[m].counts[1];
  }
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 bv = widen16(b + i);
    for (int m = 0; m < 3; m++) {
      const __m512i key = _mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(widen16(x[m] + i), bv)), abs);
      // Keys and bounds are below 2^31, so signed compares order them.
      const __mmask16 lt = _mm512_cmplt_epi32_mask(key, lov[m]);
      const __mmask16 in = (__mmask16)(~lt & _mm512_cmple_epi32_mask(key, hiv[m]));
      below[m] += (uint64_t)__builtin_popcount(lt);
      const uint32_t count = (uint32_t)__builtin_popcount(in);
      // The buffer holds cap + 4 keys: past that only the count grows (and shows the overflow); the first cap
      // keys are always stored, as the wasm kernel stores them.
      if ((uint64_t)g[m] + count <= (uint64_t)band[m].cap + 4)
        _mm512_mask_compressstoreu_epi32(band[m].keys + g[m], in, key);
      else if (g[m] < band[m].cap)
        _mm512_mask_storeu_epi32(band[m].keys + g[m], (__mmask16)((1u << (band[m].cap - g[m])) - 1),
                                 _mm512_maskz_compress_epi32(in, key));
      g[m] += count;
    }
  }
  for (int m = 0; m < 3; m++) {
    for (int64_t j = i; j < n; j++) {
      const float d = bf16_to_f32(x[m][j]) - bf16_to_f32(b[j]);
      const uint32_t key = f32_bits(d) & ABS;
      if (key < band[m].lo)
        below[m]++;
      else if (key <= band[m].hi) {
        if (g[m] < band[m].cap) band[m].keys[g[m]] = key;
        g[m]++;
      }
    }
    band[m].counts[0] = (uint32_t)below[m];
    band[m].counts[1] = g[m];
  }
}
