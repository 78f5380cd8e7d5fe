// Inline helpers shared by the kernels (ties.c, masked.c): bf16 loads and stores, the weighted deltas and the sign
// election, sixteen lanes (AVX-512) and scalar, each the float32 arithmetic of wasm/kernels.ts in its order.
#pragma once
#include <immintrin.h>
#include <stdint.h>

#define ABS 0x7fffffff
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,bmi2,popcnt")))

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

/** v = kept ? fround(fround(d * scale) * w) : 0 * w (the scale only when it is not 1), as wasm's weightedDelta. */
TARGET static inline __m512 weighted16(__m512 d, float scale, float w, __mmask16 keep, int finite) {
  __m512 t = d;
  if (scale != 1.0f) t = _mm512_mul_ps(t, _mm512_set1_ps(scale));
  // 0 * w is +0 for a finite w (a zeroing multiply), NaN for an infinite one
  if (finite) return _mm512_maskz_mul_ps(keep, t, _mm512_set1_ps(w));
  return _mm512_mask_mul_ps(_mm512_set1_ps(0.0f * w), keep, t, _mm512_set1_ps(w));
}

/**
 * The divisors of the normalized combine by lane index t0 + 2 t1 + 4 t2 (which models agree with the vote), repeated:
 * ((0 + w0) + w1) + w2 over the agreeing models, as elect16 would sum them, and 1 for a zero sum.
 */
TARGET static inline __m512 divisors16(const float* w) {
  float d[16];
  for (int i = 0; i < 8; i++) {
    float s = 0.0f;
    s = s + ((i & 1) ? w[0] : 0.0f);
    s = s + ((i & 2) ? w[1] : 0.0f);
    s = s + ((i & 4) ? w[2] : 0.0f);
    d[i] = d[i + 8] = s == 0.0f ? 1.0f : s;
  }
  return _mm512_loadu_ps(d);
}

/**
 * The sign election of three weighted deltas and the combine (wasm's elect3); divs from divisors16. Bit for bit
 * wasm's operations, with these shortcuts: the vote skips elect3's leading 0 + (only its sign is used, and 0 + v
 * differs from v only for v = -0, which votes the same); the mixed sum adds the agreeing deltas by masked adds (a
 * sum that starts at +0 is never -0, so adding a zeroed lane's +0 leaves it as it is); the divisor is looked up.
 */
TARGET static inline __m512 elect16(__m512 b, __m512 v0, __m512 v1, __m512 v2, __m512 divs, int normalize,
                                    float lambda) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 vote = _mm512_add_ps(_mm512_add_ps(v0, v1), v2);
  const __mmask16 ge = _mm512_cmp_ps_mask(vote, zero, _CMP_GE_OQ);
  const __m512i flip = _mm512_maskz_mov_epi32((__mmask16)~ge, _mm512_set1_epi32((int32_t)0x80000000));
  const __mmask16 t0 = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v0), flip)), zero, _CMP_GT_OQ);
  const __mmask16 t1 = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v1), flip)), zero, _CMP_GT_OQ);
  const __mmask16 t2 = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v2), flip)), zero, _CMP_GT_OQ);
  __m512 mixed = _mm512_mask_add_ps(zero, t0, zero, v0);
  mixed = _mm512_mask_add_ps(mixed, t1, mixed, v1);
  mixed = _mm512_mask_add_ps(mixed, t2, mixed, v2);
  if (normalize) {
    __m512i idx = _mm512_maskz_mov_epi32(t0, _mm512_set1_epi32(1));
    idx = _mm512_mask_or_epi32(idx, t1, idx, _mm512_set1_epi32(2));
    idx = _mm512_mask_or_epi32(idx, t2, idx, _mm512_set1_epi32(4));
    mixed = _mm512_div_ps(mixed, _mm512_permutexvar_ps(idx, divs));
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

