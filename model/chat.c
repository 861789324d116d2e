// chat.c: ChatML rendering: <|im_start|>ROLE\nCONTENT<|im_end|>\n per message, then
// <|im_start|>assistant\n when a reply is wanted.
#include "chat.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *np = realloc(b->p, c);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

char *chat_default_system(const char *t) {
    if (!t) return NULL;
    const char *open = "<|im_start|>system\n";
    const char *s = strstr(t, open);
    if (!s) return NULL;
    s += strlen(open);
    const char *end = strstr(s, "<|im_end|>");
    // A Jinja expression (e.g. {{ message['content'] }}) is not a literal default.
    if (!end || memchr(s, '{', (size_t)(end - s)) || memchr(s, '\'', (size_t)(end - s))) return NULL;
    char *r = malloc((size_t)(end - s) + 1);
    if (!r) return NULL;
    memcpy(r, s, (size_t)(end - s));
    r[end - s] = 0;
    return r;
}

static void turn(sbuf *b, const char *role, const char *content) {
    sb_puts(b, "<|im_start|>");
    sb_puts(b, role);
    sb_puts(b, "\n");
    sb_puts(b, content ? content : "");
    sb_puts(b, "<|im_end|>\n");
}

char *chat_render(const char *tmpl, const chat_msg *msgs, int n, int add_generation_prompt) {
    sbuf b = {0};
    sb_puts(&b, "");
    if (n == 0 || strcmp(msgs[0].role, "system") != 0) {
        char *def = chat_default_system(tmpl);
        if (def) turn(&b, "system", def);
        free(def);
    }
    for (int i = 0; i < n; i++) turn(&b, msgs[i].role, msgs[i].content);
    if (add_generation_prompt) sb_puts(&b, "<|im_start|>assistant\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
