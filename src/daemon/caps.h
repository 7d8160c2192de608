/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/capability.h>

#include "basic/macro.h"

typedef struct CapabilityNeed {
        cap_value_t cap;
        const char *reason;
} CapabilityNeed;

/* The capabilities memvisord keeps, each with the reason (also in memvisord(8)). */
extern const CapabilityNeed caps_needed[];
extern const size_t caps_needed_count;

/* Drops every capability not in caps_needed from the bounding set, and from the permitted and effective
 * sets. Without CAP_SETPCAP (not running as root) there is nothing to drop: returns 0. */
int caps_drop_unneeded(void);
