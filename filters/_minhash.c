/*
 * MinHash signatures of documents, in C: the hot loop of near-duplicate detection.
 *
 * shingle_hashes(text, n) -> bytearray
 *   text: a str prepared by filters.dedup (lower case, accents removed). Words are the maximal runs of the
 *   characters Python's re module calls word characters, "_" excepted (str.isalnum), so they are the words
 *   of filters.dedup.normalize; ASCII letters are lower-cased here. Each word's UTF-8 is hashed with XXH64
 *   (seed 0); an n-gram's hash folds its words' hashes with a multiply-xorshift mix (see shingle()). A text
 *   of fewer than n words is one shingle of all its words; no words, none. Returns the shingle hashes in
 *   order, as native uint64 values.
 *
 * signatures(texts, n, a, b) -> bytearray
 *   texts: a sequence of prepared str; a, b: buffers of k uint64 (datasketch's affine64 permutations).
 *   For every text, the k values min over its shingles s of a[i] * fmix64(s) + b[i] (mod 2^64), which is
 *   exactly datasketch's MinHash(scheme="affine64", hashfunc=int).update_batch(shingles); an empty text
 *   gives all ones (datasketch's empty signature). Returns len(texts) * k native uint64 values, row-major.
 *   With AVX-512 (checked at run time) eight permutations go in one instruction; the values are the same.
 *
 *   With keep=True it returns (signatures, the texts' n-gram hashes one after the other, int64 counts).
 *
 * strip_marks(text, marks) -> str
 *   text without the code points whose bit is set in marks (a bitmap of 0x110000 bits): the combining marks
 *   that normalisation removes, given by filters.dedup from the regex module's \p{Mn}.
 *
 * intersection_size(x, y) -> int
 *   The number of values two sorted buffers of distinct uint64 have in common (exact Jaccard's numerator).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1
#endif

static const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL, P3 = 0x165667B19E3779F9ULL,
                      P4 = 0x85EBCA77C2B2AE63ULL, P5 = 0x27D4EB2F165667C5ULL;
static const uint64_t SHINGLE_PRIME = 0x100000001B3ULL;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; /* little-endian, as XXH64 reads */
    return v;
}

static inline uint32_t read32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input) { return rotl(acc + input * P2, 31) * P1; }

static inline uint64_t xxh_merge(uint64_t acc, uint64_t v) { return (acc ^ xxh_round(0, v)) * P1 + P4; }

/* XXH64 with seed 0 (xxhash.xxh64_intdigest) */
static uint64_t xxh64(const unsigned char *p, size_t len) {
    const unsigned char *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = (uint64_t)0 - P1;
        do {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
            p += 32;
        } while (p + 32 <= end);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = P5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8) h = rotl(h ^ xxh_round(0, read64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        h = rotl(h ^ ((uint64_t)read32(p) * P1), 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) h = rotl(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 29);
}

/* datasketch's pre-mix (MurmurHash3's 64-bit finalizer) */
static inline uint64_t fmix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 33);
}

/* Appends code point c to buf as UTF-8 (surrogates as three bytes, like Python's "surrogatepass"). */
static inline Py_ssize_t put_utf8(unsigned char *buf, Py_ssize_t at, Py_UCS4 c) {
    if (c < 0x80) {
        buf[at++] = (unsigned char)c;
    } else if (c < 0x800) {
        buf[at++] = 0xC0 | (c >> 6);
        buf[at++] = 0x80 | (c & 0x3F);
    } else if (c < 0x10000) {
        buf[at++] = 0xE0 | (c >> 12);
        buf[at++] = 0x80 | ((c >> 6) & 0x3F);
        buf[at++] = 0x80 | (c & 0x3F);
    } else {
        buf[at++] = 0xF0 | (c >> 18);
        buf[at++] = 0x80 | ((c >> 12) & 0x3F);
        buf[at++] = 0x80 | ((c >> 6) & 0x3F);
        buf[at++] = 0x80 | (c & 0x3F);
    }
    return at;
}

/* A word character of Python's re module without "_" (str.isalnum); ASCII letters are lower-cased. */
static inline int word_char(Py_UCS4 c, Py_UCS4 *lower) {
    if (c < 0x80) {
        *lower = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }
    *lower = c;
    return Py_UNICODE_ISALNUM(c);
}

/* XXH64 of every word of a text of `len` characters of type T, in order, into out; scratch holds a word's
   UTF-8 (up to 4 bytes a character). Returns the word count. One function per storage kind of str. */
#define WORD_HASHES(NAME, T)                                                                             \
    static Py_ssize_t NAME(const T *text, Py_ssize_t len, unsigned char *scratch, uint64_t *out) {      \
        Py_ssize_t count = 0, i = 0;                                                                     \
        Py_UCS4 c;                                                                                       \
        while (i < len) {                                                                                \
            while (i < len && !word_char(text[i], &c)) i++;                                              \
            Py_ssize_t used = 0;                                                                         \
            while (i < len && word_char(text[i], &c)) {                                                  \
                used = put_utf8(scratch, used, c);                                                       \
                i++;                                                                                     \
            }                                                                                            \
            if (used) out[count++] = xxh64(scratch, (size_t)used);                                       \
        }                                                                                                \
        return count;                                                                                    \
    }
WORD_HASHES(word_hashes_ucs1, Py_UCS1)
WORD_HASHES(word_hashes_ucs2, Py_UCS2)
WORD_HASHES(word_hashes_ucs4, Py_UCS4)

static Py_ssize_t word_hashes(PyObject *text, unsigned char *scratch, uint64_t *out) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        return word_hashes_ucs1(PyUnicode_1BYTE_DATA(text), len, scratch, out);
    case PyUnicode_2BYTE_KIND:
        return word_hashes_ucs2(PyUnicode_2BYTE_DATA(text), len, scratch, out);
    default:
        return word_hashes_ucs4(PyUnicode_4BYTE_DATA(text), len, scratch, out);
    }
}

/* n-gram hashes from word hashes, in place (ids[j] becomes the hash of the n-gram starting at word j). */
static Py_ssize_t shingle(uint64_t *ids, Py_ssize_t words, int n) {
    if (words == 0) return 0;
    Py_ssize_t width = words < n ? words : n, count = words - width + 1;
    for (Py_ssize_t j = 0; j < count; j++) {
        uint64_t h = ids[j];
        for (Py_ssize_t k = 1; k < width; k++) h = mix(h * SHINGLE_PRIME + ids[j + k]);
        ids[j] = mix(h ^ (uint64_t)width);
    }
    return count;
}

/* Shingle hashes of one text into a new buffer (*out, freed by the caller); returns their count or -1. */
static Py_ssize_t text_shingles(PyObject *text, int n, uint64_t **out) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "texts must be str");
        return -1;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    unsigned char *scratch = malloc(4 * len + 1);
    uint64_t *ids = malloc(sizeof(uint64_t) * (len / 2 + 1)); /* words are separated: at most (len + 1) / 2 */
    if (!scratch || !ids) {
        free(scratch);
        free(ids);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t words = word_hashes(text, scratch, ids);
    free(scratch);
    *out = ids;
    return shingle(ids, words, n);
}

static PyObject *py_shingle_hashes(PyObject *self, PyObject *args) {
    PyObject *text;
    int n;
    if (!PyArg_ParseTuple(args, "Ui", &text, &n)) return NULL;
    if (n < 1) return PyErr_Format(PyExc_ValueError, "n must be >= 1, got %d", n);
    uint64_t *hashes;
    Py_ssize_t count = text_shingles(text, n, &hashes);
    if (count < 0) return NULL;
    PyObject *result = PyByteArray_FromStringAndSize((const char *)hashes, count * (Py_ssize_t)sizeof(uint64_t));
    free(hashes);
    return result;
}

/* sig[i] = min over the pre-mixed shingles x of a[i] * x + b[i], four permutations at a time, so that each
   pass over the shingles runs four independent minimum chains. */
static void minhash_scalar(const uint64_t *x, Py_ssize_t count, const uint64_t *a, const uint64_t *b, Py_ssize_t k,
                           uint64_t *sig) {
    Py_ssize_t i = 0;
    for (; i + 4 <= k; i += 4) {
        uint64_t m0 = UINT64_MAX, m1 = UINT64_MAX, m2 = UINT64_MAX, m3 = UINT64_MAX;
        const uint64_t a0 = a[i], a1 = a[i + 1], a2 = a[i + 2], a3 = a[i + 3];
        const uint64_t b0 = b[i], b1 = b[i + 1], b2 = b[i + 2], b3 = b[i + 3];
        for (Py_ssize_t j = 0; j < count; j++) {
            const uint64_t v0 = a0 * x[j] + b0, v1 = a1 * x[j] + b1, v2 = a2 * x[j] + b2, v3 = a3 * x[j] + b3;
            m0 = v0 < m0 ? v0 : m0;
            m1 = v1 < m1 ? v1 : m1;
            m2 = v2 < m2 ? v2 : m2;
            m3 = v3 < m3 ? v3 : m3;
        }
        sig[i] = m0;
        sig[i + 1] = m1;
        sig[i + 2] = m2;
        sig[i + 3] = m3;
    }
    for (; i < k; i++) {
        uint64_t m = UINT64_MAX;
        for (Py_ssize_t j = 0; j < count; j++) {
            const uint64_t v = a[i] * x[j] + b[i];
            m = v < m ? v : m;
        }
        sig[i] = m;
    }
}

#ifdef HAVE_AVX512_KERNEL
/* The same with AVX-512 (64-bit multiply and unsigned minimum in 8 lanes), 16 permutations a pass; the
   permutations left over go to the scalar kernel. Integer arithmetic: the result is identical. */
__attribute__((target("avx512f,avx512dq"))) static void minhash_avx512(const uint64_t *x, Py_ssize_t count,
                                                                          const uint64_t *a, const uint64_t *b,
                                                                          Py_ssize_t k, uint64_t *sig) {
    Py_ssize_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const __m512i a0 = _mm512_loadu_si512(a + i), a1 = _mm512_loadu_si512(a + i + 8);
        const __m512i b0 = _mm512_loadu_si512(b + i), b1 = _mm512_loadu_si512(b + i + 8);
        __m512i m0 = _mm512_set1_epi64(-1), m1 = _mm512_set1_epi64(-1);
        for (Py_ssize_t j = 0; j < count; j++) {
            const __m512i v = _mm512_set1_epi64((long long)x[j]);
            m0 = _mm512_min_epu64(m0, _mm512_add_epi64(_mm512_mullo_epi64(a0, v), b0));
            m1 = _mm512_min_epu64(m1, _mm512_add_epi64(_mm512_mullo_epi64(a1, v), b1));
        }
        _mm512_storeu_si512(sig + i, m0);
        _mm512_storeu_si512(sig + i + 8, m1);
    }
    if (i < k) minhash_scalar(x, count, a + i, b + i, k - i, sig + i);
}
#endif

/* The signature of one text's shingles: sig[i] = min over s of a[i] * fmix64(s) + b[i]. Overwrites shingles
   with their pre-mixed values. */
static void minhash(uint64_t *shingles, Py_ssize_t count, const uint64_t *a, const uint64_t *b, Py_ssize_t k,
                    uint64_t *sig) {
    for (Py_ssize_t j = 0; j < count; j++) shingles[j] = fmix64(shingles[j]);
#ifdef HAVE_AVX512_KERNEL
    static int avx512 = -1;
    if (avx512 < 0) avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    if (avx512) {
        minhash_avx512(shingles, count, a, b, k, sig);
        return;
    }
#endif
    minhash_scalar(shingles, count, a, b, k, sig);
}

/* Size of the intersection of two sorted arrays of distinct values. */
static PyObject *py_intersection_size(PyObject *self, PyObject *args) {
    Py_buffer x, y;
    if (!PyArg_ParseTuple(args, "y*y*", &x, &y)) return NULL;
    const uint64_t *p = x.buf, *q = y.buf, *p_end = p + x.len / 8, *q_end = q + y.len / 8;
    Py_ssize_t common = 0;
    while (p < p_end && q < q_end) {
        if (*p < *q) {
            p++;
        } else if (*q < *p) {
            q++;
        } else {
            common++;
            p++;
            q++;
        }
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
    return PyLong_FromSsize_t(common);
}

static int uint64_buffer(PyObject *obj, Py_buffer *view, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len % 8) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s must hold uint64 values", name);
        return -1;
    }
    return 0;
}

/* Appends count uint64 values to a bytearray (which over-allocates as it grows). */
static int append_uint64(PyObject *array, const uint64_t *values, Py_ssize_t count) {
    Py_ssize_t used = PyByteArray_GET_SIZE(array), bytes = count * (Py_ssize_t)sizeof(uint64_t);
    if (PyByteArray_Resize(array, used + bytes) < 0) return -1;
    memcpy(PyByteArray_AS_STRING(array) + used, values, bytes);
    return 0;
}

static PyObject *py_signatures(PyObject *self, PyObject *args) {
    PyObject *texts, *a_obj, *b_obj;
    int n, keep = 0;
    if (!PyArg_ParseTuple(args, "OiOO|p", &texts, &n, &a_obj, &b_obj, &keep)) return NULL;
    if (n < 1) return PyErr_Format(PyExc_ValueError, "n must be >= 1, got %d", n);
    PyObject *seq = PySequence_Fast(texts, "texts must be a sequence of str");
    if (!seq) return NULL;
    Py_buffer a, b;
    if (uint64_buffer(a_obj, &a, "a") < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    if (uint64_buffer(b_obj, &b, "b") < 0 || b.len != a.len) {
        if (!PyErr_Occurred()) {
            PyBuffer_Release(&b);
            PyErr_SetString(PyExc_ValueError, "a and b must have the same length");
        }
        PyBuffer_Release(&a);
        Py_DECREF(seq);
        return NULL;
    }
    Py_ssize_t docs = PySequence_Fast_GET_SIZE(seq), k = a.len / 8;
    PyObject *result = PyByteArray_FromStringAndSize(NULL, docs * k * (Py_ssize_t)sizeof(uint64_t));
    PyObject *kept = keep ? PyByteArray_FromStringAndSize(NULL, 0) : NULL;
    PyObject *counts = keep ? PyByteArray_FromStringAndSize(NULL, docs * (Py_ssize_t)sizeof(int64_t)) : NULL;
    int failed = !result || (keep && (!kept || !counts));
    for (Py_ssize_t d = 0; d < docs && !failed; d++) {
        uint64_t *shingles;
        Py_ssize_t count = text_shingles(PySequence_Fast_GET_ITEM(seq, d), n, &shingles);
        if (count < 0) {
            failed = 1;
            break;
        }
        if (keep) {
            ((int64_t *)PyByteArray_AS_STRING(counts))[d] = count;
            failed = append_uint64(kept, shingles, count) < 0;
        }
        uint64_t *out = (uint64_t *)PyByteArray_AS_STRING(result);
        minhash(shingles, count, (const uint64_t *)a.buf, (const uint64_t *)b.buf, k, out + d * k);
        free(shingles);
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    Py_DECREF(seq);
    if (failed) {
        Py_XDECREF(result);
        Py_XDECREF(kept);
        Py_XDECREF(counts);
        return NULL;
    }
    if (!keep) return result;
    PyObject *triple = PyTuple_Pack(3, result, kept, counts);
    Py_DECREF(result);
    Py_DECREF(kept);
    Py_DECREF(counts);
    return triple;
}

/* A copy of text without the code points whose bit is set in marks (a bitmap over all code points). */
static PyObject *py_strip_marks(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_buffer marks;
    if (!PyArg_ParseTuple(args, "Uy*", &text, &marks)) return NULL;
    if (marks.len < 0x110000 / 8) {
        PyBuffer_Release(&marks);
        PyErr_SetString(PyExc_ValueError, "marks must hold a bit for every code point");
        return NULL;
    }
    const unsigned char *bits = marks.buf;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t len = PyUnicode_GET_LENGTH(text), kept = 0;
    Py_UCS4 *out = PyMem_Malloc(sizeof(Py_UCS4) * (len ? len : 1));
    if (!out) {
        PyBuffer_Release(&marks);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!(bits[c >> 3] >> (c & 7) & 1)) out[kept++] = c;
    }
    PyBuffer_Release(&marks);
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, kept);
    PyMem_Free(out);
    return result;
}

static PyMethodDef methods[] = {
    {"shingle_hashes", py_shingle_hashes, METH_VARARGS,
     "shingle_hashes(text, n) -> bytearray: native uint64 hashes of the word n-grams of prepared text, in order."},
    {"signatures", py_signatures, METH_VARARGS,
     "signatures(texts, n, a, b, keep=False) -> bytearray: for each prepared text, min over its n-gram hashes "
     "s of a[i] * fmix64(s) + b[i] mod 2^64 (datasketch's affine64 MinHash); len(texts) x len(a) native "
     "uint64. With keep, (signatures, every text's n-gram hashes one after the other, their int64 counts)."},
    {"strip_marks", py_strip_marks, METH_VARARGS,
     "strip_marks(text, marks) -> str: text without the code points whose bit is set in the bitmap marks."},
    {"intersection_size", py_intersection_size, METH_VARARGS,
     "intersection_size(x, y) -> int: common values of two sorted buffers of distinct uint64."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_minhash", "MinHash signatures in C.", -1, methods};

PyMODINIT_FUNC PyInit__minhash(void) { return PyModule_Create(&module); }
