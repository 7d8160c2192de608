/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "qga/qga-json.h"

int qga_unavailable_to_json(const QgaUnavailable *u, size_t n, json_object **ret) {
        _cleanup_json_ json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_json_ json_object *o = json_object_new_object();

                if (!o || json_add_string(o, "name", u[i].name) < 0 || json_add_string(o, "reason", u[i].reason) < 0 ||
                    json_object_array_add(a, TAKE_PTR(o)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

static int add_unavailable(json_object *o, const QgaUnavailable *u, size_t n) {
        json_object *a = NULL;
        int r;

        r = qga_unavailable_to_json(u, n, &a);
        if (r < 0)
                return r;
        return json_add(o, "unavailable", a);
}

int qga_guest_info_to_json(const QgaGuestInfo *info, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *nodes = json_object_new_array();
        int r;

        if (!o || !nodes)
                return -ENOMEM;
        if ((r = json_add_string(o, "agentVersion", info->agent_version)) < 0 ||
            (r = json_add_string(o, "osId", info->os_id)) < 0 ||
            (r = json_add_string(o, "osName", info->os_name)) < 0 ||
            (r = json_add_string(o, "osPrettyName", info->os_pretty_name)) < 0 ||
            (r = json_add_string(o, "osVersion", info->os_version)) < 0 ||
            (r = json_add_string(o, "kernelRelease", info->kernel_release)) < 0 ||
            (r = json_add_string(o, "kernelVersion", info->kernel_version)) < 0 ||
            (r = json_add_string(o, "machine", info->machine)) < 0 ||
            (r = json_add_uint(o, "vcpus", info->vcpus)) < 0 ||
            (r = json_add_uint(o, "vcpusOnline", info->vcpus_online)) < 0)
                return r;
        if (info->memory_block_size > 0 &&
            ((r = json_add_uint(o, "memoryBlockSizeBytes", info->memory_block_size)) < 0 ||
             (r = json_add_uint(o, "memoryBlocks", info->memory_blocks)) < 0 ||
             (r = json_add_uint(o, "memoryBlocksOnline", info->memory_blocks_online)) < 0))
                return r;
        for (size_t i = 0; i < info->n_nodes; i++) {
                _cleanup_json_ json_object *n = json_object_new_object();

                if (!n || json_add_uint(n, "id", info->nodes[i].id) < 0 ||
                    json_add_string(n, "cpus", info->nodes[i].cpulist ?: "") < 0 ||
                    json_add_uint(n, "memTotalBytes", info->nodes[i].mem_total_bytes) < 0 ||
                    json_add_uint(n, "memFreeBytes", info->nodes[i].mem_free_bytes) < 0 ||
                    json_object_array_add(nodes, TAKE_PTR(n)) < 0)
                        return -ENOMEM;
        }
        if ((r = json_add(o, "nodes", TAKE_PTR(nodes))) < 0 ||
            (r = add_unavailable(o, info->unavailable, info->n_unavailable)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int counters_to_object(const QgaCounter *c, size_t n, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (json_add_uint(o, c[i].name, c[i].value) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

/* The guest's text, as printable ASCII (anything else becomes '?'): it goes into JSON and D-Bus strings. */
static char *printable(const char *s) {
        char *r = s ? strdup(s) : NULL;

        for (char *p = r; p && *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        *p = '?';
        return r;
}

static int add_irq_row(json_object *o, const char *key, const char *cpus_key, const char *desc_key,
                       const QgaIrqRow *row) {
        _cleanup_json_ json_object *a = NULL, *ids = NULL;
        _cleanup_free_ char *desc = NULL;

        if (!row->present)
                return 0;
        a = json_object_new_array();
        ids = json_object_new_array();
        if (!a || !ids)
                return -ENOMEM;
        for (size_t i = 0; i < row->n_cpus; i++)
                if (json_object_array_add(ids, json_object_new_int64(row->cpu_ids ? row->cpu_ids[i] : i)) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < row->n_cpus; i++)
                if (json_object_array_add(a, json_object_new_int64(row->per_cpu[i] > INT64_MAX ? INT64_MAX
                                                                                                : (int64_t) row->per_cpu[i])) < 0)
                        return -ENOMEM;
        desc = printable(row->description);
        if (json_add(o, key, TAKE_PTR(a)) < 0 || json_add(o, cpus_key, TAKE_PTR(ids)) < 0 ||
            json_add_string(o, desc_key, desc) < 0)
                return -ENOMEM;
        return 0;
}

int qga_guest_counters_to_json(const QgaGuestCounters *c, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *vmstat = NULL, *meminfo = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = counters_to_object(c->vmstat, c->n_vmstat, &vmstat)) < 0 ||
            (r = counters_to_object(c->meminfo, c->n_meminfo, &meminfo)) < 0)
                return r;
        if ((r = json_add_uint(o, "guestRealtimeNSec", c->guest_realtime_nsec)) < 0 ||
            (r = json_add_uint(o, "hostRealtimeUSec", c->host_realtime_usec)) < 0 ||
            (r = json_add(o, "vmstat", TAKE_PTR(vmstat))) < 0 ||
            (r = json_add(o, "meminfoBytes", TAKE_PTR(meminfo))) < 0 ||
            (r = json_add_uint(o, "interruptCPUs", c->interrupt_cpus)) < 0 ||
            (r = add_irq_row(o, "tlb", "tlbCPUs", "tlbDescription", &c->tlb)) < 0 ||
            (r = add_irq_row(o, "cal", "calCPUs", "calDescription", &c->cal)) < 0 ||
            (r = add_unavailable(o, c->unavailable, c->n_unavailable)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int qga_guest_counters_delta_to_json(const QgaGuestCounters *a, const QgaGuestCounters *b, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *counters = NULL;
        QgaCounter *d = NULL;
        QgaUnavailable *u = NULL;
        size_t n = 0, n_u = 0;
        int r;

        if (!o)
                return -ENOMEM;
        r = qga_guest_counters_delta(a, b, &d, &n, &u, &n_u);
        if (r < 0)
                return r;
        r = counters_to_object(d, n, &counters);
        if (r >= 0)
                r = json_add(o, "counters", TAKE_PTR(counters));
        if (r >= 0)
                r = json_add_uint(o, "intervalNSec", b->guest_realtime_nsec > a->guest_realtime_nsec
                                                             ? b->guest_realtime_nsec - a->guest_realtime_nsec : 0);
        if (r >= 0)
                r = add_unavailable(o, u, n_u);
        qga_counters_free_array(d, n);
        for (size_t i = 0; i < n_u; i++) {
                free(u[i].name);
                free(u[i].reason);
        }
        free(u);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int add_base64(json_object *o, const char *key, const char *data, size_t size) {
        _cleanup_free_ char *e = base64_encode(data, size);

        if (!e)
                return -ENOMEM;
        return json_add_string(o, key, e);
}

int qga_exec_result_to_json(const QgaExecResult *x, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_int(o, "pid", x->pid)) < 0 ||
            (r = json_add_bool(o, "exited", x->exited)) < 0 ||
            (x->exited && (r = json_add_int(o, "exitCode", x->exit_code)) < 0) ||
            (x->signal > 0 && (r = json_add_int(o, "signal", x->signal)) < 0) ||
            (r = json_add_bool(o, "timedOut", x->timed_out)) < 0 ||
            (r = json_add_bool(o, "killed", x->killed)) < 0 ||
            (r = json_add_string(o, "killError", x->kill_error)) < 0 ||
            (r = add_base64(o, "stdout", x->out, x->out_size)) < 0 ||
            (r = add_base64(o, "stderr", x->err, x->err_size)) < 0 ||
            (r = json_add_uint(o, "stdoutBytes", x->out_size)) < 0 ||
            (r = json_add_uint(o, "stderrBytes", x->err_size)) < 0 ||
            (r = json_add_bool(o, "stdoutTruncated", x->out_truncated)) < 0 ||
            (r = json_add_bool(o, "stderrTruncated", x->err_truncated)) < 0 ||
            (r = json_add_uint(o, "durationUSec", x->duration_usec)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
