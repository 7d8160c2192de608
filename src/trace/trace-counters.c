/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "basic/fileio.h"
#include "basic/parse.h"
#include "trace/trace-counters.h"

/* A filter is a short expression; the kernel takes at most a page. */
#define TRACE_FILTER_MAX 4096U

struct TraceCounters {
        TraceTarget target;
        size_t n_specs, n_targets;
        int *target_ids;        /* tids, or CPU numbers */
        int *fds;               /* [spec * n_targets + target]; -EBADF where the spec is unavailable */
        uint64_t *ids;          /* [spec * n_targets + target]: the kernel's id of each event (grouped sets) */
        char **reasons;         /* [spec]: NULL when available */
        bool grouped;           /* the specs of each target are one perf group, read in one go */
        size_t leader;          /* grouped: the spec whose event leads each target's group */
        char *note;
};

static int counters_set_reason(TraceCounters *c, size_t spec, const char *fmt, ...) _printf_(3, 4);
static int counters_set_reason(TraceCounters *c, size_t spec, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        for (size_t t = 0; c->fds && t < c->n_targets; t++)
                c->fds[spec * c->n_targets + t] = safe_close(c->fds[spec * c->n_targets + t]);
        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        free(c->reasons[spec]);
        c->reasons[spec] = s;
        return 0;
}

/* "0-3,6,8-9" (sysfs cpu list) → CPU numbers, at most max of them. */
static int parse_cpu_list(const char *s, int **ret, size_t *ret_n, size_t max) {
        _cleanup_free_ int *cpus = NULL;
        size_t n = 0;

        while (*s && *s != '\n') {
                char *end;
                unsigned long a, b;

                errno = 0;
                a = strtoul(s, &end, 10);
                if (errno != 0 || end == s || a > INT32_MAX)
                        return -EINVAL;
                b = a;
                s = end;
                if (*s == '-') {
                        s++;
                        b = strtoul(s, &end, 10);
                        if (errno != 0 || end == s || b < a || b > INT32_MAX)
                                return -EINVAL;
                        s = end;
                }
                for (unsigned long i = a; i <= b; i++) {
                        int *t;

                        if (n >= max)
                                return -E2BIG;
                        t = realloc(cpus, (n + 1) * sizeof(int));
                        if (!t)
                                return -ENOMEM;
                        cpus = t;
                        cpus[n++] = (int) i;
                }
                if (*s == ',')
                        s++;
                else if (*s && *s != '\n')
                        return -EINVAL;
        }
        if (n == 0)
                return -EINVAL;
        *ret = TAKE_PTR(cpus);
        *ret_n = n;
        return 0;
}

static int perf_paranoid(void) {
        _cleanup_free_ char *text = NULL;
        int v;

        if (read_full_file("/proc/sys/kernel/perf_event_paranoid", 64, &text, NULL) < 0)
                return INT32_MIN;
        text[strcspn(text, "\n")] = 0;
        if (parse_int(text, &v) < 0)
                return INT32_MIN;
        return v;
}

static int refused(TraceCounters *c, size_t spec, const TraceCounterSpec *s, size_t t, int err) {
        const char *who = c->target == TRACE_TARGET_HOST ? "CPU" : "thread";
        int id = c->target_ids[t];

        switch (err) {
        case EACCES:
        case EPERM: {
                int p = perf_paranoid();
                if (p == INT32_MIN)
                        return counters_set_reason(c, spec, "perf_event_open: %s (needs CAP_PERFMON)", strerror(err));
                return counters_set_reason(c, spec, "perf_event_open: %s (needs CAP_PERFMON; "
                                           "kernel.perf_event_paranoid=%i)", strerror(err), p);
        }
        case ESRCH:
                return counters_set_reason(c, spec, "thread %i is gone (perf_event_open: %s)", id, strerror(err));
        case ENODEV:
                return counters_set_reason(c, spec, "CPU %i is not online (perf_event_open: %s)", id,
                                           strerror(err));
        case EMFILE:
        case ENFILE:
                return counters_set_reason(c, spec, "perf_event_open: %s (raise the limit of open files)",
                                           strerror(err));
        case ENOENT:
        case EOPNOTSUPP:
                return counters_set_reason(c, spec, "perf_event_open(%s:%s): %s (tracepoint events not supported "
                                           "by this kernel?)", s->system, s->event, strerror(err));
        default:
                return counters_set_reason(c, spec, "perf_event_open(%s:%s) for %s %i: %s", s->system, s->event,
                                           who, id, strerror(err));
        }
}

/* A member of a target's group: the leader counts there (opened before the members). */
static bool has_leader(const TraceCounters *c, size_t spec) {
        return c->grouped && spec != c->leader && !c->reasons[c->leader];
}

static int open_spec(TraceCounters *c, const char *tracing_dir, size_t spec, const TraceCounterSpec *s) {
        bool member = has_leader(c, spec);
        uint64_t id;
        int r;

        if (!tracing_dir)
                return counters_set_reason(c, spec, "tracefs is not mounted at /sys/kernel/tracing");
        if (!trace_name_is_valid(s->system) || !trace_name_is_valid(s->event))
                return counters_set_reason(c, spec, "not a tracepoint name: %s:%s", strna(s->system),
                                           strna(s->event));
        if (s->filter && (strlen(s->filter) >= TRACE_FILTER_MAX || strchr(s->filter, '\n')))
                return counters_set_reason(c, spec, "the filter of %s:%s is longer than %u bytes or has a newline",
                                           s->system, s->event, TRACE_FILTER_MAX - 1);
        r = trace_event_id(tracing_dir, s->system, s->event, &id);
        if (r == -ENOENT)
                return counters_set_reason(c, spec, "the kernel has no tracepoint %s:%s", s->system, s->event);
        if (r < 0)
                return counters_set_reason(c, spec, "cannot read the id of %s:%s: %s", s->system, s->event,
                                           strerror(-r));

        for (size_t t = 0; t < c->n_targets; t++) {
                /* A member counts whenever its leader does: enabling the leader starts the whole group. */
                struct perf_event_attr attr = {
                        .type = PERF_TYPE_TRACEPOINT,
                        .size = sizeof(struct perf_event_attr),
                        .config = id,
                        .disabled = !member,
                        .read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING |
                                       (c->grouped ? PERF_FORMAT_GROUP | PERF_FORMAT_ID : 0),
                };
                pid_t pid = c->target == TRACE_TARGET_HOST ? -1 : c->target_ids[t];
                int cpu = c->target == TRACE_TARGET_HOST ? c->target_ids[t] : -1;
                int group_fd = member ? c->fds[c->leader * c->n_targets + t] : -1;
                long fd;

                fd = syscall(SYS_perf_event_open, &attr, pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC);
                if (fd < 0)
                        return refused(c, spec, s, t, errno);
                c->fds[spec * c->n_targets + t] = (int) fd;
                if (c->grouped && ioctl((int) fd, PERF_EVENT_IOC_ID, &c->ids[spec * c->n_targets + t]) < 0)
                        return counters_set_reason(c, spec, "cannot read the id of a perf event of %s:%s: %s",
                                                   s->system, s->event, strerror(errno));
                if (s->filter && ioctl((int) fd, PERF_EVENT_IOC_SET_FILTER, s->filter) < 0)
                        return counters_set_reason(c, spec, "the kernel refused the filter \"%s\" of %s:%s: %s",
                                                   s->filter, s->system, s->event, strerror(errno));
        }
        return 0;
}

static int counters_new(size_t n_specs, TraceTarget target, const pid_t *tids, size_t n_tids, TraceCounters **ret,
                        char **ret_why) {
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        _cleanup_free_ char *why = NULL;
        int r;

        c = calloc(1, sizeof(TraceCounters));
        if (!c)
                return -ENOMEM;
        c->target = target;
        c->n_specs = n_specs;
        c->reasons = calloc(MAX(n_specs, 1U), sizeof(char *));
        if (!c->reasons)
                return -ENOMEM;

        if (target == TRACE_TARGET_HOST) {
                _cleanup_free_ char *online = NULL;

                r = read_full_file("/sys/devices/system/cpu/online", 64U * 1024U, &online, NULL);
                if (r >= 0)
                        r = parse_cpu_list(online, &c->target_ids, &c->n_targets, TRACE_COUNTERS_FDS_MAX);
                if (r == -ENOMEM)
                        return r;
                if (r == -E2BIG)
                        r = asprintf(&why, "more than %u online CPUs exceed the limit of %u perf events",
                                     TRACE_COUNTERS_FDS_MAX, TRACE_COUNTERS_FDS_MAX);
                else if (r < 0)
                        r = asprintf(&why, "the online CPUs cannot be read from /sys/devices/system/cpu/online: %s",
                                     strerror(-r));
        } else {
                c->target_ids = calloc(MAX(n_tids, 1U), sizeof(int));
                if (!c->target_ids)
                        return -ENOMEM;
                for (size_t i = 0; i < n_tids; i++)
                        c->target_ids[i] = tids[i];
                c->n_targets = n_tids;
                r = n_tids == 0 ? asprintf(&why, "no threads to count on") : 0;
        }
        if (r < 0)
                return -ENOMEM;
        if (!why && c->n_targets > 0 && n_specs > TRACE_COUNTERS_FDS_MAX / c->n_targets &&
            asprintf(&why, "%zu counters × %zu %s exceed the limit of %u perf events", n_specs, c->n_targets,
                     target == TRACE_TARGET_HOST ? "CPUs" : "threads", TRACE_COUNTERS_FDS_MAX) < 0)
                return -ENOMEM;
        if (!why) {
                c->fds = calloc(MAX(n_specs * c->n_targets, 1U), sizeof(int));
                c->ids = calloc(MAX(n_specs * c->n_targets, 1U), sizeof(uint64_t));
                if (!c->fds || !c->ids)
                        return -ENOMEM;
                for (size_t i = 0; i < n_specs * c->n_targets; i++)
                        c->fds[i] = -EBADF;
        }
        *ret = TAKE_PTR(c);
        *ret_why = TAKE_PTR(why);
        return 0;
}

/* leader: the spec leading each target's group, or SIZE_MAX for separate events. */
static int counters_open(const char *tracing_dir, const TraceCounterSpec *specs, size_t n_specs, TraceTarget target,
                         const pid_t *tids, size_t n_tids, size_t leader, TraceCounters **ret) {
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        _cleanup_free_ char *why = NULL;
        int r;

        if ((n_specs > 0 && !specs) || (target == TRACE_TARGET_THREADS && n_tids > 0 && !tids) || !ret ||
            (target != TRACE_TARGET_THREADS && target != TRACE_TARGET_HOST) ||
            (leader != SIZE_MAX && leader >= n_specs))
                return -EINVAL;
        for (size_t i = 0; i < n_specs; i++)
                if (!specs[i].system || !specs[i].event)
                        return -EINVAL;

        r = counters_new(n_specs, target, tids, n_tids, &c, &why);
        if (r < 0)
                return r;
        c->grouped = leader != SIZE_MAX;
        c->leader = c->grouped ? leader : 0;

        /* The leader first: the members join its group. */
        for (size_t k = 0; k < n_specs; k++) {
                size_t i = !c->grouped ? k : k == 0 ? leader : k <= leader ? k - 1 : k;

                r = why ? counters_set_reason(c, i, "%s", why) : open_spec(c, tracing_dir, i, &specs[i]);
                if (r < 0)
                        return r;
        }

        /* Start them all together, once every filter is in place (an event enabled before its filter would
         * count what the filter rejects). A group member starts with its leader. */
        for (size_t i = 0; i < n_specs; i++) {
                if (c->reasons[i] || has_leader(c, i))
                        continue;
                for (size_t t = 0; t < c->n_targets; t++)
                        if (ioctl(c->fds[i * c->n_targets + t], PERF_EVENT_IOC_ENABLE, 0) < 0) {
                                r = counters_set_reason(c, i, "cannot enable %s:%s: %s", specs[i].system,
                                                        specs[i].event, strerror(errno));
                                if (r < 0)
                                        return r;
                                if (c->grouped && i == c->leader)
                                        /* its members never start */
                                        for (size_t m = 0; m < n_specs; m++)
                                                if (m != i && !c->reasons[m] &&
                                                    counters_set_reason(c, m, "cannot enable the group of %s:%s",
                                                                        specs[i].system, specs[i].event) < 0)
                                                        return -ENOMEM;
                                break;
                        }
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int trace_counters_open(const char *tracing_dir, const TraceCounterSpec *specs, size_t n_specs, TraceTarget target,
                        const pid_t *tids, size_t n_tids, TraceCounters **ret) {
        return counters_open(tracing_dir, specs, n_specs, target, tids, n_tids, SIZE_MAX, ret);
}

int trace_counters_open_group(const char *tracing_dir, const TraceCounterSpec *specs, size_t n_specs,
                              TraceTarget target, const pid_t *tids, size_t n_tids, size_t leader,
                              TraceCounters **ret) {
        return counters_open(tracing_dir, specs, n_specs, target, tids, n_tids, leader, ret);
}

TraceCounters *trace_counters_free(TraceCounters *c) {
        if (!c)
                return NULL;
        if (c->fds)
                for (size_t i = 0; i < c->n_specs * c->n_targets; i++)
                        safe_close(c->fds[i]);
        free(c->fds);
        free(c->ids);
        if (c->reasons)
                for (size_t i = 0; i < c->n_specs; i++)
                        free(c->reasons[i]);
        free(c->reasons);
        free(c->target_ids);
        free(c->note);
        return mfree(c);
}

size_t trace_counters_n_specs(const TraceCounters *c) {
        return c->n_specs;
}

size_t trace_counters_n_targets(const TraceCounters *c) {
        return c->n_targets;
}

int trace_counters_target_id(const TraceCounters *c, size_t target) {
        if (target >= c->n_targets)
                return -ERANGE;
        return c->target_ids[target];
}

const char *trace_counters_unavailable(const TraceCounters *c, size_t spec) {
        if (spec >= c->n_specs)
                return "no such counter";
        return c->reasons[spec];
}

const char *trace_counters_note(const TraceCounters *c) {
        return c->note;
}

/* Reads the event of spec on target t into values[spec]; for a grouped set the whole group, every member's count
 * into values[its spec] (the kernel reads a group in one go: its counts are of the same instant). Returns 0, 1
 * when multiplexed, or a negative errno. */
static int read_event(TraceCounters *c, size_t spec, size_t t, uint64_t *values) {
        int fd = c->fds[spec * c->n_targets + t];

        if (!c->grouped) {
                uint64_t v[3];  /* value, time enabled, time running */
                ssize_t n = read(fd, v, sizeof(v));

                if (n < 0)
                        return -errno;
                if (n != sizeof(v))
                        return -EIO;
                values[spec] = v[0];
                return v[2] < v[1];
        }

        /* nr, time enabled, time running, then nr × (value, id) */
        _cleanup_free_ uint64_t *buf = calloc(3 + 2 * c->n_specs, sizeof(uint64_t));
        bool found = false;
        ssize_t n;

        if (!buf)
                return -ENOMEM;
        n = read(fd, buf, (3 + 2 * c->n_specs) * sizeof(uint64_t));
        if (n < 0)
                return -errno;
        if (n < (ssize_t) (3 * sizeof(uint64_t)) || buf[0] > c->n_specs ||
            (size_t) n != (3 + 2 * buf[0]) * sizeof(uint64_t))
                return -EIO;
        for (size_t i = 0; i < buf[0]; i++)
                for (size_t j = 0; j < c->n_specs; j++)
                        if (!c->reasons[j] && c->ids[j * c->n_targets + t] == buf[4 + 2 * i]) {
                                values[j] = buf[3 + 2 * i];
                                found = found || j == spec;
                                break;
                        }
        if (!found)
                return -EIO;
        return buf[2] < buf[1];
}

int trace_counters_read(TraceCounters *c, size_t spec, uint64_t *ret_per_target, uint64_t *ret_total) {
        _cleanup_free_ uint64_t *values = NULL;
        uint64_t total = 0;
        bool multiplexed = false;
        int r;

        if (!c || !ret_total)
                return -EINVAL;
        if (spec >= c->n_specs)
                return -ERANGE;
        if (c->reasons[spec])
                return -EOPNOTSUPP;
        values = calloc(c->n_specs, sizeof(uint64_t));
        if (!values)
                return -ENOMEM;

        for (size_t t = 0; t < c->n_targets; t++) {
                r = read_event(c, spec, t, values);
                if (r < 0)
                        return r;
                multiplexed = multiplexed || r > 0;
                if (ret_per_target)
                        ret_per_target[t] = values[spec];
                total += values[spec];
        }
        *ret_total = total;
        return multiplexed;
}

int trace_counters_read_all(TraceCounters *c, uint64_t *ret) {
        _cleanup_free_ uint64_t *values = NULL;
        bool multiplexed = false;
        int r;

        if (!c || !ret)
                return -EINVAL;
        values = calloc(MAX(c->n_specs, 1U), sizeof(uint64_t));
        if (!values)
                return -ENOMEM;
        for (size_t t = 0; t < c->n_targets; t++) {
                memset(values, 0, c->n_specs * sizeof(uint64_t));
                for (size_t spec = 0; spec < c->n_specs; spec++) {
                        if (c->reasons[spec] || has_leader(c, spec))
                                continue;       /* unavailable, or read with its leader's group */
                        r = read_event(c, spec, t, values);
                        if (r < 0)
                                return r;
                        multiplexed = multiplexed || r > 0;
                }
                for (size_t spec = 0; spec < c->n_specs; spec++)
                        ret[spec * c->n_targets + t] = values[spec];
        }
        return multiplexed;
}

int trace_kvm_exits_open(const char *tracing_dir, TraceKvmIsa isa, const pid_t *vcpu_tids, size_t n_vcpu_tids,
                         TraceCounters **ret, TraceSymbol **ret_reasons, size_t *ret_n_reasons) {
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        _cleanup_free_ TraceCounterSpec *specs = NULL;
        _cleanup_free_ char *why = NULL;
        TraceSymbol *reasons = NULL;
        char **filters = NULL;
        size_t n = 0;
        int r;

        if (!ret || !ret_reasons || !ret_n_reasons)
                return -EINVAL;

        if (!tracing_dir)
                why = strdup("tracefs is not mounted at /sys/kernel/tracing");
        else {
                r = trace_kvm_exit_reasons(tracing_dir, isa, &reasons, &n, &why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 && !why)
                        (void) asprintf(&why, "cannot read the exit reasons of kvm:kvm_exit: %s", strerror(-r));
                if (r < 0)
                        n = 0;
        }
        if (!reasons && !why)
                return -ENOMEM;

        specs = calloc(n + 1, sizeof(TraceCounterSpec));
        filters = calloc(n + 1, sizeof(char *));
        if (!specs || !filters) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                if (asprintf(&filters[i], "exit_reason == %" PRIu64, reasons[i].value) < 0) {
                        filters[i] = NULL;
                        r = -ENOMEM;
                        goto finish;
                }
                specs[i] = (TraceCounterSpec) { "kvm", "kvm_exit", filters[i] };
        }
        specs[n] = (TraceCounterSpec) { "kvm", "kvm_exit", NULL };

        r = trace_counters_open_group(tracing_dir, specs, n + 1, TRACE_TARGET_THREADS, vcpu_tids, n_vcpu_tids, n, &c);
        if (r < 0)
                goto finish;
        c->note = TAKE_PTR(why);
        *ret = TAKE_PTR(c);
        *ret_reasons = TAKE_PTR(reasons);
        *ret_n_reasons = n;
        r = 0;
finish:
        for (size_t i = 0; filters && i < n; i++)
                free(filters[i]);
        free(filters);
        trace_symbols_free(reasons, n);
        return r;
}
