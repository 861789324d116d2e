// chat.c: ChatML rendering: <|im_start|>ROLE\nCONTENT<|im_end|>\n per message, then
// <|im_start|>assistant\n when a reply is wanted.
#include "protocol/chat.h"

#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "protocol/tags.h"

char *chat_default_system(const char *t) {
    if (!t) return NULL;
    const char *open = TAG_IM_START "system\n";
    const char *s = strstr(t, open);
    if (!s) return NULL;
    s += strlen(open);
    const char *end = strstr(s, TAG_IM_END);
    // A Jinja expression (e.g. {{ message['content'] }}) is not a literal default.
    if (!end || memchr(s, '{', (size_t)(end - s)) || memchr(s, '\'', (size_t)(end - s))) return NULL;
    char *r = malloc((size_t)(end - s) + 1);
    if (!r) return NULL;
    memcpy(r, s, (size_t)(end - s));
    r[end - s] = 0;
    return r;
}

static void turn(strbuf *b, const char *role, const char *content) {
    strbuf_adds(b, TAG_IM_START);
    strbuf_adds(b, role);
    strbuf_adds(b, "\n");
    strbuf_adds(b, content ? content : "");
    strbuf_adds(b, TAG_IM_END "\n");
}

char *chat_render(const char *tmpl, const chat_msg *msgs, int n, int add_generation_prompt) {
    strbuf b = {0};
    if (n == 0 || strcmp(msgs[0].role, "system") != 0) {
        char *def = chat_default_system(tmpl);
        if (def) turn(&b, "system", def);
        free(def);
    }
    for (int i = 0; i < n; i++) turn(&b, msgs[i].role, msgs[i].content);
    if (add_generation_prompt) strbuf_adds(&b, TAG_IM_START "assistant\n");
    return strbuf_take(&b);  // NULL only when out of memory
}
