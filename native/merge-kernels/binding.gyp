{
  "targets": [
    {
      "target_name": "fusionkit_merge_kernels",
      "sources": ["src/addon.c", "src/ties.c", "src/masked.c"],
      "cflags": ["-O2", "-ffp-contract=off", "-fno-fast-math"]
    }
  ]
}
