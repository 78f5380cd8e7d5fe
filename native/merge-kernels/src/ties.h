// TIES kernels over raw bf16 (ties.c); the N-API glue is addon.c.
#pragma once
#include <stdint.h>

/** One model's band search: keys in [lo, hi] gathered at keys (cap + 4 slots); counts: { below, gathered }. */
typedef struct {
  uint32_t lo, hi, cap;
  uint32_t* keys;
  uint32_t* counts;
} TiesBand;

/** Whether this CPU runs the kernels (AVX-512 F/BW/VL, BMI2). */
int ties_supported(void);

void ties_consensus3_topk_bf16(const uint16_t* b, const uint16_t* const x[3], const float scale[3], const float w[3],
                               const int32_t thr[3], int32_t left[3], int normalize, float lambda, uint16_t* out,
                               int64_t n);

void ties_band3_bf16(const uint16_t* const x[3], const uint16_t* b, int64_t n, TiesBand band[3]);
