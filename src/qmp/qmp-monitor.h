/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Monitor passthrough: which QMP commands and HMP lines would change what memvisord supervises (the guest's
 * life, its run state, its devices, migration, the balloon, the objects and back ends QEMU was started with),
 * and so are refused unless forced. HMP lines are judged by their verb (the first word, as QEMU's monitor
 * splits it), with QEMU's short forms ("q", "c", "s"); a QMP human-monitor-command by the line it carries. */

#include <json-c/json.h>

#include "basic/macro.h"

#define QMP_MONITOR_MAX_REQUEST (64U * 1024U)           /* command, arguments and HMP line, as JSON */
#define QMP_MONITOR_MAX_REPLY (4U * 1024U * 1024U)      /* the reply passed back, as JSON */

/* Why command (QMP, arguments may be NULL) would change what the daemon supervises; NULL when it would not. */
const char *qmp_monitor_qmp_refusal(const char *command, json_object *arguments);
/* The same for an HMP line. */
const char *qmp_monitor_hmp_refusal(const char *line);
/* The verb of an HMP line (its first word), allocated; -EINVAL for a line without one. */
int qmp_monitor_hmp_verb(const char *line, char **ret);
