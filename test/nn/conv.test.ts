import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { FUSION_BACKEND } from "../../src/nn/backend.js";
import { CONV_RELU_MAX_POOL_GRAD_KERNEL } from "../../src/nn/kernels/conv-pool.js";
import { conv2d } from "../../src/nn/layers.js";
import { agrees, backendUnderTest, randn, sizeOf, withGrads } from "./compare.js";

type Pad = "same" | "valid" | [[0, 0], [number, number], [number, number], [0, 0]];

interface Case {
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
  dilations?: number | [number, number];
}

const CASES: Case[] = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: "valid" },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: "same" },
  { x: [1, 9, 8, 2], f: [3, 2, 2, 5], strides: [2, 3], pad: "same" },
  { x: [3, 8, 8, 4], f: [2, 2, 4, 3], strides: 2, pad: "valid" },
  {
    x: [2, 6, 7, 3],
    f: [3, 3, 3, 2],
    strides: 1,
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
  { x: [2, 5, 5, 6], f: [1, 1, 6, 4], strides: 1, pad: "valid" }, // pointwise: no im2col
  { x: [1, 6, 6, 1], f: [5, 5, 1, 2], strides: 1, pad: "same" },
  { x: [40, 6, 6, 8], f: [3, 3, 8, 8], strides: 1, pad: "same" }, // more than one im2col chunk
  { x: [12, 14, 14, 64], f: [3, 3, 64, 64], strides: 1, pad: "valid" }, // input gradient over several row chunks
  { x: [6, 13, 15, 64], f: [3, 2, 64, 48], strides: 1, pad: "same" },
  { x: [40, 14, 14, 32], f: [3, 3, 32, 16], strides: 1, pad: "valid" }, // row-tap forward over several line chunks
  { x: [3, 9, 11, 16], f: [3, 3, 16, 5], strides: [1, 2], pad: "same" }, // row taps with a width stride
];

const DILATED: Case[] = [
  { x: [2, 9, 9, 2], f: [3, 3, 2, 3], strides: 1, pad: "valid", dilations: 2 },
  { x: [1, 10, 9, 3], f: [2, 3, 3, 2], strides: 1, pad: "same", dilations: [2, 3] },
  { x: [2, 9, 11, 16], f: [3, 3, 16, 5], strides: 1, pad: "same", dilations: [1, 2] }, // row taps, dilated width
];

describe("Conv2D and its gradients (Conv2DBackpropInput, Conv2DBackpropFilter)", () => {
  for (const [i, c] of CASES.entries()) {
    it(`x ${c.x} filter ${c.f} strides ${c.strides} pad ${JSON.stringify(c.pad)}`, async () => {
      await agrees(`conv ${i}`, () =>
        withGrads(
          (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad),
          [
            [randn(sizeOf(c.x), i + 1), c.x],
            [randn(sizeOf(c.f), i + 31), c.f],
          ],
        ),
      );
    });
  }
  it("without the wasm arena (FUSIONKIT_NO_WASM=1, or tensors over its cap) the JavaScript paths agree too", async () => {
    const saved = process.env.FUSIONKIT_NO_WASM;
    process.env.FUSIONKIT_NO_WASM = "1";
    try {
      for (const [i, c] of CASES.entries()) {
        if (i % 3 !== 0 && i < CASES.length - 3) continue; // a spread of geometries, the input-gradient chunks included
        await agrees(`conv no arena ${i}`, () =>
          withGrads(
            (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad),
            [
              [randn(sizeOf(c.x), i + 1), c.x],
              [randn(sizeOf(c.f), i + 31), c.f],
            ],
          ),
        );
      }
      // relu(conv) + pool under a tape, and relu(conv) without an input gradient (mask + filter gradient)
      const inputs: [Float32Array, number[]][] = [
        [randn(3 * 10 * 10 * 8, 5), [3, 10, 10, 8]],
        [randn(3 * 3 * 8 * 8, 6, 0.3), [3, 3, 8, 8]],
        [randn(8, 7), [8]],
      ];
      await agrees("conv pool no arena", () =>
        withGrads(
          (x, f, b) => conv2d(x as tf.Tensor4D, f as tf.Tensor4D, b, { activation: "relu", maxPool: 2 }),
          inputs,
        ),
      );
      await agrees("conv relu no dx, no arena", () => {
        const x = tf.tensor4d(inputs[0][0], [3, 10, 10, 8]);
        return withGrads(
          (f, b) => conv2d(x, f as tf.Tensor4D, b, { activation: "relu", inputGradient: false }),
          inputs.slice(1),
        );
      });
    } finally {
      if (saved === undefined) delete process.env.FUSIONKIT_NO_WASM;
      else process.env.FUSIONKIT_NO_WASM = saved;
    }
  });
  for (const [i, c] of DILATED.entries()) {
    it(`dilated ${c.dilations}: x ${c.x} filter ${c.f} pad ${c.pad} (forward; tfjs has no dilated conv gradient)`, async () => {
      await agrees(`dilated ${i}`, () =>
        tf.conv2d(
          tf.tensor4d(randn(sizeOf(c.x), i), c.x),
          tf.tensor4d(randn(sizeOf(c.f), i + 9), c.f),
          c.strides,
          c.pad,
          "NHWC",
          c.dilations,
        ),
      );
    });
  }
  it("conv2dTranspose (Conv2DBackpropInput directly) with stride 2", async () => {
    await agrees("conv2dTranspose", () =>
      tf.conv2dTranspose(
        tf.tensor4d(randn(2 * 4 * 4 * 5, 1), [2, 4, 4, 5]),
        tf.tensor4d(randn(3 * 3 * 3 * 5, 2), [3, 3, 3, 5]),
        [2, 8, 8, 3],
        2,
        "same",
      ),
    );
  });
});

/** tf.fused.conv2d (stride 1, a bias per output channel) and its gradients, from inputs seeded seed, seed + 1, seed + 2. */
function fusedConvGrads(
  x: readonly number[],
  f: readonly number[],
  pad: "same" | "valid",
  activation: "linear" | "relu" | "sigmoid" | "leakyrelu",
  seed: number,
) {
  return withGrads(
    (xt, ft, bias) =>
      tf.fused.conv2d({
        x: xt as tf.Tensor4D,
        filter: ft as tf.Tensor4D,
        strides: 1,
        pad,
        bias,
        activation,
        leakyreluAlpha: 0.2,
      }),
    [
      [randn(sizeOf(x), seed), [...x]],
      [randn(sizeOf(f), seed + 1), [...f]],
      [randn(f[3]!, seed + 2), [f[3]!]],
    ],
  );
}

describe("FusedConv2D", () => {
  for (const activation of ["linear", "relu", "sigmoid", "leakyrelu"] as const) {
    it(`bias + ${activation}: value and gradients`, async () => {
      const c = CASES[2];
      await agrees(`fused conv ${activation}`, () =>
        withGrads(
          (x, f, bias) =>
            tf.fused.conv2d({
              x: x as tf.Tensor4D,
              filter: f as tf.Tensor4D,
              strides: c.strides,
              pad: c.pad,
              bias,
              activation,
              leakyreluAlpha: 0.2,
            }),
          [
            [randn(sizeOf(c.x), 5), c.x],
            [randn(sizeOf(c.f), 6), c.f],
            [randn(c.f[3], 7), [c.f[3]]],
          ],
        ),
      );
    });
  }
  for (const [activation, biasSize] of [
    ["relu", 8],
    ["linear", 8],
    ["leakyrelu", 8],
    ["sigmoid", 8],
  ] as const) {
    it(`row-tap geometry (stride-1 rows, 3 x 16 values per filter row), bias ${biasSize} + ${activation}`, async () => {
      const x: [number, number, number, number] = [5, 10, 9, 16];
      const f: [number, number, number, number] = [3, 3, 16, 8];
      await agrees(`fused row-tap conv ${activation}`, () => fusedConvGrads(x, f, "same", activation, 15));
    });
  }
  for (const [x, f] of [
    [
      [110, 20, 20, 1],
      [3, 4, 1, 12],
    ], // odd output width (a last single pixel), two chunks of images
    [
      [3, 7, 5, 1],
      [2, 2, 1, 4],
    ],
    [
      [14, 20, 20, 1],
      [3, 3, 1, 8],
    ], // 3 x 3: the direct filter gradient too, over two row chunks that split an image
  ] as [number[], number[]][]) {
    it(`single-channel input [${x}], filter [${f}], valid, bias + relu (the direct first-layer kernel)`, async () => {
      await agrees("fused conv, one input channel", () => fusedConvGrads(x, f, "valid", "relu", 41));
    });
  }
  it("with a bias made by gather (wasm stores it with a stale 4-d shape)", async () => {
    await agrees("fused conv gathered bias", () => {
      const x = tf.tensor(randn(2 * 6 * 6 * 3, 31), [2, 6, 6, 3]) as tf.Tensor4D;
      const w = tf.tensor(randn(3 * 3 * 3 * 4, 32), [3, 3, 3, 4]) as tf.Tensor4D;
      const bias = tf.gather(tf.tensor(randn(4, 33), [4]), tf.tensor1d([3, 1, 0, 2], "int32"));
      return [tf.fused.conv2d({ x, filter: w, strides: 1, pad: "same", bias, activation: "relu" })];
    });
  });
  it("dilated, with bias", async () => {
    const c = DILATED[1];
    await agrees("fused dilated", () =>
      tf.fused.conv2d({
        x: tf.tensor4d(randn(sizeOf(c.x), 1), c.x),
        filter: tf.tensor4d(randn(sizeOf(c.f), 2), c.f),
        strides: 1,
        pad: c.pad,
        dilations: c.dilations,
        bias: tf.tensor1d(randn(c.f[3], 3)),
        activation: "relu",
      }),
    );
  });
});

describe("MaxPool and MaxPoolGrad", () => {
  const pools: [number[], number | [number, number], number | [number, number], "same" | "valid"][] = [
    [[2, 8, 8, 3], 2, 2, "valid"],
    [[2, 7, 7, 3], 3, 2, "same"],
    [[1, 9, 6, 4], [3, 2], [1, 2], "valid"],
    [[2, 5, 5, 2], 2, 1, "same"],
    [[3, 7, 9, 5], 2, 2, "valid"], // 2x2 stride 2 with an uncovered last row and column
    [[2, 6, 4, 16], 2, 2, "same"], // 2x2 stride 2, same on even sizes: no padding
  ];
  for (const [i, [shape, size, strides, pad]] of pools.entries()) {
    it(`x ${shape} window ${size} strides ${strides} ${pad}: value and gradient`, async () => {
      await agrees(`maxPool ${i}`, () =>
        withGrads((x) => tf.maxPool(x as tf.Tensor4D, size, strides, pad), [[randn(sizeOf(shape), 40 + i), shape]]),
      );
    });
  }
  for (const [shape, size, pad] of [
    [[2, 8, 6, 5], 2, "valid"],
    [[2, 7, 7, 3], 3, "same"],
  ] as const) {
    it(`MaxPoolGrad run directly (no positions cached by a recorded forward): x ${shape} window ${size}`, async () => {
      await agrees(`maxPoolGrad direct ${shape}`, () => {
        const x = tf.tensor4d(randn(sizeOf(shape), 3), [...shape]);
        const y = tf.maxPool(x, size, 2, pad);
        const dy = tf.tensor(randn(y.size, 4), y.shape);
        const attrs = { filterSize: size, strides: 2, pad } as unknown as tf.NamedAttrMap;
        return tf.engine().runKernel("MaxPoolGrad", { dy, input: x, output: y }, attrs) as tf.Tensor;
      });
    });
  }
  it("ties after relu send the gradient to the first maximum, as cpu does", async () => {
    const shape = [2, 6, 6, 3];
    await agrees("maxPool ties", () =>
      withGrads(
        (x) => tf.maxPool(tf.relu(x) as tf.Tensor4D, 2, 2, "valid"),
        [[randn(sizeOf(shape), 8).map((v) => v - 1), shape]],
      ),
    );
  });
});

describe("the conv-pool gradient kernel", () => {
  it("the wasm 2 x 2 pool gradient equals the JS loop bit for bit (NaN, -0, winners -1..3, two chunks of images)", async (t) => {
    if ((await backendUnderTest()) !== FUSION_BACKEND) return t.skip("fusionkit backend not selected");
    const [B, PH, PW, C] = [40, 12, 12, 16];
    const n = B * PH * PW * C;
    const dy = randn(n, 51);
    const codes = new Float32Array(n);
    const r = randn(n, 52);
    for (let i = 0; i < n; i++) {
      codes[i] = Math.min(3, Math.max(-1, Math.floor(Math.abs(r[i]!) * 3) - 1));
      if (i % (97 * C) === 0) dy[i] = Number.NaN; // channel 0 only: a NaN makes its channel's bias gradient NaN
      if (i % 89 === 0) dy[i] = -0;
    }
    const run = () =>
      tf.tidy(() => {
        const [dz, db] = tf
          .engine()
          .runKernel(
            CONV_RELU_MAX_POOL_GRAD_KERNEL,
            { dy: tf.tensor4d(dy, [B, PH, PW, C]), codes: tf.tensor4d(codes, [B, PH, PW, C]) },
            { outShape: [B, 2 * PH, 2 * PW, C], poolSize: 2 } as unknown as tf.NamedAttrMap,
          ) as tf.Tensor[];
        return [dz!.dataSync().slice(), db!.dataSync().slice()] as Float32Array[];
      });
    const wasm = run();
    const saved = process.env.FUSIONKIT_NO_WASM;
    process.env.FUSIONKIT_NO_WASM = "1";
    let js: Float32Array[];
    try {
      js = run();
    } finally {
      if (saved === undefined) delete process.env.FUSIONKIT_NO_WASM;
      else process.env.FUSIONKIT_NO_WASM = saved;
    }
    assert.ok(Number.isNaN(js[1]![0]) && js[1]!.subarray(1).every(Number.isFinite));
    for (const [i, name] of ["dz", "bias gradient"].entries()) {
      const a = new Uint32Array(wasm[i]!.buffer);
      const b = new Uint32Array(js[i]!.buffer);
      assert.equal(a.length, b.length);
      for (let j = 0; j < a.length; j++) {
        if (Number.isNaN(wasm[i]![j]) && Number.isNaN(js[i]![j])) continue;
        assert.equal(a[j], b[j], `${name}[${j}]: ${wasm[i]![j]} vs ${js[i]![j]}`);
      }
    }
  });
});

describe("conv2d with maxPool (one kernel in inference on the fusionkit backend)", () => {
  const cases: {
    x: [number, number, number, number];
    f: [number, number, number, number];
    pad: "same" | "valid";
    k: number;
    strides?: number;
  }[] = [
    { x: [3, 14, 14, 16], f: [3, 3, 16, 8], pad: "valid", k: 2 }, // pixel taps on the input itself
    { x: [2, 11, 13, 32], f: [3, 3, 32, 12], pad: "same", k: 3 }, // padded copy; uncovered last rows and columns
    { x: [70, 24, 24, 16], f: [3, 3, 16, 6], pad: "valid", k: 2 }, // several chunks of images (32K rows each)
    { x: [5, 12, 10, 16], f: [3, 2, 16, 9], pad: "same", k: 2 }, // even filter width: uneven padding
    { x: [3, 10, 14, 12], f: [3, 3, 12, 7], pad: "valid", k: 2 }, // few input channels: row taps over rowIm2col
    { x: [310, 9, 11, 12], f: [2, 3, 12, 5], pad: "same", k: 2 }, // row taps, padded, two chunks
    { x: [2, 9, 9, 3], f: [3, 3, 3, 5], pad: "same", k: 2 }, // too few values per filter row: unfused kernels
    { x: [2, 10, 10, 16], f: [3, 3, 16, 4], pad: "valid", k: 2, strides: 2 },
  ];
  for (const [i, c] of cases.entries()) {
    it(`x ${c.x} filter ${c.f} ${c.pad} strides ${c.strides ?? 1}, relu, pool ${c.k}: value, and gradients when taped`, async () => {
      const run = (...[x, f, b]: tf.Tensor[]) =>
        conv2d(x as tf.Tensor4D, f as tf.Tensor4D, b, {
          activation: "relu",
          pad: c.pad,
          strides: c.strides ?? 1,
          maxPool: c.k,
        });
      const inputs: [Float32Array, number[]][] = [
        [randn(sizeOf(c.x), 50 + i), c.x],
        [randn(sizeOf(c.f), 60 + i, 0.3), c.f],
        [randn(c.f[3], 70 + i), [c.f[3]]],
      ];
      await agrees(`conv pool ${i}`, () => run(...inputs.map(([v, shape]) => tf.tensor(v, shape))));
      // taped: the conv-relu-pool kernel with window codes, and its gradient kernel (x, filter and bias)
      await agrees(`conv pool grads ${i}`, () => withGrads(run, inputs));
    });
  }
});
