/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest NUMA nodes in a .vm file ([Memory] GuestNode= and GuestDistance=, vm-spec-numa.c): each line read and
 * normalized, the same in the JSON form (arrays), round trips through the canonical INI, the inheritance of
 * [Memory] Policy=/HostNodes=, and every refusal with its key and reason: sizes that do not add up, a vCPU in
 * two nodes or in none, bad options, distances QEMU would refuse. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "basic/json-util.h"
#include "basic/strv.h"
#include "vm/vm-spec.h"

#define HEAD "[VM]\nKernel=/boot/vmlinuz\n"

static VmSpec *ini_ok(const char *text) {
        VmSpecError e = {};
        VmSpec *s = NULL;

        if (vm_spec_parse_ini("web.vm", text, NULL, &s, &e) < 0)
                fail_msg("parse failed (%s: %s) for:\n%s", strna(e.field), strna(e.message), text);
        return s;
}

static void ini_fails(const char *text, const char *field, const char *message) {
        VmSpecError e = {};
        VmSpec *s = NULL;
        int r;

        r = vm_spec_parse_ini("web.vm", text, NULL, &s, &e);
        if (r >= 0)
                fail_msg("parse unexpectedly succeeded for:\n%s", text);
        assert_true(r == -EINVAL || r == -E2BIG);
        assert_null(s);
        if (!streq_ptr(e.field, field) || !streq_ptr(e.message, message))
                fail_msg("for:\n%s\nexpected %s: %s\n     got %s: %s", text, field, message, strna(e.field),
                         strna(e.message));
        vm_spec_error_done(&e);
}

static void test_parse(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL, *again = NULL, *copy = NULL;
        _cleanup_free_ char *ini = NULL;
        VmGuestNode n = {};

        /* Options in any order, sizes and lists written any way: stored in the canonical form. */
        s = ini_ok(HEAD "Memory=1G\nVCPUs=4\n[Memory]\nBackend=memfd\nPolicy=bind\nHostNodes=0\n"
                   "GuestNode=0.5G policy=bind hostnodes=0,0 cpus=1,0\n"
                   "GuestNode=256M cpus=2\n"
                   "GuestNode=262144K  cpus=3 policy=default\n"
                   "GuestDistance=0 1 20\nGuestDistance=1  0 20\nGuestDistance=0 2 30\nGuestDistance=1 2 40\n");
        assert_int_equal(s->n_guest_nodes, 3);
        assert_string_equal(s->guest_nodes[0], "512M cpus=0-1 hostnodes=0 policy=bind");
        assert_string_equal(s->guest_nodes[1], "256M cpus=2");
        assert_string_equal(s->guest_nodes[2], "256M cpus=3 policy=default");
        assert_int_equal(s->n_guest_distances, 4);
        assert_string_equal(s->guest_distances[1], "1 0 20");

        /* Node 1 has no policy= of its own: [Memory] Policy=bind HostNodes=0; node 2 says default. */
        assert_int_equal(vm_spec_guest_node(s, 1, &n), 0);
        assert_int_equal(n.size_bytes, 256U << 20);
        assert_string_equal(n.cpus, "2");
        assert_int_equal(n.policy, VM_MEMORY_POLICY_BIND);
        assert_string_equal(n.host_nodes, "0");
        vm_guest_node_done(&n);
        assert_int_equal(vm_spec_guest_node(s, 2, &n), 0);
        assert_int_equal(n.policy, VM_MEMORY_POLICY_DEFAULT);
        assert_null(n.host_nodes);
        vm_guest_node_done(&n);
        assert_int_equal(vm_spec_guest_node(s, 3, &n), -ENOENT);

        /* The canonical INI reads back equal; a copy is equal; an empty GuestNode= resets the list. */
        assert_int_equal(vm_spec_to_ini(s, &ini), 0);
        assert_non_null(strstr(ini, "GuestNode=512M cpus=0-1 hostnodes=0 policy=bind\nGuestNode=256M cpus=2\n"));
        assert_non_null(strstr(ini, "GuestDistance=0 1 20\n"));
        again = ini_ok(ini);
        assert_true(vm_spec_equal(s, again));
        assert_int_equal(vm_spec_copy(s, &copy), 0);
        assert_true(vm_spec_equal(s, copy));
        {
                _cleanup_(vm_spec_freep) VmSpec *reset = ini_ok(HEAD "Memory=128M\n[Memory]\nGuestNode=64M\n"
                                                                "GuestNode=\n");

                assert_int_equal(reset->n_guest_nodes, 0);
                assert_null(reset->guest_nodes);
        }
        /* A memory-only node (no cpus=) is allowed, as long as every vCPU has a node. */
        {
                _cleanup_(vm_spec_freep) VmSpec *m = ini_ok(HEAD "Memory=128M\n[Memory]\nGuestNode=64M cpus=0\n"
                                                            "GuestNode=64M\n");

                assert_int_equal(m->n_guest_nodes, 2);
        }
}

static void test_json(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *from_ini = NULL, *from_json = NULL;
        _cleanup_json_ json_object *j = NULL, *out = NULL;
        VmSpecError e = {};
        json_object *mem, *a;

        j = json_tokener_parse("{\"VM\": {\"Kernel\": \"/boot/vmlinuz\", \"Memory\": \"256M\", \"VCPUs\": 2},"
                               " \"Memory\": {\"GuestNode\": [\"128M cpus=0 hostnodes=0 policy=bind\","
                               " \"128M cpus=1\"], \"GuestDistance\": [\"0 1 21\"]}}");
        assert_non_null(j);
        if (vm_spec_parse_json(j, "web", &from_json, &e) < 0)
                fail_msg("%s", strna(e.message));
        from_ini = ini_ok(HEAD "Memory=256M\nVCPUs=2\n[Memory]\nGuestNode=128M cpus=0 hostnodes=0 policy=bind\n"
                          "GuestNode=128M cpus=1\nGuestDistance=0 1 21\n");
        assert_true(vm_spec_equal(from_ini, from_json));

        assert_int_equal(vm_spec_to_json(from_ini, &out), 0);
        assert_true(json_object_object_get_ex(out, "Memory", &mem));
        assert_true(json_object_object_get_ex(mem, "GuestNode", &a));
        assert_int_equal(json_object_array_length(a), 2);
        assert_string_equal(json_object_get_string(json_object_array_get_idx(a, 1)), "128M cpus=1");

        /* A bad line in JSON names the same key. */
        json_object_put(j);
        j = json_tokener_parse("{\"VM\": {\"Kernel\": \"/boot/vmlinuz\"}, \"Memory\": {\"GuestNode\": [\"1G cpu=0\"]}}");
        assert_int_equal(vm_spec_parse_json(j, "web", &from_json, &e), -EINVAL);
        assert_string_equal(e.field, "Memory.GuestNode");
        assert_non_null(strstr(e.message, "unknown option cpu=: expected cpus=, hostnodes= or policy="));
        vm_spec_error_done(&e);
}

static void test_bad_lines(void **state) {
        static const struct {
                const char *value, *reason;
        } cases[] = {
                { "", NULL },   /* placeholder: an empty value resets, tested above */
                { "0", "'0' is not a node size: expected a whole number of MiB up to 16T, such as 256M or 1G" },
                { "12Q", "'12Q' is not a node size: expected a whole number of MiB up to 16T, such as 256M or 1G" },
                { "1000K", "'1000K' is not a node size: expected a whole number of MiB up to 16T, such as 256M or 1G" },
                { "cpus=0", "'cpus=0' is not a node size: expected a whole number of MiB up to 16T, such as 256M or 1G" },
                { "64M cpus", "'cpus' is not an option: expected cpus=, hostnodes= or policy=" },
                { "64M cpu=0", "unknown option cpu=: expected cpus=, hostnodes= or policy=" },
                { "64M cpus=0 cpus=1", "cpus= is given twice" },
                { "64M cpus=1-0", "cpus=1-0 is not a list of vCPUs below 512 such as 0, 0-1 or 0,2-3" },
                { "64M cpus=512", "cpus=512 is not a list of vCPUs below 512 such as 0, 0-1 or 0,2-3" },
                { "64M hostnodes=128 policy=bind",
                  "hostnodes=128 is not a list of NUMA nodes below 64 such as 0, 0-1 or 0,2-3" },
                /* nodes 64-127 parse, but the NUMA code's masks have 64 bits: refused here, not at start */
                { "64M hostnodes=64 policy=bind",
                  "hostnodes=64: host node 64 is not supported: memvisor handles host nodes 0-63 only" },
                { "64M hostnodes=0,100-127 policy=interleave",
                  "hostnodes=0,100-127: host node 100 is not supported: memvisor handles host nodes 0-63 only" },
                { "64M hostnodes=0", "hostnodes= needs policy= (bind, preferred or interleave)" },
                { "64M policy=bind", "policy=bind needs hostnodes=" },
                { "64M policy=default hostnodes=0", "hostnodes= does not work with policy=default" },
                { "64M policy=preferred hostnodes=0-1", "policy=preferred takes a single node in hostnodes=, not 0-1" },
                { "64M policy=strict hostnodes=0", "policy=strict: expected default, bind, preferred or interleave" },
                { "64M policy=bind policy=bind hostnodes=0", "policy= is given twice" },
        };

        for (size_t i = 1; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = NULL, *msg = NULL;

                assert_true(asprintf(&text, HEAD "Memory=64M\n[Memory]\nGuestNode=%s\n", cases[i].value) > 0);
                assert_true(asprintf(&msg, "web.vm:5: Invalid value '%s' for GuestNode=: %s", cases[i].value,
                                     cases[i].reason) > 0);
                ini_fails(text, "Memory.GuestNode", msg);
        }

        /* At most 8 nodes. */
        {
                _cleanup_free_ char *text = strdup(HEAD "Memory=576M\n[Memory]\n");

                for (int i = 0; i < 9; i++) {
                        char *t = NULL;

                        assert_true(asprintf(&t, "%sGuestNode=64M\n", text) > 0);
                        free(text);
                        text = t;
                }
                ini_fails(text, "Memory.GuestNode",
                          "web.vm:13: Invalid value '64M' for GuestNode=: too many guest nodes, at most 8 are supported");
        }

        /* Distances on their own. */
        ini_fails(HEAD "[Memory]\nGuestDistance=0 1\n", "Memory.GuestDistance",
                  "web.vm:4: Invalid value '0 1' for GuestDistance=: expected two guest nodes and their distance, such "
                  "as \"0 1 20\"");
        ini_fails(HEAD "[Memory]\nGuestDistance=0 0 10\n", "Memory.GuestDistance",
                  "web.vm:4: Invalid value '0 0 10' for GuestDistance=: the distance of a node to itself is always 10");
        ini_fails(HEAD "[Memory]\nGuestDistance=0 1 9\n", "Memory.GuestDistance",
                  "web.vm:4: Invalid value '0 1 9' for GuestDistance=: distance 9: expected 10 to 255 (10: local, "
                  "255: unreachable)");
        ini_fails(HEAD "[Memory]\nGuestDistance=0 8 20\n", "Memory.GuestDistance",
                  "web.vm:4: Invalid value '0 8 20' for GuestDistance=: guest nodes are numbered from 0 to 7");
}

/* The checks across keys: the whole definition is refused, naming GuestNode= (or GuestDistance=). */
static void test_cross(void **state) {
        static const struct {
                const char *body, *field, *reason;
        } cases[] = {
                { "Memory=256M\nVCPUs=2\n[Memory]\nGuestNode=64M cpus=0\nGuestNode=64M cpus=1\n", "Memory.GuestNode",
                  "the GuestNode= sizes add up to 128M, but Memory= is 256M" },
                { "Memory=256M\nVCPUs=2\n[Memory]\nGuestNode=128M cpus=0-1\nGuestNode=128M cpus=1\n",
                  "Memory.GuestNode", "vCPU 1 is in guest node 0 and in guest node 1: each vCPU belongs to exactly "
                  "one node" },
                { "Memory=256M\nVCPUs=3\n[Memory]\nGuestNode=128M cpus=0\nGuestNode=128M cpus=2\n",
                  "Memory.GuestNode", "vCPU 1 is in no guest node: give every vCPU of VCPUs=3 to one node with cpus=" },
                { "Memory=256M\nVCPUs=2\n[Memory]\nGuestNode=128M cpus=0\nGuestNode=128M cpus=1-2\n",
                  "Memory.GuestNode", "guest node 1 names vCPU 2, but the guest has 2 vCPUs (VCPUs=2)" },
                { "Memory=256M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\nGuestNode=255M cpus=0\n"
                  "GuestNode=1M\n", "Memory.GuestNode", "guest node 0: 255M is not a whole number of 2M huge pages "
                  "(HugePageSize=)" },
                { "Memory=128M\n[Memory]\nBackend=file\nPath=/dev/hugepages/g\nGuestNode=128M cpus=0\n",
                  "Memory.GuestNode", "GuestNode= does not work with Backend=file (every node's backend would map "
                  "the same Path=): use Backend=memfd, with HugePages=yes for huge pages" },
                { "Memory=128M\n[Memory]\nGuestDistance=0 1 20\n", "Memory.GuestDistance",
                  "GuestDistance= needs GuestNode= lines" },
                { "Memory=128M\n[Memory]\nGuestNode=64M cpus=0\nGuestNode=64M\nGuestDistance=0 2 20\n",
                  "Memory.GuestDistance", "GuestDistance=0 2 20 names guest node 2, but there are 2 (0-1)" },
                { "Memory=128M\n[Memory]\nGuestNode=64M cpus=0\nGuestNode=64M\nGuestDistance=0 1 20\n"
                  "GuestDistance=0 1 21\n", "Memory.GuestDistance", "the distance from guest node 0 to 1 is given twice" },
                { "Memory=192M\n[Memory]\nGuestNode=64M cpus=0\nGuestNode=64M\nGuestNode=64M\nGuestDistance=0 1 20\n"
                  "GuestDistance=0 2 20\n", "Memory.GuestDistance", "the distance between guest nodes 1 and 2 is "
                  "missing: once GuestDistance= is used, every pair of nodes needs one" },
                { "Memory=192M\n[Memory]\nGuestNode=64M cpus=0\nGuestNode=64M\nGuestNode=64M\nGuestDistance=0 1 20\n"
                  "GuestDistance=1 0 30\nGuestDistance=0 2 20\nGuestDistance=1 2 20\n", "Memory.GuestDistance",
                  "the distances are asymmetric, so every pair needs both directions, and 2 to 0 is missing" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = NULL, *msg = NULL;

                assert_true(asprintf(&text, HEAD "%s", cases[i].body) > 0);
                assert_true(asprintf(&msg, "web.vm: %s", cases[i].reason) > 0);
                ini_fails(text, cases[i].field, msg);
        }

        /* Asymmetric but complete is fine, as QEMU takes it. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = ini_ok(HEAD "Memory=128M\n[Memory]\nGuestNode=64M cpus=0\n"
                                                            "GuestNode=64M\nGuestDistance=0 1 20\nGuestDistance=1 0 30\n");

                assert_int_equal(s->n_guest_distances, 2);
        }
}

/* Specs built in code are checked by vm_spec_validate() too: a line that is not canonical, counts that lie. */
static void test_validate(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = ini_ok(HEAD "Memory=128M\n[Memory]\nGuestNode=128M cpus=0\n");
        VmSpecError e = {};

        assert_int_equal(vm_spec_validate(s, NULL), 0);
        free(s->guest_nodes[0]);
        s->guest_nodes[0] = strdup("131072K cpus=0");
        assert_int_equal(vm_spec_validate(s, &e), -EINVAL);
        assert_string_equal(e.field, "Memory.GuestNode");
        assert_string_equal(e.message, "Memory.GuestNode: GuestNode=131072K cpus=0 is not normalized, expected "
                            "128M cpus=0");
        vm_spec_error_done(&e);

        free(s->guest_nodes[0]);
        s->guest_nodes[0] = strdup("128M cpus=0");
        s->n_guest_nodes = 2;
        assert_int_equal(vm_spec_validate(s, &e), -EINVAL);
        assert_string_equal(e.field, "Memory.GuestNode");
        vm_spec_error_done(&e);
}

/* VCPUAffinity=node: accepted with host nodes for every guest node, resolved to a map on a given host. */
static void test_vcpu_affinity_node(void **state) {
        NumaNode nodes[2] = { { .id = 0 }, { .id = 1 } };
        NumaTopology t = { .nodes = nodes, .n_nodes = 2 };
        _cleanup_(vm_spec_freep) VmSpec *s = NULL, *plain = NULL, *memonly = NULL;
        _cleanup_free_ char *map = NULL, *why = NULL;

        for (unsigned c = 0; c < 4; c++)
                cpu_set_add(&nodes[c / 2].cpus, c);     /* node 0: CPUs 0-1, node 1: CPUs 2-3 */

        s = ini_ok(HEAD "Memory=256M\nVCPUs=3\n[Memory]\nPolicy=bind\nHostNodes=1\n"
                   "GuestNode=128M cpus=0,2 hostnodes=0 policy=bind\nGuestNode=64M cpus=1\n"
                   "GuestNode=64M hostnodes=0-1 policy=interleave\n[CPU]\nVCPUAffinity=node\n");
        assert_string_equal(s->vcpu_affinity, "node");
        assert_int_equal(vm_spec_vcpu_affinity_map(s, &t, &map, &why), 0);
        assert_string_equal(map, "0:0-1 2:0-1 1:2-3");
        map = mfree(map);

        /* A host node this host lacks, or one without CPUs. */
        t.n_nodes = 1;
        assert_int_equal(vm_spec_vcpu_affinity_map(s, &t, &map, &why), -ENOENT);
        assert_string_equal(why, "VCPUAffinity=node: host node 1 of guest node 1 is not online");
        assert_null(map);
        t.n_nodes = 2;
        nodes[1].cpus = (CpuSet) {};
        why = mfree(why);
        assert_int_equal(vm_spec_vcpu_affinity_map(s, &t, &map, &why), -ENOENT);
        assert_string_equal(why, "VCPUAffinity=node: host node 1 of guest node 1 has no CPUs");

        /* A plain map passes through; none is NULL. */
        plain = ini_ok(HEAD "VCPUs=2\n[CPU]\nVCPUAffinity=1:3 0:2\n");
        assert_int_equal(vm_spec_vcpu_affinity_map(plain, &t, &map, NULL), 0);
        assert_string_equal(map, "0:2 1:3");
        map = mfree(map);

        ini_fails(HEAD "[CPU]\nVCPUAffinity=node\n", "CPU.VCPUAffinity",
                  "web.vm: VCPUAffinity=node needs GuestNode= lines (with host nodes)");
        /* A memory-only guest node (no vCPUs) needs no host nodes: nothing of it is pinned. */
        memonly = ini_ok(HEAD "Memory=128M\n[Memory]\nGuestNode=64M cpus=0 hostnodes=0 policy=bind\nGuestNode=64M\n"
                         "[CPU]\nVCPUAffinity=node\n");
        assert_int_equal(vm_spec_vcpu_affinity_map(memonly, &t, &map, &why), 0);
        assert_string_equal(map, "0:0-1");
        map = mfree(map);
        ini_fails(HEAD "Memory=128M\nVCPUs=2\n[Memory]\nGuestNode=64M cpus=0 hostnodes=0 policy=bind\n"
                  "GuestNode=64M cpus=1\n[CPU]\nVCPUAffinity=node\n", "CPU.VCPUAffinity",
                  "web.vm: VCPUAffinity=node needs host nodes for every guest node with vCPUs, and guest node 1 "
                  "(vCPUs 1) has none (give it hostnodes= and policy=, or set [Memory] Policy= and HostNodes=)");
        ini_fails(HEAD "Memory=128M\n[Memory]\nPolicy=bind\nHostNodes=63-64\n", "Memory.HostNodes",
                  "web.vm: HostNodes=63-64: host node 64 is not supported: memvisor handles host nodes 0-63 only");
        plain = vm_spec_free(plain);
        plain = ini_ok(HEAD "Memory=128M\n[Memory]\nPolicy=bind\nHostNodes=63\n");
        ini_fails(HEAD "[CPU]\nVCPUAffinity=nodes\n", "CPU.VCPUAffinity",
                  "web.vm:4: Invalid value 'nodes' for VCPUAffinity=: 'nodes' is not VCPU:CPULIST such as 0:2 or "
                  "1:3-4,6 (vCPUs below 512, CPUs below 1024)");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_json),
                cmocka_unit_test(test_bad_lines),
                cmocka_unit_test(test_cross),
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_vcpu_affinity_node),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
