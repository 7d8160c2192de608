/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parses the input as /proc/PID/numa_maps text with numa_maps_parse(), the buffer entry point numa_maps_read()
 * uses. Besides the sanitizers, it checks the totals add up: the nodes' bytes and the kinds' bytes both sum
 * to total_bytes, each node's kinds sum to its bytes; failure is one of the documented errors. */

#include <stdio.h>

#include "fuzz.h"
#include "basic/log.h"
#include "metrics/numa-maps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;
        NumaMaps m;
        uint64_t nodes_sum = 0, kinds_sum = 0;
        int r;

        if (size > 1024 * 1024)
                return 0;
        fuzz_setup_logging();

        text = fuzz_strndup(data, size);

        r = numa_maps_parse(text, &m);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EINVAL, -ERANGE, -ENOMEM);
                return 0;
        }

        if (m.n_nodes > NUMA_MAPS_MAX_NODE + 1 || (m.n_nodes > 0) != (m.nodes != NULL))
                abort();
        for (size_t i = 0; i < m.n_nodes; i++) {
                const NumaMapsNode *n = &m.nodes[i];
                uint64_t k = 0;

                for (NumaMapsKind kind = 0; kind < _NUMA_MAPS_KIND_MAX; kind++)
                        k += n->kind_bytes[kind];
                if (k != n->bytes || n->bytes < n->pages || numa_maps_node_bytes(&m, (unsigned) i) != n->bytes)
                        abort();
                nodes_sum += n->bytes;
        }
        for (NumaMapsKind kind = 0; kind < _NUMA_MAPS_KIND_MAX; kind++)
                kinds_sum += m.kind_bytes[kind];
        if (nodes_sum != m.total_bytes || kinds_sum != m.total_bytes)
                abort();
        if (numa_maps_node_bytes(&m, (unsigned) m.n_nodes) != 0)
                abort();

        numa_maps_done(&m);
        return 0;
}
