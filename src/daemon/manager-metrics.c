/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TODO(issue): this module is being written; it registers nothing yet. */
#include "manager.h"

int manager_metrics_start(Manager *m) {
        return 0;
}

void manager_metrics_done(Manager *m) {
}

static const VarlinkMethod metrics_methods[] = {
        { NULL },
};

const VarlinkMethod *manager_metrics_methods(void) {
        return metrics_methods;
}
