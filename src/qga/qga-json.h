/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The JSON form of the guest agent's typed results, as the API shows them (the GuestInfo, GuestCounters and
 * GuestExecResult types of io.memvisor.Manager; D-Bus shows the same objects as a{sv}). Bytes that come from the
 * guest and need not be text (a program's output) are base64 (RFC 4648, with padding). */

#include <json-c/json.h>

#include "qga/qga-ops.h"

/* {"agentVersion", "osId", "osName", "osPrettyName", "osVersion", "kernelRelease", "kernelVersion", "machine",
 * "vcpus", "vcpusOnline", "memoryBlockSizeBytes", "memoryBlocks", "memoryBlocksOnline", "nodes": [{"id", "cpus",
 * "memTotalBytes", "memFreeBytes"}], "unavailable": [{"name", "reason"}]}. */
int qga_guest_info_to_json(const QgaGuestInfo *info, json_object **ret);
/* {"guestRealtimeNSec", "hostRealtimeUSec", "vmstat": {KEY: N}, "meminfoBytes": {KEY: N}, "interruptCPUs",
 * "tlb": [N per CPU column] (left out when the row is absent), "tlbCPUs": [the CPU of each column],
 * "tlbDescription", "cal", "calCPUs", "calDescription",
 * "unavailable": [{"name", "reason"}]}. */
int qga_guest_counters_to_json(const QgaGuestCounters *c, json_object **ret);
/* {"counters": {KEY: delta}, "unavailable": [...]} of b - a. */
int qga_guest_counters_delta_to_json(const QgaGuestCounters *a, const QgaGuestCounters *b, json_object **ret);
/* {"pid", "exited", "exitCode" (when exited), "signal" (when > 0), "timedOut", "killed", "killError", "stdout"
 * (base64), "stderr" (base64), "stdoutBytes", "stderrBytes", "stdoutTruncated", "stderrTruncated",
 * "durationUSec"}. */
int qga_exec_result_to_json(const QgaExecResult *r, json_object **ret);
/* [{"name", "reason"}] */
int qga_unavailable_to_json(const QgaUnavailable *u, size_t n, json_object **ret);
