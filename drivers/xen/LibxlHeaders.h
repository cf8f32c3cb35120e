// The one place libxl (and libxenstore, for the PV shutdown request) is included from. libxl's headers carry no extern
// "C" guards, so C++ must wrap them; and every libxl user in Loom must see the same LIBXL_API_VERSION (none: "the
// latest", i.e. Xen 4.17's API with ao_how arguments).
#pragma once

extern "C" {
#include <libxl.h>
#include <libxl_utils.h>
#include <xenstore.h>
}
