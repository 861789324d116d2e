// toolcall_parse.c: extraction of <tool_call> blocks from model output (see toolcall_parse.h).
#include "protocol/toolcall_parse.h"

#include "protocol/toolprompt.h"

#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"

static const char OPEN_TAG[] = TAG_TOOL_CALL;
static const char CLOSE_TAG[] = TAG_TOOL_CALL_END;

static const char *find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen) {
    if (nlen == 0) return hay;
    if (hlen < nlen) return NULL;
    return strbuf_find(hay, hlen, needle, nlen);
}

const char *toolcall_scope(const char *text, size_t len, const char *marker, size_t *out_len) {
    *out_len = len;
    if (!text) {
        *out_len = 0;
        return "";
    }
    if (!marker || !*marker) return text;
    size_t ml = strlen(marker);
    const char *last = NULL;
    const char *p = text;
    size_t left = len;
    for (;;) {
        const char *hit = find_bytes(p, left, marker, ml);
        if (!hit) break;
        last = hit;
        left -= (size_t)(hit - p) + 1;
        p = hit + 1;
    }
    if (!last) return text;
    *out_len = len - (size_t)(last - text);
    return last;
}

int toolcall_find_block(const char *text, size_t len, int first, const char **body, size_t *body_len) {
    const size_t ol = sizeof(OPEN_TAG) - 1, cl = sizeof(CLOSE_TAG) - 1;
    int found = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *open = find_bytes(text + pos, len - pos, OPEN_TAG, ol);
        if (!open) break;
        size_t bstart = (size_t)(open - text) + ol;
        const char *close = find_bytes(text + bstart, len - bstart, CLOSE_TAG, cl);
        // No closing tag after this opening tag means none after any later one either.
        if (!close) break;
        *body = text + bstart;
        *body_len = (size_t)(close - (text + bstart));
        found = 1;
        if (first) break;
        pos = (size_t)(close - text) + cl;
    }
    return found;
}

// Python's str.isspace() code points.
static int py_isspace(unsigned cp) {
    if (cp >= 0x09 && cp <= 0x0D) return 1;
    if (cp >= 0x1C && cp <= 0x20) return 1;
    switch (cp) {
        case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
            return 1;
        default: break;
    }
    return cp >= 0x2000 && cp <= 0x200A;
}

void toolcall_strip(const char **s, size_t *len) {
    const char *p = *s;
    size_t n = *len, i = 0;
    while (i < n) {
        size_t j = i;
        unsigned cp = pyjson_utf8_next(p, n, &j);
        if (!py_isspace(cp)) break;
        i = j;
    }
    p += i;
    n -= i;
    // From the end: step back over one UTF-8 sequence at a time.
    while (n > 0) {
        size_t st = n - 1;
        while (st > 0 && n - st < 4 && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
        size_t j = st;
        unsigned cp = pyjson_utf8_next(p, n, &j);
        if (j != n) {  // not one well-formed sequence ending here: treat the last byte alone
            st = n - 1;
            cp = (unsigned char)p[st];
            if (cp >= 0x80) cp = 0xFFFD;
        }
        if (!py_isspace(cp)) break;
        n = st;
    }
    *s = p;
    *len = n;
}

cJSON *toolcall_parse(const char *text, size_t len, const char *marker, unsigned flags, toolcall_info *info) {
    toolcall_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof(*info));
    size_t slen;
    const char *scope = toolcall_scope(text, len, marker, &slen);
    info->scope = scope;
    info->scope_len = slen;
    const char *body;
    size_t blen;
    if (!toolcall_find_block(scope, slen, (flags & TOOLCALL_FIRST_BLOCK) != 0, &body, &blen)) return NULL;
    info->found_block = 1;
    toolcall_strip(&body, &blen);
    cJSON *v = pyjson_parse(body, blen, NULL);
    if (!v) return NULL;
    info->json_ok = 1;
    if ((flags & TOOLCALL_REDECODE) && cJSON_IsString(v)) {
        const char *s = v->valuestring;
        size_t sl = strlen(s);
        // The decoded Python str goes through json.loads again. A U+0000 in it (stored as C0 80)
        // is a raw control character, which json.loads rejects wherever it appears.
        cJSON *w = strbuf_find(s, sl, "\xC0\x80", 2) ? NULL : pyjson_parse(s, sl, NULL);
        cJSON_Delete(v);
        v = w;
        if (!v) return NULL;
    }
    if (cJSON_IsNull(v)) {
        cJSON_Delete(v);
        return NULL;
    }
    if ((flags & TOOLCALL_WRAP_DICT) && cJSON_IsObject(v)) {
        cJSON *list = cJSON_CreateArray();
        if (!list || !cJSON_AddItemToArray(list, v)) {
            cJSON_Delete(list);
            cJSON_Delete(v);
            return NULL;
        }
        v = list;
    }
    return v;
}

cJSON *toolcall_parse_training(const char *text, size_t len, toolcall_info *info) {
    return toolcall_parse(text, len, TOOLCALL_MARKER_QWEN, TOOLCALL_REDECODE | TOOLCALL_WRAP_DICT, info);
}

cJSON *toolcall_parse_bfcl(const char *text, size_t len, toolcall_info *info) {
    return toolcall_parse(text, len, NULL, TOOLCALL_FIRST_BLOCK, info);
}

cJSON *toolcall_parse_hermes(const char *text, size_t len, toolcall_info *info) {
    toolcall_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof(*info));
    info->scope = text;
    info->scope_len = len;
    cJSON *calls = cJSON_CreateArray();
    if (!calls) return NULL;
    size_t off = 0;
    const char *body;
    size_t blen;
    while (off < len && toolcall_find_block(text + off, len - off, 1, &body, &blen)) {
        info->found_block = 1;
        off = (size_t)(body - text) + blen + TAG_LEN(TAG_TOOL_CALL_END);
        toolcall_strip(&body, &blen);
        cJSON *v = pyjson_parse(body, blen, NULL);
        if (!v) continue;  // a block that is not JSON is skipped, as Hermes parsers do
        info->json_ok = 1;
        if (cJSON_IsObject(v)) {
            cJSON_AddItemToArray(calls, v);
        } else {
            cJSON *c = cJSON_IsArray(v) ? v->child : NULL;
            while (c) {  // a list of calls in one block: take each dict
                cJSON *next = c->next;
                if (cJSON_IsObject(c)) cJSON_AddItemToArray(calls, cJSON_DetachItemViaPointer(v, c));
                c = next;
            }
            cJSON_Delete(v);
        }
    }
    if (!info->json_ok) {
        cJSON_Delete(calls);
        return NULL;
    }
    return calls;
}

cJSON *toolcall_parse_reply(int prompt_style, const char *text, size_t len, toolcall_info *info) {
    return prompt_style == TOOLPROMPT_HERMES ? toolcall_parse_hermes(text, len, info) : toolcall_parse_bfcl(text, len, info);
}

int toolcall_valid_format(const cJSON *v) {
    if (!cJSON_IsArray(v)) return 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cJSON_IsObject(c)) return 0;
        if (!cJSON_GetObjectItemCaseSensitive(c, "name") || !cJSON_GetObjectItemCaseSensitive(c, "arguments"))
            return 0;
    }
    return 1;
}
