/*
 * The merge loop of byte-level BPE training, in C.
 *
 * train_merges(words, counts, vocab, num_merges) -> list of (left_id, right_id)
 *   words:  list of bytes-like, each a distinct pre-token as a sequence of int32 token ids (native order)
 *   counts: list of int, how often each pre-token occurs in the corpus
 *   vocab:  list of bytes, the byte string of every token id so far
 * Each merge joins the most frequent adjacent pair (ties: the pair whose (left, right) byte strings are
 * lexicographically greatest) and appends the new token to the vocabulary. Pair counts are updated
 * incrementally: only the occurrences of the merged pair are touched, never the whole corpus.
 *
 * Symbols of all words live in flat arrays linked as lists (prev/next); a merge rewrites the left symbol and
 * unlinks the right one. Every pair keeps a list of the positions where it may start (stale entries are
 * skipped when found). A binary max-heap holds (count, pair) entries; entries become stale when a count
 * drops and are corrected lazily when they reach the top.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t key;     /* (left << 32) | right, or -1 for an empty slot */
    int64_t count;
    int32_t *pos;    /* positions where the pair may start */
    int32_t npos, cap;
} Pair;

typedef struct {
    Pair *slots;
    int64_t size, used;
} PairMap;

typedef struct {
    int64_t count;
    int64_t key;
} Entry;

typedef struct {
    Entry *items;
    int64_t size, cap;
} Heap;

typedef struct {
    const char **bytes;
    Py_ssize_t *len;
    int64_t n, cap;
    PyObject *owned; /* list of bytes objects keeping the pointers alive */
} Vocab;

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

static int map_init(PairMap *m, int64_t size) {
    int64_t s = 1024;
    while (s < size * 2) s <<= 1;
    m->slots = malloc(sizeof(Pair) * s);
    if (!m->slots) return -1;
    for (int64_t i = 0; i < s; i++) { m->slots[i].key = -1; m->slots[i].pos = NULL; }
    m->size = s; m->used = 0;
    return 0;
}

static Pair *map_find(PairMap *m, int64_t key) {
    uint64_t i = mix64((uint64_t)key) & (m->size - 1);
    while (m->slots[i].key != -1) {
        if (m->slots[i].key == key) return &m->slots[i];
        i = (i + 1) & (m->size - 1);
    }
    return NULL;
}

static int map_grow(PairMap *m);

static Pair *map_get(PairMap *m, int64_t key) {
    if ((m->used + 1) * 2 > m->size && map_grow(m) < 0) return NULL;
    uint64_t i = mix64((uint64_t)key) & (m->size - 1);
    while (m->slots[i].key != -1) {
        if (m->slots[i].key == key) return &m->slots[i];
        i = (i + 1) & (m->size - 1);
    }
    Pair *p = &m->slots[i];
    p->key = key; p->count = 0; p->pos = NULL; p->npos = 0; p->cap = 0;
    m->used++;
    return p;
}

static int map_grow(PairMap *m) {
    Pair *old = m->slots;
    int64_t oldsize = m->size;
    int64_t s = oldsize * 2;
    Pair *slots = malloc(sizeof(Pair) * s);
    if (!slots) return -1;
    for (int64_t i = 0; i < s; i++) { slots[i].key = -1; slots[i].pos = NULL; }
    for (int64_t i = 0; i < oldsize; i++) {
        if (old[i].key == -1) continue;
        uint64_t j = mix64((uint64_t)old[i].key) & (s - 1);
        while (slots[j].key != -1) j = (j + 1) & (s - 1);
        slots[j] = old[i];
    }
    free(old);
    m->slots = slots; m->size = s;
    return 0;
}

static void map_free(PairMap *m) {
    for (int64_t i = 0; i < m->size; i++) free(m->slots[i].pos);
    free(m->slots);
}

static int pair_add_pos(Pair *p, int32_t pos) {
    if (p->npos == p->cap) {
        int32_t cap = p->cap ? p->cap * 2 : 4;
        int32_t *grown = realloc(p->pos, sizeof(int32_t) * cap);
        if (!grown) return -1;
        p->pos = grown; p->cap = cap;
    }
    p->pos[p->npos++] = pos;
    return 0;
}

/* a > b in (count, left bytes, right bytes) order: the heap's "better" */
static int better(const Vocab *v, int64_t ca, int64_t ka, int64_t cb, int64_t kb) {
    if (ca != cb) return ca > cb;
    int32_t la = (int32_t)(ka >> 32), ra = (int32_t)(ka & 0xffffffff);
    int32_t lb = (int32_t)(kb >> 32), rb = (int32_t)(kb & 0xffffffff);
    for (int side = 0; side < 2; side++) {
        int32_t x = side ? ra : la, y = side ? rb : lb;
        if (x == y) continue;
        Py_ssize_t lx = v->len[x], ly = v->len[y];
        int c = memcmp(v->bytes[x], v->bytes[y], lx < ly ? lx : ly);
        if (c != 0) return c > 0;
        if (lx != ly) return lx > ly;
    }
    return 0;
}

static int heap_push(Heap *h, const Vocab *v, int64_t count, int64_t key) {
    if (h->size == h->cap) {
        int64_t cap = h->cap ? h->cap * 2 : 1024;
        Entry *grown = realloc(h->items, sizeof(Entry) * cap);
        if (!grown) return -1;
        h->items = grown; h->cap = cap;
    }
    int64_t i = h->size++;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!better(v, count, key, h->items[parent].count, h->items[parent].key)) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i].count = count; h->items[i].key = key;
    return 0;
}

static Entry heap_pop(Heap *h, const Vocab *v) {
    Entry top = h->items[0];
    Entry last = h->items[--h->size];
    int64_t i = 0;
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, best = i;
        Entry *bi = (best == i) ? &last : &h->items[best];
        if (l < h->size && better(v, h->items[l].count, h->items[l].key, bi->count, bi->key)) { best = l; bi = &h->items[l]; }
        if (r < h->size && better(v, h->items[r].count, h->items[r].key, bi->count, bi->key)) { best = r; }
        if (best == i) break;
        h->items[i] = h->items[best];
        i = best;
    }
    if (h->size > 0) h->items[i] = last;
    return top;
}

static int vocab_append(Vocab *v, PyObject *b) {
    if (v->n == v->cap) {
        int64_t cap = v->cap * 2;
        const char **bytes = realloc(v->bytes, sizeof(char *) * cap);
        if (!bytes) return -1;
        v->bytes = bytes;
        Py_ssize_t *len = realloc(v->len, sizeof(Py_ssize_t) * cap);
        if (!len) return -1;
        v->len = len; v->cap = cap;
    }
    if (PyList_Append(v->owned, b) < 0) return -1;
    v->bytes[v->n] = PyBytes_AS_STRING(b);
    v->len[v->n] = PyBytes_GET_SIZE(b);
    v->n++;
    return 0;
}

static int cmp_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

#define KEY(a, b) (((int64_t)(a) << 32) | (int64_t)(uint32_t)(b))

static PyObject *train_merges(PyObject *self, PyObject *args) {
    PyObject *words, *counts, *vocab_list;
    Py_ssize_t num_merges;
    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyList_Type, &words, &PyList_Type, &counts, &PyList_Type,
                          &vocab_list, &num_merges))
        return NULL;
    Py_ssize_t nwords = PyList_GET_SIZE(words);
    if (PyList_GET_SIZE(counts) != nwords) {
        PyErr_SetString(PyExc_ValueError, "words and counts differ in length");
        return NULL;
    }
    int64_t total = 0;
    for (Py_ssize_t w = 0; w < nwords; w++) {
        PyObject *item = PyList_GET_ITEM(words, w);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) % 4) {
            PyErr_SetString(PyExc_TypeError, "each word must be bytes of int32 token ids");
            return NULL;
        }
        total += PyBytes_GET_SIZE(item) / 4;
    }
    if (total >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many symbols (2**31)");
        return NULL;
    }
    int32_t *tok = malloc(sizeof(int32_t) * (total + 1));
    int32_t *prev = malloc(sizeof(int32_t) * (total + 1));
    int32_t *next = malloc(sizeof(int32_t) * (total + 1));
    int64_t *freq = malloc(sizeof(int64_t) * (total + 1));
    Vocab v = {0};
    PairMap m = {0};
    Heap h = {0};
    PyObject *result = NULL;
    v.cap = PyList_GET_SIZE(vocab_list) + num_merges + 1;
    v.bytes = malloc(sizeof(char *) * v.cap);
    v.len = malloc(sizeof(Py_ssize_t) * v.cap);
    v.owned = PyList_New(0);
    if (!tok || !prev || !next || !freq || !v.bytes || !v.len || !v.owned) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(vocab_list); i++) {
        PyObject *b = PyList_GET_ITEM(vocab_list, i);
        if (!PyBytes_Check(b)) { PyErr_SetString(PyExc_TypeError, "vocab entries must be bytes"); goto done; }
        if (vocab_append(&v, b) < 0) goto done;
    }
    if (map_init(&m, total / 4 + 1024) < 0) { PyErr_NoMemory(); goto done; }

    /* lay the words out; count their pairs, weighted by the word's count */
    int32_t p = 0;
    for (Py_ssize_t w = 0; w < nwords; w++) {
        PyObject *item = PyList_GET_ITEM(words, w);
        int64_t f = PyLong_AsLongLong(PyList_GET_ITEM(counts, w));
        if (f == -1 && PyErr_Occurred()) goto done;
        const int32_t *ids = (const int32_t *)PyBytes_AS_STRING(item);
        int32_t n = (int32_t)(PyBytes_GET_SIZE(item) / 4);
        for (int32_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= v.n) { PyErr_SetString(PyExc_ValueError, "token id out of range"); goto done; }
            tok[p + i] = ids[i];
            prev[p + i] = i ? p + i - 1 : -1;
            next[p + i] = i + 1 < n ? p + i + 1 : -1;
            freq[p + i] = f;
            if (i) {
                Pair *pr = map_get(&m, KEY(ids[i - 1], ids[i]));
                if (!pr || pair_add_pos(pr, p + i - 1) < 0) { PyErr_NoMemory(); goto done; }
                pr->count += f;
            }
        }
        p += n;
    }
    for (int64_t i = 0; i < m.size; i++)
        if (m.slots[i].key != -1 && heap_push(&h, &v, m.slots[i].count, m.slots[i].key) < 0) { PyErr_NoMemory(); goto done; }

    result = PyList_New(0);
    if (!result) goto done;
    int64_t *touched = NULL;
    int64_t ntouched = 0, captouched = 0;
    while ((Py_ssize_t)PyList_GET_SIZE(result) < num_merges && h.size > 0) {
        Entry top = heap_pop(&h, &v);
        Pair *best = map_find(&m, top.key);
        if (!best || best->count <= 0) continue;
        if (best->count != top.count) {  /* stale: the count dropped since this entry was pushed */
            if (heap_push(&h, &v, best->count, best->key) < 0) { PyErr_NoMemory(); goto fail; }
            continue;
        }
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(top.key & 0xffffffff);
        int32_t c = (int32_t)v.n;
        PyObject *joined = PyBytes_FromStringAndSize(NULL, v.len[a] + v.len[b]);
        if (!joined) goto fail;
        memcpy(PyBytes_AS_STRING(joined), v.bytes[a], v.len[a]);
        memcpy(PyBytes_AS_STRING(joined) + v.len[a], v.bytes[b], v.len[b]);
        int rc = vocab_append(&v, joined);
        Py_DECREF(joined);
        if (rc < 0) goto fail;
        PyObject *merge = Py_BuildValue("(ii)", a, b);
        if (!merge || PyList_Append(result, merge) < 0) { Py_XDECREF(merge); goto fail; }
        Py_DECREF(merge);

        /* occurrences left to right, so that "a a a" merges as (aa) a, as the reference does */
        int32_t npos = best->npos;
        int32_t *pos = best->pos;
        best->pos = NULL; best->npos = best->cap = 0; best->count = 0;
        qsort(pos, npos, sizeof(int32_t), cmp_int32);
        ntouched = 0;
        for (int32_t k = 0; k < npos; k++) {
            int32_t i = pos[k];
            if (tok[i] != a) continue;
            int32_t j = next[i];
            if (j < 0 || tok[j] != b) continue;
            int64_t f = freq[i];
            int32_t l = prev[i], r = next[j];
            /* the neighbours' pairs lose this occurrence (the merged pair itself is gone everywhere) */
            if (l >= 0 && KEY(tok[l], a) != top.key) { Pair *q = map_find(&m, KEY(tok[l], a)); if (q) q->count -= f; }
            if (r >= 0 && KEY(b, tok[r]) != top.key) { Pair *q = map_find(&m, KEY(b, tok[r])); if (q) q->count -= f; }
            tok[i] = c; tok[j] = -1; next[i] = r;
            if (r >= 0) prev[r] = i;
            int64_t keys[2]; int32_t starts[2]; int nk = 0;
            if (l >= 0) { keys[nk] = KEY(tok[l], c); starts[nk++] = l; }
            if (r >= 0) { keys[nk] = KEY(c, tok[r]); starts[nk++] = i; }
            for (int t = 0; t < nk; t++) {
                Pair *q = map_get(&m, keys[t]);
                if (!q || pair_add_pos(q, starts[t]) < 0) { free(pos); PyErr_NoMemory(); goto fail; }
                if (q->count == 0) {
                    if (ntouched == captouched) {
                        captouched = captouched ? captouched * 2 : 64;
                        int64_t *grown = realloc(touched, sizeof(int64_t) * captouched);
                        if (!grown) { free(pos); PyErr_NoMemory(); goto fail; }
                        touched = grown;
                    }
                    touched[ntouched++] = keys[t];
                }
                q->count += f;
            }
        }
        free(pos);
        for (int64_t t = 0; t < ntouched; t++) {  /* new pairs enter the heap with their full count */
            Pair *q = map_find(&m, touched[t]);
            if (q && q->count > 0 && heap_push(&h, &v, q->count, q->key) < 0) { PyErr_NoMemory(); goto fail; }
        }
    }
    free(touched);
    goto done;
fail:
    free(touched);
    Py_CLEAR(result);
done:
    free(tok); free(prev); free(next); free(freq);
    free(v.bytes); free(v.len); Py_XDECREF(v.owned);
    if (m.slots) map_free(&m);
    free(h.items);
    return result;
}

static PyMethodDef methods[] = {
    {"train_merges", train_merges, METH_VARARGS,
     "train_merges(words, counts, vocab, num_merges) -> [(left, right), ...]: BPE merges, most frequent "
     "pair first (ties: lexicographically greatest byte strings), with incremental pair counts."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bpe", "BPE training merge loop in C.", -1, methods};

PyMODINIT_FUNC PyInit__bpe(void) { return PyModule_Create(&module); }
