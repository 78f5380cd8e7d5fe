// TIES kernels over raw bf16 checkpoints with AVX-512: the same arithmetic, bit for bit, as wasm/kernels.ts's
// ta_consensus3_topk_bf16_out and delta_band3_bf16 (float32 operations in the same order, no contraction), sixteen
// elements a step instead of four. Yadav et al. 2023, "TIES-Merging" (mergekit: mergekit/merge_methods/generalized_task_arithmetic.py).
#include "ties.h"

#include "simd.h"

int ties_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
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

/** Scalar tie step: whether an element with key `key` is kept, as keep16 lane by lane. */
static inline int keep1(uint32_t key, int32_t thr, int32_t* left) {
  if ((int32_t)key > thr) return 1;
  if ((int32_t)key == thr && *left > 0) {
    (*left)--;
    return 1;
  }
  return 0;
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
  const __m512 divs = divisors16(w);
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
                             weighted16(d2, scale[2], w[2], k2, finite), divs, normalize, lambda);
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
      // keys are always stored, as the wasm kernel stores them. Compressed in a register, then a masked store
      // (vpcompressd with a memory operand is microcoded on Zen 4: the band pass ran 4x slower with it there), and
      // no branch: whether a step holds a band key is a coin toss (~5% of keys lie in a band), and the
      // mispredictions cost 3x on real checkpoints. A step with no room stores nothing (mask 0) at the clamped end.
      const uint32_t end = band[m].cap + 4;
      const uint32_t room = (uint64_t)g[m] + count <= end ? count : g[m] < band[m].cap ? band[m].cap - g[m] : 0;
      _mm512_mask_storeu_epi32(band[m].keys + (g[m] < end ? g[m] : end), (__mmask16)((1u << room) - 1),
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
