/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsers (numa_maps, /proc/PID/status, host meminfo + node meminfo trees), the metric registry and text
 * renderer, and the exporter's HTTP request parser. Fixtures live in tests/data/metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "metrics/host-sample.h"
#include "basic/log.h"
#include "exporter/http-request.h"
#include "metrics/metric-families.h"
#include "metrics/metric-registry.h"
#include "metrics/numa-maps.h"
#include "metrics/proc-status.h"

static const char *data_dir;

static char *data(const char *name) {
        static char buf[4096];
        snprintf(buf, sizeof(buf), "%s/%s", data_dir, name);
        return buf;
}

static void test_numa_maps(void **state) {
        NumaMaps m;

        assert_int_equal(numa_maps_read(data("numa_maps"), &m), 0);
        assert_int_equal(m.n_mappings, 5);
        assert_int_equal(m.n_nodes, 2);
        assert_int_equal(numa_maps_node_bytes(&m, 0), 1228800 + 4194304 + 40960);
        assert_int_equal(numa_maps_node_bytes(&m, 1), UINT64_C(1069547520) + 8388608);
        assert_int_equal(numa_maps_node_bytes(&m, 7), 0);
        assert_int_equal(m.nodes[1].pages, 261120 + 4);
        assert_int_equal(m.kind_bytes[NUMA_MAPS_ANON], UINT64_C(4194304) + 1069547520 + 40960);
        assert_int_equal(m.kind_bytes[NUMA_MAPS_FILE], 1228800);
        assert_int_equal(m.kind_bytes[NUMA_MAPS_HUGE], 8388608);
        assert_int_equal(m.nodes[1].kind_bytes[NUMA_MAPS_HUGE], 8388608);
        assert_int_equal(m.total_bytes, numa_maps_node_bytes(&m, 0) + numa_maps_node_bytes(&m, 1));
        numa_maps_done(&m);

        assert_int_equal(numa_maps_read(data("numa_maps.garbage"), &m), -EINVAL);
        assert_int_equal(numa_maps_read(data("does-not-exist"), &m), -ENOENT);
        assert_int_equal(numa_maps_parse("not an address\n", &m), -EINVAL);
        assert_int_equal(numa_maps_parse("7f00 default N0=1 kernelpagesize_kB=0\n", &m), -EINVAL);
        assert_int_equal(numa_maps_parse("7f00 default N99999=1\n", &m), -ERANGE);
        assert_int_equal(numa_maps_parse("7f00 default N0=99999999999999999999999\n", &m), -ERANGE);
        assert_int_equal(numa_maps_parse("7f00 default N0=1 Weird=2\n", &m), -EINVAL);
        assert_int_equal(numa_maps_parse("", &m), 0);
        assert_int_equal(m.n_nodes, 0);
        numa_maps_done(&m);
}

static void test_proc_status(void **state) {
        ProcStatus s;

        assert_int_equal(proc_status_read(data("status"), &s), 0);
        assert_int_equal(s.vm_rss, UINT64_C(1048576) * 1024);
        assert_int_equal(s.vm_hwm, UINT64_C(1050000) * 1024);
        assert_int_equal(s.rss_file, UINT64_C(48576) * 1024);
        assert_int_equal(s.threads, 7);
        assert_int_equal(proc_status_read(data("status.garbage"), &s), -EINVAL);
        assert_int_equal(proc_status_read(data("nope"), &s), -ENOENT);
        assert_int_equal(proc_status_parse("Name:\tkthreadd\n", &s), -ENODATA);
}

static void test_host_sample(void **state) {
        _cleanup_free_ char *proc = strdup(data("root/proc")), *sys = strdup(data("root/sys"));
        HostSample h;

        assert_int_equal(host_sample_read(proc, sys, &h), 0);
        assert_int_equal(h.host.committed_as, UINT64_C(20000000) * 1024);
        assert_int_equal(h.host.commit_limit, UINT64_C(8192000) * 1024);
        assert_int_equal(h.hugepages_total, 16);
        assert_int_equal(h.hugepages_rsvd, 1);
        assert_int_equal(h.hugepage_size, 2048 * 1024);
        assert_int_equal(h.n_nodes, 2);
        assert_int_equal(h.nodes[0].node, 0);
        assert_int_equal(h.nodes[1].node, 1);
        assert_int_equal(h.nodes[1].mem_free, UINT64_C(4096000) * 1024);
        assert_int_equal(h.nodes[1].hugepages_free, 4);
        host_sample_done(&h);

        /* No node directory: no NUMA information, still a sample. */
        assert_int_equal(host_sample_read(proc, data("no-sys"), &h), 0);
        assert_int_equal(h.n_nodes, 0);
        host_sample_done(&h);

        assert_int_equal(host_sample_read(data("no-proc"), sys, &h), -ENOENT);
        assert_int_equal(host_sample_read(data("bad/proc"), sys, &h), -EINVAL);
}

static const MetricFamily fam_a = { "memvisor_test_bytes", METRIC_GAUGE, "bytes", "A \\ help\nwith newline",
                                    { "vm", "node", NULL } };
static const MetricFamily fam_b = { "memvisor_a_total", METRIC_COUNTER, "", "Counts.", { NULL } };
static const MetricFamily fam_bad = { "memvisor-bad", METRIC_GAUGE, "", "x", { NULL } };

static void test_render(void **state) {
        _cleanup_(metric_set_freep) MetricSet *s = metric_set_new();
        ByteBuffer out = {};
        char buf[32];
        double v;

        assert_non_null(s);
        assert_int_equal(metric_set_add(s, &fam_a, STRV("b\"q\\\n", "10"), 1), 0);
        assert_int_equal(metric_set_add(s, &fam_a, STRV("b\"q\\\n", "2"), 2.5), 0);
        assert_int_equal(metric_set_add(s, &fam_a, STRV("a", "0"), 3e20), 0);
        assert_int_equal(metric_set_add(s, &fam_b, NULL, 42), 0);
        assert_int_equal(metric_set_add(s, &fam_a, STRV("only-one"), 1), -EINVAL);
        assert_int_equal(metric_set_add(s, &fam_bad, NULL, 1), -EINVAL);
        metric_set_seal(s);
        assert_int_equal(metric_set_add(s, &fam_b, NULL, 1), -EROFS);
        assert_int_equal(metric_set_get(s, "memvisor_test_bytes", STRV("a", "0"), &v), 0);
        assert_true(v == 3e20);

        assert_int_equal(metric_set_render_text(s, &out, SIZE_MAX), 0);
        assert_int_equal(byte_buffer_reserve(&out, 1, SIZE_MAX) != NULL, 1);
        out.data[out.end] = 0;
        assert_string_equal(byte_buffer_head(&out),
                            "# HELP memvisor_a_total Counts.\n"
                            "# TYPE memvisor_a_total counter\n"
                            "memvisor_a_total 42\n"
                            "# HELP memvisor_test_bytes A \\\\ help\\nwith newline\n"
                            "# TYPE memvisor_test_bytes gauge\n"
                            "memvisor_test_bytes{vm=\"a\",node=\"0\"} 3e+20\n"
                            "memvisor_test_bytes{vm=\"b\\\"q\\\\\\n\",node=\"2\"} 2.5\n"
                            "memvisor_test_bytes{vm=\"b\\\"q\\\\\\n\",node=\"10\"} 1\n");
        byte_buffer_done(&out);

        /* A limit on the output. */
        assert_int_equal(metric_set_render_text(s, &out, 10), -ENOBUFS);
        byte_buffer_done(&out);

        assert_string_equal(metric_format_value(buf, 0.1), "0.1");
        assert_string_equal(metric_format_value(buf, 1.0 / 0.0), "+Inf");
        assert_string_equal(metric_format_value(buf, -1.0 / 0.0), "-Inf");
        assert_string_equal(metric_format_value(buf, 0.0 / 0.0), "NaN");
        assert_string_equal(metric_format_value(buf, 18446744073709551615.0), "1.8446744073709552e+19");
}

static void test_families(void **state) {
        _cleanup_free_ char *name = NULL;
        MetricFamily f;
        double scale;

        for (size_t i = 0; i < _METRIC_ID_MAX; i++) {
                const MetricFamily *m = &metric_families[i];
                size_t l = strlen(m->name);

                assert_non_null(m->help);
                assert_true(startswith(m->name, "memvisor_"));
                /* Counters end in _total, nothing else does. */
                assert_int_equal(m->type == METRIC_COUNTER, l > 6 && streq(m->name + l - 6, "_total"));
                if (!metric_id_is_pattern(i))
                        assert_true(metric_name_is_valid(m->name));
                /* The base unit is the suffix (before _total), and only a family with that unit has it. */
                for (const char *const *u = STRV("bytes", "seconds"); *u; u++) {
                        _cleanup_free_ char *suffix = NULL;
                        size_t n = l - (m->type == METRIC_COUNTER ? 6 : 0);

                        assert_true(asprintf(&suffix, "_%s", *u) > 0);
                        assert_int_equal(streq(m->unit, *u),
                                         n > strlen(suffix) &&
                                         strncmp(m->name + n - strlen(suffix), suffix, strlen(suffix)) == 0);
                }
                /* Labels are valid names, unique within the family, and fit. */
                for (size_t k = 0; k < METRIC_MAX_LABELS && m->labels[k]; k++) {
                        assert_true(metric_name_is_valid(m->labels[k]));
                        for (size_t j = 0; j < k; j++)
                                assert_false(streq(m->labels[j], m->labels[k]));
                }
                /* Names are unique: a family is added once. */
                for (size_t j = 0; j < i; j++)
                        assert_false(streq(metric_families[j].name, m->name));
        }
        assert_int_equal(metric_kvm_family(true, "halt_wait_ns", true, &f, &name, &scale), 0);
        assert_string_equal(name, "memvisor_guest_kvm_vcpu_halt_wait_seconds_total");
        assert_true(scale == 1e-9);
        assert_string_equal(f.labels[1], "vcpu");
        name = mfree(name);
        assert_int_equal(metric_kvm_family(false, "pages-4k", false, &f, &name, &scale), 0);
        assert_string_equal(name, "memvisor_guest_kvm_pages_4k");
}

static void expect_http(const char *req, int expected) {
        HttpRequest r;
        int k = http_request_parse(req, strlen(req), &r);

        if (k != expected)
                fail_msg("%s → %d, expected %d", req, k, expected);
}

static void test_http(void **state) {
        _cleanup_free_ char *longline = NULL, *manyheaders = NULL, *bigheader = NULL;
        const char *ok = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        HttpRequest r;

        assert_int_equal(http_request_parse(ok, strlen(ok), &r), (int) strlen(ok));
        assert_int_equal(r.method, HTTP_GET);
        assert_string_equal(r.path, "/metrics");
        assert_true(r.keep_alive);
        /* Incomplete heads ask for more, at every length. */
        for (size_t i = 0; i < strlen(ok); i++)
                assert_int_equal(http_request_parse(ok, i, &r), 0);

        expect_http("HEAD / HTTP/1.0\r\n\r\n", 19);
        assert_int_equal(http_request_parse("HEAD / HTTP/1.0\r\n\r\n", 19, &r), 19);
        assert_false(r.keep_alive);
        expect_http("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    (int) strlen("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
        expect_http("POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                    (int) strlen("POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"));

        /* Absolute-form (RFC 9112 3.2.2): scheme http, any host, then the path as in origin-form. The Host
         * field is still required once in HTTP/1.1 (3.2) but its value is ignored for the target's. */
        {
                static const struct {
                        const char *req, *path;
                } absolute[] = {
                        { "GET http://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n", "/metrics" },
                        { "GET HTTP://Example.COM:9098/metrics?x=1 HTTP/1.1\r\nHost: other:1\r\n\r\n", "/metrics" },
                        { "HEAD http://127.0.0.1:9098/ HTTP/1.1\r\nHost: 127.0.0.1:9098\r\n\r\n", "/" },
                        { "GET http://[::1]:9098/metrics HTTP/1.1\r\nHost: [::1]:9098\r\n\r\n", "/metrics" },
                        { "GET http://a HTTP/1.1\r\nHost: a\r\n\r\n", "/" },               /* empty path is "/" */
                        { "GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n", "/" },
                        { "GET http://a:/x/y HTTP/1.1\r\nHost: a\r\n\r\n", "/x/y" },       /* empty port */
                        { "GET http://a.b-c_d~e%20!$&'()*+,;=f/metrics HTTP/1.1\r\nHost: a\r\n\r\n", "/metrics" },
                        { "GET http://a/metrics HTTP/1.0\r\n\r\n", "/metrics" },             /* 1.0: Host optional */
                };

                for (size_t i = 0; i < ELEMENTSOF(absolute); i++) {
                        size_t l = strlen(absolute[i].req);

                        r = (HttpRequest) {};
                        if (http_request_parse(absolute[i].req, l, &r) != (int) l)
                                fail_msg("%s → %d", absolute[i].req, http_request_parse(absolute[i].req, l, &r));
                        assert_string_equal(r.path, absolute[i].path);
                        for (size_t k = 0; k < l; k++)
                                assert_int_equal(http_request_parse(absolute[i].req, k, &r), 0);
                }
        }
        expect_http("GET http://a/metrics HTTP/1.1\r\n\r\n", -400);                  /* no Host */
        expect_http("GET http://a/metrics HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -400); /* two */
        expect_http("GET https://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);   /* not served here */
        expect_http("GET ftp://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET httpx://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http:/a/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http:a/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", -400);              /* empty host */
        expect_http("GET http:///metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http://:80/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http://u@a/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);   /* userinfo */
        expect_http("GET http://a:9x/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);  /* port */
        expect_http("GET http://a:1:2/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http://[::1/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);  /* IP literal */
        expect_http("GET http://[::1]x/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http://[g::1]/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http://a%2/metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);   /* bad pct-encoding */
        expect_http("GET http://a/b#frag HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http://a/\x7f HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET http://a\x80/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET * HTTP/1.1\r\nHost: a\r\n\r\n", -400);                    /* asterisk-form */
        expect_http("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", -400);            /* authority-form */

        /* 400: malformed request lines */
        expect_http("GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET /metrics\r\nHost: a\r\n\r\n", -400);
        expect_http("GET metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET /met rics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET /metrics HTTP/1.1 \r\nHost: a\r\n\r\n", -400);
        expect_http("GET /metrics HTTX/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("G(T /metrics HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        expect_http("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", -400);
        /* 400: line endings */
        expect_http("GET /metrics HTTP/1.1\nHost: a\n\n", -400);
        expect_http("GET /metrics HTTP/1.1\rHost: a\r\n\r\n", -400);
        /* 400: headers */
        expect_http("GET / HTTP/1.1\r\n\r\n", -400);                                  /* no Host */
        expect_http("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400);           /* two */
        expect_http("GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400);                      /* space before colon */
        expect_http("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", -400);           /* obs-fold */
        expect_http("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", -400);
        expect_http("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", -400);
        expect_http("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", -400);
        expect_http("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", -400);
        expect_http("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", -400);
        expect_http("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", -400);
        /* 501, 505 */
        expect_http("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", -501);
        expect_http("GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505);
        expect_http("GET / HTTP/1.2\r\nHost: a\r\n\r\n", -505);

        /* 414: request line too long, complete or not */
        longline = malloc(HTTP_MAX_REQUEST_LINE + 64);
        assert_non_null(longline);
        strcpy(longline, "GET /");
        memset(longline + 5, 'a', HTTP_MAX_REQUEST_LINE);
        longline[5 + HTTP_MAX_REQUEST_LINE] = 0;
        expect_http(longline, -414);
        strcat(longline, " HTTP/1.1\r\nHost: a\r\n\r\n");
        expect_http(longline, -414);

        /* 431: too many header fields, or too large */
        manyheaders = malloc(64 * 1024);
        assert_non_null(manyheaders);
        strcpy(manyheaders, "GET / HTTP/1.1\r\nHost: a\r\n");
        for (unsigned i = 0; i < HTTP_MAX_HEADERS; i++)
                strcat(manyheaders, "X-A: b\r\n");
        strcat(manyheaders, "\r\n");
        expect_http(manyheaders, -431);
        bigheader = malloc(HTTP_MAX_HEADER_SIZE + 128);
        assert_non_null(bigheader);
        strcpy(bigheader, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
        memset(bigheader + strlen(bigheader), 'b', HTTP_MAX_HEADER_SIZE);
        bigheader[strlen("GET / HTTP/1.1\r\nHost: a\r\nX-Big: ") + HTTP_MAX_HEADER_SIZE] = 0;
        expect_http(bigheader, -431);
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_numa_maps),
                cmocka_unit_test(test_proc_status),
                cmocka_unit_test(test_host_sample),
                cmocka_unit_test(test_render),
                cmocka_unit_test(test_families),
                cmocka_unit_test(test_http),
        };

        data_dir = getenv("METRICS_TEST_DATA") ?: (argc > 1 ? argv[1] : "tests/data/metrics");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
