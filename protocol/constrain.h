// constrain.h: constrained decoding. A byte-level recognizer of the text a request must
// produce, and the per-step token mask it implies: a token is allowed when every one of its
// bytes keeps the recognizer alive, end-of-turn only when the text is complete. The sampler
// then picks among allowed tokens only, so the output is well-formed by construction.
//
// Grammars:
//   CONSTRAIN_TOOL_CALL   <think>R</think> ws <tool_call> ws [ CALL (, CALL)* ] ws </tool_call>
//                         CALL = { "name" : "N" , "arguments" : OBJ } (whitespace allowed between
//                         JSON tokens), N one of the allowed names, OBJ any JSON object; R free
//                         text of at most think_budget bytes (then "</think>" is forced);
//                         max_calls > 0 caps the list (parallel_tool_calls: false gives 1).
//                         A JSON string may hold at most CONSTRAIN_MAX_STRING bytes before its
//                         closing quote is forced, and past a byte budget an object may only
//                         close (strings end, numbers end, no new members, null for a pending
//                         value, no whitespace), so a rambling model still ends its call.
//   CONSTRAIN_JSON_OBJECT ws OBJ ws   (response_format json_object / json_schema)
// JSON is checked fully (strings with escapes and \u, numbers, true/false/null, nesting up to
// 32 levels).
//
// Schemas. A tool's `parameters` (and response_format's json_schema) compile into a table of
// nodes, and the recognizer walks it alongside the JSON: a value must have one of the node's
// types (object, array, string, integer, number, boolean, null; BFCL's dict/float/tuple are
// read as object/number/array), an `enum`/`const` value must be one of the listed values
// written as compact JSON, an object's keys must be declared properties (unless
// additionalProperties is true or a schema), each at most once, and it closes only when every
// `required` property is present; array elements follow `items`, between minItems and maxItems. Other keywords (anyOf, $ref,
// pattern, minimum, ...) are not enforced: such a node accepts any value. Past the byte
// budget the schema gives way to the closing rule above, so a rambling model still ends
// (and the output may then miss required properties).
#ifndef TOOLRL_CONSTRAIN_H
#define TOOLRL_CONSTRAIN_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CONSTRAIN_TOOL_CALL = 1, CONSTRAIN_JSON_OBJECT = 2 } constrain_mode;

#define CONSTRAIN_MAX_NAMES 64
#define CONSTRAIN_MAX_DEPTH 32
#define CONSTRAIN_MAX_STRING 256
#define CONSTRAIN_ARGS_BUDGET 384    // bytes of a call's arguments before only closing is allowed
#define CONSTRAIN_OBJECT_BUDGET 4096 // the same for response_format json_object
#define CONSTRAIN_MAX_PROPS 64       // properties (and enum values) a node can track

enum { CT_OBJECT = 1, CT_ARRAY = 2, CT_STRING = 4, CT_INTEGER = 8, CT_NUMBER = 16, CT_BOOLEAN = 32, CT_NULL = 64 };

// One schema node. Node 0 is "any value". Strings and child lists live in the spec's arrays,
// referenced by offset, so a spec copies with three memcpys.
typedef struct {
    uint8_t types;      // CT_* bits allowed; 0 = any type
    uint8_t closed;     // object: no keys beyond the declared properties
    uint16_t items;     // array: node of every element
    uint16_t min_items, max_items;  // array: element count bounds (max 0 = none)
    uint16_t n_props;   // object: declared properties, refs[props + 2i] = name offset, [+1] = node
    uint16_t n_enum;    // enum/const: refs[enums + i] = offset of a value's compact JSON text
    uint32_t props, enums;
    uint64_t required;  // bit i: property i must be present
} constrain_node;

typedef struct {
    constrain_mode mode;
    char *names[CONSTRAIN_MAX_NAMES];  // owned copies (TOOL_CALL)
    uint16_t name_node[CONSTRAIN_MAX_NAMES];  // schema of each tool's arguments (0 = any object)
    uint16_t root;     // JSON_OBJECT: schema of the object (0 = any)
    int n_names;
    int max_calls;     // 0: any number ≥ 1
    int think_budget;  // bytes of reasoning before "</think>" is forced (default 512)
    constrain_node *nodes;  // n_nodes (node 0 = any), empty when no schema was given
    uint32_t *refs;         // n_refs
    char *strs;             // n_strs bytes of NUL-terminated strings
    int n_nodes, cap_nodes, n_refs, cap_refs;
    size_t n_strs, cap_strs;
} constrain_spec;

// The recognizer's whole state: a small value, copied freely.
typedef struct {
    uint8_t phase, step, lit_pos, ws_run;
    uint8_t js;          // JSON sub-state
    uint8_t depth;
    uint8_t esc, hex;    // string escape progress
    uint8_t lit_kind, lit_i;  // true/false/null progress
    uint8_t num;         // number sub-state
    uint8_t key_done;    // the current object member has its key
    char stack[CONSTRAIN_MAX_DEPTH];
    uint16_t think_bytes;
    uint16_t str_len;    // bytes of the JSON string being written
    uint16_t json_bytes; // bytes of the JSON object so far (past the budget it must close)
    uint16_t name_len;
    uint64_t name_set;   // allowed names still matching the name being written (bit i = names[i])
    uint16_t calls;
    uint8_t done, dead;
    uint8_t tool;        // index of the tool whose call is being written
    uint8_t num_int;     // the number being written must be an integer
    uint16_t val_node;   // schema node of the value about to be written
    uint16_t cand_pos;   // bytes of the key / enum value matched so far
    uint64_t cand;       // properties (J_KEY) or enum values (J_ENUM) still matching
    uint16_t node[CONSTRAIN_MAX_DEPTH];  // schema node of each open container
    uint64_t seen[CONSTRAIN_MAX_DEPTH];  // object: declared properties already written; array: elements
} constrain_state;

// Compiles a JSON schema into s's node table; returns its node (0 = any value), -1 when out
// of memory. Compile each tool's parameters once and store the node in name_node[].
int constrain_schema_add(constrain_spec *s, const cJSON *schema);
// Appends an allowed tool name with its parameters schema (NULL: any object). 0 or -1.
int constrain_spec_add_tool(constrain_spec *s, const char *name, const cJSON *parameters);
// Deep copy (dst is overwritten). 0 or -1 when out of memory (dst is then empty).
int constrain_spec_copy(constrain_spec *dst, const constrain_spec *src);
void constrain_spec_free(constrain_spec *s);
void constrain_start(const constrain_spec *s, constrain_state *st);
// Feeds n bytes; returns 0 while alive, -1 once a byte is rejected (st is then dead).
int constrain_feed(const constrain_spec *s, constrain_state *st, const char *bytes, size_t n);
// The text so far is a complete sentence of the grammar (end-of-turn may follow).
int constrain_complete(const constrain_state *st);

// Every token's bytes, precomputed once per tokenizer.
typedef struct {
    int n;
    char *bytes;       // back to back
    uint32_t *off, *len;
    uint8_t *is_eog;   // end-of-generation tokens (allowed only when complete)
    uint8_t *special;  // other control tokens (never allowed)
} constrain_vocab;

// constrain_vocab_init (model/generate.h) fills one from a tokenizer: the protocol knows bytes,
// not tokenizers.
void constrain_vocab_free(constrain_vocab *v);
// Sets logits of disallowed tokens to -INFINITY. Returns the number of allowed tokens.
int constrain_mask(const constrain_spec *s, const constrain_state *st, const constrain_vocab *v, float *logits);

#endif
