/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qga_read_file, qga_get_counters, qga_get_guest_info and qga_copy_to_guest against the fake agent of
 * qga-fake-agent.h: results, bounds, and the failure paths (an agent error mid-chain, a timeout, garbage, a lost
 * connection), each with its callback exactly once and every guest file closed. */

#include "qga-fake-agent.h"

/* ---- reading a file ---- */

static void on_read(QgaClient *c, const QgaError *error, const char *data, size_t size, bool truncated,
                    void *userdata) {
        Result *r = userdata;

        assert_non_null(c);
        result_error(r, error);
        if (error) {
                assert_null(data);
                return;
        }
        assert_non_null(data);
        assert_int_equal(data[size], 0);
        r->data = malloc(size + 1);
        memcpy(r->data, data, size + 1);
        r->size = size;
        r->truncated = truncated;
}

static char *pattern(size_t n) {
        char *p = malloc(n + 1);

        for (size_t i = 0; i < n; i++)
                p[i] = (char) ('a' + i % 23 + (i / 1000) % 3);
        p[n] = 0;
        return p;
}

static void test_read_file(void **state) {
        _cleanup_free_ char *big = pattern(150 * 1024);
        Result r = {};

        fake_add_file("/big", big, 150 * 1024);
        assert_int_equal(qga_read_file(client, "/big", 0, on_read, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.size, 150 * 1024);
        assert_memory_equal(r.data, big, r.size);
        assert_false(r.truncated);
        assert_int_equal(log_count("guest-file-read"), 4);     /* 48 KiB chunks */
        assert_int_equal(fake.opens, 1);
        assert_int_equal(fake.closes, 1);
        result_done(&r);

        /* Empty file. */
        fake_add_file("/empty", "", 0);
        assert_int_equal(qga_read_file(client, "/empty", 0, on_read, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.size, 0);
        assert_string_equal(r.data, "");
        assert_int_equal(fake.closes, 2);
        result_done(&r);
}

static void test_read_file_bounded(void **state) {
        _cleanup_free_ char *big = pattern(5000);
        Result r = {};

        fake_add_file("/f", big, 5000);

        /* Longer than max_bytes: cut, and said so. */
        assert_int_equal(qga_read_file(client, "/f", 1000, on_read, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.size, 1000);
        assert_true(r.truncated);
        assert_memory_equal(r.data, big, 1000);
        assert_int_equal(fake.closes, 1);
        result_done(&r);

        /* Exactly max_bytes: complete. */
        assert_int_equal(qga_read_file(client, "/f", 5000, on_read, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.size, 5000);
        assert_false(r.truncated);
        result_done(&r);

        /* Bad arguments call nothing back. */
        assert_int_equal(qga_read_file(client, "/f", 17 * 1024 * 1024, on_read, &r), -EINVAL);
        assert_int_equal(qga_read_file(client, "", 0, on_read, &r), -EINVAL);
        assert_int_equal(r.calls, 0);
}

static void test_read_file_errors(void **state) {
        _cleanup_free_ char *big = pattern(100 * 1024);
        Result r = {};

        fake_add_file("/f", big, 100 * 1024);

        /* Missing file: the agent's error, nothing to close. */
        assert_int_equal(qga_read_file(client, "/nope", 0, on_read, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_string_equal(r.command, "guest-file-open");
        assert_string_equal(r.error_class, "GenericError");
        assert_non_null(strstr(r.description, "No such file"));
        assert_int_equal(fake.opens, 0);
        result_done(&r);

        /* The second read fails: the error is reported and the handle still closed. */
        fake.fail_command = "guest-file-read";
        fake.fail_nth = 2;
        assert_int_equal(qga_read_file(client, "/f", 0, on_read, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_string_equal(r.command, "guest-file-read");
        assert_string_equal(r.description, "injected failure");
        assert_int_equal(fake.opens, 1);
        assert_int_equal(fake.closes, 1);
        result_done(&r);

        /* Garbage in the reply (not base64, count not matching): -EBADMSG, closed. */
        fake.fail_command = NULL;
        fake.garbage_command = "guest-file-read";
        assert_int_equal(qga_read_file(client, "/f", 0, on_read, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EBADMSG);
        assert_string_equal(r.command, "guest-file-read");
        assert_null(r.error_class);
        assert_int_equal(fake.closes, 2);
        result_done(&r);
}

static void test_read_file_timeout(void **state) {
        Result r = {};

        fake_add_file("/f", "abc", 3);
        fake.silent_command = "guest-file-read";
        assert_int_equal(qga_read_file(client, "/f", 0, on_read, &r), 0);
        wait_for(&r, 20 * USEC_PER_SEC);
        assert_int_equal(r.error, -ETIMEDOUT);
        assert_string_equal(r.command, "guest-file-read");
        /* The client resynchronised and the handle was closed after all. */
        for (unsigned i = 0; i < 200 && fake.closes == 0; i++)
                assert_true(sd_event_run(event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(fake.closes, 1);
        result_done(&r);
}

static void test_read_file_hangup(void **state) {
        Result r = {};

        /* The agent goes away mid-operation: the callback runs once, with the connection's error; the caller's
         * reference was dropped meanwhile, so the operation's own reference is what keeps the client. */
        fake_add_file("/f", "abc", 3);
        fake.hangup_command = "guest-file-read";
        assert_int_equal(qga_read_file(client, "/f", 0, on_read, &r), 0);
        client = qga_client_unref(client);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_true(r.error == -ECONNRESET || r.error == -ENOTCONN);
        assert_string_equal(r.command, "guest-file-read");
        result_done(&r);
}

/* ---- counters ---- */

static void on_counters(QgaClient *c, const QgaError *error, const QgaGuestCounters *k, void *userdata) {
        Result *r = userdata;

        result_error(r, error);
        if (error) {
                assert_null(k);
                return;
        }
        r->counters.guest_realtime_nsec = k->guest_realtime_nsec;
        r->counters.host_realtime_usec = k->host_realtime_usec;
        r->counters.interrupt_cpus = k->interrupt_cpus;
        r->counters.tlb.present = k->tlb.present;
        r->counters.cal.present = k->cal.present;
        r->n_vmstat = k->n_vmstat;
        r->n_meminfo = k->n_meminfo;
        r->n_unavailable = k->n_unavailable;
        for (size_t i = 0; i < k->n_unavailable; i++)
                assert_int_equal(strv_extendf(&r->unavailable, "%s: %s", k->unavailable[i].name,
                                              k->unavailable[i].reason), 0);
        if (k->cal.present)
                r->size = (size_t) k->cal.per_cpu[0];
}

static void test_counters(void **state) {
        Result r = {};

        fake_add_sample("/proc/vmstat", "debian-guest-vmstat");
        fake_add_sample("/proc/interrupts", "debian-guest-interrupts");
        fake_add_sample("/proc/meminfo", "debian-guest-meminfo");

        assert_int_equal(qga_get_counters(client, on_counters, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_true(r.counters.guest_realtime_nsec == UINT64_C(1733338000123456789));
        assert_true(r.counters.host_realtime_usec > 0);
        assert_int_equal(r.n_vmstat, 173);
        assert_true(r.n_meminfo > 40);
        assert_int_equal(r.counters.interrupt_cpus, 2);
        assert_true(r.counters.tlb.present);
        assert_int_equal(r.size, 1209);         /* CAL, CPU0 */
        assert_int_equal(r.n_unavailable, 4);
        assert_true(strv_contains(r.unavailable,
                                  "nr_tlb_remote_flush: unavailable: guest kernel without CONFIG_DEBUG_TLBFLUSH"));
        assert_string_equal(fake.log[0], "guest-get-time");    /* the timestamp comes first */
        assert_int_equal(fake.opens, 3);
        assert_int_equal(fake.closes, 3);
        result_done(&r);
}

static void test_counters_partial(void **state) {
        Result r = {};

        /* No /proc/interrupts (the agent's error), a meminfo that does not parse: both unavailable, with why;
         * the rest is there. */
        fake_add_sample("/proc/vmstat", "host-vmstat");
        fake_add_file("/proc/meminfo", "MemTotal: lots\n", 15);
        assert_int_equal(qga_get_counters(client, on_counters, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_true(r.n_vmstat > 100);
        assert_int_equal(r.n_meminfo, 0);
        assert_false(r.counters.tlb.present);
        for (char **s = r.unavailable; s && *s; s++)
                if (startswith(*s, "interrupts: "))
                        assert_non_null(strstr(*s, "guest-file-open: GenericError: failed to open file"));
                else if (startswith(*s, "meminfo: "))
                        assert_non_null(strstr(*s, "line 1"));
        assert_non_null(strv_contains(r.unavailable, "x") ? NULL : r.unavailable);
        {
                bool irq = false, mem = false;

                for (char **s = r.unavailable; s && *s; s++) {
                        irq = irq || startswith(*s, "interrupts: ");
                        mem = mem || startswith(*s, "meminfo: ");
                }
                assert_true(irq);
                assert_true(mem);
        }
        result_done(&r);

        /* guest-get-time fails: the whole snapshot fails (no timestamp, no snapshot), nothing opened. */
        fake.fail_command = "guest-get-time";
        fake.fail_nth = 1;
        fake.opens = 0;
        assert_int_equal(qga_get_counters(client, on_counters, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_string_equal(r.command, "guest-get-time");
        assert_int_equal(fake.opens, 0);
        result_done(&r);
}

/* ---- identity ---- */

static void on_info(QgaClient *c, const QgaError *error, const QgaGuestInfo *info, void *userdata) {
        Result *r = userdata;

        result_error(r, error);
        if (error) {
                assert_null(info);
                return;
        }
        r->info = (QgaGuestInfo) {
                .agent_version = info->agent_version ? strdup(info->agent_version) : NULL,
                .os_id = info->os_id ? strdup(info->os_id) : NULL,
                .os_pretty_name = info->os_pretty_name ? strdup(info->os_pretty_name) : NULL,
                .kernel_release = info->kernel_release ? strdup(info->kernel_release) : NULL,
                .vcpus = info->vcpus,
                .vcpus_online = info->vcpus_online,
                .memory_block_size = info->memory_block_size,
                .memory_blocks = info->memory_blocks,
                .memory_blocks_online = info->memory_blocks_online,
                .n_nodes = info->n_nodes,
        };
        r->info.nodes = calloc(info->n_nodes + 1, sizeof(QgaGuestNode));
        for (size_t i = 0; i < info->n_nodes; i++) {
                r->info.nodes[i] = info->nodes[i];
                r->info.nodes[i].cpulist = strdup(info->nodes[i].cpulist);
        }
        for (size_t i = 0; i < info->n_unavailable; i++)
                assert_int_equal(strv_extendf(&r->unavailable, "%s: %s", info->unavailable[i].name,
                                              info->unavailable[i].reason), 0);
}

static void test_guest_info(void **state) {
        Result r = {};

        /* This agent lacks guest-get-memory-block-info (setup_no_block_info: not in guest-info's list). */
        fake_add_sample("/sys/devices/system/node/online", "debian-guest-node-online");
        fake_add_file("/sys/devices/system/node/node0/cpulist", "0\n", 2);
        fake_add_sample("/sys/devices/system/node/node1/cpulist", "debian-guest-node1-cpulist");
        fake_add_file("/sys/devices/system/node/node0/meminfo",
                      "Node 0 MemTotal:        1030732 kB\nNode 0 MemFree:         1010360 kB\n", 70);
        fake_add_sample("/sys/devices/system/node/node1/meminfo", "debian-guest-node1-meminfo");

        assert_int_equal(qga_get_guest_info(client, on_info, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.info.agent_version, "7.2.0");
        assert_string_equal(r.info.os_id, "debian");
        assert_string_equal(r.info.os_pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_string_equal(r.info.kernel_release, "6.1.0-57-amd64");
        assert_int_equal(r.info.vcpus, 3);
        assert_int_equal(r.info.vcpus_online, 2);
        assert_int_equal(r.info.memory_block_size, 0);          /* not offered: unavailable, not sent */
        assert_false(log_contains("guest-get-memory-block-info"));
        assert_int_equal(r.info.memory_blocks, 16);
        assert_int_equal(r.info.memory_blocks_online, 15);
        assert_int_equal(r.info.n_nodes, 2);
        assert_int_equal(r.info.nodes[0].id, 0);
        assert_string_equal(r.info.nodes[0].cpulist, "0");
        assert_true(r.info.nodes[0].mem_total_bytes == UINT64_C(1030732) * 1024);
        assert_true(r.info.nodes[0].mem_free_bytes == UINT64_C(1010360) * 1024);
        assert_int_equal(r.info.nodes[1].id, 1);
        assert_string_equal(r.info.nodes[1].cpulist, "1");
        assert_true(r.info.nodes[1].mem_total_bytes > 0);
        assert_int_equal(strv_length(r.unavailable), 1);
        assert_non_null(strstr(r.unavailable[0], "guest-get-memory-block-info: unavailable: the guest agent does not "
                                                 "offer guest-get-memory-block-info"));
        assert_int_equal(fake.opens, fake.closes);
        result_done(&r);
}

static void test_guest_info_partial(void **state) {
        Result r = {};

        /* No NUMA in the guest (no node directory): unavailable with the reason, not one invented node. An agent
         * error for memory blocks: unavailable with the agent's words; the call as a whole succeeds. */
        fake.fail_command = "guest-get-memory-blocks";
        fake.fail_nth = 1;
        fake.fail_class = "Unsupported";
        assert_int_equal(qga_get_guest_info(client, on_info, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.info.n_nodes, 0);
        assert_int_equal(r.info.memory_blocks, 0);
        assert_int_equal(r.info.memory_block_size, 128 * 1024 * 1024);
        assert_int_equal(strv_length(r.unavailable), 2);
        assert_string_equal(r.unavailable[0],
                            "guest-get-memory-blocks: unavailable: guest-get-memory-blocks: Unsupported: injected failure");
        assert_true(startswith(r.unavailable[1], "nodes: unavailable: the guest has no readable "
                                                 "/sys/devices/system/node/online"));
        result_done(&r);

        /* A malformed reply of one part: unavailable too. A node whose meminfo is garbage: that node unavailable. */
        fake.fail_command = NULL;
        fake.garbage_command = "guest-get-vcpus";
        fake_add_file("/sys/devices/system/node/online", "0-1\n", 4);
        fake_add_file("/sys/devices/system/node/node0/cpulist", "0-1\n", 4);
        fake_add_file("/sys/devices/system/node/node0/meminfo", "Node 0 MemTotal: 4 kB\nNode 0 MemFree: 1 kB\n", 43);
        fake_add_file("/sys/devices/system/node/node1/cpulist", "\n", 1);
        fake_add_file("/sys/devices/system/node/node1/meminfo", "garbage\n", 8);
        assert_int_equal(qga_get_guest_info(client, on_info, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.info.vcpus, 0);
        assert_int_equal(r.info.n_nodes, 1);
        assert_string_equal(r.info.nodes[0].cpulist, "0-1");
        assert_int_equal(r.info.nodes[0].mem_total_bytes, 4096);
        assert_true(strv_contains(r.unavailable,
                                  "guest-get-vcpus: unavailable: the agent's reply to guest-get-vcpus is malformed"));
        assert_true(strv_contains(r.unavailable,
                                  "node1: unavailable: its meminfo is malformed or lacks MemTotal/MemFree"));
        assert_int_equal(fake.opens, fake.closes);
        result_done(&r);

        /* A lost connection fails the whole call. */
        fake.garbage_command = NULL;
        fake.hangup_command = "guest-get-vcpus";
        assert_int_equal(qga_get_guest_info(client, on_info, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_true(r.error == -ECONNRESET || r.error == -ENOTCONN);
        assert_string_equal(r.command, "guest-get-vcpus");
        result_done(&r);

        /* And a client without a connection refuses at once, calling nothing back. */
        assert_int_equal(qga_get_guest_info(client, on_info, &r), -ENOTCONN);
        assert_int_equal(r.calls, 0);
}

/* ---- copying into the guest ---- */

static void on_copy(QgaClient *c, const QgaError *error, uint64_t bytes_written, void *userdata) {
        Result *r = userdata;

        result_error(r, error);
        r->bytes_written = bytes_written;
}

static const FakeProc *find_proc(const char *path) {
        for (size_t i = 0; i < fake.n_procs; i++)
                if (streq(fake.procs[i].path, path))
                        return &fake.procs[i];
        return NULL;
}

static void test_copy(void **state) {
        _cleanup_free_ char *data = pattern(200 * 1024);
        const FakeFile *f;
        const FakeProc *p;
        Result r = {};

        assert_int_equal(qga_copy_to_guest(client, data, 200 * 1024, "/usr/local/bin/memvisor-touch", 0755, on_copy,
                                           &r), 0);
        wait_for(&r, 10 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.bytes_written, 200 * 1024);
        f = fake_file("/usr/local/bin/memvisor-touch");
        assert_non_null(f);
        assert_int_equal(f->size, 200 * 1024);
        assert_memory_equal(f->content, data, f->size);
        assert_int_equal(fake.max_write_chunk, 48 * 1024);
        assert_int_equal(fake.writes, 5);
        assert_int_equal(fake.closes, 1);
        /* Then chmod, through guest-exec. */
        p = find_proc("chmod");
        assert_non_null(p);
        assert_string_equal(p->args[0], "0755");
        assert_string_equal(p->args[1], "/usr/local/bin/memvisor-touch");
        result_done(&r);

        /* Without a mode: no chmod; an empty file is fine. */
        assert_int_equal(qga_copy_to_guest(client, NULL, 0, "/tmp/empty", 0, on_copy, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.bytes_written, 0);
        assert_int_equal(fake_file("/tmp/empty")->size, 0);
        assert_int_equal(fake.n_procs, 1);
        result_done(&r);

        assert_int_equal(qga_copy_to_guest(client, data, 10, "relative", 0, on_copy, &r), -EINVAL);
        assert_int_equal(qga_copy_to_guest(client, data, 10, "/x", 010000, on_copy, &r), -EINVAL);
        assert_int_equal(r.calls, 0);
}

static void test_copy_errors(void **state) {
        _cleanup_free_ char *data = pattern(100 * 1024);
        Result r = {};

        /* The second write fails: reported, and the file still closed; no chmod. */
        fake.fail_command = "guest-file-write";
        fake.fail_nth = 2;
        assert_int_equal(qga_copy_to_guest(client, data, 100 * 1024, "/f", 0755, on_copy, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_string_equal(r.command, "guest-file-write");
        assert_string_equal(r.error_class, "GenericError");
        assert_int_equal(r.bytes_written, 48 * 1024);
        assert_int_equal(fake.closes, 1);
        assert_int_equal(fake.n_procs, 0);
        result_done(&r);

        /* A short write (a full disk): an error saying so. */
        fake.fail_command = NULL;
        fake.short_write = true;
        assert_int_equal(qga_copy_to_guest(client, data, 1000, "/f", 0, on_copy, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_null(r.error_class);
        assert_non_null(strstr(r.description, "short write"));
        assert_int_equal(r.bytes_written, 10);
        assert_int_equal(fake.closes, 2);
        result_done(&r);

        /* Closing fails: for a written file that is a failure (its data may not be flushed). */
        fake.short_write = false;
        fake.fail_command = "guest-file-close";
        fake.fail_nth = 3;
        fake.fail_seen = 2;
        assert_int_equal(qga_copy_to_guest(client, data, 1000, "/f", 0, on_copy, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_string_equal(r.command, "guest-file-close");
        result_done(&r);

        /* The guest cannot open the destination. */
        fake.fail_command = "guest-file-open";
        fake.fail_nth = 1;
        fake.fail_seen = 0;
        assert_int_equal(qga_copy_to_guest(client, data, 1000, "/ro/f", 0, on_copy, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_string_equal(r.command, "guest-file-open");
        assert_int_equal(r.bytes_written, 0);
        result_done(&r);
}

static void test_copy_unsupported(void **state) {
        Result r = {};

        /* guest-exec is not offered: a copy without a mode works, one with a mode (chmod) is refused at once. */
        assert_int_equal(qga_copy_to_guest(client, "x", 1, "/f", 0755, on_copy, &r), -ENOTSUP);
        assert_int_equal(fake.opens, 0);
        assert_int_equal(qga_copy_to_guest(client, "x", 1, "/f", 0, on_copy, &r), 0);
        wait_for(&r, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.bytes_written, 1);
        result_done(&r);
}

int main(void) {
        static const char *no_block_info = "guest-get-memory-block-info";
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_file_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_file_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_file_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_file_hangup, setup, teardown),
                cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_counters_partial, setup, teardown),
                cmocka_unit_test_prestate_setup_teardown(test_guest_info, setup, teardown, (void *) no_block_info),
                cmocka_unit_test_setup_teardown(test_guest_info_partial, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_errors, setup, teardown),
                cmocka_unit_test_prestate_setup_teardown(test_copy_unsupported, setup, teardown, (void *) "guest-exec"),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
