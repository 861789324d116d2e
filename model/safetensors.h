// safetensors.h: a validating reader and an atomic writer for the safetensors format
// (8-byte LE header length, JSON header, raw little-endian tensor bytes), and the
// sharded form (model.safetensors.index.json + shards) Hugging Face checkpoints use.
// Only F32, F16 and BF16 tensors are supported; dtypes are reported as qtype ids (quant.h).
// Every offset, size and shape is checked against the file before a tensor is handed out;
// tensors may not overlap, but gaps between them (which the reference reader refuses) are tolerated.
#ifndef TOOLRL_SAFETENSORS_H
#define TOOLRL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_HEADER 100000000ULL  // bytes of JSON header accepted (the reference limit)

typedef struct {
    char *name;
    uint32_t type;                          // QTYPE_F32, QTYPE_F16 or QTYPE_BF16
    int n_dims;                             // 0 for a scalar
    int64_t shape[SAFETENSORS_MAX_DIMS];    // row-major: shape[n_dims-1] is contiguous
    int64_t numel;
    size_t nbytes;
    const void *data;                       // inside the mapping (not necessarily 4-byte aligned)
} safetensors_tensor;

typedef struct {
    char *path;                 // for messages
    void *map;                  // the whole file, read-only (NULL after safetensors_take_map)
    size_t size;
    int owns_map;               // 1 when safetensors_open mapped it
    int n_tensors;
    safetensors_tensor *tensors;  // in file order
    int n_meta;
    char **meta_keys, **meta_vals;  // "__metadata__" string pairs
} safetensors_file;

// Maps and validates a file. On failure returns TRL_ERR, fills e (naming the file and,
// where there is one, the tensor) and leaves f empty.
int safetensors_open(safetensors_file *f, const char *path, trl_err *e);
// Parses an in-memory image (not copied; must outlive f). `name` is used in messages.
int safetensors_open_memory(safetensors_file *f, const void *data, size_t size, const char *name, trl_err *e);
void safetensors_close(safetensors_file *f);

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);
// The "__metadata__" value for key, or NULL.
const char *safetensors_meta(const safetensors_file *f, const char *key);
// Hands the mapping to the caller (who munmaps map/size later); the tensors' data pointers
// stay valid as long as the mapping does. Returns NULL for memory images.
void *safetensors_take_map(safetensors_file *f, size_t *size);

// "F32", "F16", "BF16"; NULL for other types.
const char *safetensors_dtype_name(uint32_t type);

// One tensor to write: data holds numel elements of `type` (little-endian, row-major).
typedef struct {
    const char *name;
    uint32_t type;          // QTYPE_F32, QTYPE_F16 or QTYPE_BF16
    int n_dims;
    const int64_t *shape;   // n_dims entries
    const void *data;
} safetensors_wtensor;

// Writes n tensors and optional string metadata (key, value, key, value, ..., NULL; may be
// NULL) to path atomically: a temporary file in the same directory is written, fsync'd and
// renamed over path. Tensors are laid out like the reference writer (by dtype size, then
// name; header padded to 8 bytes) so every tensor's data is naturally aligned.
int safetensors_write(const char *path, const safetensors_wtensor *t, int n, const char *const *metadata,
                      trl_err *e);

// A checkpoint: one file, or several shards listed by an index.
typedef struct {
    int n_files;
    safetensors_file *files;
} safetensors_set;

// Opens dir/model.safetensors, or else every shard named by dir/model.safetensors.index.json
// ("weight_map": tensor name → shard file name in dir; each listed tensor must exist in its
// shard, and a tensor may appear in only one shard).
int safetensors_set_open_dir(safetensors_set *s, const char *dir, trl_err *e);
const safetensors_tensor *safetensors_set_find(const safetensors_set *s, const char *name);
void safetensors_set_close(safetensors_set *s);

#endif
