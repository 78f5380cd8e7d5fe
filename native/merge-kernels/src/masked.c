// Masked merge kernels over raw bf16 checkpoints with AVX-512 (the DARE family: Yu et al. 2023, "Language Models
// are Super Mario"; mergekit: mergekit/merge_methods/generalized_task_arithmetic.py): the sign-consensus combine of
// three models under keep-masks and the float64 L1 sums for the rescale, bit for bit wasm/kernels.ts's
// ta_consensus3_bf16_out and l1_sums3_bf16 (same operations in the same order; sums by index mod 4, in index order).
#include "masked.h"

#include "simd.h"

/** Sixteen keep bytes (0 or 1; NULL keeps all) as a lane mask. */
TARGET static inline __mmask16 keep_lanes(const uint8_t* keep, int64_t i) {
  if (keep == NULL) return (__mmask16)0xffff;
  const __m128i bytes = _mm_loadu_si128((const __m128i*)(keep + i));
  return _mm_test_epi8_mask(bytes, bytes);
}

TARGET void masked_consensus3_bf16(const uint16_t* b, const uint16_t* const x[3], const uint8_t* const keep[3],
                                   const float scale[3], const float w[3], int normalize, float lambda, uint16_t* out,
                                   int64_t n) {
  const int finite = __builtin_fabsf(w[0]) < __builtin_inff() && __builtin_fabsf(w[1]) < __builtin_inff() &&
                     __builtin_fabsf(w[2]) < __builtin_inff();
  const __m512 divs = divisors16(w);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 bv = widen16(b + i);
    const __m512 v0 = weighted16(_mm512_sub_ps(widen16(x[0] + i), bv), scale[0], w[0], keep_lanes(keep[0], i), finite);
    const __m512 v1 = weighted16(_mm512_sub_ps(widen16(x[1] + i), bv), scale[1], w[1], keep_lanes(keep[1], i), finite);
    const __m512 v2 = weighted16(_mm512_sub_ps(widen16(x[2] + i), bv), scale[2], w[2], keep_lanes(keep[2], i), finite);
    store_bf16x16(out + i, elect16(bv, v0, v1, v2, divs, normalize, lambda));
  }
  for (; i < n; i++) {
    const float bs = bf16_to_f32(b[i]);
    float v[3];
    for (int m = 0; m < 3; m++)
      v[m] = weighted1(bf16_to_f32(x[m][i]) - bs, scale[m], w[m], keep[m] == NULL || keep[m][i] != 0);
    out[i] = bf16_round(f32_bits(elect1(bs, v[0], v[1], v[2], w, normalize, lambda)));
  }
}

/** Four float64 sums += sixteen float64 lanes (lo, then hi): lane j takes lo[j], lo[4 + j], hi[j], hi[4 + j] in order. */
TARGET static inline __m256d add16(__m256d sum, __m512d lo, __m512d hi) {
  sum = _mm256_add_pd(sum, _mm512_castpd512_pd256(lo));
  sum = _mm256_add_pd(sum, _mm512_extractf64x4_pd(lo, 1));
  sum = _mm256_add_pd(sum, _mm512_castpd512_pd256(hi));
  return _mm256_add_pd(sum, _mm512_extractf64x4_pd(hi, 1));
}

TARGET void masked_l1_sums3_bf16(const uint16_t* const x[3], const uint8_t* const keep[3], const uint16_t* b,
                                 int64_t n, double* acc) {
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  const __m512i abs = _mm512_set1_epi32(ABS);
  __m256d before[3], after[3];
  int inf_kept[3] = {0, 0, 0};
  for (int m = 0; m < 3; m++) {
    before[m] = _mm256_loadu_pd(acc + 9 * m);
    after[m] = _mm256_loadu_pd(acc + 9 * m + 4);
  }
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 bv = widen16(b + i);
    for (int m = 0; m < 3; m++) {
      const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(widen16(x[m] + i), bv)), abs));
      const __m128i bytes = _mm_loadu_si128((const __m128i*)(keep[m] + i));
      const __mmask16 kept = _mm_test_epi8_mask(bytes, bytes);
      // The wasm kernel's p = a * q (q = keep byte, 0 or 1), without the multiply: a where kept, and where a is NaN
      // (NaN * 0 is that NaN), else +0; infinite entries count in infKept instead of `after` (inf * 0 is NaN).
      const __mmask16 nan = _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
      const __mmask16 infinite = _mm512_cmp_ps_mask(a, inf, _CMP_EQ_OQ);
      inf_kept[m] |= (infinite & kept) != 0;
      const __mmask16 p = (__mmask16)((kept | nan) & ~infinite);
      // Widened once: p's lanes are a's, masked (widening +0 gives +0).
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
      const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
      before[m] = add16(before[m], lo, hi);
      after[m] = add16(after[m], _mm512_maskz_mov_pd((__mmask8)p, lo), _mm512_maskz_mov_pd((__mmask8)(p >> 8), hi));
    }
  }
  double be[3][4], af[3][4];
  for (int m = 0; m < 3; m++) {
    _mm256_storeu_pd(be[m], before[m]);
    _mm256_storeu_pd(af[m], after[m]);
  }
  // The tail one entry at a time in its lane (the wasm kernel pads its last group with zeros, which add nothing:
  // the sums are never -0).
  for (; i < n; i++) {
    const float bs = bf16_to_f32(b[i]);
    for (int m = 0; m < 3; m++) {
      const float a = __builtin_fabsf(bf16_to_f32(x[m][i]) - bs);
      const float q = (float)keep[m][i];
      float p = a * q;
      if (a == __builtin_inff()) {
        if (q != 0) inf_kept[m] = 1;
        p = 0.0f;
      }
      be[m][i & 3] += (double)a;
      af[m][i & 3] += (double)p;
    }
  }
  for (int m = 0; m < 3; m++) {
    for (int j = 0; j < 4; j++) {
      acc[9 * m + j] = be[m][j];
      acc[9 * m + 4 + j] = af[m][j];
    }
    if (inf_kept[m]) acc[9 * m + 8] = 1;
  }
}

// ---- DARE keep-masks: keyed counter-based Bernoulli draws (src/tensor/kernels.ts's keyedU32, wasm's bernoulli) ----

/** Keys of the fine stream: the low 24 bits of a draw, needed only where a top byte ties the threshold's. */
#define FINE_K0 0x5bd1e995u
#define FINE_K1 0x27d4eb2fu

static inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  return x ^ (x >> 16);
}

static inline uint32_t fine_u24(uint32_t k0, uint32_t k1, uint32_t lo) {
  return mix32(mix32(lo + (k0 ^ FINE_K0)) ^ (k1 ^ FINE_K1)) >> 8;
}

/** Draw number lo of stream (k0, k1): the top byte from a hash word shared by four draws, the rest fine. */
static inline uint32_t keyed_u32(uint32_t k0, uint32_t k1, uint32_t lo) {
  const uint32_t coarse = (mix32(mix32((lo >> 2) + k0) ^ k1) >> ((lo & 3) << 3)) & 255;
  return (coarse << 24) | fine_u24(k0, k1, lo);
}

TARGET static inline __m512i mix16(__m512i x) {
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32((int32_t)0x846ca68bu));
  return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}

TARGET void masked_bernoulli(uint32_t k0, uint32_t k1, uint32_t lo, uint32_t threshold, uint8_t* mask, int64_t n) {
  int64_t i = 0;
  // The head up to a counter multiple of 4 (a whole hash word), one draw at a time.
  for (; i < n && ((lo + (uint32_t)i) & 3) != 0; i++) mask[i] = keyed_u32(k0, k1, lo + (uint32_t)i) < threshold;
  const __m512i top = _mm512_set1_epi8((char)(threshold >> 24));
  const uint32_t fine = threshold & 0xffffff;
  const __m512i k0v = _mm512_set1_epi32((int32_t)k0);
  const __m512i k1v = _mm512_set1_epi32((int32_t)k1);
  const __m512i one = _mm512_set1_epi8(1);
  // Hash word q of the step holds the top bytes of draws 4q .. 4q + 3 in its bytes, so the 64 bytes are the top
  // bytes of 64 consecutive draws in order.
  __m512i w = _mm512_add_epi32(_mm512_set1_epi32((int32_t)((lo + (uint32_t)i) >> 2)),
                               _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  for (; i + 64 <= n; i += 64) {
    const __m512i h = mix16(_mm512_xor_si512(mix16(_mm512_add_epi32(w, k0v)), k1v));
    w = _mm512_add_epi32(w, _mm512_set1_epi32(16));
    _mm512_storeu_si512((void*)(mask + i), _mm512_maskz_mov_epi8(_mm512_cmplt_epu8_mask(h, top), one));
    if (fine != 0) {
      for (uint64_t ties = _mm512_cmpeq_epu8_mask(h, top); ties != 0; ties &= ties - 1) {
        const int j = __builtin_ctzll(ties);
        mask[i + j] = fine_u24(k0, k1, lo + (uint32_t)(i + j)) < fine;
      }
    }
  }
  for (; i < n; i++) mask[i] = keyed_u32(k0, k1, lo + (uint32_t)i) < threshold;
}
