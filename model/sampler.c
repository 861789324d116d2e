// sampler.c: greedy and stochastic sampling. Order of filters: temperature, top-k, softmax,
// top-p (smallest set of most likely tokens whose mass reaches p), then one uniform draw.
//
// Nothing here sorts the whole vocabulary: top-k keeps the k best in a small heap, top-p
// first finds a probability cutoff whose tokens already hold the mass (vector passes), and
// only those candidates are sorted. Without filters the draw walks the vocabulary in id order
// over per-chunk sums. The exponentials and the passes over V are 8 lanes wide with AVX2.
#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SMP_AVX2 1
__m256 _ZGVdN8v_expf(__m256 x);  // glibc libmvec (see backend_cpu.c)
#endif

#define SMP_CHUNK 256  // the draw's chunk of ids (no filters)

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float sampler_uniform(sampler *s) { return (float)(splitmix64(&s->state) >> 40) / 16777216.0f; }

int sampler_init(sampler *s, const sampler_params *p, int n_vocab) {
    memset(s, 0, sizeof(*s));
    s->p = *p;
    s->state = p->seed;
    s->n_vocab = n_vocab;
    s->idx = malloc(sizeof(int32_t) * (size_t)n_vocab);
    s->prob = malloc(sizeof(float) * (size_t)n_vocab);
    s->csum = malloc(sizeof(float) * (size_t)(n_vocab / SMP_CHUNK + 1));
    if (!s->idx || !s->prob || !s->csum) {
        sampler_free(s);
        return TRL_ERR;
    }
    return TRL_OK;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->idx);
    free(s->prob);
    free(s->csum);
    s->idx = NULL;
    s->prob = NULL;
    s->csum = NULL;
}

int32_t sampler_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

// pr[i] = logits[i] * inv_t for all V; returns the largest.
static float scale_max(float *pr, const float *logits, int V, float inv_t) {
    int i = 0;
    float mx = -INFINITY;
#ifdef SMP_AVX2
    __m256 t = _mm256_set1_ps(inv_t), m = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= V; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(logits + i), t);
        _mm256_storeu_ps(pr + i, v);
        m = _mm256_max_ps(m, v);
    }
    float l[8];
    _mm256_storeu_ps(l, m);
    for (int j = 0; j < 8; j++) mx = l[j] > mx ? l[j] : mx;
#endif
    for (; i < V; i++) {
        pr[i] = logits[i] * inv_t;
        mx = pr[i] > mx ? pr[i] : mx;
    }
    return mx;
}

// pr[i] = exp(pr[i] - mx) over [0, n); csum[j] = the float sum of chunk j (SMP_CHUNK ids,
// 8 lanes then across); returns the chunk sums added in order in double.
static double exp_sum(float *pr, int n, float mx, float *csum) {
    double total = 0;
    for (int a = 0, j = 0; a < n; a += SMP_CHUNK, j++) {
        int i = a, e = n - a < SMP_CHUNK ? n : a + SMP_CHUNK;
        float cs = 0;
#ifdef SMP_AVX2
        __m256 m = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
        for (; i + 8 <= e; i += 8) {
            __m256 w = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(pr + i), m));
            _mm256_storeu_ps(pr + i, w);
            acc = _mm256_add_ps(acc, w);
        }
        float l[8];
        _mm256_storeu_ps(l, acc);
        for (int k = 0; k < 8; k++) cs += l[k];
#endif
        for (; i < e; i++) cs += (pr[i] = expf(pr[i] - mx));
        csum[j] = cs;
        total += cs;
    }
    return total;
}

// The float sum of pr[i] ≥ c over [0, n).
static double mass_above(const float *pr, int n, float c) {
    int i = 0;
    double sum = 0;
#ifdef SMP_AVX2
    __m256 vc = _mm256_set1_ps(c), acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(pr + i);
        acc = _mm256_add_ps(acc, _mm256_and_ps(v, _mm256_cmp_ps(v, vc, _CMP_GE_OQ)));
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    for (int j = 0; j < 8; j++) sum += l[j];
#endif
    for (; i < n; i++)
        if (pr[i] >= c) sum += pr[i];
    return sum;
}

// qsort has no context argument: the array being sorted by is passed per thread.
static _Thread_local const float *t_sort_prob;

// The total order of candidates: higher value first, then lower id.
static inline int better(const float *v, int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); }

static int cmp_desc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return better(t_sort_prob, x, y) ? -1 : better(t_sort_prob, y, x) ? 1 : 0;
}

// The k best ids of v (k < n) into idx[0..k), in the candidate order: a min-heap (its root
// the worst kept) that each id must beat to enter.
static void top_k_ids(const float *v, int n, int k, int32_t *idx) {
    for (int i = 0; i < n; i++) {
        int32_t id = i;
        int at;
        if (i < k) {  // sift up
            at = i;
            while (at > 0 && better(v, idx[(at - 1) / 2], id)) {
                idx[at] = idx[(at - 1) / 2];
                at = (at - 1) / 2;
            }
            idx[at] = id;
            continue;
        }
        if (!better(v, id, idx[0])) continue;
        at = 0;  // replace the root, sift down
        for (;;) {
            int c = 2 * at + 1;
            if (c >= k) break;
            if (c + 1 < k && better(v, idx[c], idx[c + 1])) c++;
            if (!better(v, id, idx[c])) break;
            idx[at] = idx[c];
            at = c;
        }
        idx[at] = id;
    }
    t_sort_prob = v;
    qsort(idx, (size_t)k, sizeof(int32_t), cmp_desc);
}

// Without filters: pr holds the weights over all V in id order, csum and total their chunk
// sums (exp_sum); draws one id in proportion.
static int32_t draw_all(sampler *s, const float *pr, int V, double total) {
    int nc = (V + SMP_CHUNK - 1) / SMP_CHUNK;
    // acc + csum[j] repeats total's additions in the same order, so the last chunk reaches
    // total > r: the walk always stops in a chunk of positive weight.
    double r = sampler_uniform(s) * total, acc = 0;
    for (int j = 0; j < nc; j++) {
        if (!(acc + s->csum[j] > r)) {
            acc += s->csum[j];
            continue;
        }
        int a = j * SMP_CHUNK, n = V - a < SMP_CHUNK ? V - a : SMP_CHUNK, last = a;
        for (int i = a; i < a + n; i++) {
            if (pr[i] <= 0) continue;
            acc += pr[i];
            last = i;
            if (r < acc) return i;
        }
        return last;  // rounding inside the chunk: its last id of positive weight
    }
    return sampler_argmax(pr, V);  // not reached
}

int32_t sampler_sample(sampler *s, const float *logits) {
    int V = s->n_vocab;
    if (s->p.temperature <= 0 || s->p.top_k == 1) return sampler_argmax(logits, V);
    float *pr = s->prob;
    float mx = scale_max(pr, logits, V, 1.0f / s->p.temperature);
    int top_p_on = s->p.top_p < 1.0f;
    int n;  // candidates idx[0..n), sorted best first
    double sum = 0;
    if (s->p.top_k > 0 && s->p.top_k < V) {
        n = s->p.top_k;
        top_k_ids(pr, V, n, s->idx);
        for (int i = 0; i < n; i++) sum += (pr[s->idx[i]] = expf(pr[s->idx[i]] - mx));
    } else {
        double fs = exp_sum(pr, V, mx, s->csum);
        if (!top_p_on) return draw_all(s, pr, V, fs);
        // The smallest power-of-two cutoff (relative to the largest weight, 1) whose tokens
        // hold the top-p mass, with a margin for rounding: the nucleus lies among them.
        double need = fs * (s->p.top_p > 0 ? s->p.top_p : 0) * (1 + 1e-5);
        int lo = 0, hi = 1;  // mass(2^-lo) < need ≤ mass(2^-hi), or hi = 150 (everything)
        while (hi < 150 && mass_above(pr, V, ldexpf(1.0f, -hi)) < need) lo = hi, hi = hi * 2 < 150 ? hi * 2 : 150;
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (mass_above(pr, V, ldexpf(1.0f, -mid)) < need) lo = mid;
            else hi = mid;
        }
        float c = hi >= 150 ? 0.0f : ldexpf(1.0f, -hi);
        n = 0;
        for (int i = 0; i < V; i++)
            if (pr[i] >= c) s->idx[n++] = i;
        t_sort_prob = pr;
        qsort(s->idx, (size_t)n, sizeof(int32_t), cmp_desc);
        sum = fs;
    }
    if (top_p_on) {
        // idx is sorted by descending probability: keep the shortest prefix reaching top_p
        // (at least one token).
        double cum = 0;
        int keep = 1;
        if (s->p.top_p > 0)
            for (keep = 0; keep < n;) {
                cum += pr[s->idx[keep++]] / sum;
                if (cum >= s->p.top_p) break;
            }
        n = keep;
        sum = 0;
        for (int i = 0; i < n; i++) sum += pr[s->idx[i]];
    }
    double r = sampler_uniform(s) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += pr[s->idx[i]];
        if (r < acc) return s->idx[i];
    }
    return s->idx[n - 1];
}
