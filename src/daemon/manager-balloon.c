/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TODO(issue): this module is being written; it registers nothing yet. */
#include "manager.h"

int manager_balloon_start(Manager *m) {
        return 0;
}

void manager_balloon_done(Manager *m) {
}

static const VarlinkMethod balloon_methods[] = {
        { NULL },
};

const VarlinkMethod *manager_balloon_methods(void) {
        return balloon_methods;
}
