// Masked merge kernels over raw bf16 (masked.c); the N-API glue is addon.c.
#pragma once
#include <stdint.h>

/** ties.c's combine with keep-masks (bytes 0 / 1; NULL keeps all) instead of top-k thresholds. */
void masked_consensus3_bf16(const uint16_t* b, const uint16_t* const x[3], const uint8_t* const keep[3],
                            const float scale[3], const float w[3], int normalize, float lambda, uint16_t* out,
                            int64_t n);

/** acc: per model 9 float64 { before[4], after[4], infKept }, read and updated (lane j: entries j mod 4). */
void masked_l1_sums3_bf16(const uint16_t* const x[3], const uint8_t* const keep[3], const uint16_t* b, int64_t n,
                          double* acc);

/** mask[i] = draw lo + i of stream (k0, k1) < threshold (unsigned; threshold in (0, 2^32)), as bytes 0 / 1. */
void masked_bernoulli(uint32_t k0, uint32_t k1, uint32_t lo, uint32_t threshold, uint8_t* mask, int64_t n);
