/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TODO(issue): this module is being written; it registers nothing yet. */
#include "manager.h"

int manager_numa_start(Manager *m) {
        return 0;
}

void manager_numa_done(Manager *m) {
}

static const VarlinkMethod numa_methods[] = {
        { NULL },
};

const VarlinkMethod *manager_numa_methods(void) {
        return numa_methods;
}
