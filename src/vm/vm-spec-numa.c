/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest NUMA nodes: [Memory] GuestNode= and GuestDistance= (memvisor.vm(5)). Both are repeatable keys of the
 * key table rather than sections of their own, so the INI parser, the JSON form (arrays), the canonical output
 * and vm_spec_copy()/vm_spec_equal() need nothing new: guest node N is the Nth GuestNode= line. This file reads
 * one line into a VmGuestNode, writes it back in its canonical form, and checks the nodes against the rest of
 * the definition (sizes add up to Memory=, every vCPU in exactly one node, distances complete). */
#include <inttypes.h>
#include <stdio.h>

#include "basic/parse.h"
#include "basic/strv.h"
#include "numa/cpu-set.h"
#include "numa/numa-topology.h"
#include "vm/vm-spec-internal.h"

#define reasonf vm_spec_reasonf

void vm_guest_node_done(VmGuestNode *n) {
        if (!n)
                return;
        n->cpus = mfree(n->cpus);
        n->host_nodes = mfree(n->host_nodes);
}

/* "SIZE [cpus=LIST] [hostnodes=LIST] [policy=P]", the options in any order, each at most once. policy= and
 * hostnodes= describe the node's own backend; without either the node takes [Memory] Policy= and HostNodes=
 * (ret->policy is then _VM_MEMORY_POLICY_INVALID). */
int vm_guest_node_parse(const char *text, VmGuestNode *ret, char **ret_reason) {
        _cleanup_(vm_guest_node_done) VmGuestNode n = { .policy = _VM_MEMORY_POLICY_INVALID };
        _cleanup_(strv_freep) char **words = NULL;
        bool nodes[VM_HOST_NODES_MAX];
        int r;

        r = strv_split_quoted(text, &words);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !words || !words[0])
                return reasonf(ret_reason, -EINVAL, "expected SIZE [cpus=LIST] [hostnodes=LIST] [policy=POLICY], "
                               "such as \"256M cpus=0-1 hostnodes=0 policy=bind\"");

        r = parse_size(words[0], &n.size_bytes);
        if (r < 0 || n.size_bytes == 0 || n.size_bytes % SIZE_MB != 0 || n.size_bytes > VM_MEMORY_MAX)
                return reasonf(ret_reason, -EINVAL, "'%s' is not a node size: expected a whole number of MiB up to "
                               "16T, such as 256M or 1G", words[0]);

        for (char **w = words + 1; *w; w++) {
                const char *eq = strchr(*w, '=');
                _cleanup_free_ char *key = NULL;
                const char *value;

                if (!eq || eq == *w)
                        return reasonf(ret_reason, -EINVAL, "'%s' is not an option: expected cpus=, hostnodes= or "
                                       "policy=", *w);
                key = strndup(*w, (size_t) (eq - *w));
                if (!key)
                        return -ENOMEM;
                value = eq + 1;

                if (streq(key, "cpus")) {
                        CpuSet set;
                        int last;

                        if (n.cpus)
                                return reasonf(ret_reason, -EINVAL, "cpus= is given twice");
                        if (cpu_list_parse(value, &set) < 0 || (last = cpu_set_last(&set)) < 0 ||
                            (unsigned) last >= VM_MAX_VCPUS)
                                return reasonf(ret_reason, -EINVAL, "cpus=%s is not a list of vCPUs below %u such as "
                                               "0, 0-1 or 0,2-3", value, VM_MAX_VCPUS);
                        r = cpu_list_format(&set, &n.cpus);
                        if (r < 0)
                                return r;
                } else if (streq(key, "hostnodes")) {
                        if (n.host_nodes)
                                return reasonf(ret_reason, -EINVAL, "hostnodes= is given twice");
                        if (vm_spec_host_nodes_parse(value, nodes) < 0)
                                return reasonf(ret_reason, -EINVAL, "hostnodes=%s is not a list of NUMA nodes "
                                               "below %u such as 0, 0-1 or 0,2-3", value, NUMA_NODES_MAX);
                        if (vm_spec_host_nodes_unsupported(nodes) >= 0)
                                return reasonf(ret_reason, -EINVAL, "hostnodes=%s: host node %d is not supported: "
                                               "memvisor handles host nodes 0-%u only", value,
                                               vm_spec_host_nodes_unsupported(nodes), NUMA_NODES_MAX - 1);
                        n.host_nodes = vm_spec_host_nodes_format(nodes);
                        if (!n.host_nodes)
                                return -ENOMEM;
                } else if (streq(key, "policy")) {
                        VmMemoryPolicy p = vm_memory_policy_from_string(value);

                        if (n.policy >= 0)
                                return reasonf(ret_reason, -EINVAL, "policy= is given twice");
                        if (p < 0)
                                return reasonf(ret_reason, -EINVAL, "policy=%s: expected default, bind, preferred "
                                               "or interleave", value);
                        n.policy = p;
                } else
                        return reasonf(ret_reason, -EINVAL, "unknown option %s=: expected cpus=, hostnodes= or "
                                       "policy=", key);
        }

        /* The same rules as Policy= and HostNodes= of [Memory], for the node's own pair. */
        if (n.host_nodes && n.policy < 0)
                return reasonf(ret_reason, -EINVAL, "hostnodes= needs policy= (bind, preferred or interleave)");
        if (n.host_nodes && n.policy == VM_MEMORY_POLICY_DEFAULT)
                return reasonf(ret_reason, -EINVAL, "hostnodes= does not work with policy=default");
        if (!n.host_nodes && n.policy > VM_MEMORY_POLICY_DEFAULT)
                return reasonf(ret_reason, -EINVAL, "policy=%s needs hostnodes=", vm_memory_policy_to_string(n.policy));
        if (n.policy == VM_MEMORY_POLICY_PREFERRED) {
                (void) vm_spec_host_nodes_parse(n.host_nodes, nodes);
                if (vm_spec_host_nodes_count(nodes) != 1)
                        return reasonf(ret_reason, -EINVAL, "policy=preferred takes a single node in hostnodes=, "
                                       "not %s", n.host_nodes);
        }

        *ret = n;
        n = (VmGuestNode) {};
        return 0;
}

int vm_guest_node_format(const VmGuestNode *n, char **ret) {
        char size[32];

        vm_spec_format_size(size, n->size_bytes);
        return asprintf(ret, "%s%s%s%s%s%s%s", size, n->cpus ? " cpus=" : "", strempty(n->cpus),
                        n->host_nodes ? " hostnodes=" : "", strempty(n->host_nodes), n->policy >= 0 ? " policy=" : "",
                        n->policy >= 0 ? vm_memory_policy_to_string(n->policy) : "") < 0 ? -ENOMEM : 0;
}

int vm_spec_guest_node(const VmSpec *s, size_t i, VmGuestNode *ret) {
        _cleanup_(vm_guest_node_done) VmGuestNode n = {};
        int r;

        if (i >= s->n_guest_nodes)
                return -ENOENT;
        r = vm_guest_node_parse(s->guest_nodes[i], &n, NULL);
        if (r < 0)
                return r;
        if (n.policy < 0) {
                n.policy = s->policy;
                if (s->host_nodes) {
                        n.host_nodes = strdup(s->host_nodes);
                        if (!n.host_nodes)
                                return -ENOMEM;
                }
        }
        *ret = n;
        n = (VmGuestNode) {};
        return 0;
}

/* "A B DISTANCE": two different guest nodes and QEMU's -numa dist value (10 is local, 255 unreachable). */
int vm_guest_distance_parse(const char *text, unsigned ret[static 3], char **ret_reason) {
        _cleanup_(strv_freep) char **words = NULL;
        unsigned v[3];
        int r;

        r = strv_split_quoted(text, &words);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || strv_length(words) != 3 || parse_unsigned(words[0], &v[0]) < 0 ||
            parse_unsigned(words[1], &v[1]) < 0 || parse_unsigned(words[2], &v[2]) < 0)
                return reasonf(ret_reason, -EINVAL, "expected two guest nodes and their distance, such as \"0 1 20\"");
        if (v[0] >= VM_MAX_GUEST_NODES || v[1] >= VM_MAX_GUEST_NODES)
                return reasonf(ret_reason, -EINVAL, "guest nodes are numbered from 0 to %u", VM_MAX_GUEST_NODES - 1);
        if (v[0] == v[1])
                return reasonf(ret_reason, -EINVAL, "the distance of a node to itself is always 10");
        if (v[2] < 10 || v[2] > 255)
                return reasonf(ret_reason, -EINVAL, "distance %u: expected 10 to 255 (10: local, 255: unreachable)",
                               v[2]);
        memcpy(ret, v, sizeof(v));
        return 0;
}

/* The key parsers of the table (vm-spec-keys.c). */
int vm_spec_key_guest_node(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        _cleanup_(vm_guest_node_done) VmGuestNode n = {};
        _cleanup_free_ char *text = NULL;
        VmSpec *s = p->spec;
        int r;

        if (s->n_guest_nodes >= VM_MAX_GUEST_NODES)
                return reasonf(ret_reason, -E2BIG, "too many guest nodes, at most %u are supported",
                               VM_MAX_GUEST_NODES);
        r = vm_guest_node_parse(v, &n, ret_reason);
        if (r < 0)
                return r;
        r = vm_guest_node_format(&n, &text);
        if (r < 0)
                return r;
        r = strv_consume(&s->guest_nodes, TAKE_PTR(text));
        if (r < 0)
                return r;
        s->n_guest_nodes++;
        return 0;
}

int vm_spec_key_guest_distance(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        VmSpec *s = p->spec;
        unsigned d[3];
        int r;

        if (s->n_guest_distances >= VM_MAX_GUEST_DISTANCES)
                return reasonf(ret_reason, -E2BIG, "too many distances, at most %u are supported",
                               VM_MAX_GUEST_DISTANCES);
        r = vm_guest_distance_parse(v, d, ret_reason);
        if (r < 0)
                return r;
        r = strv_extendf(&s->guest_distances, "%u %u %u", d[0], d[1], d[2]);
        if (r < 0)
                return r;
        s->n_guest_distances++;
        return 0;
}

/* The checks across keys, called by vm_spec_validate_internal() after [Memory] and [CPU] on their own. */
int vm_spec_validate_numa(const VmSpec *s, const char **ret_field, char **ret_reason) {
        unsigned dist[VM_MAX_GUEST_NODES][VM_MAX_GUEST_NODES] = {};
        int owner[VM_MAX_VCPUS];
        uint64_t total = 0;
        char a[32], b[32];
        bool asymmetric = false;
        int r;

#define FAIL(field, ...)                                                \
        do {                                                            \
                *ret_field = (field);                                   \
                return reasonf(ret_reason, -EINVAL, __VA_ARGS__);       \
        } while (0)

        if (s->n_guest_nodes != strv_length(s->guest_nodes))
                FAIL("Memory.GuestNode", "the guest node count does not match the node list");
        if (s->n_guest_distances != strv_length(s->guest_distances))
                FAIL("Memory.GuestDistance", "the distance count does not match the distance list");
        if (s->n_guest_nodes > VM_MAX_GUEST_NODES)
                FAIL("Memory.GuestNode", "too many guest nodes, at most %u are supported", VM_MAX_GUEST_NODES);
        if (s->n_guest_distances > VM_MAX_GUEST_DISTANCES)
                FAIL("Memory.GuestDistance", "too many distances, at most %u are supported", VM_MAX_GUEST_DISTANCES);

        if (s->n_guest_nodes == 0) {
                if (s->n_guest_distances > 0)
                        FAIL("Memory.GuestDistance", "GuestDistance= needs GuestNode= lines");
                if (s->vcpu_affinity && streq(s->vcpu_affinity, VM_VCPU_AFFINITY_NODE))
                        FAIL("CPU.VCPUAffinity", "VCPUAffinity=node needs GuestNode= lines (with host nodes)");
                return 0;
        }

        /* Each backend would map the same file. */
        if (s->backend == VM_MEMORY_BACKEND_FILE)
                FAIL("Memory.GuestNode", "GuestNode= does not work with Backend=file (every node's backend would "
                     "map the same Path=): use Backend=memfd, with HugePages=yes for huge pages");

        for (unsigned v = 0; v < VM_MAX_VCPUS; v++)
                owner[v] = -1;

        for (size_t i = 0; i < s->n_guest_nodes; i++) {
                _cleanup_(vm_guest_node_done) VmGuestNode n = {};
                _cleanup_free_ char *reason = NULL, *canonical = NULL;
                CpuSet set;

                r = vm_guest_node_parse(s->guest_nodes[i], &n, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        FAIL("Memory.GuestNode", "GuestNode=%s (node %zu): %s", s->guest_nodes[i], i, strna(reason));
                r = vm_guest_node_format(&n, &canonical);
                if (r < 0)
                        return r;
                if (!streq(canonical, s->guest_nodes[i]))
                        FAIL("Memory.GuestNode", "GuestNode=%s is not normalized, expected %s", s->guest_nodes[i],
                             canonical);
                /* A memory-only guest node (no cpus=) has no vCPU to pin: it needs no host nodes for this. */
                if (s->vcpu_affinity && streq(s->vcpu_affinity, VM_VCPU_AFFINITY_NODE) && n.cpus &&
                    (n.policy < 0 ? s->policy : n.policy) == VM_MEMORY_POLICY_DEFAULT)
                        FAIL("CPU.VCPUAffinity", "VCPUAffinity=node needs host nodes for every guest node with vCPUs, "
                             "and guest node %zu (vCPUs %s) has none (give it hostnodes= and policy=, or set "
                             "[Memory] Policy= and HostNodes=)", i, n.cpus);
                if (s->hugepage_size != 0 && n.size_bytes % s->hugepage_size != 0) {
                        vm_spec_format_size(a, n.size_bytes);
                        vm_spec_format_size(b, s->hugepage_size);
                        FAIL("Memory.GuestNode", "guest node %zu: %s is not a whole number of %s huge pages "
                             "(HugePageSize=)", i, a, b);
                }
                total += n.size_bytes;

                if (!n.cpus)
                        continue;
                if (cpu_list_parse(n.cpus, &set) < 0)
                        return -EINVAL; /* parsed above */
                for (unsigned v = 0; v < VM_MAX_VCPUS; v++) {
                        if (!cpu_set_contains(&set, v))
                                continue;
                        if (v >= s->vcpus)
                                FAIL("Memory.GuestNode", "guest node %zu names vCPU %u, but the guest has %u vCPU%s "
                                     "(VCPUs=%u)", i, v, s->vcpus, s->vcpus == 1 ? "" : "s", s->vcpus);
                        if (owner[v] >= 0)
                                FAIL("Memory.GuestNode", "vCPU %u is in guest node %d and in guest node %zu: each "
                                     "vCPU belongs to exactly one node", v, owner[v], i);
                        owner[v] = (int) i;
                }
        }

        if (total != s->memory_bytes) {
                vm_spec_format_size(a, total);
                vm_spec_format_size(b, s->memory_bytes);
                FAIL("Memory.GuestNode", "the GuestNode= sizes add up to %s, but Memory= is %s", a, b);
        }
        for (unsigned v = 0; v < s->vcpus; v++)
                if (owner[v] < 0)
                        FAIL("Memory.GuestNode", "vCPU %u is in no guest node: give every vCPU of VCPUs=%u to one "
                             "node with cpus=", v, s->vcpus);

        for (size_t i = 0; i < s->n_guest_distances; i++) {
                _cleanup_free_ char *reason = NULL;
                unsigned d[3];
                char canonical[64];

                r = vm_guest_distance_parse(s->guest_distances[i], d, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        FAIL("Memory.GuestDistance", "GuestDistance=%s: %s", s->guest_distances[i], strna(reason));
                snprintf(canonical, sizeof(canonical), "%u %u %u", d[0], d[1], d[2]);
                if (!streq(canonical, s->guest_distances[i]))
                        FAIL("Memory.GuestDistance", "GuestDistance=%s is not normalized, expected %s",
                             s->guest_distances[i], canonical);
                if (d[0] >= s->n_guest_nodes || d[1] >= s->n_guest_nodes)
                        FAIL("Memory.GuestDistance", "GuestDistance=%s names guest node %u, but there are %zu "
                             "(0-%zu)", s->guest_distances[i], MAX(d[0], d[1]), s->n_guest_nodes,
                             s->n_guest_nodes - 1);
                if (dist[d[0]][d[1]] != 0)
                        FAIL("Memory.GuestDistance", "the distance from guest node %u to %u is given twice", d[0],
                             d[1]);
                dist[d[0]][d[1]] = d[2];
        }

        /* QEMU's rules (validate_numa_distance()): once any distance is given, every pair of nodes needs one in
         * at least one direction (the other is taken to be the same); if any pair differs by direction, every
         * pair needs both. */
        if (s->n_guest_distances == 0)
                return 0;
        for (unsigned i = 0; i < s->n_guest_nodes; i++)
                for (unsigned j = i + 1; j < s->n_guest_nodes; j++) {
                        if (dist[i][j] == 0 && dist[j][i] == 0)
                                FAIL("Memory.GuestDistance", "the distance between guest nodes %u and %u is missing: "
                                     "once GuestDistance= is used, every pair of nodes needs one", i, j);
                        if (dist[i][j] != 0 && dist[j][i] != 0 && dist[i][j] != dist[j][i])
                                asymmetric = true;
                }
        if (asymmetric)
                for (unsigned i = 0; i < s->n_guest_nodes; i++)
                        for (unsigned j = 0; j < s->n_guest_nodes; j++)
                                if (i != j && dist[i][j] == 0)
                                        FAIL("Memory.GuestDistance", "the distances are asymmetric, so every pair "
                                             "needs both directions, and %u to %u is missing", i, j);

#undef FAIL
        return 0;
}

int vm_spec_vcpu_affinity_map(const VmSpec *s, const NumaTopology *t, char **ret_map, char **ret_reason) {
        _cleanup_free_ char *buf = NULL;
        bool first = true;
        size_t size = 0;
        FILE *f;
        int r;

        *ret_map = NULL;
        if (!s->vcpu_affinity)
                return 0;
        if (!streq(s->vcpu_affinity, VM_VCPU_AFFINITY_NODE)) {
                *ret_map = strdup(s->vcpu_affinity);
                return *ret_map ? 0 : -ENOMEM;
        }

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        r = 0;
        for (size_t i = 0; i < s->n_guest_nodes && r >= 0; i++) {
                _cleanup_(vm_guest_node_done) VmGuestNode n = {};
                _cleanup_free_ char *cpus = NULL;
                CpuSet host = {}, vcpus;
                uint64_t mask = 0;

                r = vm_spec_guest_node(s, i, &n);
                if (r < 0)
                        break;
                if (!n.cpus)
                        continue;
                if (!n.host_nodes || numa_node_list_parse(n.host_nodes, &mask) < 0) {
                        r = reasonf(ret_reason, -EINVAL, "VCPUAffinity=node: guest node %zu has no host nodes below "
                                    "%u", i, NUMA_NODES_MAX);
                        break;
                }
                for (unsigned h = 0; h < NUMA_NODES_MAX && r >= 0; h++) {
                        const NumaNode *hn;

                        if (!(mask & (UINT64_C(1) << h)))
                                continue;
                        hn = numa_topology_find_node(t, h);
                        if (!hn || cpu_set_is_empty(&hn->cpus)) {
                                r = reasonf(ret_reason, -ENOENT, "VCPUAffinity=node: host node %u of guest node %zu "
                                            "%s", h, i, hn ? "has no CPUs" : "is not online");
                                break;
                        }
                        for (unsigned c = 0; c < CPU_SET_MAX; c++)
                                if (cpu_set_contains(&hn->cpus, c))
                                        cpu_set_add(&host, c);
                }
                if (r < 0)
                        break;
                r = cpu_list_format(&host, &cpus);
                if (r < 0)
                        break;
                if (cpu_list_parse(n.cpus, &vcpus) < 0) {
                        r = -EINVAL;
                        break;
                }
                for (unsigned v = 0; v < VM_MAX_VCPUS; v++)
                        if (cpu_set_contains(&vcpus, v))
                                fprintf(f, "%s%u:%s", first ? "" : " ", v, cpus), first = false;
        }
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        if (isempty(buf))
                return 0;       /* only memory-only nodes: nothing to pin */
        *ret_map = TAKE_PTR(buf);
        return 0;
}
