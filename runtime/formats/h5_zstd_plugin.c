/* Loadable HDF5 plugin exposing the zstd filter (id 32015) to other HDF5 programs, e.g.
 *   HDF5_PLUGIN_PATH=<build>/hdf5-plugins python3 -c 'import h5py; ...' */
#include <H5PLextern.h>

#include "h5_zstd_filter.h"

H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }

const void *H5PLget_plugin_info(void) { return &temper_h5z_zstd_class; }
