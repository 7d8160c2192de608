/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Kernel tracepoints as tracefs describes them: where tracefs is, an event's id, the events of a system
 * (libtracefs), and the exit reasons of kvm:kvm_exit read from the symbol table of the event's own print fmt
 * (libtraceevent), so VMX and SVM hosts both get the names their kernel prints. Every path is below a root
 * ("/" on a host, a fixture tree in the tests). Synchronous file reads of a few KiB: call them off the event
 * loop or at the start of an experiment. */

#include "basic/macro.h"

/* The kernel's KVM_ISA_* (arch/x86/kvm/trace.h), the value of kvm_exit's isa field. */
typedef enum TraceKvmIsa {
        TRACE_KVM_ISA_VMX = 1,
        TRACE_KVM_ISA_SVM = 2,
} TraceKvmIsa;

const char *trace_kvm_isa_to_string(TraceKvmIsa isa) _pure_;   /* "vmx", "svm"; NULL for anything else */

typedef struct TraceSymbol {
        uint64_t value;         /* as the field holds it: a negative table value is masked to the field's size */
        char *name;
} TraceSymbol;

/* At most this many symbols are taken from a table (the largest kernel table has ~110). */
#define TRACE_SYMBOLS_MAX 4096
/* A format file larger than this is refused (kvm_exit's is ~7 KiB). */
#define TRACE_FORMAT_SIZE_MAX (1024U * 1024U)

void trace_symbols_free(TraceSymbol *s, size_t n);

/* The tracefs directory below root: ROOT/sys/kernel/tracing, else ROOT/sys/kernel/debug/tracing, the first
 * that has events/. -ENOENT with *ret_reason ("tracefs is not mounted at /sys/kernel/tracing (nor at
 * /sys/kernel/debug/tracing)") when neither has; another negative errno with a reason when a directory cannot
 * be looked at (-EACCES). ret_reason may be NULL; on success it is left alone. */
int trace_find_tracing_dir(const char *root, char **ret_dir, char **ret_reason);

/* True for a name fit to be a path component of events/ (letters, digits, '_', '-', '.', not "." or ".."):
 * system and event names from a definition are checked with it before they touch a path. */
bool trace_name_is_valid(const char *name) _pure_;

/* The id of SYSTEM:EVENT (events/SYSTEM/EVENT/id). -ENOENT: no such event; -EINVAL: a bad name. */
int trace_event_id(const char *tracing_dir, const char *system, const char *event, uint64_t *ret);

/* Every event of system (or of every system when system is NULL) as "system:event", sorted, with
 * libtracefs. -ENOENT when there is none (no such system). For the error that lists what exists. */
int trace_list_events(const char *tracing_dir, const char *system, char ***ret);

/* The exit reasons of kvm:kvm_exit for isa, from the __print_symbolic table of its print fmt that belongs to
 * that isa: the format has `(REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, {0, "EXCEPTION_NMI"},
 * …) : __print_symbolic(REC->exit_reason, {0x000, "read_cr0"}, …)`, parsed with libtraceevent. Symbols are
 * sorted by value, duplicates dropped (the first name kept). -ENOENT: no such event; -EBADMSG: the format does
 * not parse or has no table for isa; -EFBIG: the format is too large; all three with *ret_reason. */
int trace_kvm_exit_reasons(const char *tracing_dir, TraceKvmIsa isa, TraceSymbol **ret, size_t *ret_n,
                           char **ret_reason);

/* The same from the text of the format file (the fuzz target's entry). Any bytes. libtraceevent runs in a
 * short-lived child process (fork, a pipe, waitpid): version 1.7 (Debian 12) dereferences NULL on some
 * malformed print fmts, and a crash of it is then -EBADMSG with a reason, not the caller's crash. A print fmt
 * with unbalanced brackets or quotes is refused before the library sees it. */
int trace_kvm_exit_reasons_from_format(const char *text, size_t size, TraceKvmIsa isa, TraceSymbol **ret,
                                       size_t *ret_n, char **ret_reason);

/* Which isa this host's KVM uses, from the vendor_id of ROOT/proc/cpuinfo: GenuineIntel → VMX,
 * AuthenticAMD/HygonGenuine → SVM. -ENOENT: no vendor_id; -EOPNOTSUPP: another vendor. */
int trace_kvm_isa(const char *root, TraceKvmIsa *ret);
