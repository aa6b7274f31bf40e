/* HDF5 filter 32015 (Zstandard): compresses a chunk with the level in cd_values[0];
 * decompresses without trusting the frame header further than the HDF5 chunk size limit. */
#include "h5_zstd_filter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

/* HDF5 chunks are at most 4 GiB - 1 bytes; a frame claiming more is corrupt. */
#define MAX_CHUNK_BYTES ((unsigned long long)UINT32_MAX)

static size_t compress_chunk(size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                             size_t *buf_size, void **buf) {
  int level = cd_nelmts > 0 ? (int)cd_values[0] : ZSTD_CLEVEL_DEFAULT;
  if (level < ZSTD_minCLevel()) level = ZSTD_minCLevel();
  if (level > ZSTD_maxCLevel()) level = ZSTD_maxCLevel();
  size_t bound = ZSTD_compressBound(nbytes);
  if (ZSTD_isError(bound)) return 0;
  void *out = malloc(bound > 0 ? bound : 1);
  if (!out) return 0;
  size_t n = ZSTD_compress(out, bound, *buf, nbytes, level);
  if (ZSTD_isError(n)) {
    free(out);
    return 0;
  }
  free(*buf);
  *buf = out;
  *buf_size = bound;
  return n;
}

/* For frames that do not record their size (streaming writers) or that are followed by
 * further frames: decompress with a growing buffer. */
static size_t decompress_streaming(size_t nbytes, size_t *buf_size, void **buf) {
  ZSTD_DStream *ds = ZSTD_createDStream();
  if (!ds) return 0;
  size_t cap = nbytes * 4 > ZSTD_DStreamOutSize() ? nbytes * 4 : ZSTD_DStreamOutSize();
  uint8_t *out = malloc(cap);
  ZSTD_inBuffer in = {*buf, nbytes, 0};
  ZSTD_outBuffer ob = {out, cap, 0};
  size_t ret = 1;
  while (out) {
    ret = ZSTD_decompressStream(ds, &ob, &in);
    if (ZSTD_isError(ret)) break;
    if (in.pos == in.size && ret == 0) break; /* input consumed, last frame complete */
    if (in.pos == in.size && ob.pos < ob.size) {
      ret = 1; /* truncated frame: no more input but the decoder wants some */
      break;
    }
    if (ob.pos == ob.size) {
      if (cap >= MAX_CHUNK_BYTES) {
        ret = 1;
        break;
      }
      size_t grown = cap * 2 > MAX_CHUNK_BYTES ? (size_t)MAX_CHUNK_BYTES : cap * 2;
      uint8_t *p = realloc(out, grown);
      if (!p) {
        ret = 1;
        break;
      }
      out = p;
      cap = grown;
      ob.dst = out;
      ob.size = cap;
    }
  }
  ZSTD_freeDStream(ds);
  if (!out || ZSTD_isError(ret) || ret != 0) {
    free(out);
    return 0;
  }
  free(*buf);
  *buf = out;
  *buf_size = cap;
  return ob.pos;
}

static size_t decompress_chunk(size_t nbytes, size_t *buf_size, void **buf) {
  unsigned long long size = ZSTD_getFrameContentSize(*buf, nbytes);
  if (size == ZSTD_CONTENTSIZE_ERROR) return 0;
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > MAX_CHUNK_BYTES)
    return size == ZSTD_CONTENTSIZE_UNKNOWN ? decompress_streaming(nbytes, buf_size, buf) : 0;
  void *out = malloc(size > 0 ? (size_t)size : 1);
  if (!out) return 0;
  size_t n = ZSTD_decompress(out, (size_t)size, *buf, nbytes);
  if (ZSTD_isError(n) || n != size) {
    free(out);
    /* Several concatenated frames decode to more than the first frame's size. */
    return ZSTD_isError(n) && ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall
               ? decompress_streaming(nbytes, buf_size, buf)
               : 0;
  }
  free(*buf);
  *buf = out;
  *buf_size = (size_t)size > 0 ? (size_t)size : 1;
  return n;
}

/* H5Z_func_t: returns the number of valid bytes in *buf, or 0 on failure (HDF5 then fails the
 * read or write; *buf is left untouched and still owned by HDF5). */
static size_t zstd_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
  if (flags & H5Z_FLAG_REVERSE) return decompress_chunk(nbytes, buf_size, buf);
  return compress_chunk(cd_nelmts, cd_values, nbytes, buf_size, buf);
}

const H5Z_class2_t temper_h5z_zstd_class = {
    H5Z_CLASS_T_VERS,                  /* version */
    (H5Z_filter_t)TEMPER_H5Z_FILTER_ZSTD, /* id */
    1,                                 /* encoder_present */
    1,                                 /* decoder_present */
    "zstd",                            /* name */
    NULL,                              /* can_apply */
    NULL,                              /* set_local */
    zstd_filter,                       /* filter */
};
