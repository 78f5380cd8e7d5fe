{
  "targets": [
    {
      "target_name": "fusionkit_dnnl_gemm",
      "sources": ["src/addon.c"],
      "cflags": ["-O2"],
      "libraries": ["-ldnnl"]
    }
  ]
}
