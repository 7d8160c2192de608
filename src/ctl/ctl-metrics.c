/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl verbs of the metrics module: host, metrics, watch. */
#include <inttypes.h>
#include <stdio.h>

#include "ctl/ctl.h"
#include "basic/json-util.h"
#include "basic/parse.h"

static const char *fmt_bytes(char *buf, size_t l, json_object *o, const char *key) {
        return format_size(buf, l, (uint64_t) json_get_int(o, key, 0));
}

static void print_host_sample(json_object *s, bool header) {
        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], c[FORMAT_SIZE_MAX], t[64];
        json_object *huge = ctl_obj_get(s, "hugePages"), *nodes = ctl_obj_get(s, "nodes");

        if (!header) {
                printf("%s  avail %s  committed %s / limit %s  ratio %.3f\n",
                       ctl_format_realtime(t, sizeof(t), (uint64_t) json_get_int(s, "realtimeUSec", 0)),
                       fmt_bytes(a, sizeof(a), s, "memAvailableBytes"), fmt_bytes(b, sizeof(b), s, "committedASBytes"),
                       fmt_bytes(c, sizeof(c), s, "commitLimitBytes"),
                       json_object_get_double(ctl_obj_get(s, "overcommitRatio")));
                return;
        }

        printf("       Sampled: %s\n", ctl_format_realtime(t, sizeof(t), (uint64_t) json_get_int(s, "realtimeUSec", 0)));
        printf("      MemTotal: %s\n", fmt_bytes(a, sizeof(a), s, "memTotalBytes"));
        printf("       MemFree: %s\n", fmt_bytes(a, sizeof(a), s, "memFreeBytes"));
        printf("  MemAvailable: %s\n", fmt_bytes(a, sizeof(a), s, "memAvailableBytes"));
        printf("  Committed_AS: %s\n", fmt_bytes(a, sizeof(a), s, "committedASBytes"));
        printf("   CommitLimit: %s\n", fmt_bytes(a, sizeof(a), s, "commitLimitBytes"));
        printf("    Overcommit: %.3f (Committed_AS / CommitLimit)\n",
               json_object_get_double(ctl_obj_get(s, "overcommitRatio")));
        printf("          Swap: %s free of %s\n", fmt_bytes(a, sizeof(a), s, "swapFreeBytes"),
               fmt_bytes(b, sizeof(b), s, "swapTotalBytes"));
        if (huge)
                printf("    Huge pages: %" PRIi64 " total, %" PRIi64 " free, %" PRIi64 " reserved, %" PRIi64
                       " surplus, %s each\n",
                       json_get_int(huge, "total", 0), json_get_int(huge, "free", 0), json_get_int(huge, "reserved", 0),
                       json_get_int(huge, "surplus", 0), fmt_bytes(a, sizeof(a), huge, "pageSizeBytes"));
        for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
                json_object *n = json_object_array_get_idx(nodes, i);

                printf("%s node %" PRIi64 ": %s total, %s free, %s used, huge pages %" PRIi64 "/%" PRIi64 " free\n",
                       i == 0 ? "         Nodes:" : "               ", json_get_int(n, "node", 0),
                       fmt_bytes(a, sizeof(a), n, "memTotalBytes"), fmt_bytes(b, sizeof(b), n, "memFreeBytes"),
                       fmt_bytes(c, sizeof(c), n, "memUsedBytes"), json_get_int(n, "hugePagesFree", 0),
                       json_get_int(n, "hugePagesTotal", 0));
        }
}

/* GetHostInfo: KVM and each confidential guest kind, "no" with the reason. */
static void print_host_info(json_object *info) {
        json_object *list = ctl_obj_get(info, "confidential");

        printf("           KVM: %s\n", json_get_bool(info, "kvm", false) ? "yes" : strna(json_get_string(info, "kvmReason")));
        printf("  Confidential: (QEMU %s)\n", strna(json_get_string(info, "qemuBinary")));
        for (size_t i = 0; list && i < json_object_array_length(list); i++) {
                json_object *c = json_object_array_get_idx(list, i);
                char kind[16];
                size_t j;

                /* "sev-snp" → "SEV-SNP"; from the daemon, but never printed raw */
                snprintf(kind, sizeof(kind), "%s", strna(json_get_string(c, "kind")));
                for (j = 0; kind[j]; j++)
                        kind[j] = (kind[j] >= 'a' && kind[j] <= 'z') ? (char) (kind[j] - 'a' + 'A')
                                  : (kind[j] >= 'A' && kind[j] <= 'Z') || kind[j] == '-' ? kind[j] : '?';
                printf("%14s: host %s, QEMU %s, usable %s%s%s\n", kind,
                       json_get_bool(c, "host", false) ? "yes" : "no",
                       ctl_obj_get(c, "qemu") ? (json_get_bool(c, "qemu", false) ? "yes" : "no") : "unknown",
                       json_get_bool(c, "usable", false) ? "yes" : "no", ctl_obj_get(c, "reason") ? ": " : "",
                       strempty(json_get_string(c, "reason")));
        }
}

static int verb_host(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL, *info_reply = NULL;
        json_object *p, *info;
        int r;

        r = ctl_call("io.memvisor.Manager.GetHostMemory", NULL, &reply);
        if (r != EXIT_OK)
                return r;
        r = ctl_call("io.memvisor.Manager.GetHostInfo", NULL, &info_reply);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        info = ctl_reply_parameters(info_reply);
        if (arg_json) {
                /* GetHostMemory's reply, with GetHostInfo's as "info" */
                if (p && info && json_object_object_add(p, "info", json_object_get(info)) < 0)
                        return EXIT_CONNECTION;
                ctl_print_json(p);
                return EXIT_OK;
        }
        print_host_sample(ctl_obj_get(p, "sample"), true);
        print_host_info(info);
        return EXIT_OK;
}

static int verb_metrics(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *metrics;
        int r;

        r = ctl_call_show("io.memvisor.Manager.GetMetrics", NULL, &reply, &p);
        if (r != EXIT_OK || !p)
                return r;
        metrics = ctl_obj_get(p, "metrics");
        for (size_t i = 0; metrics && i < json_object_array_length(metrics); i++) {
                json_object *f = json_object_array_get_idx(metrics, i), *samples = ctl_obj_get(f, "samples");
                const char *name = strna(json_get_string(f, "name"));

                for (size_t j = 0; samples && j < json_object_array_length(samples); j++) {
                        json_object *s = json_object_array_get_idx(samples, j), *labels = ctl_obj_get(s, "labels"),
                                    *v = ctl_obj_get(s, "value");
                        bool first = true;

                        printf("%s", name);
                        if (labels) {
                                json_object_object_foreach(labels, k, lv) {
                                        printf("%s%s=\"%s\"", first ? "{" : ",", k, json_object_get_string(lv));
                                        first = false;
                                }
                        }
                        printf("%s %s\n", first ? "" : "}", v ? json_object_get_string(v) : "NaN");
                }
        }
        return EXIT_OK;
}

static uint64_t arg_interval = 0;

enum { ARG_INTERVAL = 0x100 };

static const struct option watch_options[] = {
        { "interval", required_argument, NULL, ARG_INTERVAL },
        {}
};

static int watch_option(int c, const char *arg) {
        if (parse_sec(arg, &arg_interval) < 0 || arg_interval < 100 * USEC_PER_MSEC ||
            arg_interval > 3600 * USEC_PER_SEC) {
                fprintf(stderr, "--interval: expected a time span between 100ms and 1h, got '%s'.\n", arg);
                return EXIT_USAGE;
        }
        return 0;
}

static int verb_watch(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *params = json_object_new_object();
        int r;

        if (!params || (arg_interval > 0 && json_add_uint(params, "intervalUSec", arg_interval) < 0))
                return EXIT_CONNECTION;
        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = varlink_client_send(c, "io.memvisor.Manager.WatchMetrics", params, VARLINK_CALL_MORE);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call WatchMetrics");
        for (;;) {
                _cleanup_json_ json_object *reply = NULL;
                json_object *p;

                r = varlink_client_receive(c, &reply);
                if (r < 0)
                        return ctl_connection_failed(r, "Failed to read from the daemon");
                if (json_get_string(reply, "error"))
                        return ctl_report_error(reply);
                p = ctl_reply_parameters(reply);
                if (arg_json)
                        ctl_print_json(p);
                else
                        print_host_sample(ctl_obj_get(p, "sample"), false);
                fflush(stdout);
                if (!json_get_bool(reply, "continues", false))
                        return EXIT_OK;
        }
}

const CtlVerb ctl_metrics_verbs[] = {
        { "host", "", "Show host memory now (MemTotal, MemAvailable, Committed_AS, CommitLimit, nodes), KVM and the "
          "confidential guests this host supports", 0, 0,
          verb_host },
        { "metrics", "", "Show every metric (Prometheus names and labels)", 0, 0, verb_metrics },
        { "watch", "", "Stream host memory samples until interrupted", 0, 0, verb_watch, watch_options, watch_option,
          "  --interval=TIME  Time between samples (100ms…1h; default: the daemon's sampling interval)" },
        {}
};
