/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TODO(issue): memvisorctl verbs of this module are being written. */
#include "ctl.h"

const CtlVerb ctl_balloon_verbs[] = {
        {}
};
