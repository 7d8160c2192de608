/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The names of an iteration's counters and what they are measured in (memvisor.experiment(5), "RESULTS").
 * A counter name is dotted, its first part the side it was taken on: "time.provoke_usec",
 * "host.vmstat.pgmigrate_success", "host.kvm_exit.EPT_VIOLATION.vcpu0", "guest.tlb_shootdowns.cpu1",
 * "workload.elapsed_ns". The unit follows from the name alone, so a record needs no unit of its own:
 *   ends in "_usec"                  us
 *   ends in "_ns"                    ns
 *   ends in "bytes_per_sec"          bytes/s
 *   ends in "_bytes" or is "….bytes" bytes
 *   ends in "_pages" or is "….pages" pages
 *   its last part starts "bytes_"    bytes   ("workload.bytes_touched")
 *   its last part starts "pages_"    pages   ("workload.pages_touched")
 *   anything else                    count */

#include <stdbool.h>
#include <stddef.h>

#include "basic/macro.h"

#define EXPERIMENT_COUNTER_NAME_MAX 256U

/* Letters, digits and "_.:-", not empty, at most EXPERIMENT_COUNTER_NAME_MAX bytes, no empty dotted part. */
bool experiment_counter_name_is_valid(const char *name) _pure_;
/* "us", "ns", "bytes/s", "bytes", "pages" or "count". */
const char *experiment_counter_unit(const char *name) _pure_;
