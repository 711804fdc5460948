/* safetensors.h - checkpoints in the safetensors format.
 *
 * Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of UTF-8 JSON, then the tensor data. The JSON maps
 * each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (byte
 * offsets into the data section) plus an optional "__metadata__" object of
 * strings. Data is little-endian, row-major, contiguous.
 *
 * The writer produces the same bytes as the reference implementation would
 * for the same tensors in the same order: compact JSON with "__metadata__"
 * first (omitted when empty), keys dtype/shape/data_offsets, the header padded
 * with spaces to a multiple of 8 so the data section is 8-byte aligned. Data
 * follows in the map's insertion order (the reference sorts by dtype, then
 * name; readers must not care, and ours keeps a state_dict's order).
 *
 * The reader trusts nothing: every field, size and offset is checked before
 * any tensor is allocated, and a malformed input is TD_ERR_FORMAT with a
 * message naming the problem (and the tensor key). Tensors come back in data
 * order (offset order), which is insertion order for files we wrote.
 * Supported dtypes: F32, I64, I32 (float32, int64, int32).
 */
#ifndef TD_IO_SAFETENSORS_H
#define TD_IO_SAFETENSORS_H

#include <stddef.h>

#include "io/tensor_map.h"

/* The reference implementation's limit on the JSON header (100 MB). */
#define TD_SAFETENSORS_MAX_HEADER 100000000u

/* Serializes m into a new buffer: *buf (free with td_free) of *len bytes.
 * Tensors may be any strided view; they are written row-major. A tensor named
 * "__metadata__" or a name/metadata string that is not UTF-8 is
 * INVALID_ARGUMENT. On error *buf is NULL and *len 0. */
td_status td_safetensors_write_buffer(const td_tensor_map *m, void **buf, size_t *len);

/* Streams the same bytes to sink(ctx, data, n) in pieces (the header, then
 * each tensor), without holding the file in memory: the first error a sink
 * returns stops the stream and is returned. Names and metadata are checked
 * before the sink sees anything. */
typedef td_status (*td_write_sink)(void *ctx, const void *data, size_t n);
td_status td_safetensors_write_stream(const td_tensor_map *m, td_write_sink sink, void *ctx);

/* Writes m to path atomically: a temporary file in the same directory is
 * written, fsynced and renamed over path, then the directory is fsynced. On
 * failure (TD_ERR_IO naming the path and the system error) the temporary file
 * is removed and any previous file at path is left as it was. */
td_status td_safetensors_write_file(const td_tensor_map *m, const char *path);

/* Parses a whole safetensors file held in buf[0..len) into out, which must be
 * an initialized, empty map. The buffer is only read; tensors are copies. On
 * error out stays empty. */
td_status td_safetensors_read_buffer(const void *buf, size_t len, td_tensor_map *out);

/* As td_safetensors_read_buffer for a file. The header is read and validated
 * (against the file's size) before anything else is allocated; tensor data is
 * then read straight into the new tensors. A missing file is TD_ERR_NOT_FOUND,
 * other system errors TD_ERR_IO; messages start with the path. */
td_status td_safetensors_read_file(const char *path, td_tensor_map *out);

#endif
