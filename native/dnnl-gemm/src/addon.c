// sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc): row-major C = alpha op(A) op(B) + beta C by
// oneDNN's dnnl_sgemm, with the CBLAS transpose codes (111 = no transpose, 112 = transpose) and Float32Array
// operands (views honoured through their byte offsets). Every argument is checked, and the arrays' lengths against
// the shapes, so a wrong call throws instead of reading or writing outside an array.
#include <node_api.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>

#define NO_TRANS 111
#define TRANS 112

static napi_value fail(napi_env env, const char* code, const char* msg) {
  napi_throw_range_error(env, code, msg);
  return NULL;
}

static int get_int(napi_env env, napi_value v, int32_t* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static int get_num(napi_env env, napi_value v, double* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_double(env, v, out) == napi_ok;
}

static int get_f32(napi_env env, napi_value v, float** data, size_t* length) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  void* p;
  if (napi_get_typedarray_info(env, v, &type, length, &p, NULL, NULL) != napi_ok) return 0;
  if (type != napi_float32_array) return 0;
  *data = (float*)p;
  return 1;
}

// Elements a row-major rows x cols operand with leading dimension ld spans.
static int fits(int64_t rows, int64_t cols, int64_t ld, size_t length) {
  if (rows == 0 || cols == 0) return 1;
  if (ld < cols) return 0;
  return (rows - 1) * ld + cols <= (int64_t)length;
}

static napi_value sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc != 13) return fail(env, "ERR_ARGS", "sgemm takes 13 arguments");
  int32_t ta, tb, m, n, k, lda, ldb, ldc;
  double alpha, beta;
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!get_int(env, argv[0], &ta) || !get_int(env, argv[1], &tb) || !get_int(env, argv[2], &m) ||
      !get_int(env, argv[3], &n) || !get_int(env, argv[4], &k) || !get_num(env, argv[5], &alpha) ||
      !get_f32(env, argv[6], &a, &la) || !get_int(env, argv[7], &lda) || !get_f32(env, argv[8], &b, &lb) ||
      !get_int(env, argv[9], &ldb) || !get_num(env, argv[10], &beta) || !get_f32(env, argv[11], &c, &lc) ||
      !get_int(env, argv[12], &ldc))
    return fail(env, "ERR_ARGS", "sgemm: expected (int, int, int, int, int, number, Float32Array, int, Float32Array, int, number, Float32Array, int)");
  if ((ta != NO_TRANS && ta != TRANS) || (tb != NO_TRANS && tb != TRANS))
    return fail(env, "ERR_ARGS", "sgemm: transpose codes are 111 (no) or 112 (yes)");
  if (m < 0 || n < 0 || k < 0) return fail(env, "ERR_ARGS", "sgemm: negative dimension");
  if (!(ta == NO_TRANS ? fits(m, k, lda, la) : fits(k, m, lda, la))) return fail(env, "ERR_SIZE", "sgemm: A too short for m, k, lda");
  if (!(tb == NO_TRANS ? fits(k, n, ldb, lb) : fits(n, k, ldb, lb))) return fail(env, "ERR_SIZE", "sgemm: B too short for k, n, ldb");
  if (!fits(m, n, ldc, lc)) return fail(env, "ERR_SIZE", "sgemm: C too short for m, n, ldc");
  if (m == 0 || n == 0) return NULL;
  if (k == 0) {
    // C = beta C, as BLAS defines it (oneDNN rejects k = 0); beta = 0 sets C to zero whatever it held
    for (int32_t i = 0; i < m; i++) {
      float* row = c + (int64_t)i * ldc;
      for (int32_t j = 0; j < n; j++) row[j] = beta == 0 ? 0.0f : (float)beta * row[j];
    }
    return NULL;
  }
  // oneDNN needs leading dimensions >= 1 even for empty operands
  if (lda < 1) lda = 1;
  if (ldb < 1) ldb = 1;
  dnnl_status_t s = dnnl_sgemm(ta == TRANS ? 'T' : 'N', tb == TRANS ? 'T' : 'N', m, n, k, (float)alpha, a, lda, b, ldb,
                               (float)beta, c, ldc);
  if (s != dnnl_success) return fail(env, "ERR_DNNL", "sgemm: dnnl_sgemm failed");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "sgemm", NAPI_AUTO_LENGTH, sgemm, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sgemm", fn) != napi_ok) return NULL;
  const dnnl_version_t* v = dnnl_version();
  napi_value ver;
  char buf[64];
  snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
  if (napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &ver) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "version", ver) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
