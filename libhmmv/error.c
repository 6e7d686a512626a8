/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <hmmv/error.h>

G_DEFINE_QUARK(hmmv-error-quark, hmmv_error)
