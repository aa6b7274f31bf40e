/* The Zstandard HDF5 filter (registered filter id 32015), shared by temper's in-process
 * registration (checkpoint) and the loadable plugin (h5_zstd_plugin.c) that h5py uses. */
#ifndef TEMPER_H5_ZSTD_FILTER_H
#define TEMPER_H5_ZSTD_FILTER_H

#include <hdf5.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The id The HDF Group registered for Zstandard; compatible with the hdf5plugin/HDF5-filter
 * "zstd" implementations: cd_values[0] = compression level, chunks are plain zstd frames. */
#define TEMPER_H5Z_FILTER_ZSTD 32015

/* Filter class for H5Zregister / H5PLget_plugin_info. Calls no HDF5 function (only malloc and
 * free), so the plugin has no link-time dependency on a particular libhdf5. */
extern const H5Z_class2_t temper_h5z_zstd_class;

#ifdef __cplusplus
}
#endif

#endif
